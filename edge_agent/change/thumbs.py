"""The change gate's picture side: a frame reduced to tiny thumbnails (pure, no I/O).

The gate (``detector.py``) never compares frames, only a :class:`Thumb` of each:
luma and colour, longest side :data:`THUMB_SIDE`, from :func:`thumbnails`.

1. **Downscale** (box averaging: 2x2 halvings of the BGR pixels, then
   ``INTER_AREA``, or bilinear for a last step of at most 1.5x), then split into luma (Y, the greyscale thumbnail) and chroma
   (Cr and Cb, 128 = no colour): a thumbnail pixel averages ~100 frame pixels,
   which removes sensor noise (sigma 8 -> <1) and JPEG noise, and makes anything
   smaller than ~1/64 of the picture (a blinking LED) small; then a light 3x3
   blur forgives sub-pixel shifts of sharp edges. A greyscale source (or a
   caller with only a grey image) gives luma alone, and is compared on luma alone.

Ignore boxes (``change.ignore``, e.g. a timestamp overlay) are ``x, y, w, h``
fractions of the whole frame; when the camera has a ``region`` (``x1, y1, x2, y2``
fractions: only that crop is classified, so only that crop is compared), they are
converted into the region's coordinates and clipped; a box outside it is
irrelevant. Ignored pixels count neither as changed nor in the total, nor in the
light fit, nor in the light of a look (:func:`ignore_mask`).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from ..config import Box
from ..encode import Region, Scratch, crop, target_size

THUMB_SIDE = 64
"""Longest side of a thumbnail, in pixels. 64x48 for a 4:3 frame (3072 pixels):
one thumbnail pixel is 1/3072 of the picture, fine enough for a 1 % threshold."""

BLUR = (3, 3)


@dataclass(frozen=True)
class Thumb:
    """One look's thumbnails: luma and, from a colour source, chroma; all the same
    ``(h, w)`` uint8 shape, longest side at most :data:`THUMB_SIDE`."""

    grey: np.ndarray  # Y, 0..255
    cr: np.ndarray | None = None  # Cr, 128 = no colour; None: a greyscale source
    cb: np.ndarray | None = None  # Cb, likewise

    @property
    def has_colour(self) -> bool:
        return self.cr is not None and self.cb is not None


def _small(image: np.ndarray, scratch: Scratch | None) -> np.ndarray:
    """``image`` (grey or BGR) box-averaged down to thumbnail size, aspect kept."""
    h, w = image.shape[:2]
    size = target_size(w, h, THUMB_SIDE)
    tw, th = size
    # Exact 2x2 box averages while at least 2x too big (bilinear at exactly half
    # size), then INTER_AREA: the same result as INTER_AREA all the way, for a
    # fraction of its cost (INTER_AREA 640x480 -> 64x48 alone costs ~0.15-0.2 ms).
    # A last step of at most 1.5x (80x60 -> 64x48) is bilinear, as close to area
    # averaging there (see encode.shrink) at a third of its cost on a colour image.
    while w >= 2 * tw and h >= 2 * th:
        w, h = w // 2, h // 2
        image = (scratch.resize(image, (w, h)) if scratch is not None
                 else cv2.resize(image, (w, h), interpolation=cv2.INTER_LINEAR))
    if (w, h) != size:
        last = cv2.INTER_LINEAR if w <= 1.5 * tw and h <= 1.5 * th else cv2.INTER_AREA
        image = cv2.resize(image, size, interpolation=last)
    return image


def thumbnails(image: np.ndarray, region: Region | None = None, scratch: Scratch | None = None) -> Thumb:
    """The tiny, lightly blurred luma and chroma thumbnails of ``region`` of ``image``.

    ``image`` is BGR ``(H, W, 3)`` or greyscale ``(H, W)`` pixels of any size: a full
    frame, or one already reduced, e.g. a JPEG decoded at 1/8 size with
    ``cv2.IMREAD_REDUCED_COLOR_8`` (libjpeg then averages 8x8 blocks, the same as
    this function's halvings do, so the two give nearly the same thumbnails). A
    greyscale image gives luma alone. The longest side is at most
    :data:`THUMB_SIDE`, aspect kept, never upscaled. ``region`` is ``(x1, y1, x2,
    y2)`` as fractions of ``image``. ``scratch``: the capture thread's kept buffers
    for the big in-between images (the first halving of a 1080p frame is 1.5 MB);
    the thumbnails themselves are new.
    """
    if image.ndim == 3 and image.shape[2] == 3:
        # Box-average the colour pixels, then convert the few left: cheaper than a
        # full-size conversion, and Y of the averages is the average of Y.
        small = _small(crop(image, region), scratch)
        y, cr, cb = cv2.split(cv2.GaussianBlur(cv2.cvtColor(small, cv2.COLOR_BGR2YCrCb), BLUR, 0))
        return Thumb(y, cr, cb)
    if image.ndim == 2:
        return Thumb(cv2.GaussianBlur(_small(crop(image, region), scratch), BLUR, 0))
    raise ValueError(f"expected BGR (H, W, 3) or greyscale (H, W) pixels, got shape {image.shape}")


def thumbnail(image: np.ndarray, region: Region | None = None, scratch: Scratch | None = None) -> np.ndarray:
    """The luma thumbnail alone (uint8 ``(h, w)``): :func:`thumbnails` without the colour."""
    return thumbnails(image, region, scratch).grey


def ignore_mask(shape: tuple[int, ...], ignore: tuple[Box, ...], region: Region | None = None) -> np.ndarray:
    """Boolean ``shape`` mask, True where a thumbnail pixel is *compared* (not ignored).

    Each ``(x, y, w, h)`` box (fractions of the frame) is moved into the region's
    coordinates, clipped to it, and grown to whole thumbnail pixels plus the blur's
    reach, so nothing inside the box can leak into a compared pixel.
    """
    h, w = shape[:2]
    keep = np.ones((h, w), bool)
    rx1, ry1, rx2, ry2 = region if region is not None else (0.0, 0.0, 1.0, 1.0)
    rw, rh = rx2 - rx1, ry2 - ry1
    reach = BLUR[0] // 2
    for bx, by, bw, bh in ignore:
        # Box edges in region fractions, clipped to the region.
        x1 = max(0.0, (bx - rx1) / rw)
        y1 = max(0.0, (by - ry1) / rh)
        x2 = min(1.0, (bx + bw - rx1) / rw)
        y2 = min(1.0, (by + bh - ry1) / rh)
        if x2 <= x1 or y2 <= y1:
            continue  # outside the region: irrelevant
        px1 = max(0, int(np.floor(x1 * w)) - reach)
        py1 = max(0, int(np.floor(y1 * h)) - reach)
        px2 = min(w, int(np.ceil(x2 * w)) + reach)
        py2 = min(h, int(np.ceil(y2 * h)) + reach)
        keep[py1:py2, px1:px2] = False
    return keep


def as_thumb(thumb: Thumb | np.ndarray) -> Thumb:
    """A bare greyscale thumbnail (:func:`thumbnail`) is a Thumb without colour."""
    return thumb if isinstance(thumb, Thumb) else Thumb(np.ascontiguousarray(thumb, np.uint8))
