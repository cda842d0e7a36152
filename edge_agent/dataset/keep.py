"""From a sample to an item of the upload queue (blocking: run it on the dataset's
thread): the frame's fingerprint, the limits, its picture, what is sent with it.

Design rule: the cheap checks come first, so a frame the limits refuse is never
encoded: the fingerprint (from the small preview), then the limits taken, then
the picture (decode, mask, resize, encode), then the limits written, then the
item. A :class:`Shot` turns its frame as captured into the picture once and then
lets the frame go; a candidate the sampler holds is settled that way as soon as
it is held, so what waits for a verdict is a JPEG of ~0.2 MB, not a frame of up
to 6 MB (when the limits would refuse it anyway, its frame is let go instead:
nothing is encoded for a frame that cannot be saved).
"""

from __future__ import annotations

import logging
import threading
from typing import Callable, Mapping

import numpy as np

from ..captured import Original
from ..config import Config
from ..config.model import CameraConfig
from ..storage.uploaddb import LabelSource, UploadItem
from .describe import describe
from .limits import Admit, Fingerprint, Limits
from .picture import picture
from .sampling import Reason, Sample
from ..collection_view import Outcome

log = logging.getLogger(__name__)


class Shot:
    """A classified frame as a sample needs it. Thread safe: the loop makes it, the
    dataset's thread settles it."""

    def __init__(self, camera: str, captured_at: float, preview: np.ndarray, original: Original | None):
        self.camera = camera
        self.captured_at = captured_at
        self._preview: np.ndarray | None = preview  # the whole frame, small: its fingerprint
        self._original = original  # None: the capture kept none
        self._print: Fingerprint | None = None
        self._jpeg: bytes | None = None
        self._lock = threading.Lock()

    def fingerprint(self, cam: CameraConfig) -> Fingerprint | None:
        with self._lock:
            if self._print is None and self._preview is not None:
                self._print = Fingerprint.of_image(self._preview, cam.region)
                self._preview = None
            return self._print

    def jpeg(self, cam: CameraConfig, max_size: int) -> bytes | None:
        """The upload picture (made once); None when no frame was kept or it does not decode."""
        with self._lock:
            if self._jpeg is None and self._original is not None:
                try:
                    self._jpeg = picture(self._original, max_size=max_size, mask=cam.sampling.mask)
                except ValueError:
                    log.warning("%s: a frame saved for training did not decode; dropped", self.camera)
                self._original = None
            return self._jpeg

    def release(self) -> None:
        """Let the frame go unused (it will not be saved: :meth:`jpeg` gives None)."""
        with self._lock:
            self._original = self._preview = None

    def settle(self, cam: CameraConfig, max_size: int) -> None:
        """Fingerprint and picture now, the frame let go (a held candidate)."""
        self.fingerprint(cam)
        self.jpeg(cam, max_size)


class Keeper:
    """The policy, one sample at a time: ``prepare`` gives the item to queue, or the
    Outcome that ends the sample here."""

    def __init__(self, cfg: Config, cams: Mapping[str, CameraConfig], limits: Limits, clock: Callable[[], float]):
        self.cfg = cfg
        self.cams = cams
        self.limits = limits
        self.clock = clock

    def prepare(self, sample: Sample[Shot]) -> UploadItem | Outcome:
        shot = sample.item
        cam = self.cams[shot.camera]
        fingerprint = shot.fingerprint(cam)
        verdict = self._take(sample, fingerprint)
        if verdict is not None:
            return verdict
        jpeg = shot.jpeg(cam, self.cfg.dataset.max_size)
        if jpeg is None:
            return Outcome.DROPPED
        self.limits.save()  # before the frame is queued: a crash over-counts, never passes a limit
        return self.item(sample, jpeg)

    def _take(self, sample: Sample[Shot], fingerprint: Fingerprint | None) -> Outcome | None:
        """Count the sample against the limits; the Outcome that refuses it, or None."""
        camera, now, label = sample.item.camera, self.clock(), sample.label
        if sample.reason is Reason.ON_DEMAND:  # a person asked: counted, refused only as the same again
            if self.limits.check(camera, now, reason=sample.reason, cls=label,
                                 fingerprint=fingerprint) is Admit.DUPLICATE:
                return Outcome.SIMILAR
            self.limits.taken(camera, now, reason=sample.reason, cls=label, fingerprint=fingerprint)
            return None
        admit = self.limits.take(camera, now, reason=sample.reason, cls=label, fingerprint=fingerprint)
        if admit is Admit.DUPLICATE:
            return Outcome.SIMILAR
        return None if admit is Admit.OK else Outcome.LIMITED

    def item(self, sample: Sample[Shot], jpeg: bytes) -> UploadItem:
        shot, reason = sample.item, str(sample.reason)
        d = describe(self.cfg, camera=shot.camera, reason=reason, captured_at=shot.captured_at,
                     batch_at=shot.captured_at, facts=sample.facts, reasons=[str(r) for r in sample.reasons],
                     label=None if sample.guess else sample.label, model=self.cams[shot.camera].model)
        return UploadItem(camera=shot.camera, reason=reason, jpeg=jpeg, captured_at=shot.captured_at,
                          batch=d.batch, label=sample.label,
                          label_source=LabelSource.MODEL if sample.guess else LabelSource.PERSON,
                          metadata=d.metadata, tags=d.tags)
