"""OpenCV sources: USB/V4L2 devices, and FFmpeg for files, RTSP and HTTP streams.

How little is decoded:

* MJPEG (HTTP MJPEG cameras, MJPEG files) is read in FFmpeg's demux-only mode:
  ``grab()`` reads a frame's bytes and only the frames taken are decoded, by
  libjpeg, by the capture thread (``jpeg``). If a source's JPEGs do not decode on
  their own, the capture thread turns that off (``allow_jpeg``) and reopens.
* H.264/H.265 must be decoded frame by frame, as later frames are built on
  earlier ones, unless only keyframes are decoded: FFmpeg's ``avdiscard`` =
  ``nonkey`` (``decode: keyframes``) drops every other frame before the decoder.
  ``decode: auto`` never decodes less than the camera needs: every open of a live
  stream, and a file's first pass, decode every frame, and the keyframe interval
  is learned meanwhile from the packets' key flags (``CAP_PROP_LRF_HAS_KEY_FRAME``),
  so nothing is dropped while learning. Keyframes-only is turned on (by a reopen;
  for a file, at its loop) only once the interval is known to be no longer than
  the camera's look interval (1/fps): a stream after two intervals (their median),
  a file after a whole pass (its longest gap, its tail included), so a file is
  never shortened. Keyframes-only frames are at most one keyframe interval old,
  and a live stream whose keyframes later come further apart (a "smart codec"
  stretching its GOP on a still scene), or a camera set to look more often
  (``set/fps``), goes back to decoding every frame. Frames without timestamps
  that move (raw H.264 over ``tcp://``, as ``rpicam-vid --listen`` serves it) are
  timed by the clock, over more intervals, the longest deciding. Keyframes-only
  is never chosen where a keyframe twice as late as usual would miss the read
  timeout (``stall_timeout``): that return to every frame would read as an outage.
* V4L2 devices decode only in ``retrieve()`` already; ``decode`` does not apply.

OpenCV reads FFmpeg's options from ``OPENCV_FFMPEG_CAPTURE_OPTIONS`` when a capture
opens, and its FFmpeg backend opens every capture under one process-wide lock. So
this module sets the variable and opens under a lock of its own, which adds no
waiting that OpenCV's lock does not already impose, and keeps anything that can
block for long out of it: paths that cannot be cameras are refused, and network
cameras are probed in the camera's own thread first (``probe_stream``).
"""

from __future__ import annotations

import logging
import math
import os
import socket
import ssl
import stat
import threading
import time
from typing import Callable

import cv2
import numpy as np

from ..config import CameraConfig, DecodeMode
from ..encode import REUSE_MIN_BYTES
from ..redact import redact_url
from . import SourceKind, SourceSpec

log = logging.getLogger(__name__)

MJPEG_FOURCC = int.from_bytes(b"MJPG", "little")
V4L2_MAJOR = 81  # Linux's character-device major number for video4linux
PROBE_PORTS = {"http": 80, "https": 443, "rtsp": 554, "rtsps": 322, "rtmp": 1935}
DEFAULT_CAPTURE_OPTIONS = "rtsp_transport;tcp"  # no lost UDP packets (smeared frames) on Wi-Fi
KEYFRAMES_OPTION = "avdiscard;nonkey"
LEARN_GAPS = 2  # keyframe intervals a live stream is timed over before ``auto`` decides (their median)
CLOCK_GAPS = 4  # the same without frame timestamps, by the clock: more of them, and the longest decides
STALL_SHARE = 0.45  # keyframes-only only while twice the interval fits in the read timeout (stall_timeout)
AUTO_MARGIN = 1.05  # keyframes-only when the interval is at most 5 % over the look interval
TAIL_SLACK = 0.5  # s: a file's frames after its last key flag also hold the decoder's few frames of delay
TOO_FAR = 2.0  # keyframes-only: a gap over this many intervals (and looks) goes back to every frame

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


def probe_stream(url: str, timeout: float) -> str | None:
    """Does a network camera answer at all? None if it does, else why not.

    A camera that accepts a connection and then says nothing (hung firmware) or a
    host that does not answer would hold OpenCV's process-wide open lock, and so
    every other camera's (re)open, for the whole open timeout. This probe waits on
    the network here instead, outside that lock: a TCP connect (and TLS handshake),
    a request (HTTP GET / RTSP OPTIONS), and the first bytes of any reply (a 401
    counts: something answered). It never sends credentials; FFmpeg makes the real
    connection afterwards."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in PROBE_PORTS or not parts.hostname:
        return None  # udp, srt, tcp...: nothing to ask, leave it to FFmpeg's timeouts
    try:
        port = parts.port or PROBE_PORTS[scheme]
    except ValueError:
        return f"cannot open {redact_url(url)}: bad port"
    path = parts.path or "/"
    if scheme in ("http", "https"):
        ask = f"GET {path} HTTP/1.0\r\nHost: {parts.hostname}\r\n\r\n"
    elif scheme in ("rtsp", "rtsps"):
        ask = f"OPTIONS {scheme}://{parts.hostname}:{port}{path} RTSP/1.0\r\nCSeq: 1\r\n\r\n"
    else:
        ask = ""  # rtmp: a connect is all we can check without speaking the handshake
    shown = redact_url(url)
    try:
        with socket.create_connection((parts.hostname, port), timeout=timeout) as raw:
            sock: socket.socket = raw
            if scheme in ("https", "rtsps"):
                ctx = ssl.create_default_context()
                ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE  # liveness only
                sock = ctx.wrap_socket(raw, server_hostname=parts.hostname)
            if ask:
                sock.sendall(ask.encode())
                if not sock.recv(1):
                    return f"cannot open {shown}: the camera closed the connection without a word"
    except socket.timeout:
        return f"cannot open {shown}: no answer within {timeout:g} s"
    except (OSError, ssl.SSLError) as exc:
        return f"cannot open {shown}: {getattr(exc, 'strerror', None) or type(exc).__name__}"
    return None


def capture_options(base: str | None, keyframes: bool) -> str:
    """``OPENCV_FFMPEG_CAPTURE_OPTIONS`` for one open: the user's (or the default) plus
    ``avdiscard;nonkey`` for keyframes only (pure)."""
    parts = [p for p in (base if base is not None else DEFAULT_CAPTURE_OPTIONS).split("|")
             if p and not p.startswith("avdiscard;")]
    if keyframes:
        parts.append(KEYFRAMES_OPTION)
    return "|".join(parts)


def auto_keyframes(keyframe_interval: float | None, look_interval: float, stall_timeout: float = math.inf) -> bool:
    """``decode: auto``: keyframes only when the camera looks no more often than keyframes
    come, and a keyframe twice as late as usual (an encoder stretching its GOP) would
    still come within the read timeout, so the return to every frame is a reopen, not
    an outage (pure). None: no second keyframe seen in time: the interval is too long."""
    return (keyframe_interval is not None and 0 < keyframe_interval <= look_interval * AUTO_MARGIN
            and keyframe_interval <= STALL_SHARE * stall_timeout)


def file_interval(keys: list[float], end: float | None) -> float | None:
    """A file's keyframe interval for ``auto``, from one whole pass decoded frame by
    frame (pure): the longest gap between the positions (s) of the key flags seen,
    and from the last one to the end of the file (less the decoder's delay, which
    makes a flag show a few frames early). None: fewer than two keyframes were seen
    (they are as far apart as the file is long): every frame is decoded."""
    if len(keys) < 2:
        return None
    gaps = [b - a for a, b in zip(keys, keys[1:])]
    if end is not None:
        gaps.append(max(0.0, end - keys[-1] - TAIL_SLACK))
    return max(gaps)


def stream_interval(gaps: list[float], timed: bool = True) -> float:
    """A live stream's keyframe interval (pure): from frame timestamps, the median of
    the gaps, so one odd gap does not decide; by the clock (a stream without
    timestamps, e.g. raw H.264 over tcp://), the longest: arrival times are only
    ever shortened by a burst of buffered frames, never lengthened by it."""
    ordered = sorted(gaps)
    return ordered[len(ordered) // 2] if timed else ordered[-1]


class OpenCVSource:
    """A ``cv2.VideoCapture`` as a :class:`~edge_agent.sources.FrameSource`."""

    def __init__(self, spec: SourceSpec, cfg: CameraConfig, *, open_timeout: float,
                 look_interval: Callable[[], float], clock: Callable[[], float] = time.monotonic):
        self.spec = spec
        self.cfg = cfg
        self.open_timeout = open_timeout
        self._look_interval = look_interval
        self._clock = clock
        self.is_file = spec.is_file
        self.jpeg = False
        self.allow_jpeg = True  # turned off for good if this source's JPEGs do not decode on their own
        self.error: str | None = None
        self._cap: cv2.VideoCapture | None = None
        self._kept: np.ndarray | None = None  # retrieve() writes big frames into the last one's array
        self._width = self._height = 0
        # decode: keyframes only? (auto decodes every frame until it has learned the interval)
        self._mode = DecodeMode(cfg.decode)
        self._keyframes = False  # this open reads keyframes only
        self._choice: bool | None = None  # auto: keyframes only? (None: not learned yet)
        self._learned: float | None = None  # the keyframe interval, s (None: unknown or too long)
        self._keys: list[float] = []  # auto, learning: times of the key flags seen (this open, or pass)
        self._last_key: float | None = None  # auto, keyframes only: when the last keyframe came
        self._started: float | None = None  # when this open's (or pass's) first frame came
        self._timed: bool | None = None  # this open's frames carry timestamps that move (None: not known yet)
        self._last_ms: float | None = None  # the last timestamp seen (ms)
        self._said_skipping = False  # decode: keyframes on a file: said once that frames are skipped
        self._seekable = True  # False once a rewind did not land on the file's first frame
        self._rewound = False  # the next grab is the first after a rewind: check where it landed
        self._first_pos: float | None = None  # a file's first frame (s)
        self._base_options = os.environ.get("OPENCV_FFMPEG_CAPTURE_OPTIONS")
        self._base_threads = os.environ.get("OPENCV_FFMPEG_THREADS") or str(min(4, os.cpu_count() or 1))
        self.reopen_wanted = False  # auto changes how it decodes: the capture thread reopens

    # -- the protocol --------------------------------------------------------------

    def describe(self) -> str:
        return self.spec.describe()

    def open(self) -> str | None:
        asked, self.reopen_wanted = self.reopen_wanted, False
        if self._mode is DecodeMode.AUTO and not self.is_file and not asked:
            # A new connection (start, or after an outage) may meet another encoder
            # setting: decode every frame and learn again. A reopen auto asked for keeps
            # what it learned; a file is the same file at every pass.
            self._choice = None
        self.error = not_a_camera(self.spec)
        if self.error is None and self.spec.kind is SourceKind.STREAM:
            self.error = probe_stream(str(self.spec.target), self.open_timeout)
        if self.error is not None:
            return self.error
        if self.spec.kind is SourceKind.DEVICE:
            cap = cv2.VideoCapture(self.spec.target, cv2.CAP_V4L2)
        else:
            self._keyframes = (self._mode is DecodeMode.KEYFRAMES
                               or (self._mode is DecodeMode.AUTO and self._choice is True))
            if self._mode is DecodeMode.KEYFRAMES and self.is_file and not self._said_skipping:
                self._said_skipping = True
                log.info("%s: decode: keyframes on a video file: the frames between keyframes are skipped, "
                         "as chosen (decode: auto or all plays every frame)", self.cfg.name)
            params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, int(self.open_timeout * 1000),
                      cv2.CAP_PROP_READ_TIMEOUT_MSEC, int(self.cfg.stall_timeout * 1000)]
            with _open_lock:
                os.environ["OPENCV_FFMPEG_CAPTURE_OPTIONS"] = capture_options(self._base_options, self._keyframes)
                # One decode thread is plenty for a keyframe a second, and each frame
                # thread holds frames of its own: ~6 MB less at 1080p, and 3 threads.
                os.environ["OPENCV_FFMPEG_THREADS"] = "1" if self._keyframes else self._base_threads
                cap = cv2.VideoCapture(str(self.spec.target), cv2.CAP_FFMPEG, params)
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
        self._keys, self._last_key, self._started, self._timed, self._last_ms = [], None, None, None, None
        self._first_pos, self._rewound = None, False
        return None

    def grab(self) -> bool:
        assert self._cap is not None
        ok = self._cap.grab()
        if self.is_file:
            if self._rewound:
                ok = self._landed(ok)
            if ok and self._first_pos is None:
                self._first_pos = self.position()
        if not ok:
            self.error = "ended" if self.is_file else "read failed"
            return False
        if self._learning_now():
            self._learn(bool(self._cap.get(cv2.CAP_PROP_LRF_HAS_KEY_FRAME)))
        elif self._watching_now():
            self._watch()
        return True

    def _learning_now(self) -> bool:
        """auto, not decided yet: every frame is decoded, and key flags are timed."""
        return (self._mode is DecodeMode.AUTO and self._choice is None and not self._keyframes
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
        (``file_interval``); choosing keyframes only reopens the file once, so."""
        if not self.is_file or self._cap is None:
            return False
        if self._learning_now():
            self._decide(file_interval(self._keys, self._end))
            if self.reopen_wanted:
                return False  # reopened keyframes-only, from the start
        if not self._seekable:
            return False
        if not self._cap.set(cv2.CAP_PROP_POS_FRAMES, 0):
            self._seekable = False
            return False
        self._keys, self._started, self._timed, self._last_ms, self._rewound = [], None, None, None, True
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
        if self._keyframes:
            every = f", every {self._learned:.1f} s" if self._learned is not None else ""
            return f"keyframes only{every}"
        if self._learning_now():
            return "all frames (learning the keyframe interval)"
        if self._mode is DecodeMode.AUTO and self._choice is False and self._learned is None:
            return "all frames (keyframes too far apart, or none)"
        every = f" (keyframes every {self._learned:.1f} s)" if self._learned is not None else ""
        return f"all frames{every}"

    def close(self) -> None:
        self._kept = None
        if self._cap is not None:
            self._cap.release()
            self._cap = None

    def interrupt(self) -> None:
        pass  # OpenCV offers no way to unblock a call; its own timeouts bound them

    # -- decode: auto --------------------------------------------------------------

    @property
    def _end(self) -> float | None:
        """The end of a file, on the timeline keyframes were timed on (s), when known."""
        if self._timed is False:
            return self._clock()
        pos, fps = self.position(), self.frame_rate()
        return pos + 1 / fps if pos is not None and fps else pos

    def _now(self) -> float:
        """The grabbed frame's timestamp (s), else the clock. Timestamps, not arrival
        times: FFmpeg hands over the seconds of stream it read while probing a live
        stream in a burst, and a busy machine makes arrivals uneven. A source whose
        timestamps do not move (raw H.264, over tcp:// or in a file: every frame at 0)
        is timed by the clock for the rest of this open, and what was timed so far
        is forgotten."""
        if self._timed is not False and self._cap is not None:
            ms = self._cap.get(cv2.CAP_PROP_POS_MSEC)
            if ms is not None and math.isfinite(ms) and ms >= 0 and (self._last_ms is None or ms > self._last_ms):
                if self._last_ms is not None:
                    self._timed = True  # two frames, and time moved
                self._last_ms = ms
                return ms / 1000
            self._timed = False
            self._keys, self._started, self._last_key = [], None, None
            log.debug("%s: frames without moving timestamps: keyframes are timed by the clock", self.cfg.name)
        return self._clock()

    def _learn(self, key: bool) -> None:
        """Every frame is decoded while learning; the frames whose packet is a keyframe
        are timed. A live stream decides after ``LEARN_GAPS`` intervals, or as soon as
        one interval is clearly too long (it would decide so anyway); a file decides
        at the end of the pass (``rewind``), having seen every gap."""
        at = self._now()  # never earlier than the last (timestamps that do not move give way to the clock)
        if self._started is None:
            self._started = at  # the first frame timed, on this timeline
        if self.is_file:
            if key:
                self._keys.append(at)
            return
        look = self._look_interval() * AUTO_MARGIN
        since = self._keys[-1] if self._keys else self._started
        if at - since > TOO_FAR * look + 1.0:
            self._decide(None)  # no keyframe for that long: keyframes only would miss frames
            return
        if not key:
            return
        self._keys.append(at)
        gaps = [b - a for a, b in zip(self._keys, self._keys[1:])]
        timed = self._timed is not False
        if len(gaps) >= (LEARN_GAPS if timed else CLOCK_GAPS):
            self._decide(stream_interval(gaps, timed))

    def _watch(self) -> None:
        """Keyframes only: each grab is a keyframe. The camera now looking more often
        than they come (``set/fps``), or, on a live stream, one keyframe much later
        than the interval learned (the encoder stretched its GOP): every frame is
        decoded again (a reopen; a file starts its pass again), and a stream learns
        the interval anew."""
        look = self._look_interval()
        if self._learned is not None and not auto_keyframes(self._learned, look, self.cfg.stall_timeout):
            log.info("%s: a look every %.1f s now, keyframes every %.1f s: decoding every frame",
                     self.cfg.name, look, self._learned)
            self._choice = False if self.is_file else None
            self.reopen_wanted = True
            return
        if self.is_file:
            return  # the same file at every pass: its gaps were all measured
        at = self._now()
        last, self._last_key = self._last_key, at
        if last is None or self._learned is None:
            return
        gap = at - last
        if gap > TOO_FAR * max(self._learned, look):
            log.info("%s: a keyframe %.1f s after the last (they came every %.1f s): decoding every frame "
                     "until the interval is learned again", self.cfg.name, gap, self._learned)
            self._choice, self._learned = None, None
            self.reopen_wanted = True

    def _decide(self, interval: float | None) -> None:
        look = self._look_interval()
        if interval is not None and interval <= 0:
            interval = None  # keyframes at one instant: no interval at all
        keep = auto_keyframes(interval, look, self.cfg.stall_timeout)
        self._learned, self._choice = interval, keep
        if keep:
            log.info("%s: keyframes every %.1f s, a look every %.1f s: decoding keyframes only",
                     self.cfg.name, interval, look)
            self.reopen_wanted = True  # a reopen reads keyframes only
        else:
            what = f"every {interval:.1f} s" if interval is not None else "too far apart, or none"
            log.info("%s: keyframes %s, a look every %.1f s: decoding every frame", self.cfg.name, what, look)
