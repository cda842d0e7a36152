"""A sent frame as captured, kept beside the API's small JPEG for a later use (the
training data's full-size picture, ``dataset/picture.py``).

Design rule: keeping costs nothing but a reference: a camera's JPEG as received
(MJPEG: decoded in full only if it is ever used), or a decoded frame the source
does not write into again. Only when the source reuses its buffer is the region
copied, since the next frame would overwrite it.
"""

from __future__ import annotations

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
    def of_pixels(cls, frame: np.ndarray, region: Region | None, *, reused: bool) -> "Original":
        """The region of a decoded frame; copied only when the source writes its next
        frame into the same buffer (``reused``)."""
        h, w = frame.shape[:2]
        x1, y1 = region_box(w, h, region)[:2] if region is not None else (0, 0)
        part = crop(frame, region)
        return cls(part.copy() if reused else part, False, (w, h), (x1, y1), None)

    @classmethod
    def of_jpeg(cls, data: np.ndarray | bytes, region: Region | None, *, reused: bool) -> "Original":
        """A camera's JPEG (MJPEG): kept compressed, decoded in full only if saved."""
        arr = np.frombuffer(data, np.uint8) if isinstance(data, (bytes, bytearray)) else data
        return cls(arr.copy() if reused else arr, True, (0, 0), (0, 0), region)

    @property
    def nbytes(self) -> int:
        return int(self.data.nbytes)
