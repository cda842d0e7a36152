"""The capture thread: one per camera, around a frame source (``sources/``).

The thread grabs every frame the source delivers, so a live source's buffer
never holds stale frames, and retrieves (decodes) only a frame that the camera's
admission opens a slot for (rate, API backoff, budget and the shared in-flight
limit, see ``admission.py``). The change gate then looks at tiny luma and
colour thumbnails of it; only a frame that is worth a call is resized and encoded. Any
other frame is dropped and counted; nothing is queued, so a result is never
about a stale frame.

A source whose frames are JPEGs (``source.jpeg``: MJPEG streams and files read
demux-only, ``exec:`` and the Pi camera) is decoded here, only when taken, by
libjpeg, scaled down in the decoder when the sizes allow it (``jpeg_scale``);
the gate's thumbnails of such a frame come from a 1/8-scale colour decode, so
a frame the gate skips is never decoded in full.

A source that fails to open, ends (unless it loops), fails to read or gives no
frame for ``stall_timeout`` is closed and reopened with exponential backoff
(capped at 60 s). Pacing, stall detection, reopening and take/encode live here
once, for every kind of source.
"""

from __future__ import annotations

import enum
import logging
import threading
import time
from dataclasses import dataclass
from typing import Callable, Sequence

import cv2
import numpy as np

# OpenCV's own warnings (e.g. FFmpeg stream timeouts) would bypass our log format
# and redaction; the agent reports those conditions itself.
try:
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
except AttributeError:  # pragma: no cover - very old OpenCV builds
    pass

from . import memory
from .admission import Admission, Slot
from .backoff import Backoff
from .change import thumbnails
from .captured import Buffers, Original
from .config import CameraConfig
from .encode import (Scratch, decode_jpeg, decode_jpeg_colour_8, jpeg_scale, prepare, prepare_with_preview,
                     resize_for_api)
from .episode import Episode
from .sources import MAX_FRAME_BYTES, FrameSource, make_source, parse_source
from .strenum import StrEnum

log = logging.getLogger(__name__)

PREVIEW_SIZE = 640  # longest side of the copy kept for the status page and snapshots
REOPEN_INITIAL = 1.0
REOPEN_CAP = 60.0
DEFAULT_FILE_FPS = 25.0
RAW_FAILURES_BEFORE_FALLBACK = 3  # undecodable JPEGs in a row, none good yet: let FFmpeg decode


class CameraEvent(StrEnum):
    """What the capture thread reports of its camera (``on_event(kind, detail)``)."""

    ONLINE = "online"  # the first frame of an open came
    OFFLINE = "offline"  # an open or read failed, or no frame came (detail: why); reopened with backoff
    ENDED = "ended"  # a video file that does not loop ended: the thread is over


class PumpOutcome(enum.Enum):
    """Why one open of the source ended (:class:`PumpEnd`)."""

    REOPEN = "reopen"  # the source asked to be reopened now (it changes how it decodes): no backoff
    ENDED = "ended"  # a file's end (a looping one is opened again)
    FAILED = "failed"  # an outage: the open or a read failed, or no frame for stall_timeout
    STOPPED = "stopped"  # the agent stops


@dataclass(frozen=True)
class PumpEnd:
    """How one open of the source ended: the outcome and, for an outage, why."""

    outcome: PumpOutcome
    detail: str | None = None  # FAILED: why, for people (the camera's offline reason)


@dataclass(frozen=True)
class Frame:
    camera: str
    seq: int
    captured_at: float  # epoch seconds
    mono: float  # time.monotonic() at capture
    jpeg: bytes  # what is sent: the region (or whole frame), resized and encoded
    width: int  # of the frame as captured
    height: int
    preview: np.ndarray  # the whole frame, longest side <= PREVIEW_SIZE (for people, not the API)
    slot: Slot | None = None  # the admission slot it holds until its reply is in
    original: Original | None = None  # as captured, for training data (only when the camera collects)


@dataclass
class Tap:
    """One view of a camera's frames (#21): its own admission (rate, change gate,
    budget), region, delivery and counts. A camera without views has one tap, the
    camera itself. Counts are written by the capture thread only."""

    cfg: CameraConfig  # the view's (its name, region)
    admission: Admission
    deliver: Callable[[Frame], None]
    keep_original: bool = False  # the view collects training data: each sent frame keeps its Original
    frames_dropped: int = 0
    frames_sent: int = 0
    seq: int = 0


class CaptureWorker:
    """Owns one camera's frame source, in its own thread: one decode per look,
    shared by the camera's views (``taps``; without views, the camera itself).

    ``admission`` decides which frames become calls (its slot travels with the
    delivered frame). Callbacks run in the capture thread; the owner makes them
    thread-safe: ``deliver(frame)`` hands a taken frame over,
    ``on_event(kind, detail)`` reports a :class:`CameraEvent`;
    ``on_snapshot(preview, captured_at)`` answers ``request_snapshot()``.
    While the admission is paused the thread keeps grabbing (the source stays
    open and drained) but takes nothing and counts nothing as dropped.
    """

    def __init__(self, cfg: CameraConfig, *, image_size: int, jpeg_quality: int,
                 admission: Admission | None = None, deliver: Callable[[Frame], None] | None = None,
                 on_event: Callable[[CameraEvent, str | None], None],
                 on_snapshot: Callable[[np.ndarray, float], None] | None = None,
                 open_timeout: float = 10.0, source: Callable[[], FrameSource] | None = None,
                 clock: Callable[[], float] = time.monotonic, keep_original: bool = False,
                 taps: Sequence[Tap] = ()):
        self.cfg = cfg  # the camera's: its source, fps, decode, loop, stall_timeout
        if not taps:  # the camera alone
            assert admission is not None and deliver is not None
            taps = (Tap(cfg, admission, deliver, keep_original),)
        self.taps: tuple[Tap, ...] = tuple(taps)
        self._kept_buffers = Buffers()  # what a reused source buffer's region is copied into
        self._clock = clock  # the monotonic clock frames are stamped with (a fake one in tests)
        self.spec = parse_source(cfg.source)
        # What makes the source: the config's kind (sources.make_source), or a test's.
        self._make_source = source or (lambda: make_source(cfg, open_timeout=open_timeout,
                                                           look_interval=self._look_interval))
        self.source: FrameSource | None = None
        self.image_size = image_size
        self.jpeg_quality = jpeg_quality
        self._on_event = on_event
        self._on_snapshot = on_snapshot
        self._snapshot_wanted = threading.Event()
        self.open_timeout = open_timeout
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"capture-{cfg.name}", daemon=True)
        self._backoff = Backoff(REOPEN_INITIAL, REOPEN_CAP)
        # Counters: written by the capture thread only, read by anyone.
        self.frames_captured = 0
        self.last_frame_mono: float | None = None
        # Set while the thread is inside a blocking OpenCV call (open, grab, retrieve),
        # None while it waits on its own terms (pacing, backoff): a call that never
        # returns shows as an ever older busy_since, and the systemd watchdog stops.
        self.busy_since: float | None = None
        self.ended = False
        self._raw_good = False  # a JPEG of this source decoded on its own (see _pixels)
        self._raw_failures = 0
        self._scale: int | None = None  # JPEG sources: libjpeg's scale, once the size is known
        self._scratch = Scratch()  # big in-between images, kept from frame to frame (this thread's)
        self._reopen_now = False
        self._bad_frames = Episode()  # frames that would not decode or encode: logged once a run of them

    @property
    def frames_dropped(self) -> int:
        return sum(t.frames_dropped for t in self.taps)

    @property
    def frames_sent(self) -> int:
        return sum(t.frames_sent for t in self.taps)

    def tap(self, name: str) -> Tap | None:
        """The view (or the camera) of that name."""
        return next((t for t in self.taps if t.cfg.name == name), None)

    def _look_interval(self) -> float:
        """How often the busiest view looks (auto decoding's choice needs it)."""
        return 1.0 / max(t.admission.fps for t in self.taps)

    # -- lifecycle -----------------------------------------------------------

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self.source is not None:
            self.source.interrupt()  # a source blocked in a read returns now

    def join(self, timeout: float) -> bool:
        self._thread.join(timeout)
        return not self._thread.is_alive()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    @property
    def wedge_after(self) -> float:
        """Seconds inside one blocking call after which the thread counts as wedged:
        well past what the open and read timeouts allow (V4L2 waits up to 10 s)."""
        return 2 * (self.open_timeout + self.cfg.stall_timeout) + 10

    def request_snapshot(self) -> None:
        """Ask for the next grabbed frame as a preview (``on_snapshot``)."""
        self._snapshot_wanted.set()

    # -- thread body ---------------------------------------------------------

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                end = self._open_and_pump()
                if end.outcome is PumpOutcome.STOPPED or self._stop.is_set():
                    break
                if end.outcome is PumpOutcome.REOPEN:
                    continue
                if end.outcome is PumpOutcome.ENDED:
                    if self.cfg.loop:
                        continue
                    self.ended = True
                    self._on_event(CameraEvent.ENDED, None)
                    return
                self._on_event(CameraEvent.OFFLINE, end.detail)
                self._stop.wait(self._backoff.next_delay())
        except Exception as exc:  # pragma: no cover - a bug; keep the daemon alive and say so
            log.exception("%s: capture thread failed", self.cfg.name)
            self._on_event(CameraEvent.OFFLINE, f"capture thread failed: {type(exc).__name__}")

    @property
    def decode_on_take(self) -> bool:
        """The source's frames are JPEGs, decoded here only when taken."""
        return bool(self.source is not None and self.source.jpeg)

    @property
    def source_info(self) -> str | None:
        return self.source.info() if self.source is not None else None

    def describe(self) -> str:
        return self.spec.describe()

    def _retrieve(self) -> np.ndarray | None:
        """The grabbed frame: BGR pixels, or a JPEG's bytes when ``decode_on_take``."""
        return self.source.retrieve() if self.source is not None else None

    def _jpeg_scale(self) -> int:
        if self._scale is None:
            size = self.source.size() if self.source is not None else None
            if size is None:
                return 1
            self._scale = min(jpeg_scale(size[0], size[1], self.image_size, t.cfg.region, PREVIEW_SIZE)
                              for t in self.taps)  # what every view still gets in full
        return self._scale

    def _pixels(self, data: np.ndarray | None = None) -> np.ndarray | None:
        """The grabbed frame as BGR pixels (None if it cannot be decoded)."""
        if data is None:
            data = self._retrieve()
        if data is None or not self.decode_on_take:
            return data
        image = decode_jpeg(data, self._jpeg_scale())
        if image is not None:
            self._raw_good, self._raw_failures = True, 0
        elif not self._raw_good and self.source is not None and self.source.can_decode_itself:
            self._raw_failures += 1
            if self._raw_failures >= RAW_FAILURES_BEFORE_FALLBACK:
                # Not plain JPEGs (e.g. interlaced MJPEG): FFmpeg decodes from the next open on.
                log.warning("%s: frames do not decode as JPEG on their own; decoding every frame instead",
                            self.cfg.name)
                self.source.decode_itself()
                self._reopen_now = True
        return image

    def _open_and_pump(self) -> PumpEnd:
        if self.source is None:
            self.source = self._make_source()
        source = self.source
        self.busy_since = self._clock()
        try:
            error = source.open()
        finally:
            self.busy_since = None
        if error is not None:
            source.close()
            return PumpEnd(PumpOutcome.FAILED, error)
        memory.release()  # what the open's probing allocated and freed
        self._scale = None
        try:
            return self._pump(source)
        finally:
            source.close()
            self._scratch.clear()  # an offline camera holds no frame-sized buffers

    def _pump(self, source: FrameSource) -> PumpEnd:
        pace = (source.frame_rate() or DEFAULT_FILE_FPS) if source.is_file else None
        start = time.monotonic()
        first_pos: float | None = None
        resume_at = 0.0  # a looping file's next pass starts no sooner than this
        n = 0
        first = True
        stall = self.cfg.stall_timeout
        while not self._stop.is_set():
            if self._reopen_now or source.reopen_wanted:
                self._reopen_now = False
                return PumpEnd(PumpOutcome.REOPEN)
            before = self.busy_since = self._clock()
            ok = source.grab()
            self.busy_since = None
            now = self._clock()
            if source.reopen_wanted:
                continue  # auto decided how to decode: reopen at the top of the loop
            if now - before >= stall * 0.9 and not source.is_file:
                # FFmpeg's read timeout fired: on a frozen RTSP stream grab() may still
                # say True now and then, without a new frame. Either way: stalled.
                return PumpEnd(PumpOutcome.FAILED, f"no frame for {stall:g} s")
            if not ok:
                if source.is_file and self.cfg.loop and n > 0 and self._rewind(source):
                    # Play it again from its first frame, due one frame after the end.
                    first_pos, n, resume_at = None, 0, time.monotonic() + 1 / (pace or DEFAULT_FILE_FPS)
                    continue
                if source.is_file:
                    return PumpEnd(PumpOutcome.ENDED)
                return PumpEnd(PumpOutcome.FAILED, source.error or "read failed")
            if pace is not None:
                # Play a file at its own frame rate, as a camera would deliver it: by the
                # grabbed frame's timestamp when it has one (keyframes only skip the rest).
                pos = source.position()
                if first_pos is None:
                    first_pos, start = pos, max(time.monotonic(), resume_at)
                due = start + (pos - first_pos) if pos is not None and first_pos is not None else start + n / pace
                wait = due - time.monotonic()
                if wait > 0:
                    if self._stop.wait(wait):
                        break
                    now = self._clock()
                elif wait < -1.0:  # far behind (machine was busy): do not race to catch up
                    start, n, first_pos = time.monotonic(), 0, None
            n += 1
            self.frames_captured += 1
            self.last_frame_mono = now
            if first:
                first = False
                self._backoff.reset()
                self._on_event(CameraEvent.ONLINE, None)
            if self._snapshot_wanted.is_set():
                self._snapshot(now)
            opened = []
            for tap in self.taps:
                if tap.admission.paused:
                    continue
                slot = tap.admission.open(now)
                if slot is None:
                    tap.frames_dropped += 1
                    continue
                opened.append((tap, slot))
            if opened:
                self._take(now, opened)
        return PumpEnd(PumpOutcome.STOPPED)

    def _rewind(self, source: FrameSource) -> bool:
        self.busy_since = self._clock()  # a seek is a blocking call too (the watchdog's view)
        try:
            return source.rewind()
        finally:
            self.busy_since = None

    def _bad_frame(self, taps: Sequence[tuple[Tap, Slot]], what: str) -> None:
        """Taken frames that yield nothing to send: dropped, counted, logged once a run."""
        for tap, slot in taps:
            slot.release()
            tap.frames_dropped += 1
        if self._bad_frames.fail(what):
            log.warning("%s: %s; dropping such frames (logged once until one decodes)", self.cfg.name, what)

    def _snapshot(self, now: float) -> None:
        self._snapshot_wanted.clear()
        image = self._pixels()
        if image is not None and self._on_snapshot is not None:
            preview = resize_for_api(image, PREVIEW_SIZE)
            if self._kept(preview):
                preview = preview.copy()  # it leaves this thread; the next frame is written there
            self._on_snapshot(preview, time.time() - (self._clock() - now))

    def _kept(self, image: np.ndarray) -> bool:
        """Is ``image`` a buffer this thread writes a later frame into?"""
        return self.source is not None and self.source.holds(image)

    def _take(self, now: float, opened: list[tuple[Tap, Slot]]) -> None:
        """The grabbed frame, retrieved and decoded once, offered to each view whose
        admission took it: its change gate looks at its own crop, and its JPEG is
        encoded only when it calls."""
        captured_at = time.time() - (self._clock() - now)
        try:
            data = self._retrieve()
            if data is None:
                self._bad_frame(opened, "a frame could not be read")
                return
            if self.decode_on_take and data.size > MAX_FRAME_BYTES:
                self._bad_frame(opened, f"a frame of {data.size / 2**20:.0f} MB is over the "
                                        f"{MAX_FRAME_BYTES >> 20} MB cap")
                return
            calls = self._gate(opened, data, now, captured_at)
            if not calls:
                return  # unchanged, or the budget said not now: counted by the admissions
            image = self._pixels(data)
            if image is None:
                self._bad_frame(calls, "a frame did not decode")
                return
        except Exception as exc:  # a corrupt frame must not end the capture
            self._bad_frame(opened, f"a frame could not be decoded: {type(exc).__name__}")
            return
        shared: np.ndarray | None = None  # the whole frame for people: made once, for every view that calls
        for i, (tap, slot) in enumerate(calls):
            try:
                if shared is None:
                    jpeg, preview = prepare_with_preview(image, self.image_size, self.jpeg_quality, tap.cfg.region,
                                                         PREVIEW_SIZE, self._scratch, self._kept(image))
                    shared = preview  # read only from here on (annotate() draws on a copy)
                else:
                    jpeg, preview = prepare(image, self.image_size, self.jpeg_quality, tap.cfg.region), shared
            except Exception as exc:  # a corrupt frame must not end the capture
                self._bad_frame(calls[i:i + 1], f"a frame could not be encoded: {type(exc).__name__}")
                continue
            bad = self._bad_frames.ok()
            if bad:
                log.info("%s: frames decode again, after %d that did not", self.cfg.name, bad)
            tap.seq += 1
            tap.frames_sent += 1
            scale = self._jpeg_scale() if self.decode_on_take else 1
            h, w = image.shape[0] * scale, image.shape[1] * scale
            original = None
            if tap.keep_original:  # a reference, or a copy only when the source reuses the buffer
                original = (Original.of_jpeg(data, tap.cfg.region, reused=self._kept(data)) if self.decode_on_take
                            else Original.of_pixels(image, tap.cfg.region, reused=self._kept(image),
                                                    buffers=self._kept_buffers))
            tap.deliver(Frame(tap.cfg.name, tap.seq, captured_at, now, jpeg, w, h, preview, slot, original))

    def _gate(self, opened: list[tuple[Tap, Slot]], data: np.ndarray, now: float,
              captured_at: float) -> list[tuple[Tap, Slot]]:
        """The views whose change gate (on their own crop) and budget let this frame be
        a call; the thumbnails come from one small decode (MJPEG) or the frame itself."""
        small: np.ndarray | None = None
        calls = []
        for tap, slot in opened:
            thumb = None
            if tap.admission.needs_thumbnail():
                if self.decode_on_take:  # a 1/8 colour decode: a skipped frame is never decoded in full
                    if small is None:
                        small = decode_jpeg_colour_8(data)
                    thumb = thumbnails(small, tap.cfg.region) if small is not None else None
                else:
                    thumb = thumbnails(data, tap.cfg.region, self._scratch)
            if tap.admission.decide(slot, thumb, now, captured_at):
                calls.append((tap, slot))
            elif slot.skipped is not None:
                tap.frames_dropped += 1  # a look only (backoff, budget, every place taken): not sent
        return calls
