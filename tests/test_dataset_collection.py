"""The collection's guards, each against the real queue on disk and the stand-in's
dataset routes over HTTP: on-demand requests from outside are bounded, a label
never jams or ends the uploads, a stop keeps its time with an upload hanging, a
frame too large to queue is dropped with one line, nothing is sampled without a
usable queue, and what waits for a verdict is a JPEG, not a frame."""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

import aiohttp
import cv2
import numpy as np
import pytest

from edge_agent.captured import Original
from edge_agent.config import parse_config
from edge_agent.dataset import collect as collect_mod
from edge_agent.dataset.collect import STOP_BUDGET, Collection
from edge_agent.dataset.keep import Shot
from edge_agent.dataset.sampling import Facts, Sampler, SamplingRules, requested
from edge_agent.collection_view import Outcome
from edge_agent.dataset.upload import UploadClient
from edge_agent.dataset.uploader import LABEL_TRIES, Uploader
from edge_agent.reply import Prediction
from edge_agent.storage.uploaddb import LabelSource, UploadItem
from edge_agent.storage.uploads import UploadLog
from tools.standin_api import StandinApi, ThreadedStandin

KEY = "rf_collection_SECRET_4"


@pytest.fixture
def api():
    with ThreadedStandin(StandinApi(api_key=KEY)) as a:
        yield a


def cfg(tmp: Path, url: str, **dataset):
    (tmp / "state").mkdir(parents=True, exist_ok=True)  # the agent makes it (ensure_state_dir)
    return parse_config({
        "device_id": "t", "api": {"url": "http://127.0.0.1:9", "model": "colours/1", "api_key": KEY},
        "state_dir": str(tmp / "state"), "status": {"enabled": False},
        "cameras": [{"name": "cam", "source": "rtsp://x/y", "classes": ["red", "blue"]}],
        "dataset": {"enabled": True, "url": url, **dataset}}, {})


def facts(top: str = "red") -> Facts:
    return Facts(top=top, confidence=0.9, predictions=(Prediction(top, 0.9),), counted=True, decided=top)


def shot(seed: int = 0, size: tuple[int, int] = (48, 64)) -> Shot:
    img = np.random.default_rng(seed).integers(0, 255, (*size, 3), dtype=np.uint8)
    return Shot("cam", 1000.0 + seed, cv2.resize(img, (64, 48)), Original.of_pixels(img, None, reused=False))


async def started(c: Collection):
    session = aiohttp.ClientSession()
    await c.start(session)
    return session


async def until(pred, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < deadline
        await asyncio.sleep(0.02)


async def test_on_demand_is_bounded_and_a_person_s_label_must_be_a_class(tmp_path: Path, api: StandinApi,
                                                                         caplog) -> None:
    c = Collection(cfg(tmp_path, api.url), tmp_path / "state")
    session = await started(c)
    try:
        assert c.request("cam", None) is False  # nothing classified yet
        c._last["cam"] = (shot(1), facts())
        assert c.request("cam", "green") is False  # not one of the camera's classes
        assert c.request("cam", "blue") is True
        for _ in range(collect_mod.ON_DEMAND_PER_HOUR - 1):
            assert c.request("cam", None) is True
        assert c.request("cam", None) is False  # the 61st in the hour
        assert c.request("cam", None) is False
        await until(lambda: c._work.empty())
    finally:
        await c.close()
        await session.close()
    refusals = [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]
    assert len(refusals) == 3  # one per kind and episode: not classified, not a class, the cap
    assert c.counts()[("on_demand", "queued")] == 2  # the same picture: a person's label, then the model's
    assert c.counts()[("on_demand", "similar")] >= 1


async def test_without_a_usable_queue_nothing_is_sampled_and_no_frame_is_kept(tmp_path: Path,
                                                                            api: StandinApi) -> None:
    c = Collection(cfg(tmp_path, api.url), None)  # no usable state_dir
    session = await started(c)
    try:
        assert c.usable is False and c.collecting("cam") is False and c.enabled_for("cam") is True
        c._last["cam"] = (shot(1), facts())
        assert c.request("cam", None) is False
    finally:
        await c.close()
        await session.close()


async def test_a_frame_too_large_to_queue_is_dropped_with_one_line(tmp_path: Path, api: StandinApi,
                                                                   caplog) -> None:
    c = Collection(cfg(tmp_path, api.url, max_size=0), tmp_path / "state")
    session = await started(c)
    try:
        for seed in (1, 2):  # 2600x2600 of noise at q90 is far over the 4 MB an item may be
            big = shot(seed, (2600, 2600))
            c._hand_over(requested(big, facts("red"), None))
        await until(lambda: c._work.empty() and c.dropped == 2, 20)
    finally:
        await c.close()
        await session.close()
    assert c.counts()[("on_demand", "dropped")] == 2
    assert sum("was dropped" in r.getMessage() for r in caplog.records) == 1
    assert c.status("cam").dropped == 2


async def test_a_held_candidate_waits_as_a_jpeg_not_as_the_frame(tmp_path: Path, api: StandinApi) -> None:
    c = Collection(cfg(tmp_path, api.url), tmp_path / "state")
    s = Sampler(SamplingRules(), window=5, confirm=2)
    first, mistake = shot(1), shot(2)
    s.see(facts("red"), first)
    s.see(Facts(top="blue", confidence=0.9, predictions=(Prediction("blue", 0.9),), counted=True,
                decided="red"), mistake)
    assert s.holding(mistake) and not s.holding(first)
    mistake.settle(c._cams["cam"], 1280)
    assert mistake._original is None and mistake._preview is None
    assert mistake.jpeg(c._cams["cam"], 1280)[:2] == b"\xff\xd8" and mistake.fingerprint(c._cams["cam"])


def item(n: int, label: str | None) -> UploadItem:
    img = np.random.default_rng(n).integers(0, 255, (48, 64, 3), dtype=np.uint8)
    return UploadItem(camera="cam", reason="overruled", jpeg=cv2.imencode(".jpg", img)[1].tobytes(),
                      captured_at=1000.0 + n, batch="b", label=label, label_source=LabelSource.MODEL,
                      metadata={"n": n}, tags=("edge-agent",))


class Loop:
    def __init__(self, tmp: Path, api: StandinApi, queue_cls=UploadLog):
        self.tmp, self.api, self.queue_cls = tmp, api, queue_cls
        self.counted: list = []

    async def __aenter__(self):
        self.session = aiohttp.ClientSession()
        self.queue = self.queue_cls(self.tmp / "uploads.db")
        await self.queue.open()
        self.up = Uploader(self.queue, UploadClient(self.session, api_key=KEY, url=self.api.url, timeout=2),
                           "colours", counted=lambda r, o: self.counted.append(o), retry_initial=0.02,
                           retry_max=0.05)
        self.task = asyncio.create_task(self.up.run())
        return self

    async def __aexit__(self, *exc):
        self.up.finish()
        await asyncio.wait_for(self.task, 5)
        await self.queue.close()
        await self.session.close()


async def test_a_label_the_client_will_not_send_leaves_the_frame_unlabelled_and_uploads_go_on(
        tmp_path: Path, api: StandinApi, caplog) -> None:
    async with Loop(tmp_path, api) as lp:
        await lp.queue.put(item(1, "door\topen"))  # a model's class name with a tab in it
        await lp.queue.put(item(2, "red"))
        lp.up.wake()
        await until(lambda: lp.queue.stats().queued == 0)
        assert not lp.task.done()
    assert [r.fields["metadata"]["n"] for r in api.dataset.uploads()] == [1, 2]
    assert [r.fields["label"] for r in api.dataset.log() if r.route == "annotate"] == ["red"]
    assert any("without its label" in r.getMessage() for r in caplog.records)


async def test_a_404_on_a_label_never_pauses_and_is_given_up_after_a_few_tries(tmp_path: Path,
                                                                              api: StandinApi) -> None:
    # each try's upload is answered with an image the stand-in does not have: its label is a 404
    api.dataset.add_faults(*[{"reply": {"success": True, "id": "ghost"}}, {"status": 404}] * LABEL_TRIES)
    async with Loop(tmp_path, api) as lp:
        await lp.queue.put(item(1, "red"))
        await lp.queue.put(item(2, "blue"))
        lp.up.wake()
        await until(lambda: lp.queue.stats().queued == 0)
        assert lp.up.figures.paused is None
    notes = [(r.route, r.status) for r in api.dataset.log() if r.route == "annotate"]
    assert notes == [("annotate", 404)] * LABEL_TRIES + [("annotate", 200)]
    assert lp.counted.count(Outcome.FAILED) == LABEL_TRIES - 1


class FlakyLog(UploadLog):
    failed = False

    async def oldest(self):
        if not FlakyLog.failed:
            FlakyLog.failed = True
            raise RuntimeError("a bug")
        return await super().oldest()


async def test_an_unexpected_error_is_logged_once_and_uploading_goes_on(tmp_path: Path, api: StandinApi,
                                                                        caplog) -> None:
    async with Loop(tmp_path, api, FlakyLog) as lp:
        await lp.queue.put(item(1, None))
        lp.up.wake()
        await until(lambda: lp.queue.stats().queued == 0)
        assert not lp.task.done()
    assert sum("unexpected error" in r.getMessage() for r in caplog.records) == 1
    assert len(api.dataset.uploads()) == 1


async def test_a_stop_keeps_its_time_with_an_upload_hanging_or_in_backoff(tmp_path: Path,
                                                                        api: StandinApi) -> None:
    for name, fault in (("hang", {"hang": 30}), ("backoff", {"status": 503})):
        api.dataset.add_faults(fault)
        c = Collection(cfg(tmp_path / name, api.url, timeout=60), tmp_path / name / "state")
        session = await started(c)
        try:
            c._hand_over(requested(shot(1), facts(), None))
            await until(lambda: (len(api.dataset.log()) >= 1) if name == "hang" else c.uploader.figures.retries)
            began = time.monotonic()
            c.finishing()  # the agent's stop begins (then the classifications drain)
            await c.close()
            took = time.monotonic() - began
        finally:
            await session.close()
        assert took <= STOP_BUDGET + 0.3, (name, took)
        assert c.queue_length() == 1  # the frame stays queued for the next start
        api.dataset.faults.clear()
        api.dataset.received.clear()


async def test_a_held_candidate_becomes_its_jpeg_or_is_let_go_when_the_limits_refuse_it(
        tmp_path: Path, api: StandinApi) -> None:
    for per_hour, encoded in ((10, True), (0, False)):
        c = Collection(cfg(tmp_path / str(per_hour), api.url, per_hour=per_hour), tmp_path / str(per_hour) / "state")
        session = await started(c)
        try:
            held = shot(3)
            c._hold(held)
            await until(lambda: c._settling == 0)
            assert held._original is None and held._preview is None  # the frame is let go either way
            assert (held._jpeg is not None) is encoded  # encoded only when it could be saved
        finally:
            await c.close()
            await session.close()
