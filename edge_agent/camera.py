"""One camera's runtime state, owned by the event loop (no I/O here)."""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .annotate import annotate, label_for
from .admission import Admission
from .capture import CaptureWorker
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
class CameraRuntime:
    cfg: CameraConfig
    admission: Admission
    debouncer: Debouncer
    worker: CaptureWorker | None = None
    online: bool = False
    ended: bool = False
    last_error: str | None = None
    requests_ok: int = 0
    requests_failed: int = 0
    failures: int = 0  # camera: failed opens, reads and stalls since start
    episode: Episode = field(default_factory=Episode)
    order_tail: asyncio.Future[None] | None = None
    last_status: StatusMessage | None = None
    last_status_at: float = 0.0
    offline_at: float = 0.0  # monotonic time it was last marked offline
    latest: Latest | None = None
    snapshot: bytes | None = None  # the last snapshot published (retained)
    stale_since: float | None = None  # epoch s: the state is marked stale (a needed check failing since)
    previous_class: str | None = None  # the last event's class (for events that could not be stored)
    opened: bool = False  # the first open attempt is over (online or offline): status may be published
    unclassified: np.ndarray | None = None  # a frame sent whose classification failed (before any succeeded)

    def unclassified_jpeg(self) -> bytes:
        """That frame, labelled, for the page while nothing is classified yet."""
        assert self.unclassified is not None
        return annotate(self.unclassified, "not classified: API failing", self.cfg.region)
    latency: Window = field(default_factory=Window)
    rate_in: Rate = field(default_factory=Rate)
    rate_out: Rate = field(default_factory=Rate)
    # the last results, (captured_at epoch s, top class, confidence), for the page's confidence plot
    recent: deque[tuple[float, str, float]] = field(default_factory=lambda: deque(maxlen=RECENT_RESULTS))

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
        return StateMessage(self.debouncer.state, self.latest.result.predictions if self.latest else None,
                            self.stale_since)

    def counters(self) -> dict[str, int]:
        w = self.worker
        return {
            "captured": w.frames_captured if w else 0,
            "dropped": (w.frames_dropped if w else 0) + self.admission.deferred,
            "sent": w.frames_sent if w else 0,
            "unchanged": self.admission.unchanged,
        }
