"""One camera's runtime state, owned by the event loop (no I/O here)."""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Iterable

import numpy as np

from .annotate import annotate, label_for
from .admission import Admission
from .capture import CaptureWorker
from .checking import Why
from .config import CameraConfig
from .decide import Debouncer
from .episode import Episode
from .messages import StateMessage, StatusMessage
from .reply import Classification
from .stats import Rate, Window


RECENT_RESULTS = 120  # results kept per camera for the page's confidence plot


@dataclass
class Latest:
    """The newest classified frame of a camera, for people."""

    seq: int
    preview: np.ndarray
    result: Classification
    captured_at: float
    latency_ms: float
    _jpeg: bytes | None = None

    def jpeg(self, region: Any) -> bytes:
        """Annotated JPEG, drawn once on first use (the page may never ask)."""
        if self._jpeg is None:
            self._jpeg = annotate(self.preview, label_for(self.result.top, self.result.confidence), region)
        return self._jpeg


@dataclass
class CameraHealth:
    """Is the camera up, and what went wrong last (the watch and the calls write it)."""

    online: bool = False
    ended: bool = False  # a file that played to its end
    opened: bool = False  # the first open attempt is over (online or offline): status may be published
    last_error: str | None = None
    failures: int = 0  # camera: failed opens, reads and stalls since start
    episode: Episode = field(default_factory=Episode)
    offline_at: float = 0.0  # monotonic time it was last marked offline


@dataclass
class CameraResults:
    """The newest results and pictures, for people (the page, snapshots)."""

    latest: Latest | None = None
    # the last results, (captured_at epoch s, top class, confidence), for the page's confidence plot
    recent: deque[tuple[float, str, float]] = field(default_factory=lambda: deque(maxlen=RECENT_RESULTS))
    snapshot: bytes | None = None  # the last snapshot published (retained)
    unclassified: np.ndarray | None = None  # a frame sent whose classification failed (before any succeeded)

    def unclassified_jpeg(self, region: Any) -> bytes:
        """That frame, labelled, for the page while nothing is classified yet."""
        assert self.unclassified is not None
        return annotate(self.unclassified, "not classified: API failing", region)


@dataclass
class CameraFigures:
    """Counts and rolling figures of the camera's requests."""

    requests_ok: int = 0
    requests_failed: int = 0
    latency: Window = field(default_factory=Window)
    rate_in: Rate = field(default_factory=Rate)
    rate_out: Rate = field(default_factory=Rate)


@dataclass
class CameraRuntime:
    """One camera on the loop: what it is made of (config, admission, decision,
    capture thread) and its health, results and figures."""

    cfg: CameraConfig
    admission: Admission
    debouncer: Debouncer
    worker: CaptureWorker | None = None
    health: CameraHealth = field(default_factory=CameraHealth)
    results: CameraResults = field(default_factory=CameraResults)
    figures: CameraFigures = field(default_factory=CameraFigures)
    stale_since: float | None = None  # epoch s: the state is marked stale (a needed check failing since)
    stale_reason: Why | None = None  # why (checking.Why): the API, the budget, busy, paused, unsettled
    previous_class: str | None = None  # the last event's class (for events that could not be stored)
    order_tail: asyncio.Future[None] | None = None  # the newest frame in flight (results apply in order)
    applied_seq: int = -1  # the newest frame whose result went through the stages
    last_status: StatusMessage | None = None
    last_status_at: float = 0.0
    snapshot_asked: bool = False  # a snapshot was requested: the capture thread's next one is this camera's

    @classmethod
    def create(cls, cfg: CameraConfig, admission: Admission) -> "CameraRuntime":
        return cls(cfg, admission, Debouncer(cfg.decide))

    @property
    def name(self) -> str:
        return self.cfg.name

    @property
    def enabled(self) -> bool:
        return not self.admission.paused

    @property
    def fps(self) -> float:
        return self.admission.fps

    def state_message(self) -> StateMessage:
        """The decided state as published: with the newest result's predictions, and
        whether it is stale."""
        assert self.debouncer.state is not None
        latest = self.results.latest
        return StateMessage(self.debouncer.state, latest.result.predictions if latest else None,
                            self.stale_since, None if self.stale_reason is None else str(self.stale_reason))

    def counters(self) -> dict[str, int]:
        """This camera's (or view's) counts; frames captured are the camera's, shared by its views."""
        w = self.worker
        tap = w.tap(self.name) if w else None
        return {
            "captured": w.frames_captured if w else 0,
            "dropped": (tap.frames_dropped if tap else 0) + self.admission.deferred,
            "sent": tap.frames_sent if tap else 0,
            "unchanged": self.admission.unchanged,
        }


def by_camera(targets: Iterable[CameraRuntime]) -> dict[str, list[CameraRuntime]]:
    """The targets grouped by the camera they look through, in order: a camera with views
    is its views (``cfg.view_of``), a plain camera itself alone."""
    out: dict[str, list[CameraRuntime]] = {}
    for cam in targets:
        out.setdefault(cam.cfg.view_of or cam.name, []).append(cam)
    return out
