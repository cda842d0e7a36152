"""Turn a stream of classifications into a debounced state (pure).

A result below ``min_confidence`` never changes the state and breaks a run of
agreeing results. A new class becomes the state after ``confirm`` consecutive
confident results agree on it.
"""

from __future__ import annotations

from dataclasses import dataclass

from .config import DecideConfig


@dataclass(frozen=True)
class State:
    cls: str
    confidence: float
    since: float  # epoch seconds of the capture of the first agreeing frame


class Debouncer:
    def __init__(self, cfg: DecideConfig):
        self.cfg = cfg
        self.state: State | None = None
        self._candidate: str | None = None
        self._count = 0
        self._first_ts = 0.0

    @property
    def pending(self) -> bool:
        """A new class has started to agree but is not confirmed yet."""
        return self._candidate is not None

    def feed(self, cls: str, confidence: float, captured_at: float) -> State | None:
        """Apply one result; return the new state if it changed, else None."""
        if confidence < self.cfg.min_confidence:
            self._candidate, self._count = None, 0
            return None
        if self.state is not None and cls == self.state.cls:
            self._candidate, self._count = None, 0
            return None
        if cls != self._candidate:
            self._candidate, self._count, self._first_ts = cls, 0, captured_at
        self._count += 1
        if self._count < self.cfg.confirm:
            return None
        self.state = State(cls=cls, confidence=confidence, since=self._first_ts)
        self._candidate, self._count = None, 0
        return self.state
