"""The change gate's detector: a :class:`Verdict` for each look (pure, no I/O,
clock passed in).

:class:`ChangeDetector` holds the reference (``compare.Reference``) and compares
each look's thumbnail with it (steps 2 and 3, ``compare.py``), and remembers the
light of recent looks for step 4:

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
"""

from __future__ import annotations

import bisect
import enum
import math
from collections import deque
from dataclasses import dataclass

import cv2
import numpy as np

from ..config import Box
from ..encode import Region
from .compare import Reference
from .thumbs import Thumb, as_thumb, ignore_mask

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
config/model.py, where the bound is a literal): what :data:`MAX_LOOKS` is sized for."""

MAX_LOOKS = math.ceil((HOLD_TIME + 2 * STEP_TIME) * MAX_FPS) + 8
"""Looks of light remembered (155): a step test reaches back from this look over
the hold, ``STEP_TIME`` to ``b`` and ``STEP_TIME`` before it, plus up to a look
interval each (2.5 s: 151 looks at ``MAX_FPS``), and a few looks to spare for
frames the rate gate takes early."""

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
        self._ref: Reference | None = None
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
        thumb = as_thumb(thumb)
        keep, _ = self._mask(thumb.grey.shape)
        self._ref = Reference(thumb, keep)
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
        thumb = as_thumb(thumb)
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
        return self._share(as_thumb(thumb), None)

    def _share(self, thumb: Thumb, light: Light | None) -> float:
        """:meth:`share`, given the look's light when it is known already."""
        ref = self._ref
        if ref is None or ref.thumb.grey.shape != thumb.grey.shape:
            return 1.0
        keep, count = self._mask(thumb.grey.shape)
        if count == 0:
            return 0.0
        differs, gain = ref.luma_differs(thumb.grey, keep, count)
        if ref.chroma is not None and thumb.cr is not None and thumb.cb is not None:
            if light is None:
                light = _light(thumb, keep)
            assert light.chroma is not None
            differs |= ref.chroma_differs(thumb.cr, thumb.cb, light.chroma, differs, gain, keep, count)
        return int(np.count_nonzero(differs)) / count

    def changed(self, thumb: Thumb | np.ndarray) -> bool:
        """Does the picture differ enough from the reference to classify it again?
        (One comparison; :meth:`look` also sees steps of the light.)"""
        return self.share(thumb) >= self.threshold

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


def _light(thumb: Thumb, keep: np.ndarray | None) -> Light:
    mean, std = cv2.meanStdDev(thumb.grey, mask=keep)
    if thumb.cr is None or thumb.cb is None:
        return Light(float(mean[0, 0]), float(std[0, 0]))
    cr_mean, cr_std = cv2.meanStdDev(thumb.cr, mask=keep)
    cb_mean, cb_std = cv2.meanStdDev(thumb.cb, mask=keep)
    return Light(float(mean[0, 0]), float(std[0, 0]),
                 (float(cr_mean[0, 0]), float(cr_std[0, 0]), float(cb_mean[0, 0]), float(cb_std[0, 0])))
