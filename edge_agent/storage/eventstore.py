"""Durable events with a local history, in one SQLite database in the state directory.

Every decided state change is an :class:`Event`.  It is committed here BEFORE it is
published and marked delivered only when the broker acknowledges it, so a broker
outage of any length plus a SIGKILL or a power cut during it loses no event: after
a reconnect or a restart the caller publishes :meth:`EventStore.undelivered` in id
order (at least once: a power cut between the broker's ack and
:meth:`EventStore.mark_delivered` publishes that event again, with the same id).

Durability choices, for an SD card that loses power:

* ``journal_mode=WAL`` + ``synchronous=FULL``: every commit fsyncs the WAL before
  :meth:`EventStore.add` returns, so a commit survives a power cut (``NORMAL``
  would survive a crash of the process but not of the power).  One fsync per
  event; events are rare (state changes), so that is cheap enough.
* The folder is fsynced after the database file is created or moved aside
  (SQLite fsyncs it for a new WAL file itself, not for the database file).
* A corrupt, unreadable or foreign file (not a database, a failed
  ``quick_check``, a schema we do not know) is renamed to
  ``<name>.corrupt-<epoch>`` (its WAL along with it) with ONE warning and a fresh
  database is started: history is lost, the daemon is not.  The same happens when
  SQLite reports corruption later, while running.
* Disk full, read-only or I/O errors are logged once per episode and raised as
  :class:`StoreError`; the caller counts them and publishes without durability.

Bounds: at most ``max_pending`` undelivered events (beyond it the oldest are
marked dropped: never published, still in the history); :meth:`EventStore.prune`
keeps the history within ``keep_days`` and ``max_mb``.  The schema version is in
``PRAGMA user_version``.

Here: the store and its queries.  Opening a file, its schema and moving a bad one
aside are in ``eventdb.py``; what an :class:`~.event.Event` is, in ``event.py``.
"""

from __future__ import annotations

import logging
import math
import sqlite3
import time
from pathlib import Path
from typing import Any, Callable, Iterable

from ..episode import Episode
from .event import SELECT, Event, event_from_row
from .eventdb import connect, move_aside
from .sqlitefile import SqliteFile

log = logging.getLogger(__name__)

MAX_NAME = 200  # chars of a camera or class name kept (they come from the agent's config)
MAX_THUMBNAIL = 256 * 1024  # bytes; a bigger thumbnail is refused (the event is stored without it)
MAX_LIMIT = 1000  # rows one history() call returns at most


class EventStore(SqliteFile):
    """The events, their thumbnails and the last decided state per camera.

    Synchronous: the agent calls it from one worker thread (the SD card may stall
    for seconds).  A lock guards the connection anyway, so a status request from
    another thread cannot interleave with a transaction.
    """

    NAME = "event database"
    LOSS = "events go out without durability"

    def __init__(self, path: Path, *, max_pending: int = 10_000, keep_days: float = 14,
                 max_mb: float = 200, clock: Callable[[], float] = time.time):
        super().__init__(path, clock)
        self.max_pending = max(1, int(max_pending))
        self.keep_days = keep_days
        self.max_mb = max_mb
        self._pending = 0  # undelivered events in the database
        self.dropped = 0  # events dropped over max_pending since this process started
        self._drop_ep = Episode()
        self._size_warned = False
        self._thumb_warned = False

    # -- opening --------------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        return connect(self.path)

    def _move_aside(self, problem: str) -> None:
        move_aside(self.path, problem, self._clock())

    def _opened(self, conn: sqlite3.Connection) -> None:
        self._pending = conn.execute("SELECT COUNT(*) FROM events WHERE delivered = 0").fetchone()[0]

    # -- API -----------------------------------------------------------------------------

    def add(self, camera: str, cls: str, confidence: float, at: float, thumbnail: bytes | None,
            since: float | None = None) -> Event:
        """Store one decided state change and return it; it is on disk when this returns.

        ``previous`` is the camera's last decided class kept here (None the first
        time); that last state (with ``since``, the state's own start, ``at`` when not
        given) is updated in the same transaction.  A thumbnail over
        256 KB or not a JPEG is refused (one warning; the event is stored without
        it).  When more than ``max_pending`` events are undelivered, the oldest are
        marked dropped (counted in ``dropped``, one warning per episode).  Raises
        :class:`StoreError` when the disk refuses (full, read-only, I/O), and
        ValueError for a non-finite ``confidence`` or ``at`` (a caller bug).
        """
        camera, cls = str(camera)[:MAX_NAME], str(cls)[:MAX_NAME]
        confidence, at = float(confidence), float(at)
        since = at if since is None else float(since)
        if not (math.isfinite(confidence) and math.isfinite(at) and math.isfinite(since)):
            raise ValueError(f"confidence, at and since must be finite numbers, not {confidence!r}, {at!r}, "
                             f"{since!r}")
        if thumbnail is not None and (not isinstance(thumbnail, (bytes, bytearray, memoryview))
                                      or len(thumbnail) > MAX_THUMBNAIL or bytes(thumbnail[:2]) != b"\xff\xd8"):
            if not self._thumb_warned:
                self._thumb_warned = True
                log.warning("event thumbnail refused (not a JPEG of at most %d bytes); "
                            "events are stored without it", MAX_THUMBNAIL)
            thumbnail = None
        with self._use("store an event", write=True) as conn:
            row = conn.execute("SELECT class FROM last_state WHERE camera = ?", (camera,)).fetchone()
            previous = row[0] if row else None
            cur = conn.execute("INSERT INTO events (camera, class, previous, confidence, at) "
                               "VALUES (?, ?, ?, ?, ?)", (camera, cls, previous, confidence, at))
            eid = cur.lastrowid
            assert eid is not None
            if thumbnail is not None:
                conn.execute("INSERT INTO thumbnails (event_id, jpeg) VALUES (?, ?)", (eid, bytes(thumbnail)))
            conn.execute("INSERT INTO last_state (camera, class, at, event_id) VALUES (?, ?, ?, ?) "
                         "ON CONFLICT(camera) DO UPDATE SET class = excluded.class, at = excluded.at, "
                         "event_id = excluded.event_id", (camera, cls, at, eid))
            conn.execute("INSERT INTO state_since (camera, event_id, since) VALUES (?, ?, ?) "
                         "ON CONFLICT(camera) DO UPDATE SET event_id = excluded.event_id, since = excluded.since",
                         (camera, eid, since))
            over = self._pending + 1 - self.max_pending
            if over > 0:
                conn.execute("UPDATE events SET delivered = 2 WHERE id IN (SELECT id FROM events "
                             "WHERE delivered = 0 ORDER BY id LIMIT ?)", (over,))
        # Committed: now the counters.
        self._pending += 1
        if over > 0:
            self._pending -= over
            self.dropped += over
            if self._drop_ep.fail("over"):
                log.warning("more than events.max_pending=%d events are undelivered; the oldest were "
                            "dropped (counted in 'dropped', kept in the history)", self.max_pending)
        return Event(eid, camera, cls, previous, confidence, at, False, thumbnail is not None)

    def last_state(self, camera: str) -> tuple[str, float] | None:
        """``(class, at)`` of the camera's last decided state, kept across restarts."""
        with self._use("read the last state", write=False) as conn:
            row = conn.execute("SELECT class, at FROM last_state WHERE camera = ?",
                               (str(camera)[:MAX_NAME],)).fetchone()
        return (row[0], row[1]) if row else None

    def decided_before(self, camera: str) -> tuple[str, float] | None:
        """``(class, since)`` of the camera's last decided state, kept across restarts:
        what a restart compares its first decided state with (the same class is no event,
        and keeps this ``since``). ``since`` is the event's ``at`` for a state stored by
        an earlier version."""
        with self._use("read the last state", write=False) as conn:
            row = conn.execute("SELECT l.class, l.at, s.since FROM last_state l LEFT JOIN state_since s "
                               "ON s.camera = l.camera AND s.event_id = l.event_id WHERE l.camera = ?",
                               (str(camera)[:MAX_NAME],)).fetchone()
        if row is None:
            return None
        return row[0], float(row[1] if row[2] is None else row[2])

    def undelivered(self, limit: int = 100, after: int = 0) -> list[Event]:
        """The oldest undelivered events after id ``after``, in id order (the order to
        publish them in)."""
        limit = max(0, min(int(limit), MAX_LIMIT))
        with self._use("read undelivered events", write=False) as conn:
            rows = conn.execute(f"{SELECT} WHERE delivered = 0 AND id > ? ORDER BY id LIMIT ?",
                                (int(after), limit)).fetchall()
        return [event_from_row(r) for r in rows]

    def mark_delivered(self, ids: Iterable[int]) -> None:
        """The broker acknowledged these events.  Unknown, dropped or already
        delivered ids change nothing."""
        todo = sorted({int(i) for i in ids})
        if not todo:
            return
        done = 0
        with self._use("mark events delivered", write=True) as conn:
            for i in range(0, len(todo), 500):  # stay under SQLite's bound-variable limit
                chunk = todo[i:i + 500]
                cur = conn.execute(f"UPDATE events SET delivered = 1 WHERE delivered = 0 AND id IN "
                                   f"({','.join('?' * len(chunk))})", chunk)
                done += cur.rowcount
        self._pending = max(0, self._pending - done)
        if self._pending < self.max_pending:
            ended = self._drop_ep.ok()
            if ended:
                log.info("undelivered events are below events.max_pending=%d again; %d were dropped "
                         "in all since the start", self.max_pending, self.dropped)

    def history(self, camera: str | None = None, since: float | None = None, until: float | None = None,
                limit: int = 100) -> list[Event]:
        """Events newest first (by capture time ``at``, then id), ``since <= at < until``;
        ``limit`` is capped at 1000.  Dropped events are included (``delivered`` False)."""
        where: list[str] = []
        args: list[Any] = []
        if camera is not None:
            where.append("camera = ?")
            args.append(str(camera)[:MAX_NAME])
        if since is not None:
            where.append("at >= ?")
            args.append(float(since))
        if until is not None:
            where.append("at < ?")
            args.append(float(until))
        sql = SELECT + (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY at DESC, id DESC LIMIT ?"
        args.append(max(0, min(int(limit), MAX_LIMIT)))
        with self._use("read the history", write=False) as conn:
            rows = conn.execute(sql, args).fetchall()
        return [event_from_row(r) for r in rows]

    def thumbnail(self, event_id: int) -> bytes | None:
        """The JPEG of the frame that decided the event, or None."""
        with self._use("read a thumbnail", write=False) as conn:
            row = conn.execute("SELECT jpeg FROM thumbnails WHERE event_id = ?", (int(event_id),)).fetchone()
        return bytes(row[0]) if row else None

    def _bytes(self, conn: sqlite3.Connection) -> int:
        return conn.execute("PRAGMA page_count").fetchone()[0] * conn.execute("PRAGMA page_size").fetchone()[0]

    def _vacuum(self) -> None:
        # incremental_vacuum frees one page per step, and Connection.execute() steps a
        # statement without result columns only once: executescript() steps it to the end.
        with self._use("reclaim space", write=False) as conn:
            conn.executescript("PRAGMA incremental_vacuum")

    def prune(self) -> int:
        """Remove events (with their thumbnails) older than ``keep_days``, then, oldest
        first, while the database is larger than ``max_mb`` (page_count * page_size).

        Undelivered events are never removed here (``max_pending`` bounds them); when
        they alone fill ``max_mb``, the thumbnails of the oldest are removed instead
        (the events stay), and if that is not enough either, one warning.  Freed pages
        go back to the file system.  Returns how many events were removed.  Call it
        from the worker thread now and then (hourly), not per event.
        """
        cutoff = self._clock() - self.keep_days * 86400
        removed = 0
        with self._use("prune old events", write=True) as conn:
            conn.execute("DELETE FROM thumbnails WHERE event_id IN "
                         "(SELECT id FROM events WHERE at < ? AND delivered != 0)", (cutoff,))
            removed += conn.execute("DELETE FROM events WHERE at < ? AND delivered != 0", (cutoff,)).rowcount
        self._vacuum()
        cap = int(self.max_mb * 1024 * 1024)
        for _ in range(100):  # each round removes about what is over the cap, so a few rounds do
            with self._use("prune to events.max_mb", write=True) as conn:
                size = self._bytes(conn)
                if size <= cap:
                    break
                count = conn.execute("SELECT COUNT(*) FROM events").fetchone()[0] or 1
                n = max(1, math.ceil((size - cap) / (size / count) * 1.1))
                ids = [r[0] for r in conn.execute(
                    "SELECT id FROM events WHERE delivered != 0 ORDER BY id LIMIT ?", (n,))]
                if ids:
                    marks = ",".join("?" * len(ids))
                    conn.execute(f"DELETE FROM thumbnails WHERE event_id IN ({marks})", ids)
                    removed += conn.execute(f"DELETE FROM events WHERE id IN ({marks})", ids).rowcount
                else:  # only undelivered events are left: their thumbnails go, oldest first
                    cur = conn.execute("DELETE FROM thumbnails WHERE event_id IN (SELECT event_id FROM "
                                       "thumbnails ORDER BY event_id LIMIT ?)", (n,))
                    if cur.rowcount == 0:
                        if not self._size_warned:
                            self._size_warned = True
                            log.warning("event database %s holds %d bytes of undelivered events, more than "
                                        "events.max_mb=%s; keeping them", self.path, size, self.max_mb)
                        break
            self._vacuum()
        with self._use("checkpoint", write=False) as conn:
            if self._bytes(conn) <= cap:
                self._size_warned = False
            # Fold the WAL into the file and cut it back, so the freed space is free on disk.
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
        return removed

    def stats(self) -> dict[str, int]:
        """``{"events", "undelivered", "dropped", "bytes"}`` (dropped: since this process started)."""
        with self._use("read stats", write=False) as conn:
            events = conn.execute("SELECT COUNT(*) FROM events").fetchone()[0]
            size = self._bytes(conn)
        return {"events": events, "undelivered": self._pending, "dropped": self.dropped, "bytes": size}

