"""Did the picture change meaningfully since the last classified frame? (pure, no I/O, clock passed in)

The change gate sends a frame to the billed API only when it differs from the
frame last classified (the *reference*). Both are reduced to a tiny
:func:`thumbnails` pair, brightness and colour (longest side :data:`THUMB_SIDE`),
and :class:`ChangeDetector` answers each look with a :class:`Verdict`, in four
steps, one module a concern, as a look flows:

* ``thumbs.py``    the picture side: a frame to a :class:`Thumb` (step 1), and
  the ignore boxes;
* ``compare.py``   one thumbnail against the reference, in today's light
  (steps 2 and 3);
* ``detector.py``  :class:`ChangeDetector`: the verdict of each look, and steps
  of the whole picture's light (step 4).

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

from .compare import FIT_ROUNDS, MAX_GAIN, MAX_TINT, MIN_CHROMA_DIFF, MIN_PIXEL_DIFF, PIXEL_THRESHOLD
from .detector import (HOLD_TIME, MAX_FPS, MAX_LOOKS, SETTLE_RATIO, STEP_LEVELS, STEP_TIME, ChangeDetector, Light,
                       Verdict)
from .thumbs import BLUR, THUMB_SIDE, Thumb, ignore_mask, thumbnail, thumbnails

__all__ = ["BLUR", "FIT_ROUNDS", "HOLD_TIME", "MAX_FPS", "MAX_GAIN", "MAX_LOOKS", "MAX_TINT", "MIN_CHROMA_DIFF",
           "MIN_PIXEL_DIFF", "PIXEL_THRESHOLD", "SETTLE_RATIO", "STEP_LEVELS", "STEP_TIME", "THUMB_SIDE",
           "ChangeDetector", "Light", "Thumb", "Verdict", "ignore_mask", "thumbnail", "thumbnails"]
