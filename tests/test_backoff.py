import random
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime

import pytest

from edge_agent.backoff import Backoff, parse_retry_after


def test_backoff_doubles_to_the_cap_with_jitter_in_range():
    b = Backoff(1.0, 60.0, rng=random.Random(3))
    ceilings = []
    for _ in range(10):
        ceiling = b.ceiling()
        d = b.next_delay()
        assert ceiling / 2 <= d <= ceiling
        ceilings.append(ceiling)
    assert ceilings == [1, 2, 4, 8, 16, 32, 60, 60, 60, 60]


def test_backoff_reset():
    b = Backoff(0.5, 10)
    for _ in range(5):
        b.next_delay()
    b.reset()
    assert b.ceiling() == 0.5


def test_backoff_jitter_spreads_agents():
    delays = {round(Backoff(1, 60, rng=random.Random(seed)).next_delay(), 6) for seed in range(20)}
    assert len(delays) > 10


def test_backoff_survives_many_attempts():
    b = Backoff(1, 60)
    for _ in range(5000):
        assert b.next_delay() <= 60


def test_backoff_validates():
    with pytest.raises(ValueError):
        Backoff(0, 1)
    with pytest.raises(ValueError):
        Backoff(2, 1)


def test_retry_after_seconds_and_dates():
    now = datetime(2026, 1, 1, 12, 0, 0, tzinfo=timezone.utc)
    assert parse_retry_after("7", now) == 7.0
    assert parse_retry_after(" 0 ", now) == 0.0
    assert parse_retry_after(format_datetime(now + timedelta(seconds=30), usegmt=True), now) == 30.0
    assert parse_retry_after(format_datetime(now - timedelta(seconds=30), usegmt=True), now) == 0.0
    for bad in (None, "", "soon", "-3", "nan"):
        assert parse_retry_after(bad, now) is None


def test_retry_after_is_cut_to_the_callers_cap():
    now = datetime(2026, 1, 1, tzinfo=timezone.utc)
    assert parse_retry_after("7200", now, cap=300.0) == 300.0
    assert parse_retry_after(format_datetime(now + timedelta(hours=2), usegmt=True), now, cap=300.0) == 300.0
    assert parse_retry_after("30", now, cap=300.0) == 30.0
    assert parse_retry_after("soon", now, cap=300.0) is None
