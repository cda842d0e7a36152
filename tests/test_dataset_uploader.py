"""The upload loop against the stand-in's dataset routes over real HTTP, with the
real queue on disk: what leaves the queue and when, what is retried and how often,
what pauses, and the picture a sampled frame is sent as."""

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
from edge_agent.dataset.picture import apply_mask, picture
from edge_agent.collection_view import Outcome, Paused
from edge_agent.dataset.upload import UploadClient
from edge_agent.dataset.uploader import LABEL_TRIES, Uploader
from edge_agent.storage.uploaddb import LabelSource, UploadItem
from edge_agent.storage.uploads import UploadLog
from tools.standin_api import StandinApi, ThreadedStandin

KEY = "rf_uploader_SECRET_5"


def jpeg(seed: int) -> bytes:
    img = np.random.default_rng(seed).integers(0, 255, (48, 64, 3), dtype=np.uint8)
    return cv2.imencode(".jpg", img)[1].tobytes()


def item(n: int, label: str | None = "red", source: LabelSource = LabelSource.MODEL) -> UploadItem:
    return UploadItem(camera="cam", reason="overruled", jpeg=jpeg(n), captured_at=1000.0 + n, batch="edge-agent x",
                      label=label, label_source=source, metadata={"n": n}, tags=("edge-agent", "cam"))


class Run:
    def __init__(self, tmp: Path, api: StandinApi, key: str = KEY, project: str = "colours"):
        self.tmp, self.api, self.key, self.project = tmp, api, key, project
        self.counted: list[tuple[str, Outcome]] = []

    async def __aenter__(self) -> "Run":
        self.session = aiohttp.ClientSession()
        self.queue = UploadLog(self.tmp / "uploads.db")
        await self.queue.open()
        client = UploadClient(self.session, api_key=self.key, url=self.api.url, timeout=2)
        self.up = Uploader(self.queue, client, self.project, counted=lambda r, o: self.counted.append((r, o)),
                           retry_initial=0.05, retry_max=0.2)
        self.task = asyncio.create_task(self.up.run())
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)
        await self.queue.close()
        await self.session.close()

    async def put(self, *items: UploadItem) -> None:
        for it in items:
            assert await self.queue.put(it) is not None
        self.up.wake()

    async def drained(self, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while self.queue.stats().queued:
            assert time.monotonic() < deadline, "the queue did not drain"
            await asyncio.sleep(0.02)


@pytest.fixture
def api():
    with ThreadedStandin(StandinApi(api_key=KEY)) as a:
        yield a


async def test_in_order_labelled_and_removed(tmp_path: Path, api: StandinApi) -> None:
    async with Run(tmp_path, api) as run:
        await run.put(item(1), item(2, "blue", LabelSource.PERSON), item(3, None))
        await run.drained()
    sent = api.dataset.uploads()
    assert [r.fields["metadata"]["n"] for r in sent] == [1, 2, 3]
    notes = {r.image_id: r.fields for r in api.dataset.log() if r.route == "annotate"}
    assert notes[sent[0].image_id] == {"label": "red", "name": f"{sent[0].image_id}.txt", "prediction": True}
    assert notes[sent[1].image_id]["label"] == "blue" and notes[sent[1].image_id]["prediction"] is False
    assert sent[2].image_id not in notes
    assert run.counted == [("overruled", Outcome.UPLOADED)] * 3
    assert run.up.figures.today() == 3 and run.up.figures.last_error is None


@pytest.mark.parametrize("fault", [{"garbage": True}, {"big_body": 2_000_000}, {"gzip_bomb": 200_000_000},
                                   {"status": 503}, {"reset": True}, {"status": 429, "retry_after": 0}])
async def test_passing_trouble_and_hostile_replies_keep_the_frame_and_retry(tmp_path: Path, api: StandinApi,
                                                                           fault: dict, caplog) -> None:
    api.dataset.add_faults(fault, fault)
    caplog.set_level(logging.DEBUG)
    async with Run(tmp_path, api) as run:
        await run.put(item(1), item(2))
        await run.drained()
    assert [r.fields["metadata"]["n"] for r in api.dataset.uploads()] == [1, 2]  # each once, in order
    assert run.counted.count(("overruled", Outcome.FAILED)) == 2
    assert sum("dataset upload failed" in r.getMessage() for r in caplog.records) == 1  # once per episode
    assert any("work again" in r.getMessage() for r in caplog.records)
    assert KEY not in caplog.text


async def test_a_failed_label_keeps_the_frame_and_labels_it_on_the_next_try(tmp_path: Path,
                                                                           api: StandinApi) -> None:
    it = item(7)
    async with aiohttp.ClientSession() as session:  # the image is in the dataset already, unlabelled
        first = await UploadClient(session, api_key=KEY, url=api.url).upload(
            it.jpeg, name="a.jpg", project="colours", batch="b", tags=())
    # the upload says "had it" (as the real one would), then the label fails once
    api.dataset.add_faults({"reply": {"duplicate": True, "id": first.image_id}}, {"status": 503})
    async with Run(tmp_path, api) as run:
        await run.put(it)
        await run.drained()
    tries = [(r.route, r.status) for r in api.dataset.log()][1:]
    assert tries == [("upload", 200), ("annotate", 503), ("upload", 200), ("annotate", 200)]
    label = [r for r in api.dataset.log() if r.route == "annotate" and r.status == 200]
    assert [(r.image_id, r.fields["label"]) for r in label] == [(first.image_id, "red")]
    assert run.counted == [("overruled", Outcome.FAILED), ("overruled", Outcome.DUPLICATE)]


@pytest.mark.parametrize("fault, tries", [({"status": 400}, 1), ({"status": 503}, LABEL_TRIES + 2)])
async def test_a_label_refused_is_given_up_at_once_and_one_failing_as_an_outage_is_retried_past_the_cap(
        tmp_path: Path, api: StandinApi, fault: dict, tries: int) -> None:
    it = item(8)
    async with aiohttp.ClientSession() as session:
        first = await UploadClient(session, api_key=KEY, url=api.url).upload(
            it.jpeg, name="a.jpg", project="colours", batch="b", tags=())
    had = {"reply": {"duplicate": True, "id": first.image_id}}
    api.dataset.add_faults(*[had, fault] * tries)
    async with Run(tmp_path, api) as run:
        await run.put(it)
        await run.drained(20)
    notes = [r.status for r in api.dataset.log() if r.route == "annotate"]
    if fault["status"] == 400:
        assert notes == [400]  # given up at once: the picture stays, unlabelled
    else:
        assert notes == [503] * tries + [200]  # an outage is waited out, however many tries


async def test_a_refused_frame_is_dropped_and_the_next_goes(tmp_path: Path, api: StandinApi) -> None:
    api.dataset.add_faults({"status": 413})
    async with Run(tmp_path, api) as run:
        await run.put(item(1), item(2))
        await run.drained()
    assert [r.fields["metadata"]["n"] for r in api.dataset.uploads()] == [2]
    assert run.counted == [("overruled", Outcome.REFUSED), ("overruled", Outcome.UPLOADED)]


@pytest.mark.parametrize("case", ["key", "project"])
async def test_a_wrong_key_or_project_pauses_after_one_request(tmp_path: Path, api: StandinApi, case: str,
                                                               caplog) -> None:
    api.dataset.projects = {"colours"}
    key, project = ("rf_WRONG", "colours") if case == "key" else (KEY, "nope")
    async with Run(tmp_path, api, key=key, project=project) as run:
        await run.put(item(1), item(2))
        await asyncio.sleep(0.5)
        await run.put(item(3))  # a new frame does not wake a paused uploader
        await asyncio.sleep(0.3)
        assert run.task.done()
        assert run.up.figures.paused is (Paused.UNAUTHORIZED if case == "key" else Paused.NOT_FOUND)
        assert run.queue.stats().queued == 3  # kept for a good config
    assert len([r for r in api.dataset.log() if r.route == "upload"]) == 1
    assert sum("paused until the config changes" in r.getMessage() for r in caplog.records) == 1
    assert "rf_WRONG" not in caplog.text


def test_the_picture_is_the_region_as_captured_with_the_mask_blacked_out() -> None:
    frame = np.full((1080, 1920, 3), 200, np.uint8)
    region = (0.5, 0.5, 1.0, 1.0)  # the bottom-right quarter: 960x540 as captured
    mask = [(0.75, 0.75, 0.25, 0.25)]  # the bottom-right of that: masked
    for original in (Original.of_pixels(frame, region, reused=True),
                     Original.of_jpeg(cv2.imencode(".jpg", frame)[1].ravel(), region, reused=False)):
        for max_size, size in ((1280, (540, 960)), (0, (540, 960)), (480, (270, 480))):
            img = cv2.imdecode(np.frombuffer(picture(original, max_size=max_size, mask=mask), np.uint8), 1)
            assert img.shape[:2] == size
            h, w = size
            assert img[h // 4, w // 4].min() > 180  # not masked
            assert img[h * 3 // 4, w * 3 // 4].max() < 20  # masked
    big = np.full((2000, 3000, 3), 90, np.uint8)
    img = cv2.imdecode(np.frombuffer(picture(Original.of_pixels(big, None, reused=False), max_size=1280),
                                     np.uint8), 1)
    assert img.shape[:2] == (853, 1280)


def test_a_reused_buffer_is_copied_and_a_fresh_one_only_referenced() -> None:
    frame = np.zeros((48, 64, 3), np.uint8)
    kept = Original.of_pixels(frame, None, reused=True)
    frame[:] = 255  # the source writes its next frame there
    assert kept.data.max() == 0
    ref = Original.of_pixels(frame, None, reused=False)
    assert np.shares_memory(ref.data, frame)


def test_a_mask_off_the_region_changes_nothing() -> None:
    part = np.full((10, 10, 3), 7, np.uint8)
    out = apply_mask(part, [(0.0, 0.0, 0.1, 0.1)], (100, 100), (50, 50))
    assert (out == 7).all()


def test_a_reused_buffer_s_region_is_copied_into_a_kept_buffer_once_it_is_free() -> None:
    from edge_agent.captured import Buffers

    pool = Buffers(count=2)
    frame = np.zeros((48, 64, 3), np.uint8)
    a = Original.of_pixels(frame, None, reused=True, buffers=pool)
    b = Original.of_pixels(frame, None, reused=True, buffers=pool)
    assert a.data is not b.data  # both are held: two buffers
    first = id(a.data)  # (an id: a name for it would hold it)
    del a
    frame[:] = 9
    c = Original.of_pixels(frame, None, reused=True, buffers=pool)
    assert id(c.data) == first and c.data.max() == 9  # the free one is taken again (no fresh mapping)
    view = c.data[:10]
    del c
    frame[:] = 5
    d = Original.of_pixels(frame, None, reused=True, buffers=pool)
    assert id(d.data) != first and id(view.base) == first  # a view of it still holds it...
    assert view.max() == 9  # ...and it was not overwritten
