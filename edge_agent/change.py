"""Did the picture change meaningfully since the last classified frame? (pure, no I/O)

The change gate sends a frame to the billed API only when it differs from the
frame last classified (the *reference*). Both are reduced to a tiny greyscale
:func:`thumbnail` (longest side :data:`THUMB_SIDE`), and :class:`ChangeDetector`
counts the share of thumbnail pixels that differ:

1. **Downscale** (box averaging: 2x2 halvings, then ``INTER_AREA``): a thumbnail
   pixel averages ~100 frame pixels, which removes sensor noise (sigma 8 -> <1) and
   JPEG noise, and makes anything smaller than ~1/64 of the picture (a blinking
   LED) small; then a light 3x3 blur forgives sub-pixel shifts of sharp edges.
2. **Match the light globally**: the current thumbnail is modelled as
   ``gain * reference + offset`` (clipped to 0..255, as the camera clips), so a
   lighting change of any size between the reference and now (dusk, auto-exposure
   gain and offset, IR night mode dropping the colour) cancels out. The fit starts
   from the quartiles (robust to a change of up to ~25 % of the picture) and is
   refined by least squares on the pixels that did not change, so a large object
   does not bend the fit and hide itself.
3. **Per-pixel test**: a pixel differs when it is further from the prediction
   than :data:`PIXEL_THRESHOLD` times the (re-lit) reference's standard deviation,
   and never by less than :data:`MIN_PIXEL_DIFF` grey levels, so a near-uniform or
   dark picture does not turn its noise into "change" (like Frigate's contrast
   normalisation, the test is relative to the scene's own contrast).
   :meth:`ChangeDetector.share` is the share of the non-ignored pixels that differ;
   the picture *changed* when that share is at least ``change.threshold``.

Ignore boxes (``change.ignore``, e.g. a timestamp overlay) are ``x, y, w, h``
fractions of the whole frame; when the camera has a ``region`` (``x1, y1, x2, y2``
fractions: only that crop is classified, so only that crop is compared), they are
converted into the region's coordinates and clipped; a box outside it is
irrelevant. Ignored pixels count neither as changed nor in the total, nor in the
light fit.

Limits: the comparison is greyscale, so a change of colour alone (a red object
replaced by a green one of the same brightness) is not seen. A change of lighting
in part of the picture only (a lamp lighting one corner), and an exposure rise
that saturates more than ~10 % of the picture, do count as change. Digit changes
of a small timestamp average out in the thumbnail even without an ignore box.
"""

from __future__ import annotations

import cv2
import numpy as np

from .config import Box
from .encode import Region, Scratch, crop, target_size

THUMB_SIDE = 64
"""Longest side of a thumbnail, in pixels. 64x48 for a 4:3 frame (3072 pixels):
one thumbnail pixel is 1/3072 of the picture, fine enough for a 1 % threshold."""

PIXEL_THRESHOLD = 0.5
"""A pixel differs when it is further than this many standard deviations of the
picture from what the reference predicts (see the module docstring)."""

MIN_PIXEL_DIFF = 6.0
"""Grey levels: a pixel never differs by less, however flat or dark the picture."""

MAX_GAIN = 16.0
"""The largest lighting gain fitted (4 stops); below 0 the fit is taken as 0."""

FIT_ROUNDS = 1
"""Least-squares refits of the light after the quartile start (one was measured enough)."""

BLUR = (3, 3)


def thumbnail(image: np.ndarray, region: Region | None = None, scratch: Scratch | None = None) -> np.ndarray:
    """A tiny, lightly blurred greyscale thumbnail (uint8) of ``region`` of ``image``.

    ``image`` is BGR ``(H, W, 3)`` or greyscale ``(H, W)`` pixels of any size: a full
    frame, or one already reduced, e.g. a JPEG decoded at 1/8 size in greyscale
    with ``cv2.IMREAD_REDUCED_GRAYSCALE_8`` (libjpeg then averages 8x8 blocks, the
    same as this function's halvings do, so the two give nearly the same
    thumbnail). The longest side is at most :data:`THUMB_SIDE`, aspect kept, never
    upscaled. ``region`` is ``(x1, y1, x2, y2)`` as fractions of ``image``.
    ``scratch``: the capture thread's kept buffers for the big in-between images
    (the greyscale copy of a 1080p frame is 2 MB); the thumbnail itself is new.
    """
    if image.ndim == 3 and image.shape[2] == 3:
        # Crop (a view), then grey before the downscale: cheaper than after it.
        image = (scratch.grey(crop(image, region)) if scratch is not None
                 else cv2.cvtColor(crop(image, region), cv2.COLOR_BGR2GRAY))
    elif image.ndim == 2:
        image = crop(image, region)
    else:
        raise ValueError(f"expected BGR (H, W, 3) or greyscale (H, W) pixels, got shape {image.shape}")
    h, w = image.shape
    size = target_size(w, h, THUMB_SIDE)
    tw, th = size
    # Exact 2x2 box averages while at least 2x too big (bilinear at exactly half
    # size), then INTER_AREA: the same result as INTER_AREA all the way, for a
    # fraction of its cost (INTER_AREA 640x480 -> 64x48 alone costs ~0.15-0.2 ms).
    while w >= 2 * tw and h >= 2 * th:
        w, h = w // 2, h // 2
        image = (scratch.resize(image, (w, h)) if scratch is not None
                 else cv2.resize(image, (w, h), interpolation=cv2.INTER_LINEAR))
    if (w, h) != size:
        image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    return cv2.GaussianBlur(image, BLUR, 0)


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


class ChangeDetector:
    """Compares thumbnails against one reference thumbnail (the last classified frame).

    ``threshold`` is the share (0..1) of the non-ignored picture that must differ;
    ``ignore`` and ``region`` are as in the camera's config (``change.ignore``,
    ``region``). Thumbnails must come from :func:`thumbnail` with the same
    ``region``.
    """

    def __init__(self, threshold: float, ignore: tuple[Box, ...] = (), region: Region | None = None):
        if not 0 < threshold <= 1:
            raise ValueError(f"threshold must be in (0, 1], got {threshold}")
        self.threshold = threshold
        self.ignore = tuple(ignore)
        self.region = region
        self._masks: dict[tuple[int, int], tuple[np.ndarray, int]] = {}
        self._ref: np.ndarray | None = None  # the reference thumbnail (uint8)
        self._ref_f = self._ref_sq = np.empty(0, np.float32)  # as float32, and squared
        self._ref_std = 0.0
        self._ref_quartiles = np.zeros(3)

    @property
    def has_reference(self) -> bool:
        return self._ref is not None

    def set_reference(self, thumb: np.ndarray) -> None:
        """Compare later thumbnails with this one (call it when a frame is classified)."""
        keep, _ = self._mask(thumb.shape)
        self._ref = np.ascontiguousarray(thumb, np.uint8)
        self._ref_f = self._ref.astype(np.float32)
        self._ref_sq = cv2.multiply(self._ref_f, self._ref_f)
        self._ref_std = float(cv2.meanStdDev(self._ref, mask=keep)[1][0, 0])
        self._ref_quartiles = _quartiles(self._ref, keep)

    def reset(self) -> None:
        """Forget the reference: the next thumbnail counts as changed."""
        self._ref = None

    def share(self, thumb: np.ndarray) -> float:
        """Share (0..1) of the non-ignored thumbnail that differs from the reference;
        1.0 when there is no reference or the shapes differ; 0.0 when all is ignored."""
        ref = self._ref
        if ref is None or ref.shape != thumb.shape:
            return 1.0
        keep, count = self._mask(thumb.shape)
        if count == 0:
            return 0.0
        # Today's light: thumb ~ gain * ref + offset. Start from the quartiles (robust
        # to a change of up to ~25 % of the picture), then refit by least squares on
        # the pixels that did not change.
        (r1, r2, r3), (c1, c2, c3) = self._ref_quartiles, _quartiles(thumb, keep)
        gain = _clamp_gain((c3 - c1) / (r3 - r1) if r3 > r1 else 0.0)
        offset = c2 - gain * r2
        for round_ in range(FIT_ROUNDS + 1):
            # The reference as it would look in today's light; uint8 saturation
            # clips at 0 and 255 like the camera does.
            expected = cv2.addWeighted(ref, gain, ref, 0.0, offset)
            limit = max(PIXEL_THRESHOLD * gain * self._ref_std, MIN_PIXEL_DIFF)
            differs = cv2.absdiff(thumb, expected) > limit
            if keep is not None:
                differs &= keep.view(bool)
            if round_ == FIT_ROUNDS:
                break
            inliers = ~differs if keep is None else keep.view(bool) & ~differs
            if np.count_nonzero(inliers) < count // 4:
                break  # most of the picture changed: no better fit to be had
            gain, offset = self._fit(thumb, inliers.view(np.uint8))
        return int(np.count_nonzero(differs)) / count

    def changed(self, thumb: np.ndarray) -> bool:
        """Did the picture change enough since the reference to classify it again?"""
        return self.share(thumb) >= self.threshold

    def _fit(self, thumb: np.ndarray, inliers: np.ndarray) -> tuple[float, float]:
        """Least squares ``thumb ~ gain * ref + offset`` over the ``inliers`` mask."""
        cur = thumb.astype(np.float32)
        mr = cv2.mean(self._ref_f, inliers)[0]
        mc = cv2.mean(cur, inliers)[0]
        var = cv2.mean(self._ref_sq, inliers)[0] - mr * mr
        cov = cv2.mean(cv2.multiply(self._ref_f, cur), inliers)[0] - mr * mc
        gain = _clamp_gain(cov / var if var > 1e-6 else 0.0)
        return gain, mc - gain * mr

    def _mask(self, shape: tuple[int, ...]) -> tuple[np.ndarray | None, int]:
        """The compared pixels as a uint8 0/1 mask (None: all of them) and their
        count, cached per thumbnail shape."""
        key = (int(shape[0]), int(shape[1]))
        cached = self._masks.get(key)
        if cached is None:
            keep = ignore_mask(key, self.ignore, self.region)
            count = int(np.count_nonzero(keep))
            cached = self._masks[key] = (None if count == keep.size else keep.view(np.uint8), count)
        return cached


def _clamp_gain(gain: float) -> float:
    return min(MAX_GAIN, max(0.0, float(gain)))


def _quartiles(thumb: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    """25th, 50th and 75th percentile grey levels (from the histogram: fast)."""
    cum = cv2.calcHist([thumb], [0], mask, [256], [0, 256]).ravel().cumsum()
    return np.searchsorted(cum, cum[-1] * _QUARTERS).astype(np.float64)


_QUARTERS = np.array([0.25, 0.5, 0.75])
