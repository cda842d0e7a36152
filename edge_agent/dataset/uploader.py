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

Labels: a frame with a label is uploaded, then annotated. An annotation that
fails as an outage does keeps the frame queued; its next try uploads it again,
the API answers ``duplicate`` with the image's id, and the annotation is tried
again. One the API refuses (a 4xx, or a 404 or bad reply :data:`LABEL_TRIES`
times) leaves the picture in the dataset without its label: a label never jams
the queue. A 404 on a label is the image's, never a reason to pause.

Nothing ends the loop but :meth:`Uploader.finish` and a pause: an unexpected
error is logged once and retried with backoff.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from datetime import date
from typing import Callable

from ..backoff import Backoff
from ..episode import Episode
from ..storage.uploaddb import LabelSource, QueuedItem
from ..storage.uploads import UploadLog
from ..collection_view import Outcome, Paused
from .upload import Next, UploadClient, UploadError, UploadErrorKind

log = logging.getLogger(__name__)

RETRY_INITIAL = 2.0  # s
RETRY_MAX = 300.0  # s: a dead network costs one request every 5 minutes at most
IDLE_POLL = 30.0  # s: look at the queue this often even without a wake-up
LABEL_TRIES = 5  # a label the API keeps refusing (not an outage) is given up after this many tries
POISON_TRIES = 3  # a frame that fails unexpectedly (a bug) this many times in a row is dropped

Counted = Callable[[str, Outcome], None]  # (the item's reason, what became of it)


@dataclass
class UploaderFigures:
    """What the uploader shows (read by the collection's status); the clock passed in."""

    clock: Callable[[], float] = time.time
    sent_day: date | None = None
    sent_today: int = 0
    last_error: str | None = None
    paused: Paused | None = None
    retries: int = 0  # failed tries since start

    def sent(self) -> None:
        today = date.fromtimestamp(self.clock())
        if self.sent_day != today:
            self.sent_day, self.sent_today = today, 0
        self.sent_today += 1

    def today(self) -> int:
        return self.sent_today if self.sent_day == date.fromtimestamp(self.clock()) else 0


class Uploader:
    """Sends the queue's frames; :meth:`run` is the agent's task, :meth:`wake` says
    a frame was queued, :meth:`finish` asks it to stop after the frame under way."""

    def __init__(self, queue: UploadLog, client: UploadClient, project: str, *, counted: Counted,
                 clock: Callable[[], float] = time.time, retry_initial: float = RETRY_INITIAL,
                 retry_max: float = RETRY_MAX):
        self.queue = queue
        self.client = client
        self.project = project
        self.counted = counted
        self.figures = UploaderFigures(clock)
        self._backoff = Backoff(retry_initial, retry_max)
        self._episode = Episode()
        self._wake = asyncio.Event()
        self._finishing = asyncio.Event()
        self._label_tries: tuple[int, int] = (0, 0)  # (item id, failed label tries of it in this run)
        self._poison: tuple[int, int] = (0, 0)  # (item id, unexpected failures of it in a row)

    def wake(self) -> None:
        self._wake.set()

    def finish(self) -> None:
        """Stop after the frame being sent; a backoff or an idle wait ends at once."""
        self._finishing.set()

    async def run(self) -> None:
        while self.figures.paused is None and not self._finishing.is_set():
            self._wake.clear()  # before the queue is read: a frame queued after this wakes the wait below
            item = None
            try:
                item = await self.queue.oldest()
                if item is None:
                    await self._wait(self._wake, IDLE_POLL)
                    continue
                delay = await self.send(item)
            except Exception:  # a bug must not end uploading for good: logged once, retried
                delay = await self._unexpected(item)
            if delay:
                await self._wait(self._finishing, delay)  # a new frame does not cut a backoff short

    async def _unexpected(self, item: QueuedItem | None) -> float:
        if self._episode.fail("unexpected"):
            log.exception("dataset uploads: unexpected error; retrying with backoff")
        if item is not None:  # the same frame every time: dropped, so it cannot hold up the rest for ever
            iid, n = self._poison
            n = n + 1 if iid == item.id else 1
            self._poison = (item.id, n)
            if n >= POISON_TRIES:
                log.warning("dataset: a %s frame from %s failed %d times unexpectedly; dropped", item.item.reason,
                            item.item.camera, n)
                await self.queue.done(item.id)
                self.counted(item.item.reason, Outcome.DROPPED)
        return self._backoff.next_delay()

    async def _wait(self, event: asyncio.Event, seconds: float) -> None:
        """Until ``event`` or :meth:`finish`, at most ``seconds``."""
        if self._finishing.is_set():
            return
        waits = {asyncio.ensure_future(event.wait()), asyncio.ensure_future(self._finishing.wait())}
        _, pending = await asyncio.wait(waits, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        for w in pending:
            w.cancel()

    async def send(self, queued: QueuedItem) -> float:
        """One try of the queue's head; the seconds to wait before the next (0: go on)."""
        item = queued.item
        try:
            uploaded = await self.client.upload(
                item.jpeg, name=f"{queued.id}-{int(item.captured_at * 1000)}.jpg", project=self.project,
                batch=item.batch, tags=item.tags, metadata=item.metadata)
        except UploadError as exc:
            return await self._failed(queued, exc)
        if item.label and uploaded.image_id is not None:  # a duplicate that names no id: cannot be labelled
            try:
                await self.client.annotate(uploaded.image_id, item.label, project=self.project,
                                           prediction=item.label_source is LabelSource.MODEL)
            except UploadError as exc:
                if not self._give_up_label(queued, exc):
                    return await self._failed(queued, exc, label=True)
            except ValueError as exc:  # a label the client will not send: the frame goes unlabelled
                log.warning("dataset: a %s frame from %s is uploaded without its label (%s)", item.reason,
                            item.camera, exc)
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

    def _give_up_label(self, queued: QueuedItem, exc: UploadError) -> bool:
        """The picture is in; its label failed. True: keep the picture without it (the
        API refused this label, or kept failing in a way no outage explains), else the
        frame is tried again (and uploaded again: ``duplicate``, with its id)."""
        if exc.next is Next.PAUSE and exc.kind is UploadErrorKind.UNAUTHORIZED:
            return False  # the key may not label: a config matter
        if exc.kind in (UploadErrorKind.CONNECTION, UploadErrorKind.TIMEOUT, UploadErrorKind.HTTP_5XX,
                        UploadErrorKind.RATE_LIMITED):
            return False  # passing: retried like any outage, however long
        iid, tries = self._label_tries
        tries = tries + 1 if iid == queued.id else 1
        self._label_tries = (queued.id, tries)
        if exc.next is Next.DROP or tries >= LABEL_TRIES:
            log.warning("dataset: the label %r of a %s frame from %s was not taken (%s); the frame stays in "
                        "the dataset without it", queued.item.label, queued.item.reason, queued.item.camera,
                        exc.description)
            return True
        return False

    async def _failed(self, queued: QueuedItem, exc: UploadError, *, label: bool = False) -> float:
        """After a failed upload (or label: its 404 is the image's, not the project's)."""
        item, what = queued.item, exc.next
        if label and exc.kind is UploadErrorKind.NOT_FOUND:
            what = Next.RETRY
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
