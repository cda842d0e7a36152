"""Training data end to end in-process: a scene through the real capture thread,
admission, decision and sampling, a classifier that makes confident mistakes on a
known schedule, and the real upload client posting over HTTP to the stand-in's
dataset routes (``tools/standin_dataset.py``), with the durable queue on disk.

The oracle is independent of the sampler: the fake classifier records each
mistake it made (never two in a row, so the decision never follows one), and
every mistake made after the first state is an ``overruled`` frame that must
arrive exactly once, labelled with the class the decision kept.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import aiohttp
import cv2
import numpy as np
import pytest

from edge_agent.classify import Reply
from edge_agent.dataset.upload import UploadClient
from edge_agent.dataset.uploader import Uploader
from edge_agent.reply import Classification, Prediction
from edge_agent.storage.uploads import UploadLog
from tests.inprocess import FakeClassifier, config, control, on_loop, play
from tools.scenes import Scene, dominant
from tools.standin_api import StandinApi, ThreadedStandin

CLASSES = ("red", "green", "blue")


class MistakenClassifier(FakeClassifier):
    """The dominant colour at 0.9, but every ``every``-th call a confident (0.9) wrong
    class: never two mistakes in a row. Records each answer with its truth."""

    def __init__(self, every: int = 3):
        super().__init__()
        self.every = every
        self.answers: list[tuple[str, str]] = []  # (truth, answered)
        self._before: str | None = None  # the truth before the last change of truth

    async def classify(self, jpeg: bytes, model: str | None = None) -> Reply:
        image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
        truth, _ = dominant(image)
        n = len(self.answers)
        if n and self.answers[-1][0] != truth:
            self._before = self.answers[-1][0]
        top = truth
        if n % self.every == self.every - 1:  # wrong, and never the class the decision may still hold
            top = next(c for c in CLASSES if c not in (truth, self._before))
        self.answers.append((truth, top))
        preds = (Prediction(top, 0.9),) + tuple(Prediction(c, 0.05) for c in CLASSES if c != top)
        return Reply({"top": top}, Classification(top, 0.9, preds), latency_ms=1.0, credits=None)


def dataset(url: str, **extra: Any) -> dict[str, Any]:
    return {"enabled": True, "url": url, "api_key": "test-key", **extra}


def uploads(api: StandinApi) -> list[dict[str, Any]]:
    """What the stand-in stored, in the order it came: the fields of each new image."""
    out = []
    for r in api.dataset.uploads():
        meta = r.fields.get("metadata")
        out.append({**r.fields, "metadata": json.loads(meta) if isinstance(meta, str) else meta,
                    "id": r.image_id})
    return out


async def drain(state: Path, api: StandinApi) -> int:
    """What the stop left in the queue (held candidates are judged at the stop), sent
    as the next start would send it: the real uploader on the same file. How many."""
    queue = UploadLog(state / "uploads.db")
    await queue.open()
    left = queue.stats().queued
    async with aiohttp.ClientSession() as session:
        up = Uploader(queue, UploadClient(session, api_key="test-key", url=api.url), "colours",
                      counted=lambda r, o: None)
        task = asyncio.create_task(up.run())
        deadline = time.monotonic() + 10
        while queue.stats().queued:
            assert time.monotonic() < deadline, "the queue did not drain"
            await asyncio.sleep(0.02)
        up.finish()
        await asyncio.wait_for(task, 5)
    await queue.close()
    return left


def labels(api: StandinApi) -> dict[str, dict[str, Any]]:
    return {r.image_id: r.fields for r in api.dataset.log() if r.route == "annotate" and r.status == 200}


def scene(seconds: float = 40.0, passer: tuple[float, float] | None = None, **kw: Any) -> Scene:
    return Scene(seconds=seconds, fps=4, classes=[(0, "red"), (15, "green"), (30, "blue")], passer=passer,
                 fade=None, **kw)


@pytest.mark.asyncio
async def test_every_overruled_result_is_uploaded_once_labelled_with_the_decided_class(tmp_path: Path) -> None:
    with ThreadedStandin(StandinApi()) as api:
        cfg = config(tmp_path, {"change": {"enabled": False}},
                     dataset=dataset(api.url, per_hour=500, per_day=1000))
        clf = MistakenClassifier(every=3)
        run = await play(cfg, scene(passer=(0.0, 40.0)), clf)
        left = await drain(tmp_path / "state", api)
        got = uploads(api)
    kinds = [m.topic.rsplit("/", 1)[1] for m in run.out.messages]
    first_state = kinds[:kinds.index("state")].count("result") - 1  # the result that decided it
    mistakes = [(i, truth, top) for i, (truth, top) in enumerate(clf.answers) if top != truth and i > first_state]
    overruled = [u for u in got if "overruled" in u["tags"]]
    counts = run.agent.collection.counts()
    assert len(mistakes) >= 8
    # every mistake was sampled once: saved, or skipped as a near-duplicate of one saved
    assert counts[("overruled", "queued")] + counts.get(("overruled", "similar"), 0) == len(mistakes)
    assert counts[("overruled", "queued")] == len(overruled)  # (some sent by the drain: the next start)
    assert len(overruled) >= len(mistakes) * 0.8  # the passer moves: most pictures differ
    # once each, in the queue's order, with the model's wrong answer and the decided class
    assert all(u["metadata"]["top"] != u["metadata"]["state"] for u in overruled)
    assert {u["metadata"]["top"] for u in overruled} <= {top for _, _, top in mistakes}
    order = [int(u["name"].split("-")[0]) for u in got]
    assert order == sorted(order)
    captured = [u["metadata"]["captured_at"] for u in got]
    assert len(set(captured)) == len(captured)
    lab = labels(api)
    for u in overruled:
        assert lab[u["id"]]["label"] == u["metadata"]["state"]
        assert lab[u["id"]]["prediction"] is True
    # the change frames too, and nothing else on this clean-confidence scene
    changes = [u for u in got if "change" in u["tags"]]
    assert [u["metadata"]["top"] for u in changes] == run.out.states()
    assert len(got) == len(overruled) + len(changes)
    # what each upload carries
    u = got[0]
    assert set(u["tags"]) >= {"edge-agent", "cam", "t", "colours-1"}
    assert u["batch"].startswith("edge-agent ")
    assert {"camera", "device", "model", "reason", "top", "confidence", "predictions", "state",
            "captured_at"} <= set(u["metadata"])
    st = run.agent.collection.status("cam")
    assert st.queued == left and st.saved_today == len(got) and st.paused is None
    assert st.sent_today == len(got) - left


@pytest.mark.asyncio
async def test_a_clean_still_scene_uploads_only_its_change_frames(tmp_path: Path) -> None:
    with ThreadedStandin(StandinApi()) as api:
        cfg = config(tmp_path, dataset=dataset(api.url))  # the defaults: gate on, limits 10/50
        run = await play(cfg, scene(45.0))
        await drain(tmp_path / "state", api)
        got = uploads(api)
        picture = cv2.imread(str(api.dataset.root() / "colours" / f"{got[0]['id']}.jpg"))
    assert run.out.states() == ["red", "green", "blue"]
    assert [u["metadata"]["top"] for u in got] == ["red", "green", "blue"]
    assert all(u["metadata"]["reason"] == "change" for u in got)
    assert picture.shape == (240, 320, 3)  # the frame as captured


@pytest.mark.asyncio
async def test_the_limits_hold_across_restarts(tmp_path: Path) -> None:
    with ThreadedStandin(StandinApi()) as api:
        cfg = config(tmp_path, {"change": {"enabled": False}}, dataset=dataset(api.url, per_hour=4))
        await play(cfg, scene(20.0), MistakenClassifier(every=3))
        await drain(tmp_path / "state", api)
        first = len(uploads(api))
        await play(cfg, scene(20.0, seed=8), MistakenClassifier(every=3))
        await drain(tmp_path / "state", api)
        total = len(uploads(api))
    assert first == 4 and total == 4


@pytest.mark.asyncio
async def test_on_demand_saves_the_last_classified_frame_with_a_person_s_or_the_model_s_label(
        tmp_path: Path) -> None:
    api: StandinApi

    def hook(agent: Any, i: int) -> None:
        if i == 84:  # the frames wait until both are sent (the agent stops at the scene's end)
            deadline = time.monotonic() + 5
            while len(api.dataset.uploads()) < 2 and time.monotonic() < deadline:
                time.sleep(0.02)
        if i == 20:
            on_loop(agent, control, agent, "edge_agent/t/cam/collect", b"blue")
        if i == 80:  # t = 20 s: the green picture
            on_loop(agent, control, agent, "edge_agent/t/cam/collect", b"")

    with ThreadedStandin(StandinApi()) as api:
        cfg = config(tmp_path, dataset=dataset(api.url, sampling={"change": False}))
        await play(cfg, scene(22.0), hook=hook)
        got = uploads(api)
        lab = labels(api)
    assert [u["metadata"]["reason"] for u in got] == ["on_demand", "on_demand"]
    assert lab[got[0]["id"]]["label"] == "blue" and not lab[got[0]["id"]].get("prediction")
    assert lab[got[1]["id"]]["label"] == "green" and lab[got[1]["id"]]["prediction"] is True
