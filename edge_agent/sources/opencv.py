"""OpenCV sources: USB/V4L2 devices, and FFmpeg for files, RTSP and HTTP streams.

How little is decoded:

* MJPEG (HTTP MJPEG cameras, MJPEG files) is read in FFmpeg's demux-only mode:
  ``grab()`` reads a frame's bytes and only the frames taken are decoded, by
  libjpeg, by the capture thread (``jpeg``). If a source's JPEGs do not decode on
  their own, the capture thread turns that off (``decode_itself()``) and reopens.
* H.264/H.265 must be decoded frame by frame, as later frames are built on
  earlier ones, unless only keyframes are decoded: FFmpeg's ``avdiscard`` =
  ``nonkey`` (``decode: keyframes``) drops every other frame before the decoder.
  ``decode: auto`` never decodes less than the camera needs: it decodes every
  frame until it has learned that keyframes alone are enough, and goes back
  when they no longer are (the rules, pure: ``autodecode.py``); this source
  reads the key flags and timestamps for it and reopens when it asks.
* V4L2 devices decode only in ``retrieve()`` already; ``decode`` does not apply.

OpenCV reads FFmpeg's options from ``OPENCV_FFMPEG_CAPTURE_OPTIONS`` when a capture
opens, and its FFmpeg backend opens every capture under one process-wide lock. So
this module sets the variable and opens under a lock of its own, which adds no
waiting that OpenCV's lock does not already impose, and keeps anything that can
block for long out of it: paths that cannot be cameras are refused, and network
cameras are probed in the camera's own thread first, until a picture's first
bytes (``probe.py``). What the probe cannot see without credentials (a camera
that asks for them, then sends nothing) is bounded instead: once an open held
the lock for its whole timeout and no frame came after it, that camera's next
open waits three times as long as it held the lock (``HOLD_SHARE``).
"""

from __future__ import annotations

import logging
import math
import os
import stat
import threading
import time
from typing import Callable

import cv2
import numpy as np

from ..config import CameraConfig, DecodeMode
from ..encode import REUSE_MIN_BYTES
from . import FrameSource, SourceKind, SourceSpec
from .autodecode import AutoDecode
from .probe import probe_stream

log = logging.getLogger(__name__)

MJPEG_FOURCC = int.from_bytes(b"MJPG", "little")
V4L2_MAJOR = 81  # Linux's character-device major number for video4linux
DEFAULT_CAPTURE_OPTIONS = "rtsp_transport;tcp"  # no lost UDP packets (smeared frames) on Wi-Fi
KEYFRAMES_OPTION = "avdiscard;nonkey"

HOLD_SHARE = 0.25  # a camera whose opens run out their timeout holds the open lock at most this share of the time
RAN_OUT = 0.8  # an open that held the lock this share of its timeout ran it out

_open_lock = threading.Lock()  # OPENCV_FFMPEG_CAPTURE_OPTIONS is process-wide, read at open


def not_a_camera(spec: SourceSpec) -> str | None:
    """Why a path cannot be opened as a camera or video file, or None if it may be.

    A FIFO with no writer, or a character device that is not V4L2 (a tty, /dev/zero),
    would block or feed garbage inside OpenCV's open, beyond any timeout, under the
    lock every other camera's open waits on: such paths are refused before OpenCV
    sees them (with a clear reason, retried like any outage, so a file that appears
    later is still picked up)."""
    if spec.kind is SourceKind.STREAM or (spec.kind is SourceKind.DEVICE and isinstance(spec.target, int)):
        return None
    path = str(spec.target)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        if spec.kind is SourceKind.DEVICE:
            return f"cannot open {spec.describe()}: no such device (is the camera plugged in?)"
        return f"file {spec.describe()} not found"
    except OSError as exc:
        return f"cannot open {spec.describe()}: {exc.strerror or exc}"
    mode = st.st_mode
    if spec.kind is SourceKind.DEVICE:
        if not stat.S_ISCHR(mode) or os.major(st.st_rdev) != V4L2_MAJOR:
            return f"{spec.describe()} is not a V4L2 camera device"
        if not os.access(path, os.R_OK | os.W_OK):
            return f"cannot open {spec.describe()}: permission denied (the user needs to be in group video)"
        return None
    if stat.S_ISFIFO(mode):
        return f"{spec.describe()} is a FIFO, not a video file (for a program's output use exec:)"
    if not stat.S_ISREG(mode):
        return f"{spec.describe()} is not a regular video file"
    return None


def capture_options(base: str | None, keyframes: bool) -> str:
    """``OPENCV_FFMPEG_CAPTURE_OPTIONS`` for one open: the user's (or the default) plus
    ``avdiscard;nonkey`` for keyframes only (pure)."""
    parts = [p for p in (base if base is not None else DEFAULT_CAPTURE_OPTIONS).split("|")
             if p and not p.startswith("avdiscard;")]
    if keyframes:
        parts.append(KEYFRAMES_OPTION)
    return "|".join(parts)


class OpenCVSource(FrameSource):
    """A ``cv2.VideoCapture`` as a :class:`~edge_agent.sources.FrameSource`."""

    def __init__(self, spec: SourceSpec, cfg: CameraConfig, *, open_timeout: float,
                 look_interval: Callable[[], float], clock: Callable[[], float] = time.monotonic):
        self.spec = spec
        self.cfg = cfg
        self.open_timeout = open_timeout
        self.is_file = spec.is_file
        self.jpeg = False
        self.allow_jpeg = True  # turned off for good if this source's JPEGs do not decode on their own
        self.error: str | None = None
        self._clock = clock
        self._held = 0.0  # how long the last open held the open lock (s)
        self._opened_at = -math.inf  # when it ended
        self._pictured = False  # a frame was grabbed since the last open
        self._cap: cv2.VideoCapture | None = None
        self._kept: np.ndarray | None = None  # retrieve() writes big frames into the last one's array
        self._width = self._height = 0
        # decode: keyframes only? (auto decodes every frame until it has learned the interval)
        self._mode = DecodeMode(cfg.decode)
        self._keyframes = False  # this open reads keyframes only
        self._auto = AutoDecode(cfg.name, is_file=self.is_file, look_interval=look_interval,
                                stall_timeout=cfg.stall_timeout, clock=clock)
        self._said_skipping = False  # decode: keyframes on a file: said once that frames are skipped
        self._seekable = True  # False once a rewind did not land on the file's first frame
        self._rewound = False  # the next grab is the first after a rewind: check where it landed
        self._first_pos: float | None = None  # a file's first frame (s)
        self._base_options = os.environ.get("OPENCV_FFMPEG_CAPTURE_OPTIONS")
        self._base_threads = os.environ.get("OPENCV_FFMPEG_THREADS") or str(min(4, os.cpu_count() or 1))

    # -- the protocol --------------------------------------------------------------

    @property
    def reopen_wanted(self) -> bool:
        """auto changes how it decodes: the capture thread reopens."""
        return self._auto.reopen_wanted

    @property
    def can_decode_itself(self) -> bool:
        return True  # FFmpeg decodes MJPEG too

    def decode_itself(self) -> None:
        self.allow_jpeg = False

    def describe(self) -> str:
        return self.spec.describe()

    def open(self) -> str | None:
        asked, self._auto.reopen_wanted = self._auto.reopen_wanted, False
        if self._mode is DecodeMode.AUTO and not self.is_file and not asked:
            # A new connection (start, or after an outage) may meet another encoder
            # setting: decode every frame and learn again. A reopen auto asked for keeps
            # what it learned; a file is the same file at every pass.
            self._auto.choice = None
        self.error = not_a_camera(self.spec) or self._held_off()
        if self.error is None and self.spec.kind is SourceKind.STREAM:
            self.error = probe_stream(str(self.spec.target), self.open_timeout)
        if self.error is not None:
            return self.error
        if self.spec.kind is SourceKind.DEVICE:
            cap = cv2.VideoCapture(self.spec.target, cv2.CAP_V4L2)
        else:
            self._keyframes = (self._mode is DecodeMode.KEYFRAMES
                               or (self._mode is DecodeMode.AUTO and self._auto.choice is True))
            if self._mode is DecodeMode.KEYFRAMES and self.is_file and not self._said_skipping:
                self._said_skipping = True
                log.info("%s: decode: keyframes on a video file: the frames between keyframes are skipped, "
                         "as chosen (decode: auto or all plays every frame)", self.cfg.name)
            params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, int(self.open_timeout * 1000),
                      cv2.CAP_PROP_READ_TIMEOUT_MSEC, int(self.cfg.stall_timeout * 1000)]
            with _open_lock:
                began = self._clock()
                os.environ["OPENCV_FFMPEG_CAPTURE_OPTIONS"] = capture_options(self._base_options, self._keyframes)
                # One decode thread is plenty for a keyframe a second, and each frame
                # thread holds frames of its own: ~6 MB less at 1080p, and 3 threads.
                os.environ["OPENCV_FFMPEG_THREADS"] = "1" if self._keyframes else self._base_threads
                cap = cv2.VideoCapture(str(self.spec.target), cv2.CAP_FFMPEG, params)
                self._opened_at = self._clock()
                self._held, self._pictured = self._opened_at - began, False
        if not cap.isOpened():
            cap.release()
            self.error = f"cannot open {self.describe()}"
            return self.error
        self._cap = cap
        self._width, self._height = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        if self.spec.kind is SourceKind.DEVICE:
            cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # newest frame, not a queue of old ones
            self.jpeg = False
        else:
            # Demux-only for MJPEG; must happen before the first grab.
            self.jpeg = (self.allow_jpeg and int(cap.get(cv2.CAP_PROP_FOURCC)) == MJPEG_FOURCC
                         and cap.set(cv2.CAP_PROP_FORMAT, -1))
            if self.jpeg:
                self._keyframes = False  # every MJPEG frame is a keyframe
        self._auto.restart()
        self._first_pos, self._rewound = None, False
        return None

    def _held_off(self) -> str | None:
        """Why this stream is not opened yet, or None. An open that held the open lock
        for its whole timeout, with no frame after it, is a camera that answers (the
        probe passed) but sends no picture, behind credentials the probe does not
        send: its next open waits until the lock was free for three times as long,
        so the other cameras' (re)opens find it free most of the time."""
        if self.spec.kind is not SourceKind.STREAM or self._pictured or self._held < RAN_OUT * self.open_timeout:
            return None
        pause = self._held * (1 / HOLD_SHARE - 1)
        if self._clock() >= self._opened_at + pause:
            return None
        return (f"cannot open {self.describe()}: it answers, but its last open waited {self.open_timeout:g} s "
                f"for a picture in vain; the next waits {pause:.0f} s, leaving the other cameras' opens free")

    def grab(self) -> bool:
        assert self._cap is not None
        ok = self._cap.grab()
        self._pictured = self._pictured or ok
        if self.is_file:
            if self._rewound:
                ok = self._landed(ok)
            if ok and self._first_pos is None:
                self._first_pos = self.position()
        if not ok:
            self.error = "ended" if self.is_file else "read failed"
            return False
        if self._learning_now():
            self._auto.learn(bool(self._cap.get(cv2.CAP_PROP_LRF_HAS_KEY_FRAME)), self._frame_ms())
        elif self._watching_now():
            self._auto.watch(self._frame_ms())
        return True

    def _frame_ms(self) -> float | None:
        """The grabbed frame's timestamp as FFmpeg gives it (ms), for ``decode: auto``."""
        return self._cap.get(cv2.CAP_PROP_POS_MSEC) if self._cap is not None else None

    def _learning_now(self) -> bool:
        """auto, not decided yet: every frame is decoded, and key flags are timed."""
        return (self._mode is DecodeMode.AUTO and self._auto.choice is None and not self._keyframes
                and not self.jpeg and self.spec.kind is not SourceKind.DEVICE)

    def _watching_now(self) -> bool:
        """auto chose keyframes only: are they still enough (keyframes as often; the
        camera not looking more often since, ``set/fps``)?"""
        return self._keyframes and self._mode is DecodeMode.AUTO

    def _landed(self, grabbed: bool) -> bool:
        """The first grab after a rewind: did the seek land on the file's first frame?
        (MPEG-TS seeks to the next keyframe; a raw stream goes nowhere.) If not, the
        file is reopened instead, now and at every later loop."""
        self._rewound = False
        pos, first, fps = self.position(), self._first_pos, self.frame_rate() or 25.0
        if grabbed and (pos is None or first is None or pos <= first + 0.5 / fps):
            return True
        self._seekable = False
        log.debug("%s: a seek to the start did not land on the first frame; reopening at each loop instead",
                  self.cfg.name)
        return False

    def retrieve(self) -> np.ndarray | None:
        """The grabbed frame. Pixels of a big frame are written into the last frame's
        array (see ``holds``): a fresh 6 MB array per 1080p frame costs more in page
        faults than the copy into it."""
        if self._cap is None:
            return None
        ok, data = self._cap.retrieve(self._kept)
        if not ok or data is None:
            return None
        self._kept = data if not self.jpeg and data.nbytes >= REUSE_MIN_BYTES else None
        return data

    def holds(self, image: np.ndarray) -> bool:
        return self._kept is not None and np.may_share_memory(image, self._kept)

    def rewind(self) -> bool:
        """Seek a file back to its start: a third of the CPU of reopening a 1080p H.264
        file. ``auto`` decides here, after a whole first pass decoded frame by frame
        (``autodecode.file_interval``); choosing keyframes only reopens the file once, so."""
        if not self.is_file or self._cap is None:
            return False
        if self._learning_now():
            self._auto.decide_file(self.position(), self.frame_rate())
            if self.reopen_wanted:
                return False  # reopened keyframes-only, from the start
        if not self._seekable:
            return False
        if not self._cap.set(cv2.CAP_PROP_POS_FRAMES, 0):
            self._seekable = False
            return False
        self._auto.rewound()
        self._rewound = True
        return True

    def frame_rate(self) -> float | None:
        if not self.is_file or self._cap is None:
            return None
        fps = self._cap.get(cv2.CAP_PROP_FPS)
        return float(fps) if fps and not math.isnan(fps) and 0 < fps <= 240 else None

    def position(self) -> float | None:
        if not self.is_file or self._cap is None:
            return None
        ms = self._cap.get(cv2.CAP_PROP_POS_MSEC)
        return ms / 1000 if ms is not None and math.isfinite(ms) and ms >= 0 else None

    def size(self) -> tuple[int, int] | None:
        return (self._width, self._height) if self._width > 0 and self._height > 0 else None

    def info(self) -> str:
        if self.spec.kind is SourceKind.DEVICE:
            return "V4L2, decoded when taken"
        if self.jpeg:
            return "MJPEG, decoded only when taken"
        learned = self._auto.learned
        if self._keyframes:
            every = f", every {learned:.1f} s" if learned is not None else ""
            return f"keyframes only{every}"
        if self._learning_now():
            return "all frames (learning the keyframe interval)"
        if self._mode is DecodeMode.AUTO and self._auto.choice is False and learned is None:
            return "all frames (keyframes too far apart, or none)"
        every = f" (keyframes every {learned:.1f} s)" if learned is not None else ""
        return f"all frames{every}"

    def close(self) -> None:
        self._kept = None
        if self._cap is not None:
            self._cap.release()
            self._cap = None

    def interrupt(self) -> None:
        pass  # OpenCV offers no way to unblock a call; its own timeouts bound them
