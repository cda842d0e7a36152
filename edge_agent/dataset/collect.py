"""Collecting training data: which results are saved, within which limits, into the
durable queue the uploader sends from (``dataset.enabled``; off by default).

Design rule: the loop only decides; nothing slow runs on it. Each result is seen
by its camera's :class:`~.sampling.Sampler` (pure, microseconds) in the pipeline's
:class:`SampleStage`; a sample goes to one keeper task, which, in order, on the
dataset's own thread: takes the limits (near-duplicates skipped), encodes the
picture (:func:`.picture.picture`: only now, and only for a sample), writes the
limits, and then puts the frame in the queue (``storage/uploads.py``: on disk
when the put returns). So a crash can over-count a limit, never pass one, and a
frame counted as queued is never lost. Nothing outside is trusted: an on-demand
label is bounded by the control parser; what waits for the keeper is bounded
(:data:`MAX_WAITING`; beyond, a sample is dropped, counted, logged once).

A candidate ``overruled`` sample waits in its sampler (at most
:data:`MAX_HELD` per camera) holding the frame as captured (``captured.Original``:
a reference, or the region's copy when the source reuses its buffer).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections import Counter, deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Mapping

import aiohttp
import numpy as np

from ..config import Config
from ..config.model import CameraConfig
from ..episode import Episode
from ..storage.files import JsonFile
from ..storage.uploaddb import LabelSource, UploadItem
from ..storage.uploads import UploadLog
from .describe import describe
from .limits import Admit, Fingerprint, Limits
from ..captured import Original
from .picture import picture
from .sampling import Facts, Reason, Sample, Sampler, SamplingRules, facts_of, requested
from .status import DatasetStatus, Outcome
from .upload import UploadClient
from .uploader import Uploader

if TYPE_CHECKING:
    from ..pipeline.result import Result

log = logging.getLogger(__name__)

MAX_HELD = 8  # overruled candidates a camera's sampler holds (each with its frame as captured)
MAX_WAITING = 32  # samples waiting for the keeper; beyond, dropped (the keeper is stuck on the disk)
SAVED_KEPT = 200  # per camera: capture times of saved frames (the page's "saved for training" mark)
CLOSE_GRACE = 1.0  # s the keeper gets at the stop for the samples still waiting
UPLOAD_GRACE = 1.0  # s the upload under way gets at the stop
LIMITS_FILE = "dataset_limits.json"
QUEUE_FILE = "uploads.db"


@dataclass(frozen=True)
class Shot:
    """What a sample keeps of a result: not the Result (it holds the camera)."""

    camera: str
    captured_at: float
    preview: np.ndarray  # the whole frame, small: its fingerprint
    original: Original | None  # the frame as captured (None: the capture kept none)


class Collection:
    """The agent's collection: samplers, limits, the queue and the uploader."""

    def __init__(self, cfg: Config, state_dir: Path | None, *, rng: random.Random | None = None,
                 clock: Callable[[], float] = time.time):
        d = cfg.dataset
        self.cfg = cfg
        self._clock = clock
        self._cams: dict[str, CameraConfig] = {c.name: c for c in cfg.cameras if c.sampling.enabled}
        rng = rng if rng is not None else random.Random()
        self.samplers: dict[str, Sampler[Shot]] = {
            c.name: Sampler(SamplingRules(below=c.sampling.below, margin=c.sampling.margin,
                                          overruled=c.sampling.overruled, change=c.sampling.change,
                                          random=c.sampling.random),
                            window=c.decide.window, confirm=c.decide.confirm, rng=rng, max_held=MAX_HELD)
            for c in self._cams.values()}
        self.limits = Limits(d.per_hour, d.per_day, total_per_hour=d.total_per_hour,
                             total_per_day=d.total_per_day,
                             store=JsonFile(state_dir / LIMITS_FILE) if state_dir is not None else None)
        self.queue = UploadLog(state_dir / QUEUE_FILE if state_dir is not None else None, max_mb=d.max_mb)
        self.uploader: Uploader | None = None
        self._last: dict[str, tuple[Shot, Facts]] = {}  # each camera's last classified frame (on demand)
        self._counts: Counter[tuple[str, str]] = Counter()
        self._saved: dict[str, deque[float]] = {name: deque(maxlen=SAVED_KEPT) for name in self._cams}
        self._work: asyncio.Queue[Sample[Shot]] = asyncio.Queue(MAX_WAITING)
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="dataset")
        self._full = Episode()
        self._tasks: list[asyncio.Task[None]] = []
        self.dropped = 0  # samples not kept: the keeper's backlog was full, or no picture could be made

    # -- the lifecycle -------------------------------------------------------------------

    async def start(self, session: aiohttp.ClientSession) -> None:
        d = self.cfg.dataset
        if not await self.queue.open():
            log.warning("dataset: no usable upload queue in state_dir (see above); frames sampled for "
                        "training are not kept")
        client = UploadClient(session, api_key=d.api_key or None, url=d.url, timeout=d.timeout)
        self.uploader = Uploader(self.queue, client, d.project, counted=self._count)
        self._tasks = [asyncio.create_task(self._keep_forever()), asyncio.create_task(self.uploader.run())]
        queued = self.queue.stats().queued
        log.info("dataset: collecting training frames from %d camera(s) for project %s at %s%s",
                 len(self._cams), d.project, client.redact(d.url),
                 f"; {queued} frame(s) waiting to upload" if queued else "")

    async def close(self) -> None:
        """At the stop: the held candidates judged (all overruled), what waits kept
        (within a grace), the uploads stopped (an upload cut short is sent again)."""
        for name, sampler in self.samplers.items():
            for sample in sampler.close():
                self._hand_over(sample)
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._work.join(), CLOSE_GRACE)
        if self.uploader is not None:  # the upload under way may finish (else it is sent again, a duplicate)
            self.uploader.finish()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._tasks[1]), UPLOAD_GRACE)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.queue.close()
        await asyncio.get_running_loop().run_in_executor(self._pool, self.limits.save)
        self._pool.shutdown(wait=False)

    # -- what the loop hands over ----------------------------------------------------------

    def enabled_for(self, camera: str) -> bool:
        return camera in self._cams

    def see(self, result: "Result") -> None:
        """A result after the decide stage (the sample stage calls this)."""
        sampler = self.samplers.get(result.camera.name)
        if sampler is None:
            return
        frame = result.frame
        shot = Shot(result.camera.name, frame.captured_at, frame.preview, frame.original)
        facts = facts_of(result)
        self._last[shot.camera] = (shot, facts)
        for sample in sampler.see(facts, shot):
            self._hand_over(sample)

    def request(self, camera: str, label: str | None) -> bool:
        """On demand (``P/<camera>/collect``): the camera's last classified frame,
        labelled by a person (``label``) or with the model's guess. False: nothing
        to save (no frame classified yet, or the camera does not collect)."""
        last = self._last.get(camera)
        if last is None:
            log.info("%s: 'save for training' asked for, but no frame has been classified yet", camera)
            return False
        shot, facts = last
        self._hand_over(requested(shot, facts, label))
        log.info("%s: saving the last classified frame for training, labelled %s", camera,
                 f"{label!r} by a person" if label else f"{facts.top!r} (the model's guess)")
        return True

    def _hand_over(self, sample: Sample[Shot]) -> None:
        try:
            self._work.put_nowait(sample)
        except asyncio.QueueFull:
            self.dropped += 1
            self._count(sample.reason, Outcome.DROPPED)
            if self._full.fail("full"):
                log.warning("dataset: %d samples already wait to be written; dropping more until they are "
                            "(the disk is slow or stuck)", MAX_WAITING)
            return
        self._full.ok()

    # -- the keeper (one task: samples are queued in the order they were taken) -------------

    async def _keep_forever(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            sample = await self._work.get()
            try:
                kept = await loop.run_in_executor(self._pool, self._prepare, sample)
                if isinstance(kept, UploadItem):
                    kept = await self._put(kept, sample)
                self._count(sample.reason, kept)
            except Exception:  # one bad sample must not end collecting
                log.exception("dataset: a sample could not be kept")
                self._count(sample.reason, Outcome.DROPPED)
            finally:
                self._work.task_done()

    async def _put(self, item: UploadItem, sample: Sample[Shot]) -> Outcome:
        if await self.queue.put(item) is None:
            self.dropped += 1
            return Outcome.DROPPED  # the disk refused: logged by the queue
        self._saved[item.camera].append(sample.item.captured_at)
        log.debug("%s: a %s frame queued for the dataset, labelled %r", item.camera, item.reason, item.label)
        if self.uploader is not None:
            self.uploader.wake()
        return Outcome.QUEUED

    def _prepare(self, sample: Sample[Shot]) -> UploadItem | Outcome:
        """On the dataset's thread: the limits, then the picture, then the limits written."""
        shot, cam = sample.item, self._cams[sample.item.camera]
        if shot.original is None:
            self.dropped += 1
            return Outcome.DROPPED
        now = self._clock()
        label = sample.label
        fingerprint = Fingerprint.of_image(shot.preview, cam.region)
        if sample.reason is Reason.ON_DEMAND:  # a person asked: counted, never refused but as a duplicate
            if self.limits.check(shot.camera, now, reason=sample.reason, cls=label,
                                 fingerprint=fingerprint) is Admit.DUPLICATE:
                return Outcome.SIMILAR
            self.limits.taken(shot.camera, now, reason=sample.reason, cls=label, fingerprint=fingerprint)
        else:
            admit = self.limits.take(shot.camera, now, reason=sample.reason, cls=label, fingerprint=fingerprint)
            if admit is Admit.DUPLICATE:
                return Outcome.SIMILAR
            if admit is not Admit.OK:
                return Outcome.LIMITED
        try:
            jpeg = picture(shot.original, max_size=self.cfg.dataset.max_size, mask=cam.sampling.mask)
        except ValueError:
            self.dropped += 1
            return Outcome.DROPPED
        self.limits.save()  # before the frame is queued: a crash over-counts, never passes a limit
        return self._item(sample, jpeg)

    def _item(self, sample: Sample[Shot], jpeg: bytes) -> UploadItem:
        shot, reason = sample.item, str(sample.reason)
        d = describe(self.cfg, camera=shot.camera, reason=reason, captured_at=shot.captured_at,
                     batch_at=shot.captured_at, facts=sample.facts, reasons=[str(r) for r in sample.reasons],
                     label=None if sample.guess else sample.label)
        return UploadItem(camera=shot.camera, reason=reason, jpeg=jpeg, captured_at=shot.captured_at,
                          batch=d.batch, label=sample.label,
                          label_source=LabelSource.MODEL if sample.guess else LabelSource.PERSON,
                          metadata=d.metadata, tags=d.tags)

    def _count(self, reason: str, outcome: Outcome) -> None:
        self._counts[(str(reason), str(outcome))] += 1

    # -- what others read (dataset/status.py's CollectionView) ------------------------------

    def status(self, camera: str) -> DatasetStatus:
        hour, day = self.limits.counts(camera, self._clock())
        stats = self.queue.stats()
        up = self.uploader
        return DatasetStatus(
            saved_today=day, saved_hour=hour, queued=stats.queued, queued_mb=stats.bytes / 1024 / 1024,
            sent_today=up.figures.today() if up else 0, dropped=stats.dropped + self.dropped + self.queue.failures,
            paused=up.figures.paused if up else None, last_error=up.figures.last_error if up else None)

    def counts(self) -> Mapping[tuple[str, str], int]:
        return dict(self._counts)

    def queue_length(self) -> int:
        return self.queue.stats().queued

    def queue_bytes(self) -> int:
        return self.queue.stats().bytes

    def saved(self, camera: str, at: float) -> bool:
        return any(abs(t - at) < 1e-3 for t in self._saved.get(camera, ()))
