"""Log trouble once per episode, not once per frame (pure bookkeeping)."""

from __future__ import annotations


class Episode:
    """Tracks one source of trouble (the API, a camera, the broker).

    ``fail(kind)`` returns True when the caller should log: at the start of an
    episode, and the first time each other kind of trouble shows up within it
    (500s then 429s: two lines; 500/timeout flapping for an hour: still two).
    ``ok()`` ends the episode and returns how many failures it had (0 if none).
    """

    def __init__(self) -> None:
        self.kind: str | None = None
        self.failures = 0
        self._logged: set[str] = set()

    @property
    def active(self) -> bool:
        return self.kind is not None

    def fail(self, kind: str) -> bool:
        self.failures += 1
        self.kind = kind
        if kind in self._logged:
            return False
        self._logged.add(kind)
        return True

    def ok(self) -> int:
        ended = self.failures if self.active else 0
        self.kind, self.failures = None, 0
        self._logged.clear()
        return ended


class Throttle:
    """At most one log line per ``interval`` seconds for a kind of trouble that has
    no end to wait for (bad control messages from anyone on the broker); the lines
    in between are counted and the next line says how many there were."""

    def __init__(self, interval: float = 60.0):
        self.interval = interval
        self.suppressed = 0
        self._last = float("-inf")

    def allow(self, now: float) -> int | None:
        """None: do not log (counted). Else log, mentioning the returned count of lines left out."""
        if now - self._last < self.interval:
            self.suppressed += 1
            return None
        self._last = now
        left_out, self.suppressed = self.suppressed, 0
        return left_out
