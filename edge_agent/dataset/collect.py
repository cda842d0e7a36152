"""Collecting training data: which results are saved, into the durable queue the
uploader sends from (``dataset.enabled``; off by default).

Design rule: the loop only decides; nothing slow runs on it. Each result is seen
by its camera's :class:`~.sampling.Sampler` (pure, microseconds) in the pipeline's
sample stage; a sample goes to one keeper task which, in order, prepares it on the
dataset's own thread (``keep.py``: fingerprint, limits, picture, limits written)
and then puts it in the queue (``storage/uploads.py``: on disk when the put
returns). So a crash can over-count a limit, never pass one, and a frame counted
as queued is never lost.

Bounds: what waits for the keeper (:data:`MAX_WAITING`; beyond, a sample is
dropped, counted, logged once per episode); a camera's held candidates
(:data:`MAX_HELD`, each settled to its JPEG as soon as it is held); one frame as
captured per camera for "save the last frame" (on demand). On-demand requests
come from outside: at most :data:`ON_DEMAND_PER_HOUR` per camera, and a person's
label must be one of the camera's ``classes`` when it lists any.

Counted on the loop only (an :class:`~.status.Outcome` per sample, by reason):
what :meth:`Collection.counts` and the status show.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections import Counter, deque
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Awaitable, Callable, Mapping

import aiohttp

from ..config import Config
from ..config.model import CameraConfig
from ..episode import Episode
from ..storage.files import JsonFile
from ..storage.uploaddb import UploadItem
from ..storage.uploads import UploadLog
from .keep import Keeper, Shot
from .limits import HOUR, Limits
from .sampling import Facts, Reason, Sample, Sampler, SamplingRules, facts_of, requested
from ..collection_view import DatasetStatus, Outcome
from .upload import UploadClient
from .uploader import Uploader

if TYPE_CHECKING:
    from ..pipeline.result import Result

log = logging.getLogger(__name__)

MAX_HELD = 8  # overruled candidates a camera's sampler holds (each settled to a JPEG of ~0.2 MB)
MAX_WAITING = 8  # samples waiting for the keeper; beyond, dropped (the keeper is stuck on the disk)
MAX_SETTLING = 2  # held candidates waiting to become JPEGs; beyond, their frames are let go
ON_DEMAND_PER_HOUR = 60  # "save for training" requests per camera in a rolling hour; beyond, refused
SAVED_KEPT = 200  # per camera: capture times of saved frames (the page's "saved for training" mark)
STOP_BUDGET = 0.5  # s the collection's part of a stop may take (the upload under way had the drain's grace)
LIMITS_FILE = "dataset_limits.json"
QUEUE_FILE = "uploads.db"


class Collection:
    """The agent's collection: samplers, the keeper, the queue and the uploader."""

    def __init__(self, cfg: Config, state_dir: Path | None, *, rng: random.Random | None = None,
                 clock: Callable[[], float] = time.time, monotonic: Callable[[], float] = time.monotonic):
        d = cfg.dataset
        self.cfg = cfg
        self._clock = clock  # the wall clock: the limits' days
        self._monotonic = monotonic  # the on-demand cap's hour (a clock stepped back must not hold it)
        self._cams: dict[str, CameraConfig] = {c.name: c for c in cfg.targets() if c.sampling.enabled}
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
        self.keeper = Keeper(cfg, self._cams, self.limits, clock)
        self.queue = UploadLog(state_dir / QUEUE_FILE if state_dir is not None else None, max_mb=d.max_mb)
        self.uploader: Uploader | None = None
        self.usable = True  # the queue opened: without it nothing is sampled (it could not be kept)
        self.dropped = 0  # samples not kept since start (backlog full, no picture, the queue refused)
        self._last: dict[str, tuple[Shot, Facts]] = {}  # each camera's last classified frame (on demand)
        self._asked: dict[str, deque[float]] = {name: deque() for name in self._cams}  # on-demand times
        self._counts: Counter[tuple[str, str]] = Counter()
        self._saved: dict[str, deque[float]] = {name: deque(maxlen=SAVED_KEPT) for name in self._cams}
        self._work: asyncio.Queue[Sample[Shot]] = asyncio.Queue(MAX_WAITING)
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="dataset")
        self._trouble = Episode()  # samples dropped here: one line per kind and episode
        self._refused = Episode()  # on-demand requests refused
        self._tasks: list[asyncio.Task[None]] = []
        self._settling = 0  # held candidates given to the dataset's thread, not yet settled
        self._loop: asyncio.AbstractEventLoop | None = None

    # -- the lifecycle -------------------------------------------------------------------

    async def start(self, session: aiohttp.ClientSession) -> None:
        d = self.cfg.dataset
        self._loop = asyncio.get_running_loop()
        if not await self.queue.open():
            self.usable = False
            log.warning("dataset: no usable upload queue in state_dir (see above); no frame is saved for "
                        "training until it is")
        client = UploadClient(session, api_key=d.api_key or None, url=d.url, timeout=d.timeout)
        self.uploader = Uploader(self.queue, client, d.project, counted=self._count, clock=self._clock)
        self._tasks = [asyncio.create_task(self._keep_forever()), asyncio.create_task(self.uploader.run())]
        queued = self.queue.stats().queued
        log.info("dataset: collecting training frames from %d camera(s) for project %s at %s%s",
                 len(self._cams), d.project, client.redact(d.url),
                 f"; {queued} frame(s) waiting to upload" if queued else "")

    def finishing(self) -> None:
        """The stop began: the upload under way may finish while the classifications
        drain (one cut short is sent again at the next start: a duplicate)."""
        if self.uploader is not None:
            self.uploader.finish()

    async def close(self) -> None:
        """After the last results: the held candidates judged (all overruled) and kept,
        the uploads stopped, the queue closed, all within :data:`STOP_BUDGET`."""
        deadline = time.monotonic() + STOP_BUDGET
        self.finishing()
        for sampler in self.samplers.values():
            for sample in sampler.close():
                self._hand_over(sample)
        await self._within(self._work.join(), deadline - 0.2)
        await asyncio.wait(self._tasks[1:], timeout=max(0.05, deadline - 0.2 - time.monotonic()))
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._within(self.queue.close(), deadline)
        self._pool.shutdown(wait=False, cancel_futures=True)  # the exit never waits for a stuck disk

    @staticmethod
    async def _within(aw: Awaitable[object], deadline: float) -> None:
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(aw, max(0.05, deadline - time.monotonic()))

    # -- what the loop hands over ----------------------------------------------------------

    def enabled_for(self, camera: str) -> bool:
        """The camera collects (``cameras[].sampling.enabled``)."""
        return camera in self._cams

    def collecting(self, camera: str) -> bool:
        """The camera collects and its frames can be kept (the capture keeps originals)."""
        return self.usable and camera in self._cams

    def see(self, result: "Result") -> None:
        """A result after the decide stage (the sample stage calls this)."""
        sampler = self.samplers.get(result.camera.name)
        if sampler is None or not self.usable:
            return
        frame = result.frame
        shot = Shot(result.camera.name, frame.captured_at, frame.preview, frame.original)
        facts = facts_of(result)
        self._last[shot.camera] = (shot, facts)
        overflow = sampler.dropped
        samples = sampler.see(facts, shot)
        if sampler.dropped > overflow:  # the hold was full: the oldest lost its "overruled"
            self._drop(Reason.OVERRULED, "held")
        if sampler.holding(shot):
            self._hold(shot)
        for sample in samples:
            self._hand_over(sample)

    def _hold(self, shot: Shot) -> None:
        """A candidate waits for its verdict: its frame becomes its JPEG now, on the
        dataset's thread, so what waits is small; or, when the limits would refuse it
        anyway or the thread is behind, its frame is let go (it will not be saved)."""
        if self._settling >= MAX_SETTLING or not self.limits.allow(shot.camera, self._clock()):
            shot.release()
            return
        self._settling += 1
        future = self._pool.submit(shot.settle, self._cams[shot.camera], self.cfg.dataset.max_size)
        future.add_done_callback(lambda _: self._loop.call_soon_threadsafe(self._settled))

    def _settled(self) -> None:
        self._settling -= 1

    def request(self, camera: str, label: str | None) -> bool:
        """On demand (``P/<camera>/collect``): the camera's last classified frame,
        labelled by a person (``label``) or with the model's guess. False: refused,
        or nothing to save yet."""
        cam, last = self._cams.get(camera), self._last.get(camera)
        kind = refusal = None
        if cam is None or not self.usable:
            kind, refusal = "off", ("this camera's frames are not collected" if cam is None
                                    else "no usable upload queue")
        elif last is None:
            kind, refusal = "none", "no frame has been classified yet"
        elif label is not None and cam.classes and label not in cam.classes:
            kind, refusal = "class", f"{label[:40]!r} is not one of the camera's classes ({', '.join(cam.classes)})"
        elif not self._ask(camera):
            kind, refusal = "cap", f"more than {ON_DEMAND_PER_HOUR} requests in the last hour"
        if kind is not None:
            if self._refused.fail(kind):
                log.warning("%s: 'save for training' refused: %s (further refusals of this kind are not "
                            "logged until one is taken)", camera, refusal)
            return False
        assert last is not None
        self._refused.ok()
        shot, facts = last
        self._hand_over(requested(shot, facts, label))
        log.info("%s: saving the last classified frame for training, labelled %s", camera,
                 f"{label!r} by a person" if label else f"{facts.top!r} (the model's guess)")
        return True

    def _ask(self, camera: str) -> bool:
        now, asked = self._monotonic(), self._asked[camera]
        while asked and now - asked[0] >= HOUR:
            asked.popleft()
        if len(asked) >= ON_DEMAND_PER_HOUR:
            return False
        asked.append(now)
        return True

    def _hand_over(self, sample: Sample[Shot]) -> None:
        try:
            self._work.put_nowait(sample)
        except asyncio.QueueFull:
            self._drop(sample.reason, "backlog")

    def _drop(self, reason: str, why: str, detail: str = "") -> None:
        """A sample dropped here: counted, logged once per kind (``why``) and episode."""
        self.dropped += 1
        self._count(reason, Outcome.DROPPED)
        if self._trouble.fail(why):
            log.warning("dataset: a frame (%s) was dropped: %s (logged once until frames are kept again)", reason,
                        detail or {
                            "backlog": f"{MAX_WAITING} frames already wait to be written (the disk is slow or stuck)",
                            "held": f"{MAX_HELD} candidates already wait for their verdict; the oldest lost it",
                            "picture": "no picture could be made of it",
                            "queue": "the upload queue did not take it (see above)",
                        }.get(why, why))

    # -- the keeper (one task: samples are queued in the order they were taken) -------------

    async def _keep_forever(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            sample = await self._work.get()
            try:
                kept = await loop.run_in_executor(self._pool, self.keeper.prepare, sample)
                if isinstance(kept, UploadItem):
                    await self._put(kept, sample)  # counted there
                elif kept is Outcome.DROPPED:
                    self._drop(sample.reason, "picture")
                else:
                    self._count(sample.reason, kept)
            except Exception:  # one bad sample must not end collecting
                log.exception("dataset: a sample could not be kept")
                self._drop(sample.reason, "unexpected")
            finally:
                self._work.task_done()

    async def _put(self, item: UploadItem, sample: Sample[Shot]) -> None:
        try:
            queued = await self.queue.put(item)
        except ValueError as exc:  # larger than an item may be (max_size 0 on a 4K camera): not storable
            self._drop(sample.reason, "too large", f"it cannot be queued ({exc})")
            return
        if queued is None:
            self._drop(sample.reason, "queue")
            return
        self._count(sample.reason, Outcome.QUEUED)
        self._trouble.ok()
        self._saved[item.camera].append(sample.item.captured_at)
        log.debug("%s: a %s frame queued for the dataset, labelled %r", item.camera, item.reason, item.label)
        if self.uploader is not None:
            self.uploader.wake()

    def _count(self, reason: str, outcome: Outcome) -> None:
        self._counts[(str(reason), str(outcome))] += 1

    # -- what others read (collection_view.py's CollectionView) ------------------------------

    def status(self, camera: str) -> DatasetStatus:
        hour, day = self.limits.counts(camera, self._clock())
        stats = self.queue.stats()
        up = self.uploader
        return DatasetStatus(
            saved_today=day, saved_hour=hour, queued=stats.queued, queued_mb=stats.bytes / 1024 / 1024,
            sent_today=up.figures.today() if up else 0, dropped=stats.dropped + self.dropped,
            paused=up.figures.paused if up else None, last_error=up.figures.last_error if up else None)

    def counts(self) -> Mapping[tuple[str, str], int]:
        return dict(self._counts)

    def queue_length(self) -> int:
        return self.queue.stats().queued

    def queue_bytes(self) -> int:
        return self.queue.stats().bytes

    def saved(self, camera: str, at: float) -> bool:
        return any(abs(t - at) < 1e-3 for t in self._saved.get(camera, ()))
