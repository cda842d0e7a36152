"""Did the picture change meaningfully since the last classified frame? (pure, no I/O, clock passed in)

The change gate sends a frame to the billed API only when it differs from the
frame last classified (the *reference*). Both are reduced to a tiny
:func:`thumbnails` pair, brightness and colour (longest side :data:`THUMB_SIDE`),
and :class:`ChangeDetector` answers each look with a :class:`Verdict`:

1. **Downscale** (box averaging: 2x2 halvings of the BGR pixels, then
   ``INTER_AREA``, or bilinear for a last step of at most 1.5x), then split into luma (Y, the greyscale thumbnail) and chroma
   (Cr and Cb, 128 = no colour): a thumbnail pixel averages ~100 frame pixels,
   which removes sensor noise (sigma 8 -> <1) and JPEG noise, and makes anything
   smaller than ~1/64 of the picture (a blinking LED) small; then a light 3x3
   blur forgives sub-pixel shifts of sharp edges. A greyscale source (or a
   caller with only a grey image) gives luma alone, and is compared on luma alone.
2. **Match the light globally**, luma and chroma alike: the current luma is
   modelled as ``gain * reference + offset`` (clipped to 0..255, as the camera
   clips), each chroma channel as ``saturation * reference + tint * reference luma
   + shift`` (exposure scales chroma; a white-balance drift shifts all chroma
   together, in proportion to brightness; a colour fading out of the picture is a
   saturation going to 0). So a lighting change of any size between the
   reference and now (dusk, auto-exposure gain and offset, white-balance drift,
   IR night mode dropping the colour) cancels out *in this comparison*. The luma
   fit starts from the quartiles (robust to a change of up to ~25 % of the
   picture), the chroma fits from the means and spreads (cheaper; a change large
   enough to bend them is flagged all the same), and each is refined by least
   squares on the pixels that did not change, so a large object does not bend
   the fit and hide itself; a start that already explains every pixel is kept
   (the still picture's usual case: no refit). The saturation is never negative
   and the tint is bounded (:data:`MAX_TINT`), so no fit can turn red into green.
3. **Per-pixel test**: a pixel differs when its luma is further from the
   prediction than :data:`PIXEL_THRESHOLD` times the (re-lit) reference's standard
   deviation, and never by less than :data:`MIN_PIXEL_DIFF` grey levels (like
   Frigate's contrast normalisation, the test is relative to the scene's own
   contrast), *or* when either chroma channel is further from its prediction than
   :data:`PIXEL_THRESHOLD` times that channel's spread, and never by less than
   :data:`MIN_CHROMA_DIFF`. :meth:`ChangeDetector.share` is the share of the
   non-ignored pixels that differ; the picture *changed* (``Verdict.CHANGED``)
   when that share is at least ``change.threshold``. A red panel turning green
   at the same brightness differs in chroma by ~180 levels.
4. **A step of the whole picture's light** (``Verdict.STEP``). Step 2 cancels
   any global change, so lights switched on or off, the IR switch, a covered
   lens or a full-frame colour change would never fire on their own. The
   detector therefore keeps the *light* of each recent look (the mean and
   spread of luma, Cr and Cb over the compared pixels: :class:`Light`) with the
   time the caller passed in, and tells a step from a fade by time, never by
   look count: a step is a change of light of at least :data:`STEP_LEVELS`
   between a look ``b`` and a look ``a``, where ``a`` is the latest look at least
   :data:`HOLD_TIME` before this one and ``b`` the latest at least
   :data:`STEP_TIME` before ``a`` (the look before, when looks are further
   apart); the light had been steady before ``b`` (it moved by at most
   :data:`SETTLE_RATIO` of the step over the ``STEP_TIME`` before ``b``: a fade
   already under way is no step) and held after ``a`` (every look since ``a`` is
   within ``SETTLE_RATIO`` of the step from it, and the light moved at most
   twice that share of the step's own speed: a flash shorter than
   ``HOLD_TIME``, or a fade still going, which moves at its own speed, is no
   step, at any look rate). ``b`` is never older than the reference's look (the
   reference's look itself, when later), so a step just after a classified
   frame is measured from it, and once a step fired and a frame was classified
   (that frame becomes the reference) it does not fire again. Steadiness is
   asked of the looks since the light the reference was classified in is
   known: after a classified change, since the reference's look (someone walks
   in, a change, and switches the light on: a step); after a step, since its
   first look in the new light (the light held from there: the light switched
   on and off again a second later is two steps, and a fade after a step is
   asked its steadiness like any other); after a look that saw the same picture
   (a heartbeat, a confirmation), as before it (the same scene). A step found
   is reported at every look until a reference is set (a call the budget
   deferred is not lost). Its lag: the first look at least ``HOLD_TIME`` after
   the first look in the new light: 0.5-1.0 s after the light switched at
   ``fps: 2`` (the next look), 0.5-0.6 s at ``fps: 10``, 0.45-0.5 s at 30 or 60;
   two looks at lower rates (5-10 s when looking every 5 s). A fade of 20 s
   changes the light by ~4.5 levels a second, one of 60 % in 4 s (auto-exposure
   reacting to the sun) by ~20: neither looks steady-then-step-then-steady at
   any rate up to :data:`MAX_FPS`. At low rates the detector can only see what
   it samples: a camera looking every 5 s still tells a 20-s fade (four similar
   changes in a row) from a step; one looking every 10 s or less often takes a
   fade lasting at most about one look interval for a step (one call).

Ignore boxes (``change.ignore``, e.g. a timestamp overlay) are ``x, y, w, h``
fractions of the whole frame; when the camera has a ``region`` (``x1, y1, x2, y2``
fractions: only that crop is classified, so only that crop is compared), they are
converted into the region's coordinates and clipped; a box outside it is
irrelevant. Ignored pixels count neither as changed nor in the total, nor in the
light fit, nor in the light of a look.

Limits: a colour change smaller than :data:`MIN_CHROMA_DIFF` in Cr or Cb (a
subtle hue shift) is not seen, and a change of colour that is global (the whole
picture's tint, not one object's) is a lighting change: it fires only as a step,
and only when the light's distance reaches :data:`STEP_LEVELS` (the colour of a
weakly coloured picture going while its brightness stays exactly the same moves
it by ~13: not a step; the IR switch with its own illumination, ~30). A change of
lighting in part of the picture only (a lamp lighting one corner), an exposure
rise that saturates more than ~10 % of the picture (a bright flash), and a
white-balance jump that saturates a colour channel over ~5 % of it, do count as
change. Light that changes for ``HOLD_TIME`` or more (headlights lighting the
scene for a second) is a step, and its end another; for less (a flicker of a
few tenths of a second), none. A change of the whole picture's light completed
within ~1.3 s is a step, and, as ``b`` may lie up to a look interval more than
``STEP_TIME`` before ``a``, one completed within ~2 s may be at 3-5 looks a
second (a 60 % ramp over 2 s was, in some runs, at 3): ramps of 4 s and more
are quiet at every rate. A change classified in the last second of a fast fade
(a passer-by in the 4-s one), or anywhere in a fade by a camera looking every
5 s or less often, may make the rest of that fade a step: one call. Digit
changes of a small timestamp average out in the thumbnail even without an
ignore box.
"""

from __future__ import annotations

import bisect
import enum
import math
from collections import deque
from dataclasses import dataclass

import cv2
import numpy as np

from .config import Box
from .encode import Region, Scratch, crop, target_size

THUMB_SIDE = 64
"""Longest side of a thumbnail, in pixels. 64x48 for a 4:3 frame (3072 pixels):
one thumbnail pixel is 1/3072 of the picture, fine enough for a 1 % threshold."""

PIXEL_THRESHOLD = 0.5
"""A pixel differs when it is further than this many standard deviations of the
picture (of the channel: luma, Cr or Cb) from what the reference predicts."""

MIN_PIXEL_DIFF = 6.0
"""Grey levels: a pixel's luma never differs by less, however flat or dark the picture."""

MIN_CHROMA_DIFF = 16.0
"""Levels of Cr or Cb (0..255, 128 = grey): a pixel's colour never differs by less.
Sensor and JPEG noise are < 2 in a thumbnail; a 2-px shake moves a coloured edge's
pixel by a few; white balance moved by 20-25 % leaves residues up to ~15 where a
channel clips; red (255, 0, 0) to green (0, 128, 0) is 180 in Cr."""

MAX_GAIN = 16.0
"""The largest lighting gain fitted (4 stops), luma and chroma saturation; below 0 the fit is taken as 0."""

MAX_TINT = 0.5
"""The largest chroma shift per grey level of the reference's luma that the fit
explains as white balance (``tint``, either sign). A 20 % change of the red gain
is ~0.12."""

FIT_ROUNDS = 1
"""Least-squares refits of the light after the start (one was measured enough)."""

STEP_LEVELS = 16.0
"""How far the light must move to be a step: the Euclidean distance of two looks'
:class:`Light` (means and spreads of luma, Cr and Cb, in levels). Lights on or
off move it by ~100 (light x0.35 <-> x1), a covered lens by ~140, the IR switch
(colour gone, its illumination 1.2x) by ~30, a full-frame red -> green by ~175;
sensor and JPEG noise by < 0.1; a 20-s fade to 40 % by ~4.5 a second (measured on
tests/test_change.py's scene)."""

STEP_TIME = 1.0
"""Seconds: a step is the change of light within about this long (the look before
it is the latest at least this long before the first look in the new light)."""

HOLD_TIME = 0.45
"""Seconds the new light must hold after a step before it counts: the step is
reported at the first look at least this long after the first look in the new
light (the next look at ``fps: 2``, even one the rate gate took up to 20 ms early;
the fifth at ``fps: 10``). Light that changes for less is no step, at any look rate."""

SETTLE_RATIO = 1 / 3
"""Before a step the light moved by at most this share of the step (over
``STEP_TIME``); after it, over ``HOLD_TIME``, by at most this share too, and at
most twice this share of the step's own speed."""

MAX_FPS = 60
"""The fastest look rate the config allows (``cameras[].fps`` is bounded at 60 in
config.py, where the bound is a literal): what :data:`MAX_LOOKS` is sized for."""

MAX_LOOKS = math.ceil((HOLD_TIME + 2 * STEP_TIME) * MAX_FPS) + 8
"""Looks of light remembered (155): a step test reaches back from this look over
the hold, ``STEP_TIME`` to ``b`` and ``STEP_TIME`` before it, plus up to a look
interval each (2.5 s: 151 looks at ``MAX_FPS``), and a few looks to spare for
frames the rate gate takes early."""

BLUR = (3, 3)
_EPS = 1e-3  # seconds: a look this close to a bound of STEP_TIME or HOLD_TIME counts as at it


class Verdict(enum.Enum):
    """What one look found (:meth:`ChangeDetector.look`)."""

    SAME = "same"  # nothing worth a call: still, noise, or the light changing slowly
    CHANGED = "changed"  # part of the picture differs from the reference (or there is none yet)
    STEP = "step"  # the whole picture's light stepped within about a second and stayed

    @property
    def changed(self) -> bool:
        return self is not Verdict.SAME


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


@dataclass(frozen=True)
class Light:
    """The light of one look: mean and spread (standard deviation) of luma, Cr and
    Cb over the compared pixels, in levels (0..255)."""

    luma_mean: float
    luma_std: float
    chroma: tuple[float, float, float, float] | None = None  # Cr mean, Cr std, Cb mean, Cb std; None: no colour

    def distance(self, other: "Light") -> float:
        """How far the light moved between two looks, in levels (Euclidean; colour
        counts when both have it)."""
        d2 = (self.luma_mean - other.luma_mean) ** 2 + (self.luma_std - other.luma_std) ** 2
        if self.chroma is not None and other.chroma is not None:
            d2 += sum((a - b) ** 2 for a, b in zip(self.chroma, other.chroma))
        return math.sqrt(d2)


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


@dataclass(frozen=True)
class _RefChannel:
    """One channel of the reference (luma, Cr or Cb), prepared for fitting."""

    u8: np.ndarray  # the thumbnail channel
    f: np.ndarray  # as float32, flat
    mean: float  # over the compared pixels
    std: float  # likewise
    quartiles: np.ndarray  # 25th, 50th and 75th percentile levels

    @classmethod
    def of(cls, channel: np.ndarray, keep: np.ndarray | None) -> "_RefChannel":
        u8 = np.ascontiguousarray(channel, np.uint8)
        mean, std = cv2.meanStdDev(u8, mask=keep)
        return cls(u8, u8.astype(np.float32).ravel(), float(mean[0, 0]), float(std[0, 0]), _quartiles(u8, keep))


class ChangeDetector:
    """Compares thumbnails against one reference (the last classified frame), and
    remembers the light of recent looks to tell a step of light from a fade.

    ``threshold`` is the share (0..1) of the non-ignored picture that must differ;
    ``ignore`` and ``region`` are as in the camera's config (``change.ignore``,
    ``region``). Thumbnails must come from :func:`thumbnails` (or, luma alone, from
    :func:`thumbnail`) with the same ``region``. :meth:`look` is the gate's call
    (it keeps time: ``now`` is the caller's clock, monotonic seconds);
    :meth:`share` and :meth:`changed` compare one thumbnail with the reference and
    keep nothing.
    """

    def __init__(self, threshold: float, ignore: tuple[Box, ...] = (), region: Region | None = None):
        if not 0 < threshold <= 1:
            raise ValueError(f"threshold must be in (0, 1], got {threshold}")
        self.threshold = threshold
        self.ignore = tuple(ignore)
        self.region = region
        self._masks: dict[tuple[int, int], tuple[np.ndarray | None, int]] = {}
        self._ref: Thumb | None = None
        self._ref_y: _RefChannel | None = None
        self._ref_sq = np.empty(0, np.float32)  # the reference luma squared (float32, 2-D)
        self._ref_yf = np.empty(0, np.float32)  # the reference luma as float32 (2-D)
        self._ref_chroma: tuple[_RefChannel, _RefChannel] | None = None
        self._fit_rows = np.empty((6, 0), np.float32)  # the chroma fit's rows (see _chroma_fit)
        self._ref_at = -math.inf  # the clock at the reference's look
        self._settled_at = -math.inf  # since when its light was steady (see set_reference)
        self._ref_stepped = False  # the reference was classified for a step
        self._step_from = -math.inf  # the first look in the new light of the step found
        self._same_at: float | None = None  # the clock at the latest look, when it saw the same picture
        # The light of recent looks (look), oldest first, and when they were.
        self._times: deque[float] = deque(maxlen=MAX_LOOKS)
        self._lights: deque[Light] = deque(maxlen=MAX_LOOKS)
        self._stepped = False  # a step was found and no frame has been classified since

    @property
    def has_reference(self) -> bool:
        return self._ref is not None

    def set_reference(self, thumb: Thumb | np.ndarray, now: float | None = None) -> None:
        """Compare later thumbnails with this one (call it when a frame is classified).
        ``now``: the clock at its look (default: the latest look's)."""
        thumb = _as_thumb(thumb)
        keep, _ = self._mask(thumb.grey.shape)
        self._ref = thumb
        self._ref_y = _RefChannel.of(thumb.grey, keep)
        self._ref_yf = self._ref_y.f.reshape(thumb.grey.shape)
        self._ref_sq = cv2.multiply(self._ref_yf, self._ref_yf)
        self._ref_chroma = ((_RefChannel.of(thumb.cr, keep), _RefChannel.of(thumb.cb, keep))
                            if thumb.cr is not None and thumb.cb is not None else None)
        if self._ref_chroma is not None:
            cr_ref, cb_ref = self._ref_chroma
            self._fit_rows = np.vstack([cr_ref.f - 128, cb_ref.f - 128, self._ref_y.f - 128,
                                        np.ones_like(cr_ref.f), np.empty((2, cr_ref.f.size), np.float32)])
        self._ref_at = now if now is not None else (self._times[-1] if self._times else -math.inf)
        # Since when the light the reference is classified in is known: after a step
        # found, that step's first look in the new light (the light held from there
        # to the reference's look); after a look that saw the same picture (a
        # heartbeat, a confirmation), as before (the same scene, its history still
        # good); else (a change, the first look, a frame not looked at) its own look.
        if self._stepped:
            self._settled_at, self._ref_stepped = min(self._step_from, self._ref_at), True
        elif not (self._same_at is not None and self._times and self._same_at == self._times[-1] == self._ref_at):
            self._settled_at, self._ref_stepped = self._ref_at, False
        self._stepped = False

    def reset(self) -> None:
        """Forget the reference: the next thumbnail counts as changed."""
        self._ref = None
        self._stepped = False
        self._same_at = None

    # -- the gate ---------------------------------------------------------------------

    def look(self, thumb: Thumb | np.ndarray, now: float) -> Verdict:
        """One look of the gate at ``now`` (the caller's monotonic clock, seconds):
        did the picture change since the reference, or the whole picture's light step?"""
        thumb = _as_thumb(thumb)
        keep, _ = self._mask(thumb.grey.shape)
        light = _light(thumb, keep)
        self._remember(now, light)
        self._same_at = None
        if self._share(thumb, light) >= self.threshold:
            return Verdict.CHANGED
        if self._stepped or self._stepped_now():
            self._stepped = True
            return Verdict.STEP
        self._same_at = now
        return Verdict.SAME

    def light(self) -> Light | None:
        """The light of the latest look (None before the first)."""
        return self._lights[-1] if self._lights else None

    def _remember(self, now: float, light: Light) -> None:
        if self._times and now < self._times[-1]:
            self._times.clear()  # the clock went back (a caller's new clock): start again
            self._lights.clear()
            self._ref_at = self._settled_at = self._step_from = -math.inf  # times of the old clock
        self._times.append(now)
        self._lights.append(light)

    def _stepped_now(self) -> bool:
        """Did the light step between a look ``b`` and a look ``a``, after being steady
        before ``b``, and hold from ``a`` to this look, at least HOLD_TIME later?"""
        times, lights = self._times, self._lights
        n = len(times)
        if n < 3:
            return False
        t_now = times[-1]
        # a: the latest look at least HOLD_TIME before this one (the first look in the
        # new light, at the first look that is that long after it).
        ia = bisect.bisect_right(times, t_now - HOLD_TIME + _EPS, 0, n - 1) - 1
        if ia < 1:
            return False
        t_a, a = times[ia], lights[ia]
        # b: the latest look at least STEP_TIME before a, but never one before the
        # reference's look (that light was classified already).
        since_ref = bisect.bisect_left(times, self._ref_at)
        ib = max(bisect.bisect_right(times, t_a - STEP_TIME + _EPS, 0, ia) - 1, since_ref)
        if ib >= ia:
            return False  # no look before a since the reference
        b = lights[ib]
        step = b.distance(a)
        if step < STEP_LEVELS:
            return False
        # Holds after a, over HOLD_TIME or more: every look since a within a third of
        # the step, and (whatever the spacing of the looks) at less than two thirds
        # of the step's speed. A flash shorter than HOLD_TIME, or a fade still going
        # (it moves at its own speed), is no step, at any look rate.
        held = SETTLE_RATIO * step * min(1.0, 2 * (t_now - t_a) / (t_a - times[ib]))
        if any(lights[i].distance(a) > held for i in range(ia + 1, n)):
            return False
        # Steady before b, over STEP_TIME: asked of the looks since the light the
        # reference was classified in settled (the reference's look, after a change:
        # the light the reference was classified in is the one to compare with,
        # however it came; the first look in the new light, after a step). Before a
        # classified change (or the first look) no history is steady; after a step
        # there is always some: its own hold.
        floor = bisect.bisect_left(times, self._settled_at)
        before = bisect.bisect_right(times, times[ib] - STEP_TIME + _EPS, 0, ib) - 1
        if before < floor:
            if floor >= ib:
                return not self._ref_stepped
            before = floor
        if lights[before].distance(b) > SETTLE_RATIO * step:
            return False  # a fade already under way
        self._step_from = t_a
        return True

    # -- one comparison ---------------------------------------------------------------

    def share(self, thumb: Thumb | np.ndarray) -> float:
        """Share (0..1) of the non-ignored thumbnail that differs from the reference,
        in luma or in colour; 1.0 when there is no reference or the shapes differ;
        0.0 when all is ignored. Colour is compared when both have it."""
        return self._share(_as_thumb(thumb), None)

    def _share(self, thumb: Thumb, light: Light | None) -> float:
        """:meth:`share`, given the look's light when it is known already."""
        ref = self._ref
        if ref is None or ref.grey.shape != thumb.grey.shape:
            return 1.0
        keep, count = self._mask(thumb.grey.shape)
        if count == 0:
            return 0.0
        differs, gain = self._luma_differs(thumb.grey, keep, count)
        if self._ref_chroma is not None and thumb.cr is not None and thumb.cb is not None:
            if light is None:
                light = _light(thumb, keep)
            assert light.chroma is not None
            differs |= self._chroma_differs(thumb.cr, thumb.cb, light.chroma, differs, gain, keep, count)
        return int(np.count_nonzero(differs)) / count

    def changed(self, thumb: Thumb | np.ndarray) -> bool:
        """Does the picture differ enough from the reference to classify it again?
        (One comparison; :meth:`look` also sees steps of the light.)"""
        return self.share(thumb) >= self.threshold

    def _luma_differs(self, thumb: np.ndarray, keep: np.ndarray | None, count: int) -> tuple[np.ndarray, float]:
        """The pixels whose luma differs from the re-lit reference (bool, ignored ones
        False), and the gain fitted."""
        ref = self._ref_y
        assert ref is not None
        # Today's light: thumb ~ gain * ref + offset. Start from the quartiles (robust
        # to a change of up to ~25 % of the picture), then refit by least squares on
        # the pixels that did not change.
        (r1, r2, r3), (c1, c2, c3) = ref.quartiles, _quartiles(thumb, keep)
        gain = _clamp((c3 - c1) / (r3 - r1) if r3 > r1 else 0.0, 0.0, MAX_GAIN)
        offset = c2 - gain * r2
        for round_ in range(FIT_ROUNDS + 1):
            # The reference as it would look in today's light; uint8 saturation
            # clips at 0 and 255 like the camera does.
            expected = cv2.addWeighted(ref.u8, gain, ref.u8, 0.0, offset)
            limit = max(PIXEL_THRESHOLD * gain * ref.std, MIN_PIXEL_DIFF)
            differs = cv2.absdiff(thumb, expected) > limit
            if keep is not None:
                differs &= keep.view(bool)
            if round_ == FIT_ROUNDS or not differs.any():
                break  # (the start explains every pixel: the still picture's usual case)
            inliers = ~differs if keep is None else keep.view(bool) & ~differs
            if np.count_nonzero(inliers) < count // 4:
                break  # most of the picture changed: no better fit to be had
            gain, offset = self._luma_fit(thumb, inliers.view(np.uint8))
        return differs, gain

    def _luma_fit(self, thumb: np.ndarray, inliers: np.ndarray) -> tuple[float, float]:
        """Least squares ``thumb ~ gain * ref + offset`` over the ``inliers`` mask."""
        cur = thumb.astype(np.float32)
        mr = cv2.mean(self._ref_yf, inliers)[0]
        mc = cv2.mean(cur, inliers)[0]
        var = cv2.mean(self._ref_sq, inliers)[0] - mr * mr
        cov = cv2.mean(cv2.multiply(self._ref_yf, cur), inliers)[0] - mr * mc
        gain = _clamp(cov / var if var > 1e-6 else 0.0, 0.0, MAX_GAIN)
        return gain, mc - gain * mr

    def _chroma_differs(self, cr: np.ndarray, cb: np.ndarray, stats: tuple[float, float, float, float],
                        luma_differs: np.ndarray, gain: float, keep: np.ndarray | None, count: int) -> np.ndarray:
        """The pixels whose colour differs from the reference's in today's light (bool,
        ignored ones False). Each channel: ``saturation * ref + tint * ref luma + shift``,
        from the means and spreads (``stats``: the look's Cr mean, Cr std, Cb mean,
        Cb std; tint 0), then least squares on the pixels that changed in neither luma
        nor colour. (A start from the quartiles, as for luma, cost 25-35 us more a
        look and decided no test case differently: a change large enough to bend
        this start is flagged by it, and the refit puts a smaller bend right.)"""
        assert self._ref_chroma is not None and self._ref_y is not None
        channels = tuple(zip(self._ref_chroma, (cr, cb)))
        fits = [_chroma_start(ref, mean, std, gain)
                for ref, mean, std in zip(self._ref_chroma, stats[0::2], stats[1::2])]
        for round_ in range(FIT_ROUNDS + 1):
            differs = None
            for (ref, cur), (sat, tint, shift) in zip(channels, fits):
                expected = cv2.addWeighted(ref.u8, sat, self._ref_y.u8, tint, shift)
                limit = max(PIXEL_THRESHOLD * sat * ref.std, MIN_CHROMA_DIFF)
                d = cv2.absdiff(cur, expected) > limit
                differs = d if differs is None else differs | d
            assert differs is not None
            if keep is not None:
                differs &= keep.view(bool)
            if round_ == FIT_ROUNDS or not differs.any():
                break  # (the start explains every pixel's colour: the still picture's usual case)
            inliers = ~(differs | luma_differs)
            if keep is not None:
                inliers &= keep.view(bool)
            if np.count_nonzero(inliers) < max(1, count // 4):
                break  # most of the picture changed: no better fit to be had
            fits = self._chroma_fit(cr, cb, inliers, fits)
        return differs

    def _chroma_fit(self, cr: np.ndarray, cb: np.ndarray, inliers: np.ndarray,
                    starts: list[tuple[float, float, float]]) -> list[tuple[float, float, float]]:
        """Least squares, each chroma channel ``~ sat * ref + tint * ref luma + shift``
        over the ``inliers`` (bool), from one weighted product of all the sums
        (a boolean selection of the pixels costs more than the whole fit)."""
        rows = self._fit_rows  # ref Cr, ref Cb, ref luma, 1, Cr, Cb; all but the ones less 128
        np.subtract(cr.ravel(), 128.0, out=rows[4])
        np.subtract(cb.ravel(), 128.0, out=rows[5])
        weights = inliers.ravel().view(np.uint8).astype(np.float32)
        g = ((rows * weights) @ rows.T).tolist()
        n = g[3][3]
        mean = [g[i][3] / n for i in range(6)]

        def cov(i: int, j: int) -> float:
            return g[i][j] / n - mean[i] * mean[j]

        return [_solve(cov(u, u), cov(2, 2), cov(u, 2), cov(u, v), cov(2, v),
                       mean[u] + 128, mean[2] + 128, mean[v] + 128, start)
                for (u, v), start in zip(((0, 4), (1, 5)), starts)]

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


def _as_thumb(thumb: Thumb | np.ndarray) -> Thumb:
    """A bare greyscale thumbnail (:func:`thumbnail`) is a Thumb without colour."""
    return thumb if isinstance(thumb, Thumb) else Thumb(np.ascontiguousarray(thumb, np.uint8))


def _light(thumb: Thumb, keep: np.ndarray | None) -> Light:
    mean, std = cv2.meanStdDev(thumb.grey, mask=keep)
    if thumb.cr is None or thumb.cb is None:
        return Light(float(mean[0, 0]), float(std[0, 0]))
    cr_mean, cr_std = cv2.meanStdDev(thumb.cr, mask=keep)
    cb_mean, cb_std = cv2.meanStdDev(thumb.cb, mask=keep)
    return Light(float(mean[0, 0]), float(std[0, 0]),
                 (float(cr_mean[0, 0]), float(cr_std[0, 0]), float(cb_mean[0, 0]), float(cb_std[0, 0])))


_MIN_STD = 1.0  # levels: a reference channel flatter than this has no shape to fit a saturation to
_MIN_VAR = 0.25  # levels squared: a channel this flat among the inliers fits no slope


def _chroma_start(ref: _RefChannel, mean: float, std: float, gain: float) -> tuple[float, float, float]:
    """(saturation, tint, shift) from the means and spreads; a colourless reference
    takes the luma's gain (exposure scales colour as it scales brightness)."""
    sat = _clamp(std / ref.std if ref.std >= _MIN_STD else gain, 0.0, MAX_GAIN)
    return sat, 0.0, mean - sat * ref.mean


def _solve(suu: float, syy: float, suy: float, suv: float, syv: float, mu: float, my: float, mv: float,
           start: tuple[float, float, float]) -> tuple[float, float, float]:
    """``v ~ sat * u + tint * y + shift`` from the (per-pixel) covariances and means of
    u (the reference chroma), y (its luma) and v (today's chroma), with sat >= 0 and
    |tint| <= MAX_TINT; a channel with no spread keeps the start's saturation."""
    has_u, has_y = suu >= _MIN_VAR, syy >= _MIN_VAR
    sat, tint = start[0], 0.0
    det = suu * syy - suy * suy
    if has_u and has_y and det > 1e-6 * suu * syy:
        sat, tint = (suv * syy - syv * suy) / det, (syv * suu - suv * suy) / det
        if not 0.0 <= sat <= MAX_GAIN:  # refit the tint with the saturation held at its bound
            sat = _clamp(sat, 0.0, MAX_GAIN)
            tint = (syv - sat * suy) / syy
        elif abs(tint) > MAX_TINT:  # and the other way round
            tint = _clamp(tint, -MAX_TINT, MAX_TINT)
            sat = _clamp((suv - tint * suy) / suu, 0.0, MAX_GAIN)
    elif has_u:
        sat = _clamp(suv / suu, 0.0, MAX_GAIN)
    elif has_y:
        tint = (syv - sat * suy) / syy
    tint = _clamp(tint, -MAX_TINT, MAX_TINT)
    return sat, tint, mv - sat * mu - tint * my


def _clamp(value: float, lo: float, hi: float) -> float:
    return min(hi, max(lo, float(value)))


def _quartiles(thumb: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    """25th, 50th and 75th percentile levels (from the histogram: fast)."""
    cum = cv2.calcHist([thumb], [0], mask, [256], [0, 256]).ravel().cumsum()
    return np.searchsorted(cum, cum[-1] * _QUARTERS).astype(np.float64)


_QUARTERS = np.array([0.25, 0.5, 0.75])
