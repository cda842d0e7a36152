"""How many training frames may be taken, and which are near-duplicates (pure logic, time passed in).

**Limits.** ``per_hour`` and ``per_day`` per camera (defaults 10 and 50), and
optionally in total over all cameras (None: no total). The hour is a rolling 60
minutes (a take counts while it is less than 3600 s old); the day is the local
calendar day, as the API budget's (``budget.py``): it never steps back by one day
(a Pi without a clock may boot shortly before its last shutdown until NTP sets
it), and a clock more than a day behind is taken as the truth. A take stamped
more than an hour ahead of now (the clock was far ahead) no longer counts.

**Near-duplicates.** A candidate whose picture matches one taken in the last hour
by the same camera for the same reason and class is skipped. A picture is kept as
a :class:`Fingerprint`: the change gate's 64x48 thumbnail averaged down to a
16x12 luma grid and 8x6 Cr and Cb grids (288 bytes). Two differ when more than
:data:`DUPLICATE_SHARE` of the grid's cells differ by more than
:data:`CELL_DIFF` levels in luma or in either chroma channel. A cell averages
~400 pixels of a 320x240 frame, so sensor noise (sigma 4-8), JPEG noise, a
blinking LED and a ticking clock overlay stay far below that, while a person, a
door opening, a colour change or a light change move many cells by tens of
levels (``tests/test_dataset_sampling.py`` measures both on ``tools/scenes.py``).

**Across restarts.** Everything is kept in a JSON document through an injected
store (``storage.files.JsonFile``), bounded whatever the history: per camera the
day's count, the takes of the last hour (at most the hourly limit) and at most
:data:`PRINTS_KEPT` fingerprints; at most :data:`CAMERAS_KEPT` cameras (the
longest idle goes first). :meth:`Limits.take` and :meth:`Limits.taken` change
the counts in memory only (safe to call on the loop); :meth:`Limits.save`
writes them (blocking: call it off the loop) and must be called *before* the
sample is queued, so a crash can only over-count, never let a limit be passed.
"""

from __future__ import annotations

import base64
import logging
import math
import threading
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import cv2
import numpy as np

from ..budget import stepped_back
from ..change.thumbs import Thumb, as_thumb, thumbnails
from ..encode import Region
from ..storage.files import JsonFile
from ..strenum import StrEnum

log = logging.getLogger(__name__)

HOUR = 3600.0
MAX_PER_HOUR = 600  # a limit above this is a configuration mistake (and would grow the state file)
MAX_PER_DAY = 100_000
PRINTS_KEPT = 24  # fingerprints kept per camera (the newest, of the last hour)
CAMERAS_KEPT = 32  # cameras kept in the state (config allows 16; a renamed one's counts linger a day)
MAX_NAME = 200  # characters of a camera or class name kept

GRID = (16, 12)  # luma grid, width x height: a cell is 4x4 thumbnail pixels of a 64x48 thumbnail
CHROMA_GRID = (8, 6)
CELL_DIFF = 16.0
"""Levels (0..255) by which a cell's luma, Cr or Cb must move to differ. Noise in a
cell average is below 1; a 2-px shake of a strong edge in a 320x240 frame moves a
cell by ~11; a dark person on a lit wall moves it by 40+."""
DUPLICATE_SHARE = 0.02
"""A candidate is a duplicate when at most this share of cells differ (luma or
chroma): at most 3 of the 192 luma cells, 0 of the 48 chroma cells."""


class Admit(StrEnum):
    """What the limits say to a candidate (a metric's ``outcome``)."""

    OK = "ok"
    CAMERA_HOUR = "camera_hour"
    CAMERA_DAY = "camera_day"
    TOTAL_HOUR = "total_hour"
    TOTAL_DAY = "total_day"
    DUPLICATE = "duplicate"


@dataclass(frozen=True)
class Fingerprint:
    """A picture's compact likeness: 16x12 luma, and 8x6 Cr and Cb from a colour source."""

    luma: bytes
    chroma: bytes = b""  # Cr then Cb; empty: a greyscale source

    @classmethod
    def of(cls, thumb: Thumb | np.ndarray) -> "Fingerprint":
        """From the change gate's thumbnail (a :class:`Thumb`, or a bare luma one)."""
        t = as_thumb(thumb)
        luma = cv2.resize(t.grey, GRID, interpolation=cv2.INTER_AREA)
        chroma = b""
        if t.has_colour:
            assert t.cr is not None and t.cb is not None
            chroma = b"".join(cv2.resize(c, CHROMA_GRID, interpolation=cv2.INTER_AREA).tobytes()
                              for c in (t.cr, t.cb))
        return cls(luma.tobytes(), chroma)

    @classmethod
    def of_image(cls, image: np.ndarray, region: Region | None = None) -> "Fingerprint":
        """From a frame (BGR or grey, any size: the preview will do), ``region`` applied."""
        return cls.of(thumbnails(image, region))

    def differs(self, other: "Fingerprint") -> float:
        """The share of cells that differ (0..1); 1.0 when the two cannot be compared."""
        if len(self.luma) != len(other.luma) or len(self.chroma) != len(other.chroma):
            return 1.0
        a, b = np.frombuffer(self.luma, np.uint8), np.frombuffer(other.luma, np.uint8)
        share = float(np.mean(np.abs(a.astype(np.int16) - b) > CELL_DIFF))
        if self.chroma:
            ca = np.frombuffer(self.chroma, np.uint8).astype(np.int16).reshape(2, -1)
            cb = np.frombuffer(other.chroma, np.uint8).reshape(2, -1)
            share = max(share, float(np.mean((np.abs(ca - cb) > CELL_DIFF).any(axis=0))))
        return share

    def matches(self, other: "Fingerprint") -> bool:
        return self.differs(other) <= DUPLICATE_SHARE

    def text(self) -> str:
        return base64.b64encode(self.luma + self.chroma).decode("ascii")

    @classmethod
    def from_text(cls, text: str) -> "Fingerprint":
        raw = base64.b64decode(text.encode("ascii"), validate=True)
        n = GRID[0] * GRID[1]
        if len(raw) not in (n, n + 2 * CHROMA_GRID[0] * CHROMA_GRID[1]):
            raise ValueError("fingerprint of the wrong size")
        return cls(raw[:n], raw[n:])


@dataclass(frozen=True)
class _Print:
    at: float
    reason: str
    cls: str
    print: Fingerprint


@dataclass
class _Cam:
    day: date | None = None
    count: int = 0  # takes on ``day``
    hour: list[float] = field(default_factory=list)  # take times (ceil'd: only ever counted longer)
    prints: list[_Print] = field(default_factory=list)
    last: float = 0.0  # the newest take


class Limits:
    """Per-camera and total limits, and near-duplicate skipping; thread safe.

    ``check`` says whether a candidate may be taken, ``take`` checks and counts it
    at once (no window between the two for another candidate), ``taken`` counts one
    unchecked (an on-demand request the caller lets through), ``save`` writes.
    ``allow(camera, now)`` then ``taken(camera, now)`` is the same as ``take`` for a
    single caller.
    """

    def __init__(self, per_hour: int = 10, per_day: int = 50, *, total_per_hour: int | None = None,
                 total_per_day: int | None = None, store: JsonFile | None = None):
        for name, value, top in (("per_hour", per_hour, MAX_PER_HOUR), ("per_day", per_day, MAX_PER_DAY),
                                 ("total_per_hour", total_per_hour, MAX_PER_HOUR),
                                 ("total_per_day", total_per_day, MAX_PER_DAY)):
            if value is not None and not 0 <= value <= top:
                raise ValueError(f"{name} must be within 0..{top}, not {value!r}")
        self.per_hour, self.per_day = per_hour, per_day
        self.total_per_hour, self.total_per_day = total_per_hour, total_per_day
        self._hour_kept = max(1, per_hour, total_per_hour or 0)
        self._store = store
        self._lock = threading.Lock()
        self._io = threading.Lock()
        self._cams: dict[str, _Cam] = {}
        self._latest: date | None = None  # the latest day seen (the day never steps back by one)
        self._seq = self._saved = 0
        if store is not None:
            self._load(store.load())

    # -- counting ---------------------------------------------------------------------------

    def _today(self, now: float) -> date:
        d = date.fromtimestamp(now)
        if stepped_back(d, self._latest):
            return self._latest
        self._latest = d
        return d

    @staticmethod
    def _recent(t: float, now: float) -> bool:
        return abs(now - t) < HOUR

    def _prune(self, cam: _Cam, now: float) -> None:
        cam.hour = [t for t in cam.hour if self._recent(t, now)]
        cam.prints = [p for p in cam.prints if self._recent(p.at, now)]

    def _counts(self, camera: str, now: float) -> tuple[int, int, int, int]:
        """This camera's takes in the hour and today, and everyone's."""
        today = self._today(now)
        hour = day = total_hour = total_day = 0
        for name, cam in self._cams.items():
            self._prune(cam, now)
            h, d = len(cam.hour), cam.count if cam.day == today else 0
            total_hour, total_day = total_hour + h, total_day + d
            if name == camera:
                hour, day = h, d
        return hour, day, total_hour, total_day

    def _check(self, camera: str, now: float, reason: str | None, cls: str | None,
               fingerprint: Fingerprint | None) -> Admit:
        hour, day, total_hour, total_day = self._counts(camera, now)
        if hour >= self.per_hour:
            return Admit.CAMERA_HOUR
        if day >= self.per_day:
            return Admit.CAMERA_DAY
        if self.total_per_hour is not None and total_hour >= self.total_per_hour:
            return Admit.TOTAL_HOUR
        if self.total_per_day is not None and total_day >= self.total_per_day:
            return Admit.TOTAL_DAY
        cam = self._cams.get(camera)
        if fingerprint is not None and cam is not None:
            for p in cam.prints:
                if p.reason == str(reason) and p.cls == (cls or "")[:MAX_NAME] and p.print.matches(fingerprint):
                    return Admit.DUPLICATE
        return Admit.OK

    def _record(self, camera: str, now: float, reason: str | None, cls: str | None,
                fingerprint: Fingerprint | None) -> None:
        today = self._today(now)
        cam = self._cams.get(camera)
        if cam is None:
            if len(self._cams) >= CAMERAS_KEPT:
                del self._cams[min(self._cams, key=lambda n: self._cams[n].last)]
            cam = self._cams[camera] = _Cam()
        if cam.day != today:
            cam.day, cam.count = today, 0
        cam.count += 1
        cam.hour = (cam.hour + [float(math.ceil(now))])[-self._hour_kept:]
        if fingerprint is not None:
            cam.prints = (cam.prints + [_Print(now, str(reason), (cls or "")[:MAX_NAME], fingerprint)])[-PRINTS_KEPT:]
        cam.last = max(cam.last, now)
        self._seq += 1

    # -- API --------------------------------------------------------------------------------

    def check(self, camera: str, now: float, *, reason: str | None = None, cls: str | None = None,
              fingerprint: Fingerprint | None = None) -> Admit:
        """May a candidate be taken now? Nothing is counted. Without a fingerprint
        there is no duplicate check."""
        with self._lock:
            return self._check(camera, now, reason, cls, fingerprint)

    def allow(self, camera: str, now: float) -> bool:
        """The limits alone (no duplicate check) allow one more take now."""
        return self.check(camera, now) is Admit.OK

    def take(self, camera: str, now: float, *, reason: str | None = None, cls: str | None = None,
             fingerprint: Fingerprint | None = None) -> Admit:
        """Check and, when OK, count the take (in memory: :meth:`save` writes it)."""
        with self._lock:
            verdict = self._check(camera, now, reason, cls, fingerprint)
            if verdict is Admit.OK:
                self._record(camera, now, reason, cls, fingerprint)
            return verdict

    def taken(self, camera: str, now: float, *, reason: str | None = None, cls: str | None = None,
              fingerprint: Fingerprint | None = None) -> None:
        """Count one take, allowed or not (in memory: :meth:`save` writes it)."""
        with self._lock:
            self._record(camera, now, reason, cls, fingerprint)

    def counts(self, camera: str, now: float) -> tuple[int, int]:
        """This camera's takes in the last hour and today (for status)."""
        with self._lock:
            hour, day, _, _ = self._counts(camera, now)
            return hour, day

    def save(self) -> bool:
        """Write the counts if they changed since the last save (blocking I/O: call it
        off the loop, before the sample is queued). False: the store could not write."""
        if self._store is None:
            return True
        with self._io:
            with self._lock:
                if self._saved >= self._seq:
                    return True
                doc, seq = self._doc(), self._seq
            ok = self._store.save(doc)
            if ok:
                self._saved = seq
            return ok

    # -- the document ---------------------------------------------------------------------

    def _doc(self) -> dict[str, Any]:
        return {"v": 1, "cameras": {
            name: {"day": cam.day.isoformat() if cam.day else None, "count": cam.count, "hour": cam.hour,
                   "last": cam.last,
                   "prints": [[p.at, p.reason, p.cls, p.print.text()] for p in cam.prints]}
            for name, cam in self._cams.items()}}

    def _load(self, doc: dict[str, Any]) -> None:
        cams = doc.get("cameras")
        if not doc:
            return
        if not isinstance(cams, dict):
            log.warning("dataset limits state has no cameras; counting from zero")
            return
        bad = 0
        for name, raw in list(cams.items())[:CAMERAS_KEPT]:
            try:
                self._cams[str(name)] = self._cam(raw)
            except (KeyError, TypeError, ValueError, AttributeError):
                bad += 1
        if bad:
            log.warning("dataset limits state: %d camera(s) not usable; counting them from zero", bad)
        days = [c.day for c in self._cams.values() if c.day is not None]
        if days:
            self._latest = max(days)

    def _cam(self, raw: dict[str, Any]) -> _Cam:
        def number(v: Any) -> float:
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise ValueError("not a number")
            return float(v)

        day = None if raw["day"] is None else date.fromisoformat(raw["day"])
        count = int(number(raw["count"]))
        if count < 0:
            raise ValueError("negative count")
        hour = [number(t) for t in raw["hour"]][-self._hour_kept:]
        prints = []
        for at, reason, cls, text in raw["prints"][-PRINTS_KEPT:]:
            if not isinstance(reason, str) or not isinstance(cls, str):
                raise ValueError("not a string")
            prints.append(_Print(number(at), reason[:MAX_NAME], cls[:MAX_NAME], Fingerprint.from_text(text)))
        return _Cam(day, count, hour, prints, number(raw.get("last", 0.0)))
