"""Which frames to send (pure): at most ``fps`` per second, evenly spaced.

The gate runs on capture timestamps. A frame is taken when its timestamp is
at or after the next slot, less a small tolerance for capture-clock jitter; the
next slot is then one interval after the later of the slot and the frame, so the
long-run rate never exceeds ``fps`` and no two sends are closer than
``interval - tolerance``.  A late frame moves the schedule instead of earning a
burst of catch-up sends.
"""

from __future__ import annotations


class RateGate:
    def __init__(self, fps: float, tolerance: float | None = None):
        if fps <= 0:
            raise ValueError("fps must be > 0")
        self.interval = 1.0 / fps
        # A quarter interval, at most 20 ms: enough for capture jitter at any
        # source rate, small enough that spacing stays >= 3/4 of the interval.
        self.tolerance = min(self.interval / 4, 0.02) if tolerance is None else tolerance
        self._next: float | None = None
        self._last: float | None = None  # when the last frame was taken

    def due(self, ts: float) -> bool:
        return self._next is None or ts >= self._next - self.tolerance

    def take(self, ts: float) -> None:
        self._last = ts
        base = ts if self._next is None else max(self._next, ts)
        # If we fell more than a whole interval behind, restart the schedule from now.
        if self._next is not None and ts - self._next > self.interval:
            base = ts
        self._next = base + self.interval

    def set_fps(self, fps: float) -> None:
        """A new rate takes effect at once: the next slot is one new interval after
        the last frame taken (a slot scheduled far ahead at a tiny old rate is dropped)."""
        if fps <= 0:
            raise ValueError("fps must be > 0")
        self.interval = 1.0 / fps
        self.tolerance = min(self.interval / 4, 0.02)
        if self._next is not None and self._last is not None:
            self._next = min(self._next, self._last + self.interval)
