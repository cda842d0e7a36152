"""The capture thread on real sources, in-process: what it decodes, and when.

An MJPEG source is read demux-only and only the frames taken are decoded (scaled
down in libjpeg when that changes nothing sent); H.264 is decoded by FFmpeg. The
frames delivered are the same either way: right colour, right size."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import cv2
import numpy as np
import pytest

import edge_agent.capture as capture
from edge_agent.capture import CaptureWorker, Frame
from edge_agent.config import CameraConfig, DecodeMode
from tests.helpers import make_video, wait_until
from tests.streams import MjpegCamera


class Slot:
    def release(self) -> bool:
        return True

    def finish(self, **_: object) -> None:
        pass


class Taker:
    """Stands in for the camera's admission: takes one frame in ``every`` (no change
    gate); collects what is delivered and the events."""

    def __init__(self, every: int = 5, want: int = 3):
        self.every = every
        self.want = want
        self.seen = 0
        self.paused = False
        self.fps = 5.0
        self.frames: list[Frame] = []
        self.events: list[str] = []
        self.got = threading.Event()

    def open(self, mono: float) -> Slot | None:
        self.seen += 1
        return Slot() if self.seen % self.every == 0 else None

    def needs_thumbnail(self) -> bool:
        return False

    def decide(self, slot: Slot, thumb, now: float, wall: float | None = None) -> bool:
        return True

    def deliver(self, frame: Frame) -> None:
        self.frames.append(frame)
        if len(self.frames) >= self.want:
            self.got.set()

    def worker(self, source: str, *, image_size: int = 416, region=None,
               decode: DecodeMode = DecodeMode.AUTO, on_snapshot=None) -> CaptureWorker:
        cfg = CameraConfig(name="cam", source=source, fps=5, loop=True, stall_timeout=3, region=region,
                           decode=decode)
        return CaptureWorker(cfg, image_size=image_size, jpeg_quality=80, admission=self,
                             deliver=self.deliver, on_snapshot=on_snapshot,
                             on_event=lambda kind, detail: self.events.append(kind), open_timeout=5)


def run(taker: Taker, worker: CaptureWorker, timeout: float = 20) -> list[Frame]:
    worker.start()
    try:
        assert taker.got.wait(timeout), f"no frames delivered; events {taker.events}"
    finally:
        worker.stop()
        assert worker.join(10)
    return taker.frames


def sent(jpeg: bytes) -> tuple[tuple[int, int, int], tuple[int, int]]:
    """What the API would get: the picture's mean (B, G, R) and its (width, height)."""
    img = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    b, g, r = (int(round(c)) for c in img.reshape(-1, 3).mean(axis=0))
    return (b, g, r), (img.shape[1], img.shape[0])


def test_mjpeg_file_is_decoded_only_when_taken(tmp_path: Path):
    video = make_video(tmp_path / "red.avi", [("red", 2)], size="640x480", codec="mjpeg")
    taker = Taker()
    worker = taker.worker(str(video))
    frames = run(taker, worker)
    assert worker.decode_on_take
    for f in frames:
        (b, g, r), size = sent(f.jpeg)
        assert r > 200 and g < 40 and b < 40
        assert size == (416, 312)
        assert f.preview.shape[:2] == (480, 640)
    # decode_on_take means retrieve() gave the JPEG's bytes and libjpeg made the pixels:
    # had FFmpeg decoded, retrieve() would give pixels, which are no JPEG, and it would fall back.
    assert not worker._raw_failures


def test_large_mjpeg_stream_is_scaled_down_in_the_decoder(tmp_path: Path):
    # 1280x720: half size in libjpeg still leaves 640 for the preview and > 416 for the API.
    with MjpegCamera("blue", fps=15, size=(1280, 720)) as cam:
        taker = Taker(every=3)
        worker = taker.worker(cam.url)
        frames = run(taker, worker)
    assert worker.decode_on_take and worker._scale == 2
    for f in frames:
        (b, g, r), size = sent(f.jpeg)
        assert b > 200 and g < 40 and r < 40
        assert size == (416, 234)
        assert f.preview.shape[:2] == (360, 640)
        assert (f.width, f.height) == (1280, 720)


def test_region_of_a_large_mjpeg_frame_keeps_its_full_resolution(tmp_path: Path):
    # The region is 320x180 of a 1280x720 frame: smaller than image_size, so no scaling.
    with MjpegCamera("green", fps=15, size=(1280, 720)) as cam:
        taker = Taker(every=3)
        worker = taker.worker(cam.url, region=(0.0, 0.0, 0.25, 0.25))
        frames = run(taker, worker)
    assert worker.decode_on_take and worker._scale == 1
    assert all(sent(f.jpeg)[1] == (320, 180) for f in frames)


def test_h264_is_decoded_by_ffmpeg(tmp_path: Path):
    video = make_video(tmp_path / "green.mp4", [("green", 2)], size="640x480")
    taker = Taker()
    worker = taker.worker(str(video))
    frames = run(taker, worker)
    assert not worker.decode_on_take
    (b, g, r), _ = sent(frames[-1].jpeg)
    assert g > 100 and r < 60 and b < 60


def colour(image: np.ndarray) -> str:
    b, g, r = image.reshape(-1, 3).mean(axis=0)
    return "red" if r > 150 > max(g, b) else "blue" if b > 150 > max(g, r) else "other"


def test_a_frame_buffer_written_over_by_the_next_frame_never_leaves_the_capture_thread(tmp_path: Path):
    # 640x640 BGR is 1.2 MB: FFmpeg's frames are written into one kept array (no fresh
    # mapping per frame), and at that size the preview is the frame itself, so the
    # capture thread must hand over a copy: each preview keeps its own frame's colour.
    video = make_video(tmp_path / "rb.mp4", [("red", 0.6), ("blue", 0.6)] * 2, size="640x640", fps=10)
    taker = Taker(every=1, want=20)
    snapshots: list[bool] = []  # was each snapshot its own array, when it was handed over?

    def on_snapshot(preview: np.ndarray, at: float) -> None:
        snapshots.append(not worker.source.holds(preview) and colour(preview) != "other")
        if len(snapshots) < 3:
            worker.request_snapshot()

    worker = taker.worker(str(video), decode=DecodeMode.ALL, on_snapshot=on_snapshot)
    worker.request_snapshot()
    frames = run(taker, worker)
    assert snapshots and all(snapshots)
    colours = [colour(f.preview) for f in frames]
    assert {"red", "blue"} <= set(colours)
    for f, c in zip(frames, colours):
        assert f.preview.shape[:2] == (640, 640)
        (b, g, r), _ = sent(f.jpeg)
        assert c == ("red" if r > 150 else "blue" if b > 150 else "other")


def count_opens(worker: CaptureWorker, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """A list that grows by one each time the worker's source is opened."""
    opens: list[int] = []
    make = worker._make_source

    def counting():
        source = make()
        real_open = source.open
        source.open = lambda: opens.append(1) or real_open()
        return source

    monkeypatch.setattr(worker, "_make_source", counting)
    return opens


def test_a_looping_file_is_rewound_not_reopened(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    video = make_video(tmp_path / "short.mp4", [("red", 0.3), ("blue", 0.3)], fps=10)
    taker = Taker(every=1, want=30)  # five passes of six frames
    worker = taker.worker(str(video), decode=DecodeMode.ALL)
    opens = count_opens(worker, monkeypatch)
    frames = run(taker, worker)
    assert len(opens) == 1 and taker.events == ["online"]
    assert [colour(f.preview) for f in frames[:18]] == (["red"] * 3 + ["blue"] * 3) * 3


def test_a_looping_file_whose_seek_misses_its_start_is_reopened_instead(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    # MPEG-TS seeks to the next keyframe, not the first frame: a rewind that lands
    # late would skip the clip's first second at every loop. It is noticed on the
    # first grab after the seek, and the file is reopened at each loop from then on.
    video = make_video(tmp_path / "clip.ts", [("red", 1), ("blue", 1)], fps=10)
    taker = Taker(every=1, want=60)  # three passes of twenty frames
    worker = taker.worker(str(video), decode=DecodeMode.ALL)
    opens = count_opens(worker, monkeypatch)
    frames = run(taker, worker, timeout=30)
    assert [colour(f.preview) for f in frames[:60]] == (["red"] * 10 + ["blue"] * 10) * 3
    assert len(opens) >= 3 and not worker.source._seekable


def test_auto_decodes_every_frame_of_a_short_looping_file_whose_keyframes_it_cannot_time(tmp_path: Path):
    # Keyframes at 0 and 0.3 s (the cut), 0.6 s long: a pass shows one key flag, so
    # no interval is known and every frame is decoded, at every pass, without a reopen.
    video = make_video(tmp_path / "short.mp4", [("red", 0.3), ("blue", 0.3)], fps=10)
    taker = Taker(every=1, want=40)
    worker = taker.worker(str(video))
    frames = run(taker, worker)
    assert worker.source_info == "all frames (keyframes too far apart, or none)"
    assert [colour(f.preview) for f in frames[:12]] == (["red"] * 3 + ["blue"] * 3) * 2


def test_mjpeg_that_libjpeg_cannot_read_falls_back_to_ffmpeg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                            caplog: pytest.LogCaptureFixture):
    # Stands for MJPEG variants a lone JPEG decoder rejects (e.g. interlaced fields):
    # after a few failures and no success the worker reopens and lets FFmpeg decode.
    monkeypatch.setattr(capture, "decode_jpeg", lambda data, scale=1: None)
    video = make_video(tmp_path / "red.avi", [("red", 2)], size="320x240", codec="mjpeg")
    taker = Taker(every=2)
    worker = taker.worker(str(video))
    frames = run(taker, worker)
    assert not worker.decode_on_take
    (b, g, r), _ = sent(frames[-1].jpeg)
    assert r > 200 and g < 40 and b < 40
    assert worker.frames_dropped >= capture.RAW_FAILURES_BEFORE_FALLBACK
    assert sum("decoding every frame instead" in r.getMessage() for r in caplog.records) == 1
    assert taker.events.count("offline") == 0  # a change of decoder is not an outage


def test_broken_frames_are_dropped_counted_and_logged_once_per_run(caplog: pytest.LogCaptureFixture):
    caplog.set_level(logging.INFO, logger="edge_agent.capture")
    with MjpegCamera("red", fps=20) as cam:
        taker = Taker(every=2)
        worker = taker.worker(cam.url)
        worker.start()
        try:
            assert taker.got.wait(20)
            cam.garbage.set()
            wait_until(lambda: worker.frames_dropped >= 10, 20, interval=0.1, what="10 frames dropped")
            dropped = worker.frames_dropped
            assert dropped >= 10
            cam.garbage.clear()
            n = len(taker.frames)
            wait_until(lambda: len(taker.frames) >= n + 3, 20, interval=0.1, what="good frames again")
            assert len(taker.frames) >= n + 3  # good frames flow again, without a reopen
        finally:
            worker.stop()
            assert worker.join(10)
    assert worker.decode_on_take  # broken frames after good ones are the camera's fault, not the mode's
    messages = [r.getMessage() for r in caplog.records]
    assert sum("did not decode" in m for m in messages) == 1
    assert sum("frames decode again" in m for m in messages) == 1
    assert "offline" not in taker.events


def test_a_still_mjpeg_picture_is_looked_at_in_greyscale_and_never_decoded_in_full(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """The change gate on an MJPEG source: each look is a 1/8 greyscale decode; only
    frames worth a call are decoded in colour."""
    from edge_agent.admission import Admission, InFlight
    from edge_agent.budget import Budget
    from edge_agent.config import BudgetConfig

    full = []
    real = capture.decode_jpeg
    monkeypatch.setattr(capture, "decode_jpeg", lambda data, scale=1: full.append(scale) or real(data, scale))
    video = make_video(tmp_path / "red.avi", [("red", 3)], size="640x480", codec="mjpeg")
    cfg = CameraConfig(name="cam", source=str(video), fps=10, loop=True, stall_timeout=3)
    admission = Admission(cfg, inflight=InFlight(1), budget=Budget(BudgetConfig()), api_ready=lambda now: True)
    frames: list[Frame] = []

    def deliver(frame: Frame) -> None:
        frames.append(frame)
        assert frame.slot is not None
        frame.slot.finish(credits=None, reached=True)
        admission.note_result(settled=True, now=frame.mono)  # the decision is settled at once

    worker = CaptureWorker(cfg, image_size=416, jpeg_quality=80, admission=admission, deliver=deliver,
                           on_event=lambda kind, detail: None, open_timeout=5)
    worker.start()
    try:
        wait_until(lambda: admission.unchanged >= 10, 20, what="10 unchanged frames")
    finally:
        worker.stop()
        assert worker.join(10)
    assert worker.decode_on_take
    assert admission.unchanged >= 10  # looked at, found unchanged, skipped
    assert len(frames) == 1 == admission.calls["change"]  # only the first look was worth a call
    assert len(full) == 1  # and only it was decoded in colour


def test_an_oversize_mjpeg_frame_is_dropped_counted_and_logged_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                  caplog: pytest.LogCaptureFixture):
    monkeypatch.setattr(capture, "MAX_FRAME_BYTES", 100)  # every frame of the clip is bigger
    video = make_video(tmp_path / "red.avi", [("red", 2)], size="320x240", codec="mjpeg")
    taker = Taker(every=2)
    worker = taker.worker(str(video))
    worker.start()
    try:
        wait_until(lambda: worker.frames_dropped >= 10, 10, what="10 frames dropped")
    finally:
        worker.stop()
        assert worker.join(10)
    assert taker.frames == [] and worker.frames_dropped >= 10
    assert sum("over the 0 MB cap" in r.getMessage() for r in caplog.records) == 1
