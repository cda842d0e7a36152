"""A sent frame as captured, kept beside the API's small JPEG for a later use (the
training data's full-size picture, ``dataset/picture.py``).

Design rule: keeping costs nothing but a reference: a camera's JPEG as received
(MJPEG: decoded in full only if it is ever used), or a decoded frame the source
does not write into again. Only when the source reuses its buffer is the region
copied, since the next frame would overwrite it, and then into one of a few
:class:`Buffers` the capture thread keeps: a fresh 6-MB array for a 1080p frame
costs its page faults whenever glibc maps it afresh (``memory.py``: after a trim,
or before its moving threshold has grown past a frame), where a kept buffer is
mapped once (bench_agent h264: the take path 3.0 ms with kept buffers, 3.9 ms with
fresh arrays, at 1080p).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

import numpy as np

from .encode import Region, crop, region_box


@dataclass(frozen=True)
class Original:
    """A taken frame as captured: BGR pixels of the region (``compressed`` False), or
    the whole frame's JPEG as the camera sent it (``compressed`` True)."""

    data: np.ndarray
    compressed: bool
    frame_size: tuple[int, int]  # width, height of the whole frame (0, 0: not known yet, compressed)
    offset: tuple[int, int]  # the region's top-left corner in the frame (pixels: 0, 0 when compressed)
    region: Region | None  # still to apply (compressed only)

    @classmethod
    def of_pixels(cls, frame: np.ndarray, region: Region | None, *, reused: bool,
                  buffers: "Buffers | None" = None) -> "Original":
        """The region of a decoded frame; copied only when the source writes its next
        frame into the same buffer (``reused``), into one of ``buffers`` if given."""
        h, w = frame.shape[:2]
        x1, y1 = region_box(w, h, region)[:2] if region is not None else (0, 0)
        part = crop(frame, region)
        if reused:
            part = buffers.copy(part) if buffers is not None else part.copy()
        return cls(part, False, (w, h), (x1, y1), None)

    @classmethod
    def of_jpeg(cls, data: np.ndarray | bytes, region: Region | None, *, reused: bool) -> "Original":
        """A camera's JPEG (MJPEG): kept compressed, decoded in full only if saved."""
        arr = np.frombuffer(data, np.uint8) if isinstance(data, (bytes, bytearray)) else data
        return cls(arr.copy() if reused else arr, True, (0, 0), (0, 0), region)

    @property
    def nbytes(self) -> int:
        return int(self.data.nbytes)


class Buffers:
    """A few arrays one capture thread copies regions into, each taken again once
    nothing else holds it (no :class:`Original` of it is alive: CPython's reference
    count says so, a view of it counting as a holder). At most ``count``; when all
    are held, a fresh copy is made (and not kept)."""

    FREE = 2  # references to a free buffer while it is looked at: the list's, and getrefcount's own

    def __init__(self, count: int = 3):
        # A build without the GIL counts references differently: no pool there (each copy fresh).
        self.count = count if getattr(sys, "_is_gil_enabled", lambda: True)() else 0
        self._bufs: list[np.ndarray] = []

    def _free(self, i: int) -> bool:
        return sys.getrefcount(self._bufs[i]) <= self.FREE

    def copy(self, part: np.ndarray) -> np.ndarray:
        for i in range(len(self._bufs)):
            if self._bufs[i].shape == part.shape and self._bufs[i].dtype == part.dtype and self._free(i):
                np.copyto(self._bufs[i], part)
                return self._bufs[i]
        fresh = part.copy()
        if len(self._bufs) < self.count:
            self._bufs.append(fresh)
        else:  # another size (the region or the stream changed): a free one makes room
            for i in range(len(self._bufs)):
                if self._free(i):
                    self._bufs[i] = fresh
                    break
        return fresh
