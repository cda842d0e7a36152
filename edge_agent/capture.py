"""Camera capture: one thread per camera running OpenCV.

The thread ``grab()``s every frame the source delivers, so the device's buffer
never holds stale frames, and ``retrieve()``s (decodes to pixels) only a frame
that the camera's admission opens a slot for (rate, API backoff, budget and the
shared in-flight limit, see ``admission.py``). The change gate then looks at a
tiny greyscale thumbnail of it; only a frame that is worth a call is resized and
encoded. Any other frame is dropped and counted; nothing is queued, so a result
is never about a stale frame.

An MJPEG source (HTTP MJPEG cameras, MJPEG files) is read in FFmpeg's demux-only
mode: ``grab()`` then only reads a frame's bytes, and just the frames taken are
decoded, by libjpeg, scaled down in the decoder when the sizes allow it
(``jpeg_scale``); the gate's thumbnail of such a frame comes from a 1/8-scale
greyscale decode, so a frame the gate skips is never decoded in full. Every frame of H.264 and the like must be decoded, as later
frames are built on earlier ones; V4L2 devices already decode in ``retrieve()``.

A source that fails to open, ends (unless it loops), fails to read or gives no
frame for ``stall_timeout`` is released and reopened with exponential backoff
(capped at 60 s).
"""

from __future__ import annotations

import logging
import math
import os
import re
import stat
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable

import cv2
import numpy as np

# OpenCV's own warnings (e.g. FFmpeg stream timeouts) would bypass our log format
# and redaction; the agent reports those conditions itself.
try:
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
except AttributeError:  # pragma: no cover - very old OpenCV builds
    pass

from .admission import Admission, Slot
from .backoff import Backoff
from .change import thumbnail
from .config import CameraConfig
from .encode import decode_jpeg, decode_jpeg_grey, jpeg_scale, prepare, resize_for_api
from .episode import Episode
from .redact import redact_url

log = logging.getLogger("edge_agent.capture")

PREVIEW_SIZE = 640  # longest side of the copy kept for the status page and snapshots
REOPEN_INITIAL = 1.0
REOPEN_CAP = 60.0
DEFAULT_FILE_FPS = 25.0
MJPEG_FOURCC = int.from_bytes(b"MJPG", "little")
MAX_FRAME_BYTES = 8 << 20  # a JPEG from a camera; a 4K frame at top quality is ~3 MB
RAW_FAILURES_BEFORE_FALLBACK = 3  # undecodable JPEGs in a row, none good yet: let FFmpeg decode


@dataclass(frozen=True)
class SourceSpec:
    kind: str  # device | file | stream
    target: str | int  # what cv2.VideoCapture is given

    @property
    def is_file(self) -> bool:
        return self.kind == "file"

    def describe(self) -> str:
        return redact_url(str(self.target)) if self.kind == "stream" else str(self.target)


def parse_source(source: str) -> SourceSpec:
    """Pure: USB index, ``/dev/videoN``, a stream URL or a video file path."""
    text = source.strip()
    if re.fullmatch(r"\d+", text):
        return SourceSpec("device", int(text))
    if text.startswith("/dev/video") or text.startswith("/dev/v4l/"):
        return SourceSpec("device", text)
    if re.match(r"^(rtsps?|rtmp|https?|udp|tcp|srt)://", text, re.I):
        return SourceSpec("stream", text)
    if text.startswith("file://"):
        text = text[len("file://"):]
    return SourceSpec("file", text)


V4L2_MAJOR = 81  # Linux's character-device major number for video4linux


def not_a_camera(spec: SourceSpec) -> str | None:
    """Why a path cannot be opened as a camera or video file, or None if it may be.

    A FIFO with no writer, or a character device that is not V4L2 (a tty, /dev/zero),
    would block or feed garbage inside OpenCV's open, beyond any timeout, and OpenCV
    holds a lock there that other cameras' opens wait on: such paths are refused
    before OpenCV sees them (with a clear reason, retried like any outage, so a file
    that appears later is still picked up)."""
    if spec.kind == "stream":
        return None
    if spec.kind == "device" and isinstance(spec.target, int):
        return None
    path = str(spec.target)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        if spec.kind == "device":
            return f"cannot open {spec.describe()}: no such device (is the camera plugged in?)"
        return f"file {spec.describe()} not found"
    except OSError as exc:
        return f"cannot open {spec.describe()}: {exc.strerror or exc}"
    mode = st.st_mode
    if spec.kind == "device":
        if not stat.S_ISCHR(mode) or os.major(st.st_rdev) != V4L2_MAJOR:
            return f"{spec.describe()} is not a V4L2 camera device"
        if not os.access(path, os.R_OK | os.W_OK):
            return f"cannot open {spec.describe()}: permission denied (the user needs to be in group video)"
        return None
    if stat.S_ISFIFO(mode):
        return f"{spec.describe()} is a FIFO, not a video file (for a program's output use a stream or a file)"
    if not stat.S_ISREG(mode):
        return f"{spec.describe()} is not a regular video file"
    return None


PROBE_PORTS = {"http": 80, "https": 443, "rtsp": 554, "rtsps": 322, "rtmp": 1935}


def probe_stream(url: str, timeout: float) -> str | None:
    """Does a network camera answer at all? None if it does, else why not.

    OpenCV's FFmpeg backend opens every capture under one process-wide lock, so a
    camera that accepts a connection and then says nothing (hung firmware) or a
    host that does not answer would hold up every other camera's (re)open for the
    whole open timeout. This probe waits on the network here instead, outside that
    lock: a TCP connect (and TLS handshake), a request (HTTP GET / RTSP OPTIONS),
    and the first bytes of any reply (a 401 counts: something answered). It never
    sends credentials; FFmpeg makes the real connection afterwards.
    """
    import socket
    import ssl
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
        bare = f"{scheme}://{parts.hostname}:{port}{path}"
        ask = f"OPTIONS {bare} RTSP/1.0\r\nCSeq: 1\r\n\r\n"
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


class CaptureWorker:
    """Owns one camera's OpenCV capture, in its own thread.

    ``admission`` decides which frames become calls (its slot travels with the
    delivered frame). Callbacks run in the capture thread; the owner makes them
    thread-safe: ``deliver(frame)`` hands a taken frame over,
    ``on_event(kind, detail)`` reports ``online``, ``offline`` or ``ended``;
    ``on_snapshot(preview, captured_at)`` answers ``request_snapshot()``.
    While the admission is paused the thread keeps grabbing (the source stays
    open and drained) but takes nothing and counts nothing as dropped.
    """

    def __init__(self, cfg: CameraConfig, *, image_size: int, jpeg_quality: int,
                 admission: Admission, deliver: Callable[[Frame], None],
                 on_event: Callable[[str, str | None], None],
                 on_snapshot: Callable[[np.ndarray, float], None] | None = None,
                 open_timeout: float = 10.0, opener: Callable[[], Any] | None = None,
                 clock: Callable[[], float] = time.monotonic):
        self.cfg = cfg
        # Seams for in-process tests: what opens the source (a cv2.VideoCapture-like
        # object, or a string saying why not) and the monotonic clock frames are stamped with.
        self._opener = opener
        self._clock = clock
        self.spec = parse_source(cfg.source)
        self.image_size = image_size
        self.jpeg_quality = jpeg_quality
        self.admission = admission
        self._deliver = deliver
        self._on_event = on_event
        self._on_snapshot = on_snapshot
        self._snapshot_wanted = threading.Event()
        self.open_timeout = open_timeout
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"capture-{cfg.name}", daemon=True)
        self._seq = 0
        self._backoff = Backoff(REOPEN_INITIAL, REOPEN_CAP)
        # Counters: written by the capture thread only, read by anyone.
        self.frames_captured = 0
        self.frames_dropped = 0
        self.frames_sent = 0
        self.last_frame_mono: float | None = None
        # Set while the thread is inside a blocking OpenCV call (open, grab, retrieve),
        # None while it waits on its own terms (pacing, backoff): a call that never
        # returns shows as an ever older busy_since, and the systemd watchdog stops.
        self.busy_since: float | None = None
        self.ended = False
        # MJPEG read demux-only, decoded by us on take (see the module docstring);
        # turned off for good if this source's JPEGs turn out not to decode that way.
        self.decode_on_take = False
        self._raw_allowed = True
        self._raw_good = False
        self._raw_failures = 0
        self._scale = 1
        self._reopen_now = False
        self._bad_frames = Episode()  # frames that would not decode or encode: logged once a run of them

    # -- lifecycle -----------------------------------------------------------

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

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
                outcome = self._open_and_pump()
                if self._stop.is_set():
                    break
                if outcome == "reopen":
                    continue
                if outcome == "ended":
                    if self.cfg.loop:
                        continue
                    self.ended = True
                    self._on_event("ended", None)
                    return
                self._on_event("offline", outcome)
                self._stop.wait(self._backoff.next_delay())
        except Exception as exc:  # pragma: no cover - a bug; keep the daemon alive and say so
            log.exception("%s: capture thread failed", self.cfg.name)
            self._on_event("offline", f"capture thread failed: {type(exc).__name__}")

    def _open(self) -> cv2.VideoCapture | str:
        if self._opener is not None:
            return self._opener()
        spec = self.spec
        refused = not_a_camera(spec)
        if refused is None and spec.kind == "stream":
            refused = probe_stream(str(spec.target), self.open_timeout)
        if refused is not None:
            return refused
        if spec.kind == "device":
            cap = cv2.VideoCapture(spec.target, cv2.CAP_V4L2)
        else:
            ms = int(self.open_timeout * 1000)
            params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, ms,
                      cv2.CAP_PROP_READ_TIMEOUT_MSEC, int(self.cfg.stall_timeout * 1000)]
            cap = cv2.VideoCapture(str(spec.target), cv2.CAP_FFMPEG, params)
        if not cap.isOpened():
            cap.release()
            return f"cannot open {spec.describe()}"
        if spec.kind == "device":
            cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # newest frame, not a queue of old ones
        else:
            self._setup_raw(cap)
        return cap

    def _setup_raw(self, cap: cv2.VideoCapture) -> None:
        """Demux-only reading for an MJPEG source; must happen before the first grab."""
        self.decode_on_take = False
        self._scale = 1
        if not self._raw_allowed or int(cap.get(cv2.CAP_PROP_FOURCC)) != MJPEG_FOURCC:
            return
        if cap.set(cv2.CAP_PROP_FORMAT, -1):
            self.decode_on_take = True
            width, height = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
            if width > 0 and height > 0:
                self._scale = jpeg_scale(width, height, self.image_size, self.cfg.region, PREVIEW_SIZE)

    def _retrieve(self, cap: cv2.VideoCapture) -> np.ndarray | None:
        """The grabbed frame: BGR pixels, or a JPEG's bytes when ``decode_on_take``."""
        ok, data = cap.retrieve()
        return data if ok and data is not None else None

    def _pixels(self, cap: cv2.VideoCapture, data: np.ndarray | None = None) -> np.ndarray | None:
        """The grabbed frame as BGR pixels (None if it cannot be decoded)."""
        if data is None:
            data = self._retrieve(cap)
        if data is None or not self.decode_on_take:
            return data
        image = decode_jpeg(data, self._scale)
        if image is not None:
            self._raw_good, self._raw_failures = True, 0
        elif not self._raw_good:
            self._raw_failures += 1
            if self._raw_failures >= RAW_FAILURES_BEFORE_FALLBACK:
                # Not plain JPEGs (e.g. interlaced MJPEG): FFmpeg decodes from the next open on.
                log.warning("%s: frames do not decode as JPEG on their own; decoding every frame instead",
                            self.cfg.name)
                self._raw_allowed = False
                self._reopen_now = True
        return image

    def _open_and_pump(self) -> str:
        self.busy_since = time.monotonic()
        try:
            cap = self._open()
        finally:
            self.busy_since = None
        if isinstance(cap, str):
            return cap
        try:
            return self._pump(cap)
        finally:
            cap.release()

    def _file_fps(self, cap: cv2.VideoCapture) -> float:
        fps = cap.get(cv2.CAP_PROP_FPS)
        if not fps or math.isnan(fps) or fps <= 0 or fps > 240:
            return DEFAULT_FILE_FPS
        return float(fps)

    def _pump(self, cap: cv2.VideoCapture) -> str:
        pace = self._file_fps(cap) if self.spec.is_file else None
        start = time.monotonic()
        n = 0
        first = True
        stall = self.cfg.stall_timeout
        while not self._stop.is_set():
            if self._reopen_now:
                self._reopen_now = False
                return "reopen"
            if pace is not None:
                # Play a file at its own frame rate, as a camera would deliver it.
                due = start + n / pace
                wait = due - time.monotonic()
                if wait > 0:
                    if self._stop.wait(wait):
                        break
                elif wait < -1.0:  # far behind (machine was busy): do not race to catch up
                    start, n = time.monotonic(), 0
            before = self.busy_since = self._clock()
            ok = cap.grab()
            self.busy_since = None
            now = self._clock()
            if now - before >= stall * 0.9 and not self.spec.is_file:
                # FFmpeg's read timeout fired: on a frozen RTSP stream grab() may still
                # say True now and then, without a new frame. Either way: stalled.
                return f"no frame for {stall:g} s"
            if not ok:
                return "ended" if self.spec.is_file else "read failed"
            n += 1
            self.frames_captured += 1
            self.last_frame_mono = now
            if first:
                first = False
                self._backoff.reset()
                self._on_event("online", None)
            if self._snapshot_wanted.is_set():
                self._snapshot(cap, now)
            if self.admission.paused:
                continue
            slot = self.admission.open(now)
            if slot is None:
                self.frames_dropped += 1
                continue
            self._take(cap, now, slot)
        return "stopped"

    def _bad_frame(self, slot: Slot, what: str) -> None:
        """A taken frame that yields nothing to send: dropped, counted, logged once a run."""
        slot.release()
        self.frames_dropped += 1
        if self._bad_frames.fail(what):
            log.warning("%s: %s; dropping such frames (logged once until one decodes)", self.cfg.name, what)

    def _snapshot(self, cap: cv2.VideoCapture, now: float) -> None:
        self._snapshot_wanted.clear()
        image = self._pixels(cap)
        if image is not None and self._on_snapshot is not None:
            self._on_snapshot(resize_for_api(image, PREVIEW_SIZE), time.time() - (self._clock() - now))

    def _take(self, cap: cv2.VideoCapture, now: float, slot: Slot) -> None:
        captured_at = time.time() - (self._clock() - now)
        try:
            data = self._retrieve(cap)
            if data is None:
                self._bad_frame(slot, "a frame could not be read")
                return
            if self.decode_on_take and data.size > MAX_FRAME_BYTES:
                self._bad_frame(slot, f"a frame of {data.size / 2**20:.0f} MB is over the "
                                      f"{MAX_FRAME_BYTES >> 20} MB cap")
                return
            image = thumb = None
            if self.admission.needs_thumbnail():
                if self.decode_on_take:  # a 1/8 greyscale decode: a skipped frame is never decoded in full
                    grey = decode_jpeg_grey(data)
                    thumb = thumbnail(grey, self.cfg.region) if grey is not None else None
                else:
                    image = data
                    thumb = thumbnail(image, self.cfg.region)
            if not self.admission.decide(slot, thumb, now, captured_at):
                return  # unchanged, or the budget said not now: counted by the admission
            if image is None:
                image = self._pixels(cap, data)
            if image is None:
                self._bad_frame(slot, "a frame did not decode")
                return
            jpeg = prepare(image, self.image_size, self.jpeg_quality, self.cfg.region)
            preview = resize_for_api(image, PREVIEW_SIZE)
        except Exception as exc:  # a corrupt frame must not end the capture
            self._bad_frame(slot, f"a frame could not be decoded or encoded: {type(exc).__name__}")
            return
        bad = self._bad_frames.ok()
        if bad:
            log.info("%s: frames decode again, after %d that did not", self.cfg.name, bad)
        self._seq += 1
        self.frames_sent += 1
        h, w = image.shape[0] * self._scale, image.shape[1] * self._scale
        self._deliver(Frame(self.cfg.name, self._seq, captured_at, now, jpeg, w, h, preview, slot))
