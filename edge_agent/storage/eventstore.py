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
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import sqlite3
import stat
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from ..episode import Episode
from .files import fsync_dir

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
MAX_NAME = 200  # chars of a camera or class name kept (they come from the agent's config)
MAX_THUMBNAIL = 256 * 1024  # bytes; a bigger thumbnail is refused (the event is stored without it)
MAX_LIMIT = 1000  # rows one history() call returns at most
JOURNAL_LIMIT = 4 * 1024 * 1024  # the WAL is truncated back to this after a checkpoint
CACHE_KIB = 256  # SQLite page cache of the connection (its default: 2 MB)

# Delivery states in events.delivered.
PENDING, DELIVERED, DROPPED = 0, 1, 2

SCHEMA = """
CREATE TABLE events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,  -- AUTOINCREMENT: an id is never reused, even after pruning
    camera TEXT NOT NULL,
    class TEXT NOT NULL,
    previous TEXT,
    confidence REAL NOT NULL,
    at REAL NOT NULL,                      -- capture time of the deciding frame, epoch s
    delivered INTEGER NOT NULL DEFAULT 0   -- 0 pending, 1 delivered, 2 dropped (over max_pending)
);
CREATE INDEX events_pending ON events(id) WHERE delivered = 0;
CREATE INDEX events_at ON events(at);
CREATE INDEX events_camera_at ON events(camera, at);
CREATE TABLE thumbnails (
    event_id INTEGER PRIMARY KEY,          -- = events.id, deleted with its event
    jpeg BLOB NOT NULL
);
CREATE TABLE last_state (
    camera TEXT PRIMARY KEY,
    class TEXT NOT NULL,
    at REAL NOT NULL,
    event_id INTEGER NOT NULL
);
"""

# Since when the last decided state holds (the capture of the first result that voted for it),
# so a restart that decides the same state again keeps it. A table of its own, not a column of
# last_state: a database of an earlier version gets it when opened (see _check), and an earlier
# version still opens a database that has it (it checks only the tables it knows). A row is
# used only while its event_id is last_state's (an earlier version may have moved on since).
STATE_SINCE = """
CREATE TABLE state_since (
    camera TEXT PRIMARY KEY,
    event_id INTEGER NOT NULL,
    since REAL NOT NULL
)"""

COLUMNS = {
    "events": ["id", "camera", "class", "previous", "confidence", "at", "delivered"],
    "thumbnails": ["event_id", "jpeg"],
    "last_state": ["camera", "class", "at", "event_id"],
    "state_since": ["camera", "event_id", "since"],
}

# SQLite primary result codes that mean "this file is damaged or not ours".
_CORRUPT = {11: "SQLITE_CORRUPT", 26: "SQLITE_NOTADB"}

_SELECT = ("SELECT id, camera, class, previous, confidence, at, delivered, "
           "EXISTS (SELECT 1 FROM thumbnails WHERE event_id = events.id) FROM events")


class StoreError(Exception):
    """The event could not be stored or read (disk full, read-only, I/O error, no
    database).  Already logged once per episode: the caller only counts it and
    carries on without durability (publishes the event anyway)."""


class _Corrupt(Exception):
    """The file is not a usable database of ours; the message says why."""


@dataclass(frozen=True)
class Event:
    id: int
    camera: str
    cls: str
    previous: str | None
    confidence: float
    at: float  # epoch s: capture time of the frame that decided it
    delivered: bool  # False for pending and for dropped events
    has_thumbnail: bool

    def payload(self) -> dict[str, Any]:
        """What is published: ``{"id", "camera", "class", "previous", "confidence", "at"}``."""
        return {"id": self.id, "camera": self.camera, "class": self.cls, "previous": self.previous,
                "confidence": round(self.confidence, 6), "at": round(self.at, 3)}


def _event(row: tuple[Any, ...]) -> Event:
    return Event(id=row[0], camera=row[1], cls=row[2], previous=row[3], confidence=row[4],
                 at=row[5], delivered=row[6] == DELIVERED, has_thumbnail=bool(row[7]))


def _code(e: sqlite3.Error) -> int:
    return (getattr(e, "sqlite_errorcode", None) or 0) & 0xFF


class EventStore:
    """The events, their thumbnails and the last decided state per camera.

    Synchronous: the agent calls it from one worker thread (the SD card may stall
    for seconds).  A lock guards the connection anyway, so a status request from
    another thread cannot interleave with a transaction.
    """

    def __init__(self, path: Path, *, max_pending: int = 10_000, keep_days: float = 14,
                 max_mb: float = 200, clock: Callable[[], float] = time.time):
        self.path = Path(path)
        self.max_pending = max(1, int(max_pending))
        self.keep_days = keep_days
        self.max_mb = max_mb
        self._clock = clock
        self._lock = threading.RLock()
        self._conn: sqlite3.Connection | None = None
        self._pending = 0  # undelivered events in the database
        self.dropped = 0  # events dropped over max_pending since this process started
        self._write_ep = Episode()
        self._read_ep = Episode()
        self._drop_ep = Episode()
        self._size_warned = False
        self._thumb_warned = False

    # -- opening --------------------------------------------------------------------

    def open(self) -> None:
        """Create or open the database.

        Never raises for a bad file (it is moved aside with one warning and a fresh
        database started).  Raises :class:`StoreError` only when no database can be
        had at all (the folder is missing, read-only or full): the caller carries on
        without durability.
        """
        with self._lock:
            if self._conn is not None:
                return
            try:
                self._conn = self._connect()
            except _Corrupt as e:
                self._move_aside(str(e))
                try:
                    self._conn = self._connect()
                except (_Corrupt, sqlite3.Error, OSError) as e2:
                    raise self._failed(self._write_ep, "open", e2) from e2
            except (sqlite3.Error, OSError) as e:
                raise self._failed(self._write_ep, "open", e) from e
            try:
                self._pending = self._conn.execute(
                    "SELECT COUNT(*) FROM events WHERE delivered = 0").fetchone()[0]
            except sqlite3.Error as e:
                self.close()
                raise self._failed(self._write_ep, "open", e) from e

    def _connect(self) -> sqlite3.Connection:
        """A checked connection, or _Corrupt (the file is not usable), sqlite3.Error / OSError."""
        existed = False
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            pass
        else:
            existed = True
            if not stat.S_ISREG(st.st_mode):
                raise _Corrupt("is not a regular file")
            try:  # e.g. left behind by a run as root; EROFS is not the file's fault
                os.close(os.open(self.path, os.O_RDWR))
            except PermissionError as e:
                raise _Corrupt(f"cannot be opened for writing ({e.strerror})") from e
        # isolation_level=None: transactions are explicit (BEGIN IMMEDIATE ... COMMIT).
        conn = sqlite3.connect(self.path, timeout=5.0, isolation_level=None, check_same_thread=False)
        try:
            self._check(conn)
            if not existed:
                fsync_dir(self.path.parent)
            return conn
        except BaseException:
            conn.close()
            raise

    def _check(self, conn: sqlite3.Connection) -> None:
        try:
            # SQLite's default page cache is 2 MB, and the integrity check reads every page
            # into it: 256 KiB holds what appends and the history's indexed queries touch
            # (the kernel caches the file all the same).
            conn.execute(f"PRAGMA cache_size = -{CACHE_KIB}")
            rows = conn.execute("PRAGMA quick_check").fetchall()
            if rows != [("ok",)]:
                raise _Corrupt(f"fails its integrity check ({'; '.join(str(r[0]) for r in rows[:3])})")
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            tables = {r[0] for r in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")}
            if version == 0 and not tables:
                self._create(conn)
            elif version != SCHEMA_VERSION:
                raise _Corrupt(f"has schema version {version}, not {SCHEMA_VERSION}")
            else:
                for table, cols in COLUMNS.items():
                    if table == "state_since" and table not in tables:
                        continue  # made by a version before it (nothing else differs): added below
                    have = [r[1] for r in conn.execute(f"PRAGMA table_info({table})")]
                    if have != cols:
                        raise _Corrupt(f"has an unexpected table {table!r} ({', '.join(have) or 'missing'})")
                if "state_since" not in tables:
                    conn.execute(STATE_SINCE)
            # WAL is remembered in the file; synchronous is per connection: FULL fsyncs
            # the WAL at every commit, so a commit survives a power cut.
            conn.execute("PRAGMA journal_mode=WAL").fetchall()
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute(f"PRAGMA journal_size_limit={JOURNAL_LIMIT}").fetchall()
        except sqlite3.DatabaseError as e:
            if _code(e) in _CORRUPT or _code(e) == 10:  # 10: SQLITE_IOERR, a read the card cannot do
                raise _Corrupt(f"cannot be read as a database ({e})") from e
            raise

    @staticmethod
    def _create(conn: sqlite3.Connection) -> None:
        # auto_vacuum must be chosen before the first table exists; INCREMENTAL lets
        # prune() give freed pages back to the file system.
        conn.execute("PRAGMA auto_vacuum=INCREMENTAL")
        conn.execute("PRAGMA journal_mode=WAL").fetchall()
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("BEGIN IMMEDIATE")
        try:
            for stmt in SCHEMA.split(";") + [STATE_SINCE]:  # not executescript(): it would COMMIT on its own
                if stmt.strip():
                    conn.execute(stmt)
            conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
            conn.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            raise

    def _move_aside(self, problem: str) -> None:
        """Rename the bad file (and its WAL) to ``<name>.corrupt-<epoch>``; one warning."""
        stamp = int(self._clock())
        aside = self.path.with_name(f"{self.path.name}.corrupt-{stamp}")
        n = 1
        while os.path.lexists(aside):
            aside = self.path.with_name(f"{self.path.name}.corrupt-{stamp}.{n}")
            n += 1
        try:
            os.replace(self.path, aside)
            # The WAL travels with it (a stale WAL next to a new database would be
            # replayed into it); the -shm index is rebuilt from the WAL.
            with contextlib.suppress(FileNotFoundError):
                os.replace(f"{self.path}-wal", f"{aside}-wal")
            with contextlib.suppress(FileNotFoundError):
                os.unlink(f"{self.path}-shm")
        except OSError as e:
            log.warning("event database %s %s and cannot be moved aside (%s); events go out "
                        "without durability", self.path, problem, e.strerror or e)
            raise StoreError(f"cannot move {self.path} aside: {e}") from e
        fsync_dir(self.path.parent)
        log.warning("event database %s %s; moved aside to %s and started a new one "
                    "(its history and undelivered events are not carried over)", self.path, problem, aside.name)

    # -- error handling --------------------------------------------------------------

    def _failed(self, episode: Episode, what: str, e: BaseException) -> StoreError:
        """Log once per episode; the StoreError to raise."""
        if isinstance(e, StoreError):
            return e
        if isinstance(e, sqlite3.Error):
            kind = getattr(e, "sqlite_errorname", None) or type(e).__name__
        elif isinstance(e, OSError):
            kind = f"errno {e.errno}"
        else:
            kind = type(e).__name__
        if episode.fail(kind):
            log.warning("event database %s: cannot %s (%s); events go out without durability "
                        "until it works again", self.path, what, e)
        return StoreError(f"{what}: {e}")

    @contextlib.contextmanager
    def _use(self, what: str, write: bool) -> Iterator[sqlite3.Connection]:
        """The connection under the lock; sqlite errors become a StoreError (logged once
        per episode); corruption found while running moves the file aside."""
        episode = self._write_ep if write else self._read_ep
        with self._lock:
            conn = self._conn
            if conn is None:
                raise self._failed(episode, what, StoreError("the event database is not open"))
            try:
                if write:
                    conn.execute("BEGIN IMMEDIATE")
                yield conn
                if write:
                    conn.execute("COMMIT")
            except BaseException as e:
                if conn.in_transaction:
                    with contextlib.suppress(sqlite3.Error):
                        conn.execute("ROLLBACK")
                if not isinstance(e, sqlite3.Error):
                    raise
                if _code(e) in _CORRUPT:
                    self._recover(e)
                raise self._failed(episode, what, e) from e
            failures = episode.ok()
            if failures:
                log.info("event database %s works again after %d failures", self.path, failures)

    def _recover(self, e: sqlite3.Error) -> None:
        with contextlib.suppress(sqlite3.Error):
            self._conn.close()  # type: ignore[union-attr]
        self._conn = None
        with contextlib.suppress(StoreError):
            self._move_aside(f"is corrupt ({e})")
            self.open()

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
            rows = conn.execute(f"{_SELECT} WHERE delivered = 0 AND id > ? ORDER BY id LIMIT ?",
                                (int(after), limit)).fetchall()
        return [_event(r) for r in rows]

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
        sql = _SELECT + (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY at DESC, id DESC LIMIT ?"
        args.append(max(0, min(int(limit), MAX_LIMIT)))
        with self._use("read the history", write=False) as conn:
            rows = conn.execute(sql, args).fetchall()
        return [_event(r) for r in rows]

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

    def close(self) -> None:
        """Close the connection (SQLite checkpoints the WAL into the file)."""
        with self._lock:
            if self._conn is not None:
                with contextlib.suppress(sqlite3.Error):
                    self._conn.close()
                self._conn = None
