"""The picture a training frame is uploaded as: the frame as captured, region
applied, masked boxes blacked out, longest side at most ``max_size``, JPEG quality 90.

Design rule: nothing is encoded for a frame that is not saved. The capture thread
keeps each sent frame as captured (``captured.Original``) when its camera
collects; :func:`picture` (blocking: decode, mask, resize, encode) runs later, on
the dataset's own thread, for the few frames that are sampled.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from ..captured import Original
from ..encode import crop, decode_jpeg, encode_jpeg, region_box, resize_for_api

QUALITY = 90  # the contract: a picture for people to label, not the API's 416-px image
Box = tuple[float, float, float, float]  # x, y, w, h as fractions of the whole frame


def apply_mask(image: np.ndarray, mask: Sequence[Box], frame_size: tuple[int, int],
               offset: tuple[int, int]) -> np.ndarray:
    """Black out each box (fractions of the whole frame) where it falls on ``image``
    (a part of the frame at ``offset``); a copy when anything is masked."""
    if not mask:
        return image
    out = image.copy()
    fw, fh = frame_size
    ox, oy = offset
    ih, iw = out.shape[:2]
    for x, y, w, h in mask:
        x1, y1 = int(np.floor(x * fw)) - ox, int(np.floor(y * fh)) - oy
        x2, y2 = int(np.ceil((x + w) * fw)) - ox, int(np.ceil((y + h) * fh)) - oy
        x1, y1, x2, y2 = max(0, x1), max(0, y1), min(iw, x2), min(ih, y2)
        if x1 < x2 and y1 < y2:
            out[y1:y2, x1:x2] = 0
    return out


def picture(original: Original, *, max_size: int, mask: Sequence[Box] = ()) -> bytes:
    """The JPEG to upload (blocking). ``max_size`` 0: as captured. ValueError when a
    kept JPEG does not decode."""
    if original.compressed:
        frame = decode_jpeg(original.data)
        if frame is None:
            raise ValueError("the frame's JPEG does not decode")
        h, w = frame.shape[:2]
        x1, y1 = region_box(w, h, original.region)[:2] if original.region is not None else (0, 0)
        image, size, offset = crop(frame, original.region), (w, h), (x1, y1)
    else:
        image, size, offset = original.data, original.frame_size, original.offset
    image = apply_mask(image, mask, size, offset)
    if max_size > 0:
        image = resize_for_api(image, max_size)
    return encode_jpeg(image, QUALITY)


def picture_of_file(image: np.ndarray, *, max_size: int) -> bytes:
    """An image file as ``edge-agent collect`` uploads it: whole, at most ``max_size``."""
    return picture(Original.of_pixels(image, None, reused=False), max_size=max_size)
