"""Where frames come from: one module per kind of source, one protocol for all.

The capture thread (``capture.py``) owns pacing, stall detection, reopening with
backoff and taking/encoding frames; a source only opens, reads and closes:

* ``opencv.py``  OpenCV: USB/V4L2 devices, and FFmpeg for files, RTSP and HTTP
  streams (MJPEG demux-only; H.264/H.265 all frames or keyframes only, which
  ``decode: auto`` chooses in ``autodecode.py``);
* ``pipe.py``    a command's stdout carrying MJPEG (``exec:``, and the Pi camera
  through ``rpicam-vid``, ``rpicam.py``), split by ``jpegstream.py``.

A new kind of source is one class implementing :class:`FrameSource`.
"""

from __future__ import annotations

import enum
import re
import shlex
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Protocol

import numpy as np

from ..redact import redact_url

MAX_FRAME_BYTES = 8 << 20  # one camera JPEG at most (a 4K frame at top quality is ~3 MB): beyond, dropped

if TYPE_CHECKING:
    from ..config import CameraConfig


class FrameSource(Protocol):
    """One camera's frames. The capture thread calls everything but ``interrupt()``.

    Every member is part of the contract; the capture thread never asks whether a
    source has one. A source that subclasses this class takes the defaults of the
    members many sources need no more of (it never asks to be reopened, cannot
    decode JPEGs itself, gives a new array per frame, cannot rewind, and knows no
    frame rate, position or size); the rest (open, grab, retrieve, info, close,
    interrupt, describe) it must implement: they raise ``NotImplementedError``."""

    is_file: bool  # play at the file's own rate; the end is "ended", not an outage
    jpeg: bool  # retrieve() gives a JPEG's bytes: only the frames taken are decoded
    error: str | None  # why the last open() or grab() failed

    @property
    def reopen_wanted(self) -> bool:
        """Reopen me now, without backoff: the source changes how it reads (``decode:
        auto``). Asked before each grab() and after it (that frame is passed over)."""
        return False

    @property
    def can_decode_itself(self) -> bool:
        """With ``jpeg``: could the source give decoded pixels instead (``decode_itself``)?"""
        return False

    def decode_itself(self) -> None:
        """Its JPEGs do not decode on their own (e.g. interlaced MJPEG): give decoded
        pixels from the next open on. Called only when ``can_decode_itself``."""

    def open(self) -> str | None:
        """None when open, else why not (an outage: retried with backoff)."""
        raise NotImplementedError

    def grab(self) -> bool:
        """Read the next frame (not decoded). False: failed, ended or stalled (see ``error``)."""
        raise NotImplementedError

    def retrieve(self) -> np.ndarray | None:
        """The grabbed frame: BGR pixels, or a JPEG's bytes (1-D uint8) when ``jpeg``.
        The pixels may be an array the next ``retrieve()`` writes into (``holds``)."""
        raise NotImplementedError

    def holds(self, image: np.ndarray) -> bool:
        """Is ``image`` an array this source reuses for the next frame (so anything that
        must outlive the next ``retrieve()`` is copied from it)?"""
        return False

    def rewind(self) -> bool:
        """A file that loops: back to its first frame without reopening it (no new
        probe, no new decoder). False if it cannot: it is then reopened. True is a
        promise to try: a source whose next grab() finds the seek went wrong fails it
        (the file is then reopened) and answers False from then on."""
        return False

    def frame_rate(self) -> float | None:
        """A file's own frame rate (for pacing), else None."""
        return None

    def position(self) -> float | None:
        """A file's position in seconds of the frame grabbed (for pacing), else None."""
        return None

    def size(self) -> tuple[int, int] | None:
        """(width, height) of the frames, if known."""
        return None

    def info(self) -> str:
        """How it is read, for people: "keyframes only, every 1.0 s"."""
        raise NotImplementedError

    def close(self) -> None:
        """Release everything (idempotent)."""
        raise NotImplementedError

    def interrupt(self) -> None:
        """From another thread: make a blocked open()/grab() return soon (agent stop)."""
        raise NotImplementedError

    def describe(self) -> str:
        """What it is, credentials redacted."""
        raise NotImplementedError


class SourceKind(enum.Enum):
    DEVICE = "device"  # a V4L2 index or /dev/video path
    FILE = "file"  # a video file, played at its own rate
    STREAM = "stream"  # rtsp://, http(s):// and the like, through FFmpeg
    EXEC = "exec"  # a command writing MJPEG to stdout
    RPICAM = "rpicam"  # the Pi camera, through rpicam-vid


@dataclass(frozen=True)
class SourceSpec:
    kind: SourceKind
    target: str | int  # what OpenCV is given; the command line for exec; the camera number for rpicam

    @property
    def is_file(self) -> bool:
        return self.kind is SourceKind.FILE

    def describe(self) -> str:
        if self.kind in (SourceKind.STREAM, SourceKind.EXEC):
            return redact_url(str(self.target))
        if self.kind is SourceKind.RPICAM:
            return f"Pi camera {self.target}"
        return str(self.target)


def parse_source(source: str) -> SourceSpec:
    """Pure: a USB index, ``/dev/videoN``, a stream URL, ``exec:<command>``,
    ``rpicam[:<n>]`` or a video file path."""
    text = source.strip()
    if text.startswith("exec:"):
        return SourceSpec(SourceKind.EXEC, text[len("exec:"):].strip())
    if text == "rpicam" or re.fullmatch(r"rpicam:\d+", text):
        return SourceSpec(SourceKind.RPICAM, int(text.split(":")[1]) if ":" in text else 0)
    if re.fullmatch(r"\d+", text):
        return SourceSpec(SourceKind.DEVICE, int(text))
    if text.startswith("/dev/video") or text.startswith("/dev/v4l/"):
        return SourceSpec(SourceKind.DEVICE, text)
    if re.match(r"^(rtsps?|rtmp|https?|udp|tcp|srt)://", text, re.I):
        return SourceSpec(SourceKind.STREAM, text)
    if text.startswith("file://"):
        text = text[len("file://"):]
    return SourceSpec(SourceKind.FILE, text)


def make_source(cfg: "CameraConfig", *, open_timeout: float,
                look_interval: Callable[[], float]) -> FrameSource:
    """The source for a camera's config. ``look_interval``: seconds between the
    camera's looks (1/fps), which decides keyframe-only decoding in ``auto``."""
    spec = parse_source(cfg.source)
    if spec.kind is SourceKind.EXEC:
        from .pipe import PipeSource

        return PipeSource(cfg.name, shlex.split(str(spec.target)), stall_timeout=cfg.stall_timeout,
                          shown=spec.describe())
    if spec.kind is SourceKind.RPICAM:
        from .rpicam import RpicamSource

        return RpicamSource(cfg, int(spec.target))
    from .opencv import OpenCVSource

    return OpenCVSource(spec, cfg, open_timeout=open_timeout, look_interval=look_interval)
