"""The durable upload queue: frames sampled for the user's dataset wait here, in one
SQLite file in the state directory (``uploads.db``), until the upload API takes them.

The rule: an item is committed (WAL, ``synchronous=FULL``: fsynced) before
:meth:`UploadQueue.put` returns, and leaves the queue only by :meth:`~UploadQueue.done`
(the API took it, or already had it) or by being dropped for room.  So an outage of
any length plus a SIGKILL or a power cut loses nothing that was acknowledged; the
uploader sends :meth:`~UploadQueue.oldest` first, in the order they were put.  A
failed try is counted on the item (:meth:`~UploadQueue.attempt`: attempts, last
error) and does not move it.

Bounds: an item is at most 4 MB of JPEG and 16 KB of metadata (more is a
ValueError: nothing is stored); the queue is at most ``max_mb`` of items (their
payload plus 4 KB each for the rows and pages around it; the file is slightly
larger).  A put that would go over drops the OLDEST items to make room, counted in
``dropped`` with ONE warning per episode (the episode ends when uploads bring the
queue under half of ``max_mb``: a queue that stays about full, uploads trickling
out while frames keep coming, is one episode, not a line per upload).

Failures as in the event store (``eventstore.py``): a bad file is moved aside with
one warning and the queue starts empty; disk full, read-only or I/O errors are
logged once per episode and raised as :class:`~.eventdb.StoreError`, which the
caller counts.  :class:`UploadLog` runs the queue on a worker thread of its own for
the asyncio loop, as ``eventlog.py`` does for the events.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, TypeVar

from ..episode import Episode
from ..redact import bounded
from .eventdb import StoreError
from .sqlitefile import SqliteFile
from .uploaddb import SELECT, QueuedItem, UploadItem, connect, move_aside, queued_from_row

log = logging.getLogger(__name__)
T = TypeVar("T")

MAX_PEEK = 10  # items one peek() returns at most (each up to 4 MB of JPEG)
MAX_ERROR = 300  # chars of a try's error kept on the item
RESUME = 0.5  # a dropping episode ends when uploads bring the queue under this share of max_mb


@dataclass(frozen=True)
class QueueStats:
    queued: int  # items waiting
    bytes: int  # their size, as counted against max_mb
    dropped: int  # items dropped for room since this process started
    oldest_captured_at: float | None  # of the item sent next; None when empty


EMPTY = QueueStats(0, 0, 0, None)


class UploadQueue(SqliteFile):
    """The queue.  Synchronous: call it from one worker thread (the SD card may stall
    for seconds); a lock guards the connection anyway."""

    NAME = "upload queue"
    LOSS = "frames sampled for training are not kept"

    def __init__(self, path: Path, *, max_mb: float = 100, clock: Callable[[], float] = time.time):
        super().__init__(path, clock)
        self.max_bytes = max(1, int(max_mb * 1024 * 1024))
        self._count = 0  # items in the file
        self._bytes = 0  # their sizes
        self.dropped = 0  # items dropped for room since this process started
        self._dropped_before = 0  # ... when the current dropping episode began
        self._drop_ep = Episode()

    # -- opening ---------------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        return connect(self.path)

    def _move_aside(self, problem: str) -> None:
        move_aside(self.path, problem, self._clock())

    def _opened(self, conn: sqlite3.Connection) -> None:
        self._count, self._bytes = conn.execute("SELECT COUNT(*), COALESCE(SUM(size), 0) FROM items").fetchone()

    def _forget(self) -> None:
        self._count = self._bytes = 0

    # -- API -------------------------------------------------------------------------

    def put(self, item: UploadItem) -> int:
        """Queue one item; its id (ids grow: the queue's order).  It is on disk when this
        returns.  When it does not fit within ``max_mb``, the oldest items are dropped
        first.  ValueError for an item out of bounds (see :class:`UploadItem`) or larger
        than ``max_mb`` alone; StoreError when the disk refuses."""
        meta, tags, size = item.encoded()
        if size > self.max_bytes:
            raise ValueError(f"the item is {size} bytes, more than the queue's max_mb holds")
        with self._lock:  # the counters change with the file, as one step
            with self._use("queue a frame", write=True) as conn:
                iid, gone, freed = self._insert(conn, item, meta, tags, size)
            self._count += 1 - gone
            self._bytes += size - freed
            if gone:
                if self._drop_ep.fail("full"):
                    self._dropped_before = self.dropped
                    log.warning("upload queue %s is full (dataset.max_mb=%s); the oldest frames waiting to be "
                                "uploaded are dropped to make room (counted in 'dropped')",
                                self.path, self.max_bytes / 1024 / 1024)
                self.dropped += gone
        return iid

    def _insert(self, conn: sqlite3.Connection, item: UploadItem, meta: str, tags: str,
                size: int) -> tuple[int, int, int]:
        """In put's transaction: drop the oldest until ``size`` fits, then insert;
        ``(id, items dropped, their bytes)``."""
        over = self._bytes + size - self.max_bytes
        gone = freed = 0
        if over > 0:  # the oldest first, until there is room
            last = None
            cur = conn.execute("SELECT id, size FROM items ORDER BY id")
            for iid, isize in cur:
                gone, freed, last = gone + 1, freed + isize, iid
                if freed >= over:
                    break
            cur.close()
            if last is not None:
                conn.execute("DELETE FROM jpegs WHERE item_id <= ?", (last,))
                conn.execute("DELETE FROM items WHERE id <= ?", (last,))
        cur = conn.execute(
            "INSERT INTO items (camera, reason, label, label_source, metadata, tags, batch, captured_at, "
            "queued_at, size) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (item.camera, item.reason, item.label, str(item.label_source), meta, tags, item.batch,
             float(item.captured_at), self._clock(), size))
        iid = cur.lastrowid
        assert iid is not None
        conn.execute("INSERT INTO jpegs (item_id, jpeg) VALUES (?, ?)", (iid, bytes(item.jpeg)))
        return iid, gone, freed

    def peek(self, limit: int = 1, after: int = 0) -> list[QueuedItem]:
        """The oldest items after id ``after``, in the queue's order (at most 10)."""
        limit = max(0, min(int(limit), MAX_PEEK))
        with self._use("read the queue", write=False) as conn:
            rows = conn.execute(f"{SELECT} WHERE i.id > ? ORDER BY i.id LIMIT ?", (int(after), limit)).fetchall()
        return [queued_from_row(r) for r in rows]

    def oldest(self) -> QueuedItem | None:
        """The item to send next, or None when the queue is empty."""
        items = self.peek(1)
        return items[0] if items else None

    def done(self, item_id: int) -> bool:
        """The API took the item (or had it already): remove it.  False when it was not
        queued (already done, or dropped)."""
        with self._lock:
            with self._use("remove an uploaded frame", write=True) as conn:
                row = conn.execute("SELECT size FROM items WHERE id = ?", (int(item_id),)).fetchone()
                if row is not None:
                    conn.execute("DELETE FROM jpegs WHERE item_id = ?", (int(item_id),))
                    conn.execute("DELETE FROM items WHERE id = ?", (int(item_id),))
            if row is None:
                return False
            self._count -= 1
            self._bytes -= row[0]
            if self._bytes < RESUME * self.max_bytes and self._drop_ep.active:
                self._drop_ep.ok()
                log.info("upload queue %s has room again; %d frames were dropped to make room while it was "
                         "full", self.path, self.dropped - self._dropped_before)
            if self._count == 0:
                self._reclaim()
        return True

    def attempt(self, item_id: int, error: str) -> bool:
        """Count a failed try of the item (its place in the queue is kept); ``error`` is
        kept redacted and cut to 300 chars.  False when it is not queued."""
        text = bounded(str(error), MAX_ERROR)
        with self._use("count a failed upload", write=True) as conn:
            cur = conn.execute("UPDATE items SET attempts = attempts + 1, last_error = ? WHERE id = ?",
                               (text, int(item_id)))
        return cur.rowcount > 0

    def stats(self) -> QueueStats:
        with self._use("read the queue's size", write=False) as conn:
            row = conn.execute("SELECT captured_at FROM items ORDER BY id LIMIT 1").fetchone()
        return QueueStats(self._count, self._bytes, self.dropped, row[0] if row else None)

    def _reclaim(self) -> None:
        """The queue is empty: give its pages back to the file system and cut the WAL."""
        with contextlib.suppress(StoreError):
            with self._use("reclaim space", write=False) as conn:
                # incremental_vacuum frees one page per step; executescript() steps it to the end.
                conn.executescript("PRAGMA incremental_vacuum")
                conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()


class UploadLog:
    """The queue as the asyncio loop uses it: on one worker thread of its own, so a
    commit's fsync never holds up the loop.  Without a usable file the agent carries
    on without the queue (puts return None, counted in ``failures``)."""

    def __init__(self, path: Path | None, *, max_mb: float = 100):
        self.queue = UploadQueue(path, max_mb=max_mb) if path is not None else None
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="uploads")
        self.failures = 0
        self._stats = EMPTY  # as of the last change, refreshed on the queue's thread

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)

    async def open(self) -> bool:
        if self.queue is None:
            return False
        try:
            await self._run(self.queue.open)
        except StoreError:
            self.queue = None  # logged by the queue
            return False
        await self._run(self._refresh)
        return True

    async def _call(self, default: T, fn: Callable[[], T], change: bool = False) -> T:
        """``fn()`` on the queue's thread (then the figures refreshed when it changes
        the queue); ``default`` without a queue or when the disk refuses (logged by the
        queue, counted here)."""
        if self.queue is None:
            return default
        try:
            return await (self._run(self._then_refresh, fn) if change else self._run(fn))
        except StoreError:
            self.failures += 1
            return default

    def _then_refresh(self, fn: Callable[[], T]) -> T:  # on the queue's thread
        try:
            return fn()
        finally:
            self._refresh()

    async def put(self, item: UploadItem) -> int | None:
        """The item's id once it is on disk; None when it could not be stored.
        ValueError for an item out of bounds."""
        return await self._call(None, lambda: self.queue.put(item), True)  # type: ignore[union-attr]

    async def oldest(self) -> QueuedItem | None:
        return await self._call(None, lambda: self.queue.oldest())  # type: ignore[union-attr]

    async def peek(self, limit: int = 1, after: int = 0) -> list[QueuedItem]:
        return await self._call([], lambda: self.queue.peek(limit, after))  # type: ignore[union-attr]

    async def done(self, item_id: int) -> bool:
        return await self._call(False, lambda: self.queue.done(item_id), True)  # type: ignore[union-attr]

    async def attempt(self, item_id: int, error: str) -> bool:
        return await self._call(False, lambda: self.queue.attempt(item_id, error), True)  # type: ignore[union-attr]

    def stats(self) -> QueueStats:
        """The figures as of the queue's last change (the loop never waits on the disk for them)."""
        return self._stats

    def _refresh(self) -> None:  # on the queue's thread
        if self.queue is not None:
            with contextlib.suppress(StoreError):
                self._stats = self.queue.stats()

    async def close(self) -> None:
        if self.queue is not None:
            await self._run(self.queue.close)
        self._pool.shutdown(wait=False)
