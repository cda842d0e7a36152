"""Log trouble once per episode, not once per frame (pure bookkeeping)."""

from __future__ import annotations


class Episode:
    """Tracks one kind of trouble (API, a camera, the broker).

    ``fail(kind)`` returns True when the caller should log: at the start of an
    episode, or when the kind of trouble changes within it. ``ok()`` returns the
    number of failures of the episode that just ended (0 if none was running).
    """

    def __init__(self) -> None:
        self.kind: str | None = None
        self.failures = 0

    @property
    def active(self) -> bool:
        return self.kind is not None

    def fail(self, kind: str) -> bool:
        self.failures += 1
        changed = kind != self.kind
        self.kind = kind
        return changed

    def ok(self) -> int:
        ended = self.failures if self.active else 0
        self.kind, self.failures = None, 0
        return ended
