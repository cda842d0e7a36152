"""The upload queue's database file (``uploads.db`` in the state directory): its
schema, the checks a file must pass, what an item is, and moving a bad file aside.

The same rules as the event database (``eventdb.py``, whose helpers are reused):
a file that is not a usable queue of ours (not a database, a failed
``quick_check``, a schema we do not know, not a regular file, not writable) is
:class:`~.eventdb.Corrupt`; the queue moves it aside (its WAL along with it, ONE
warning) and starts empty: the queued frames are lost, the daemon is not.  The
file is created with mode 0600 (the frames are pictures of the user's home); its
WAL and index inherit that mode from it (SQLite gives them the database's).

The JPEGs are in a table of their own, so that counting a failed try (an UPDATE
of the item's row) never rewrites a few hundred KB of picture on the SD card.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from ..strenum import StrEnum
from .eventdb import CORRUPT_CODES, JOURNAL_LIMIT, Corrupt, StoreError, inspect, open_checked, rename_aside, sqlite_code

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
MAX_JPEG = 4 * 1024 * 1024  # bytes of one picture (a 1280-px JPEG at quality 90 is a few hundred KB)
MAX_METADATA = 16 * 1024  # bytes of one item's metadata as compact JSON
MAX_NAME = 200  # chars of a camera, reason, label or batch name
MAX_TAG = 100  # chars of one tag
MAX_TAGS = 20  # tags of one item
ITEM_OVERHEAD = 4096  # bytes counted per item beyond its payload: its row, the last page of its blob

SCHEMA = """
CREATE TABLE items (
    id INTEGER PRIMARY KEY AUTOINCREMENT,  -- the queue's order, never reused (AUTOINCREMENT)
    camera TEXT NOT NULL,
    reason TEXT NOT NULL,
    label TEXT,
    label_source TEXT NOT NULL CHECK (label_source IN ('model', 'person')),
    metadata TEXT NOT NULL,                -- a JSON object
    tags TEXT NOT NULL,                    -- a JSON array of strings
    batch TEXT NOT NULL,
    captured_at REAL NOT NULL,             -- epoch s
    queued_at REAL NOT NULL,               -- epoch s
    size INTEGER NOT NULL,                 -- bytes counted against max_mb
    attempts INTEGER NOT NULL DEFAULT 0,   -- failed tries so far
    last_error TEXT                        -- of the last failed try (bounded, redacted)
);
CREATE TABLE jpegs (
    item_id INTEGER PRIMARY KEY,           -- = items.id, deleted with its item
    jpeg BLOB NOT NULL
)
"""
COLUMNS = {
    "items": ["id", "camera", "reason", "label", "label_source", "metadata", "tags", "batch",
              "captured_at", "queued_at", "size", "attempts", "last_error"],
    "jpegs": ["item_id", "jpeg"],
}


class LabelSource(StrEnum):
    """Whose label an item carries: the model's guess (uploaded as a prediction for the
    user to review) or a person's (uploaded as the label)."""
    MODEL = "model"
    PERSON = "person"


@dataclass(frozen=True)
class UploadItem:
    """One frame to send to the dataset, as the sampler hands it over."""
    camera: str
    reason: str  # why it was sampled (the sampler's word: uncertain, overruled, change, ...)
    jpeg: bytes = field(repr=False)
    captured_at: float
    batch: str
    label: str | None = None  # a class name, or None: uploaded without a label
    label_source: LabelSource = LabelSource.MODEL
    metadata: Mapping[str, Any] = field(default_factory=dict)
    tags: tuple[str, ...] = ()

    def encoded(self) -> tuple[str, str, int]:
        """``(metadata JSON, tags JSON, size counted against max_mb)``; ValueError
        when anything is out of bounds (a caller bug: nothing is stored)."""
        for name in ("camera", "reason", "batch"):
            _check_name(name, getattr(self, name))
        if self.label is not None:
            _check_name("label", self.label)
        LabelSource(self.label_source)  # ValueError for anything else
        if not isinstance(self.jpeg, (bytes, bytearray, memoryview)) or bytes(self.jpeg[:2]) != b"\xff\xd8":
            raise ValueError("jpeg is not a JPEG")
        if len(self.jpeg) > MAX_JPEG:
            raise ValueError(f"jpeg is {len(self.jpeg)} bytes, more than {MAX_JPEG}")
        if not isinstance(self.captured_at, (int, float)) or not math.isfinite(self.captured_at):
            raise ValueError(f"captured_at must be a finite number, not {self.captured_at!r}")
        if not isinstance(self.metadata, Mapping):
            raise ValueError("metadata must be a mapping")
        try:
            meta = json.dumps(dict(self.metadata), allow_nan=False, sort_keys=True, separators=(",", ":"))
        except (TypeError, ValueError, RecursionError) as e:
            raise ValueError(f"metadata cannot be encoded as JSON ({e})") from None
        meta_bytes = len(meta.encode("utf-8"))
        if meta_bytes > MAX_METADATA:
            raise ValueError(f"metadata is more than {MAX_METADATA} bytes as JSON")
        if not isinstance(self.tags, (tuple, list)) or len(self.tags) > MAX_TAGS:
            raise ValueError(f"tags must be a tuple of at most {MAX_TAGS} strings")
        for t in self.tags:
            _check_name("tag", t, MAX_TAG)
        tags = json.dumps(list(self.tags), separators=(",", ":"))  # ASCII (non-ASCII is escaped)
        names = sum(len(s.encode("utf-8")) for s in (self.camera, self.reason, self.batch, self.label or ""))
        return meta, tags, len(self.jpeg) + meta_bytes + len(tags) + names + ITEM_OVERHEAD


def _check_name(what: str, value: Any, limit: int = MAX_NAME) -> None:
    if not isinstance(value, str) or not value or len(value) > limit:
        raise ValueError(f"{what} must be a string of 1 to {limit} characters")


@dataclass(frozen=True)
class QueuedItem:
    """An item in the queue, with its id (the queue's order) and its failed tries."""
    id: int
    item: UploadItem
    queued_at: float
    attempts: int
    last_error: str | None


SELECT = ("SELECT i.id, i.camera, i.reason, i.label, i.label_source, i.metadata, i.tags, i.batch, "
          "i.captured_at, i.queued_at, i.attempts, i.last_error, j.jpeg "
          "FROM items i JOIN jpegs j ON j.item_id = i.id")


def queued_from_row(row: tuple[Any, ...]) -> QueuedItem:
    (iid, camera, reason, label, source, meta, tags, batch, captured_at, queued_at, attempts,
     last_error, jpeg) = row
    item = UploadItem(camera=camera, reason=reason, jpeg=bytes(jpeg), captured_at=captured_at, batch=batch,
                      label=label, label_source=LabelSource(source), metadata=json.loads(meta),
                      tags=tuple(json.loads(tags)))
    return QueuedItem(iid, item, queued_at, attempts, last_error)


def connect(path: Path) -> sqlite3.Connection:
    """A checked connection to a file of mode 0600, or Corrupt (the file is not
    usable), sqlite3.Error / OSError."""
    return open_checked(path, check, private=True)


def check(conn: sqlite3.Connection) -> None:
    """Check the file, create the schema in an empty one, and set the connection's
    durability (WAL, synchronous=FULL: a commit is on disk when it returns)."""
    try:
        version, tables = inspect(conn)
        if version == 0 and not tables:
            create(conn)
        elif version != SCHEMA_VERSION:
            raise Corrupt(f"has schema version {version}, not {SCHEMA_VERSION}")
        else:
            for table, cols in COLUMNS.items():
                have = [r[1] for r in conn.execute(f"PRAGMA table_info({table})")]
                if have != cols:
                    raise Corrupt(f"has an unexpected table {table!r} ({', '.join(have) or 'missing'})")
        conn.execute("PRAGMA journal_mode=WAL").fetchall()
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute(f"PRAGMA journal_size_limit={JOURNAL_LIMIT}").fetchall()
    except sqlite3.DatabaseError as e:
        if sqlite_code(e) in CORRUPT_CODES or sqlite_code(e) == 10:  # 10: SQLITE_IOERR
            raise Corrupt(f"cannot be read as a database ({e})") from e
        raise


def create(conn: sqlite3.Connection) -> None:
    conn.execute("PRAGMA auto_vacuum=INCREMENTAL")  # before the first table: frees pages when emptied
    conn.execute("PRAGMA journal_mode=WAL").fetchall()
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("BEGIN IMMEDIATE")
    try:
        for stmt in SCHEMA.split(";"):
            if stmt.strip():
                conn.execute(stmt)
        conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        conn.execute("COMMIT")
    except BaseException:
        with contextlib.suppress(sqlite3.Error):
            conn.execute("ROLLBACK")
        raise


def move_aside(path: Path, problem: str, now: float) -> None:
    """The bad queue file moved aside (``eventdb.rename_aside``); one warning.
    StoreError (also one warning) when it cannot be moved."""
    try:
        aside = rename_aside(path, now)
    except OSError as e:
        log.warning("upload queue %s %s and cannot be moved aside (%s); frames sampled for training "
                    "are not kept", path, problem, e.strerror or e)
        raise StoreError(f"cannot move {path} aside: {e}") from e
    log.warning("upload queue %s %s; moved aside to %s and started an empty one (the frames "
                "waiting in it are not carried over)", path, problem, aside.name)
