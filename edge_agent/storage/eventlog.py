"""The event log as the agent's loop uses it: the SQLite store (``eventstore.py``)
on one worker thread of its own, so a commit's fsync (milliseconds on an SD card)
never holds up the loop. Without a usable database the agent carries on: events
are then published without durability, and the history is empty.

The agent owns it (opens, adds, prunes, closes); the outputs and the web side see
it only as an :class:`~.reader.EventReader`."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable, Iterable, TypeVar

from ..config import EventsConfig
from .event import Event
from .eventdb import StoreError
from .eventstore import EventStore

log = logging.getLogger(__name__)
T = TypeVar("T")
PRUNE_EVERY = 3600.0  # s between retention passes
NO_STATS = {"events": 0, "undelivered": 0, "dropped": 0, "bytes": 0}
PRUNE_ADDS = 50  # ... and after this many new events (a busy hour must not outgrow max_mb)


class EventLog:
    def __init__(self, path: Path | None, cfg: EventsConfig):
        self.store = EventStore(path, max_pending=cfg.max_pending, keep_days=cfg.keep_days, max_mb=cfg.max_mb) \
            if path is not None else None
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="events")
        self.failures = 0
        self.add_seconds: deque[float] = deque(maxlen=500)  # how long each commit took (fsync included)
        self._adds = 0
        # The figures /api/status shows, refreshed on the store's thread after each change:
        # the loop never queries the database (or waits for a commit's fsync) to show them.
        self._stats = dict(NO_STATS)

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)

    async def open(self) -> bool:
        if self.store is None:
            return False
        try:
            await self._run(self.store.open)
            await self._run(self._refresh)
            return True
        except StoreError:
            self.store = None  # logged by the store; the agent runs without durability
            return False

    async def add(self, camera: str, cls: str, confidence: float, at: float, thumbnail: bytes | None,
                  since: float | None = None) -> Event | None:
        """The event, committed; None when it could not be stored (counted)."""
        if self.store is None:
            return None
        try:
            event = await self._run(self._timed_add, camera, cls, confidence, at, thumbnail, since)
        except (StoreError, ValueError):
            self.failures += 1
            return None
        self._adds += 1
        if self._adds % PRUNE_ADDS == 0:
            self._pool.submit(self._quietly, self.store.prune)
        self._pool.submit(self._refresh)
        return event

    def _timed_add(self, *args: Any) -> Event:
        t0 = time.perf_counter()
        assert self.store is not None
        event = self.store.add(*args)
        self.add_seconds.append(time.perf_counter() - t0)
        return event

    async def _read(self, default: T, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` on the store's thread; ``default`` without a store, or when it fails
        (the store has logged why)."""
        if self.store is None:
            return default
        try:
            return await self._run(fn, *args)
        except StoreError:
            return default

    async def decided_before(self, camera: str) -> tuple[str, float] | None:
        """``(class, since)`` of the camera's last decided state (before this start)."""
        return await self._read(None, lambda: self.store.decided_before(camera))  # type: ignore[union-attr]

    async def undelivered(self, after: int, limit: int) -> list[Event]:
        return await self._read([], lambda: self.store.undelivered(limit, after))  # type: ignore[union-attr]

    def delivered(self, ids: Iterable[int]) -> None:
        if self.store is not None:
            self._pool.submit(self._quietly, self.store.mark_delivered, list(ids))
            self._pool.submit(self._refresh)

    async def history(self, *, camera: str | None = None, since: float | None = None,
                      until: float | None = None, limit: int = 100) -> list[Event]:
        return await self._read([], lambda: self.store.history(  # type: ignore[union-attr]
            camera=camera, since=since, until=until, limit=limit))

    async def thumbnail(self, event_id: int) -> bytes | None:
        return await self._read(None, lambda: self.store.thumbnail(event_id))  # type: ignore[union-attr]

    async def prune_forever(self) -> None:
        while True:
            if self.store is not None:
                try:
                    await self._run(self.store.prune)
                except StoreError:
                    pass
                await self._run(self._refresh)
            await asyncio.sleep(PRUNE_EVERY)

    def stats(self) -> dict[str, int]:
        """``{"events", "undelivered", "dropped", "bytes"}`` as of the store's last change."""
        return dict(self._stats)

    def _refresh(self) -> None:  # on the store's thread
        if self.store is not None:
            try:
                self._stats = self.store.stats()
            except StoreError:
                pass

    async def close(self) -> None:
        if self.store is not None:
            await self._run(self._quietly, self.store.close)
        self._pool.shutdown(wait=False)

    @staticmethod
    def _quietly(fn: Callable[..., Any], *args: Any) -> None:
        try:
            fn(*args)
        except StoreError:
            pass
