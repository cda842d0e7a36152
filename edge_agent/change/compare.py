"""One comparison of the change gate: which thumbnail pixels differ from the
reference's, in today's light (pure, no I/O).

The reference is the thumbnail of the frame last classified (:class:`Reference`);
the detector (``detector.py``) asks it, at each look, which pixels of the look's
thumbnail differ, in two steps:

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
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from .thumbs import Thumb

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


class Reference:
    """The reference thumbnail, prepared once for the fits of every later look: its
    luma and chroma channels (:class:`_RefChannel`), and the fits' fixed terms."""

    def __init__(self, thumb: Thumb, keep: np.ndarray | None):
        """``keep``: the compared pixels (a uint8 0/1 mask; None: all of them)."""
        self.thumb = thumb
        self.y = _RefChannel.of(thumb.grey, keep)
        self.yf = self.y.f.reshape(thumb.grey.shape)  # the reference luma as float32 (2-D)
        self.sq = cv2.multiply(self.yf, self.yf)  # the reference luma squared (float32, 2-D)
        self.chroma = ((_RefChannel.of(thumb.cr, keep), _RefChannel.of(thumb.cb, keep))
                       if thumb.cr is not None and thumb.cb is not None else None)
        self.fit_rows = np.empty((6, 0), np.float32)  # the chroma fit's rows (see _chroma_fit)
        if self.chroma is not None:
            cr_ref, cb_ref = self.chroma
            self.fit_rows = np.vstack([cr_ref.f - 128, cb_ref.f - 128, self.y.f - 128,
                                       np.ones_like(cr_ref.f), np.empty((2, cr_ref.f.size), np.float32)])

    def luma_differs(self, thumb: np.ndarray, keep: np.ndarray | None, count: int) -> tuple[np.ndarray, float]:
        """The pixels whose luma differs from the re-lit reference (bool, ignored ones
        False), and the gain fitted."""
        ref = self.y
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
        mr = cv2.mean(self.yf, inliers)[0]
        mc = cv2.mean(cur, inliers)[0]
        var = cv2.mean(self.sq, inliers)[0] - mr * mr
        cov = cv2.mean(cv2.multiply(self.yf, cur), inliers)[0] - mr * mc
        gain = _clamp(cov / var if var > 1e-6 else 0.0, 0.0, MAX_GAIN)
        return gain, mc - gain * mr

    def chroma_differs(self, cr: np.ndarray, cb: np.ndarray, stats: tuple[float, float, float, float],
                       luma_differs: np.ndarray, gain: float, keep: np.ndarray | None, count: int) -> np.ndarray:
        """The pixels whose colour differs from the reference's in today's light (bool,
        ignored ones False). Each channel: ``saturation * ref + tint * ref luma + shift``,
        from the means and spreads (``stats``: the look's Cr mean, Cr std, Cb mean,
        Cb std; tint 0), then least squares on the pixels that changed in neither luma
        nor colour. (A start from the quartiles, as for luma, cost 25-35 us more a
        look and decided no test case differently: a change large enough to bend
        this start is flagged by it, and the refit puts a smaller bend right.)"""
        assert self.chroma is not None
        channels = tuple(zip(self.chroma, (cr, cb)))
        fits = [_chroma_start(ref, mean, std, gain)
                for ref, mean, std in zip(self.chroma, stats[0::2], stats[1::2])]
        for round_ in range(FIT_ROUNDS + 1):
            differs = None
            for (ref, cur), (sat, tint, shift) in zip(channels, fits):
                expected = cv2.addWeighted(ref.u8, sat, self.y.u8, tint, shift)
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
        rows = self.fit_rows  # ref Cr, ref Cb, ref luma, 1, Cr, Cb; all but the ones less 128
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
