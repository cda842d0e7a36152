"""The upload loop: the queue's oldest frame to the user's dataset, one at a time, in order.

Design rule: a frame leaves the queue only when the upload API took it (or had
it already), or refused it on its merits; every other failure keeps it at the
head and waits (exponential backoff with jitter from 2 s to 5 min, or the
server's Retry-After), so an outage of any length, a restart or a SIGKILL loses
nothing, and a dead network costs one request per backoff, never a storm. What
to do after a failure is :func:`.upload.disposition`'s: RETRY, PAUSE (401, 403,
404: only a config change mends it, so uploads stop until the agent is started
again with a new config, SIGHUP included), or DROP. Each kind of trouble is
logged once per episode, and the end of the episode once.

Labels: a frame with a label is uploaded, then annotated. A failed annotation
keeps the frame queued; its next try uploads it again, the API answers
``duplicate`` with the image's id, and the annotation is tried again.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from datetime import date
from typing import Callable

from ..backoff import Backoff
from ..episode import Episode
from ..storage.uploaddb import LabelSource, QueuedItem
from ..storage.uploads import UploadLog
from .status import Outcome, Paused
from .upload import Next, UploadClient, UploadError, UploadErrorKind

log = logging.getLogger(__name__)

RETRY_INITIAL = 2.0  # s
RETRY_MAX = 300.0  # s: a dead network costs one request every 5 minutes at most
IDLE_POLL = 30.0  # s: look at the queue this often even without a wake-up (it may have been written elsewhere)

Counted = Callable[[str, Outcome], None]  # (the item's reason, what became of it)


@dataclass
class UploaderFigures:
    """What the uploader shows (read by the collection's status)."""

    sent_day: date | None = None
    sent_today: int = 0
    last_error: str | None = None
    paused: Paused | None = None
    retries: int = 0  # failed tries since start
    _day: Callable[[], date] = field(default=lambda: date.fromtimestamp(time.time()), repr=False)

    def sent(self) -> None:
        today = self._day()
        if self.sent_day != today:
            self.sent_day, self.sent_today = today, 0
        self.sent_today += 1

    def today(self) -> int:
        return self.sent_today if self.sent_day == self._day() else 0


class Uploader:
    """Sends the queue's frames; :meth:`run` is the agent's task, :meth:`wake` says
    a frame was queued."""

    def __init__(self, queue: UploadLog, client: UploadClient, project: str, *, counted: Counted,
                 retry_initial: float = RETRY_INITIAL, retry_max: float = RETRY_MAX):
        self.queue = queue
        self.client = client
        self.project = project
        self.counted = counted
        self.figures = UploaderFigures()
        self._backoff = Backoff(retry_initial, retry_max)
        self._episode = Episode()
        self._wake = asyncio.Event()
        self._finishing = False

    def wake(self) -> None:
        self._wake.set()

    def finish(self) -> None:
        """Stop after the frame being sent (so a stop rarely cuts an upload short)."""
        self._finishing = True
        self._wake.set()

    async def run(self) -> None:
        while self.figures.paused is None and not self._finishing:
            item = await self.queue.oldest()
            if item is None:
                await self._sleep(IDLE_POLL)
                continue
            delay = await self.send(item)
            if delay and not self._finishing:
                await asyncio.sleep(delay)  # a wake-up does not cut a backoff short

    async def _sleep(self, seconds: float) -> None:
        if self._finishing:
            return
        self._wake.clear()
        try:
            await asyncio.wait_for(self._wake.wait(), seconds)
        except asyncio.TimeoutError:
            pass

    async def send(self, queued: QueuedItem) -> float:
        """One try of the queue's head; the seconds to wait before the next (0: go on)."""
        item = queued.item
        try:
            uploaded = await self.client.upload(
                item.jpeg, name=f"{queued.id}-{int(item.captured_at * 1000)}.jpg", project=self.project,
                batch=item.batch, tags=item.tags, metadata=item.metadata)
            if item.label and uploaded.image_id is not None:  # a duplicate that names no id: cannot be labelled
                await self.client.annotate(uploaded.image_id, item.label, project=self.project,
                                           prediction=item.label_source is LabelSource.MODEL)
        except UploadError as exc:
            return await self._failed(queued, exc)
        await self.queue.done(queued.id)
        self.counted(item.reason, Outcome.DUPLICATE if uploaded.duplicate else Outcome.UPLOADED)
        self.figures.sent()
        self.figures.last_error = None
        self._backoff.reset()
        failures = self._episode.ok()
        if failures:
            log.info("dataset uploads work again, after %d failed tries; %d frame(s) waiting",
                     failures, self.queue.stats().queued)
        return 0.0

    async def _failed(self, queued: QueuedItem, exc: UploadError) -> float:
        item, what = queued.item, exc.next
        self.figures.last_error = f"{exc.kind}: {exc.description}"
        if what is Next.DROP:
            await self.queue.done(queued.id)
            self.counted(item.reason, Outcome.REFUSED)
            log.warning("dataset upload of a %s frame from %s refused, dropped: %s", item.reason, item.camera,
                        exc.description)
            return 0.0
        if what is Next.PAUSE:
            self.figures.paused = Paused.UNAUTHORIZED if exc.kind is UploadErrorKind.UNAUTHORIZED \
                else Paused.NOT_FOUND
            fix = "dataset.api_key (or api.api_key)" if self.figures.paused is Paused.UNAUTHORIZED \
                else "dataset.project"
            log.error("dataset uploads paused until the config changes: %s; check %s. %d frame(s) stay "
                      "queued", exc.description, fix, self.queue.stats().queued)
            return 0.0
        await self.queue.attempt(queued.id, exc.description)
        self.counted(item.reason, Outcome.FAILED)
        self.figures.retries += 1
        delay = self._backoff.next_delay()
        if exc.retry_after is not None:
            delay = max(delay, exc.retry_after)
        if self._episode.fail(str(exc.kind)):
            log.warning("dataset upload failed (%s); the frames stay queued and are retried with backoff "
                        "(next in %.0f s; logged once until uploads work again)", exc.description, delay)
        return delay
