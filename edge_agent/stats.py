"""Rolling figures for people (pure; the caller passes the clock)."""

from __future__ import annotations

import math
from collections import deque


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (``q`` in 0..100) of ``values``; None if empty."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


class Window:
    """The values seen in the last ``seconds`` (bounded: at most ``maxlen`` kept)."""

    def __init__(self, seconds: float = 60.0, maxlen: int = 4096):
        self.seconds = seconds
        self._items: deque[tuple[float, float]] = deque(maxlen=maxlen)

    def add(self, t: float, value: float) -> None:
        self._items.append((t, value))

    def values(self, now: float) -> list[float]:
        while self._items and self._items[0][0] < now - self.seconds:
            self._items.popleft()
        return [v for _, v in self._items]

    def summary(self, now: float) -> dict[str, float | None]:
        vals = self.values(now)
        return {"median": percentile(vals, 50), "p95": percentile(vals, 95), "count": len(vals)}


class Rate:
    """Events per second over the last ``seconds``, from samples of a running count."""

    def __init__(self, seconds: float = 10.0):
        self.seconds = seconds
        self._samples: deque[tuple[float, int]] = deque()

    def sample(self, t: float, count: int) -> None:
        self._samples.append((t, count))
        while len(self._samples) > 2 and self._samples[1][0] <= t - self.seconds:
            self._samples.popleft()

    def per_second(self) -> float:
        if len(self._samples) < 2:
            return 0.0
        (t0, c0), (t1, c1) = self._samples[0], self._samples[-1]
        return (c1 - c0) / (t1 - t0) if t1 > t0 else 0.0
