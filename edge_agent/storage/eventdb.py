"""Opening the event database: its schema, the checks a file must pass, and
moving a bad file aside.

A file that is not a usable database of ours (not a database, a failed
``quick_check``, a schema we do not know, not a regular file, not writable) is
:class:`Corrupt`; the store then moves it aside (:func:`move_aside`, its WAL
along with it, ONE warning) and starts a fresh one: history is lost, the daemon
is not.  The schema version is in ``PRAGMA user_version``; a database of an
earlier version is brought up to date when opened, in place.

The pieces every SQLite file of the agent's shares live here too, and the upload
queue (``uploaddb.py``) uses them: :class:`StoreError`, :class:`Corrupt` and the
corruption codes, :func:`inspect` (integrity, version, tables), :func:`transaction`
and :func:`rename_aside`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import stat
from pathlib import Path
from typing import Callable, Iterator

from .files import fsync_dir

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
JOURNAL_LIMIT = 4 * 1024 * 1024  # the WAL is truncated back to this after a checkpoint
CACHE_KIB = 256  # SQLite page cache of the connection (its default: 2 MB)

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
# last_state: a database of an earlier version gets it when opened (see check), and an earlier
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
CORRUPT_CODES = {11: "SQLITE_CORRUPT", 26: "SQLITE_NOTADB"}


class StoreError(Exception):
    """The event could not be stored or read (disk full, read-only, I/O error, no
    database).  Already logged once per episode: the caller only counts it and
    carries on without durability (publishes the event anyway)."""


class Corrupt(Exception):
    """The file is not a usable database of ours; the message says why."""


def sqlite_code(e: sqlite3.Error) -> int:
    """The primary result code of an sqlite3 error (0 when it has none)."""
    return (getattr(e, "sqlite_errorcode", None) or 0) & 0xFF


def connect(path: Path) -> sqlite3.Connection:
    """A checked connection to the event database, or Corrupt (the file is not usable),
    sqlite3.Error / OSError."""
    return open_checked(path, check, private=False)


def open_checked(path: Path, check: Callable[[sqlite3.Connection], None], *, private: bool) -> sqlite3.Connection:
    """Any database of the agent's: a regular file we may write (else Corrupt), connected
    and ``check``ed. ``private``: created 0600 here (not by SQLite: its mode is 0644 less
    the umask), and an existing file of ours tightened to 0600."""
    existed = True
    try:
        st = os.stat(path)
    except FileNotFoundError:
        existed = False
        if private:
            os.close(os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600))
    else:
        if not stat.S_ISREG(st.st_mode):
            raise Corrupt("is not a regular file")
        try:  # e.g. left behind by a run as root; EROFS is not the file's fault
            os.close(os.open(path, os.O_RDWR))
        except PermissionError as e:
            raise Corrupt(f"cannot be opened for writing ({e.strerror})") from e
        if private and st.st_mode & 0o077 and st.st_uid == os.geteuid():
            os.chmod(path, 0o600)
    # isolation_level=None: transactions are explicit (BEGIN IMMEDIATE ... COMMIT).
    conn = sqlite3.connect(path, timeout=5.0, isolation_level=None, check_same_thread=False)
    try:
        check(conn)
        if not existed:
            fsync_dir(path.parent)
        return conn
    except BaseException:
        conn.close()
        raise


def inspect(conn: sqlite3.Connection) -> tuple[int, set[str]]:
    """Any database of the agent's: its integrity checked (Corrupt when it fails), then
    its schema version and tables."""
    # SQLite's default page cache is 2 MB, and the integrity check reads every page
    # into it: 256 KiB holds what appends and the history's indexed queries touch
    # (the kernel caches the file all the same).
    conn.execute(f"PRAGMA cache_size = -{CACHE_KIB}")
    rows = conn.execute("PRAGMA quick_check").fetchall()
    if rows != [("ok",)]:
        raise Corrupt(f"fails its integrity check ({'; '.join(str(r[0]) for r in rows[:3])})")
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    tables = {r[0] for r in conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")}
    return version, tables


def check(conn: sqlite3.Connection) -> None:
    """Check the file, create the schema in an empty one or bring an earlier version's
    up to date, and set the connection's durability; Corrupt for a file that is not ours."""
    try:
        version, tables = inspect(conn)
        if version == 0 and not tables:
            create(conn)
        elif version != SCHEMA_VERSION:
            raise Corrupt(f"has schema version {version}, not {SCHEMA_VERSION}")
        else:
            for table, cols in COLUMNS.items():
                if table == "state_since" and table not in tables:
                    continue  # made by a version before it (nothing else differs): added below
                have = [r[1] for r in conn.execute(f"PRAGMA table_info({table})")]
                if have != cols:
                    raise Corrupt(f"has an unexpected table {table!r} ({', '.join(have) or 'missing'})")
            if "state_since" not in tables:
                conn.execute(STATE_SINCE)
        # WAL is remembered in the file; synchronous is per connection: FULL fsyncs
        # the WAL at every commit, so a commit survives a power cut.
        conn.execute("PRAGMA journal_mode=WAL").fetchall()
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute(f"PRAGMA journal_size_limit={JOURNAL_LIMIT}").fetchall()
    except sqlite3.DatabaseError as e:
        if sqlite_code(e) in CORRUPT_CODES or sqlite_code(e) == 10:  # 10: SQLITE_IOERR, a read the card cannot do
            raise Corrupt(f"cannot be read as a database ({e})") from e
        raise


def create(conn: sqlite3.Connection) -> None:
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


@contextlib.contextmanager
def transaction(conn: sqlite3.Connection, write: bool) -> Iterator[sqlite3.Connection]:
    """``BEGIN IMMEDIATE`` ... ``COMMIT`` around a write (a read runs as it is); any
    error rolls back and is raised again. Any database of the agent's."""
    try:
        if write:
            conn.execute("BEGIN IMMEDIATE")
        yield conn
        if write:
            conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
        raise


def rename_aside(path: Path, now: float) -> Path:
    """Rename a bad SQLite file (and its WAL) to ``<name>.corrupt-<epoch>`` and return
    where it went; OSError when it cannot be moved. Any database of the agent's."""
    stamp = int(now)
    aside = path.with_name(f"{path.name}.corrupt-{stamp}")
    n = 1
    while os.path.lexists(aside):
        aside = path.with_name(f"{path.name}.corrupt-{stamp}.{n}")
        n += 1
    os.replace(path, aside)
    # The WAL travels with it (a stale WAL next to a new database would be
    # replayed into it); the -shm index is rebuilt from the WAL.
    with contextlib.suppress(FileNotFoundError):
        os.replace(f"{path}-wal", f"{aside}-wal")
    with contextlib.suppress(FileNotFoundError):
        os.unlink(f"{path}-shm")
    fsync_dir(path.parent)
    return aside


def move_aside(path: Path, problem: str, now: float) -> None:
    """The bad event database moved aside (``rename_aside``); one warning. StoreError
    (also one warning) when it cannot be moved."""
    try:
        aside = rename_aside(path, now)
    except OSError as e:
        log.warning("event database %s %s and cannot be moved aside (%s); events go out "
                    "without durability", path, problem, e.strerror or e)
        raise StoreError(f"cannot move {path} aside: {e}") from e
    log.warning("event database %s %s; moved aside to %s and started a new one "
                "(its history and undelivered events are not carried over)", path, problem, aside.name)
