"""One SQLite file of the agent's (the event store, the upload queue): how it is
opened, used and recovered, written once.

Design rule: a bad file never stops the agent. At open, a file that is not ours
or is damaged is moved aside (one warning) and a fresh one started; StoreError
only when no file can be had at all (the folder is missing, read-only or full),
and the caller carries on without it. While running, every use holds the lock,
runs in a transaction when it writes, turns sqlite errors into a StoreError
logged once per episode (reads and writes apart), and corruption found then
moves the file aside too. Subclasses say how the file is named in the log, what
is lost while it fails, how it is connected and moved aside, and what they read
once it is open.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import threading
from pathlib import Path
from typing import Callable, Iterator

from ..episode import Episode
from .eventdb import CORRUPT_CODES, Corrupt, StoreError, sqlite_code, transaction


class SqliteFile:
    NAME = "database"  # how log lines name the file: "event database", "upload queue"
    LOSS = "nothing is kept"  # what is lost while it fails

    def __init__(self, path: Path, clock: Callable[[], float]):
        self.path = Path(path)
        self._clock = clock
        self._lock = threading.RLock()
        self._conn: sqlite3.Connection | None = None
        self._write_ep = Episode()
        self._read_ep = Episode()
        self._log = logging.getLogger(type(self).__module__)  # the lines read as the subclass's

    # -- what a subclass says ------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        """Open (or create) the file; Corrupt for a file that is not ours or damaged."""
        raise NotImplementedError

    def _move_aside(self, problem: str) -> None:
        """The bad file renamed away, with the subclass's own warning."""
        raise NotImplementedError

    def _opened(self, conn: sqlite3.Connection) -> None:
        """Read what is kept in memory once the file is open (counts, sizes)."""

    def _forget(self) -> None:
        """The file is gone (moved aside): drop what was read of it."""

    # -- the file --------------------------------------------------------------------------

    def open(self) -> None:
        """Create or open the file. Never raises for a bad file (moved aside, one
        warning, a fresh one); StoreError only when no file can be had at all."""
        with self._lock:
            if self._conn is not None:
                return
            try:
                self._conn = self._connect()
            except Corrupt as e:
                self._move_aside(str(e))
                try:
                    self._conn = self._connect()
                except (Corrupt, sqlite3.Error, OSError) as e2:
                    raise self._failed(self._write_ep, "open", e2) from e2
            except (sqlite3.Error, OSError) as e:
                raise self._failed(self._write_ep, "open", e) from e
            try:
                self._opened(self._conn)
            except sqlite3.Error as e:
                self.close()
                raise self._failed(self._write_ep, "open", e) from e

    def close(self) -> None:
        """Close the connection (SQLite checkpoints the WAL into the file)."""
        with self._lock:
            if self._conn is not None:
                with contextlib.suppress(sqlite3.Error):
                    self._conn.close()
                self._conn = None

    def _failed(self, episode: Episode, what: str, e: BaseException) -> StoreError:
        """Log once per episode; the StoreError to raise."""
        if isinstance(e, StoreError):
            return e
        if isinstance(e, sqlite3.Error):
            kind = getattr(e, "sqlite_errorname", None) or type(e).__name__  # Python 3.11+
        elif isinstance(e, OSError):
            kind = f"errno {e.errno}"
        else:
            kind = type(e).__name__
        if episode.fail(kind):
            self._log.warning("%s %s: cannot %s (%s); %s until it works again", self.NAME, self.path, what, e,
                              self.LOSS)
        return StoreError(f"{what}: {e}")

    @contextlib.contextmanager
    def _use(self, what: str, write: bool) -> Iterator[sqlite3.Connection]:
        """The connection under the lock, in a transaction when writing."""
        episode = self._write_ep if write else self._read_ep
        with self._lock:
            conn = self._conn
            if conn is None:
                raise self._failed(episode, what, StoreError(f"the {self.NAME} is not open"))
            try:
                with transaction(conn, write):
                    yield conn
            except sqlite3.Error as e:
                if sqlite_code(e) in CORRUPT_CODES:
                    self._recover(e)
                raise self._failed(episode, what, e) from e
            failures = episode.ok()
            if failures:
                self._log.info("%s %s works again after %d failures", self.NAME, self.path, failures)

    def _recover(self, e: sqlite3.Error) -> None:
        self.close()
        self._forget()
        with contextlib.suppress(StoreError):
            self._move_aside(f"is corrupt ({e})")
            self.open()
