"""Retry timing (pure): exponential backoff with jitter, and Retry-After parsing."""

from __future__ import annotations

import math
import random
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime


class Backoff:
    """Delays ``initial * 2**n`` capped at ``cap``, with "equal jitter": each delay is
    drawn from ``[d/2, d]`` so many agents restarted together do not retry in step."""

    def __init__(self, initial: float, cap: float, *, factor: float = 2.0,
                 rng: random.Random | None = None):
        if initial <= 0 or cap < initial:
            raise ValueError("need 0 < initial <= cap")
        self.initial = initial
        self.cap = cap
        self.factor = factor
        self.attempts = 0
        self._rng = rng or random.Random()

    def ceiling(self) -> float:
        """The un-jittered delay the next call would be drawn below."""
        return min(self.cap, self.initial * self.factor ** min(self.attempts, 64))

    def next_delay(self) -> float:
        d = self.ceiling()
        self.attempts += 1
        return d / 2 + self._rng.uniform(0, d / 2)

    def reset(self) -> None:
        self.attempts = 0


def parse_retry_after(value: str | None, now: datetime | None = None, *, cap: float = math.inf) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP-date), at most ``cap``."""
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when is None:
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=timezone.utc)
        now = now or datetime.now(timezone.utc)
        return min(cap, max(0.0, (when - now).total_seconds()))
    if seconds != seconds or seconds < 0:  # NaN or negative
        return None
    return min(cap, seconds)
