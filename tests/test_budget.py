import json
import logging
import math
import threading
import time
from pathlib import Path
from typing import Any, Iterator

import pytest

from edge_agent.budget import Budget, BudgetView, Priority, Reservation, credits_of
from edge_agent.config import BudgetConfig
from edge_agent.storage.files import JsonFile

DAY = 86400
T0 = 1710028800  # 2024-03-10 00:00:00 UTC
END = T0 + DAY  # 2024-03-11 00:00:00 UTC
P = Priority


def set_tz(monkeypatch: pytest.MonkeyPatch, tz: str) -> None:
    monkeypatch.setenv("TZ", tz)
    time.tzset()


@pytest.fixture(autouse=True)
def utc(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    set_tz(monkeypatch, "UTC")
    yield
    monkeypatch.undo()
    time.tzset()


class Clock:
    def __init__(self, t: float):
        self.t = t

    def __call__(self) -> float:
        return self.t


class CountingFile(JsonFile):
    def __init__(self, path: Path):
        super().__init__(path)
        self.saves: list[dict[str, Any]] = []

    def save(self, data: dict[str, Any]) -> bool:
        self.saves.append(dict(data))
        return super().save(data)


def budget_warnings(caplog: pytest.LogCaptureFixture, text: str) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.name == "edge_agent.budget" and r.levelno == logging.WARNING and text in r.getMessage()]


def call(b: Budget, priority: Priority = P.ON_DEMAND, credits: float | None = 0.0002,
         now: float | None = None) -> bool:
    """One whole call: reserve, and settle as a reply with ``credits``."""
    res = b.reserve(priority, now=now)
    if res is None:
        return False
    b.settle(res, credits, reached=True)
    return True


# -- credits_of ---------------------------------------------------------------------------

def test_credits_of_processing_time():
    assert credits_of({"X-Processing-Time": "0.5"}) == pytest.approx(0.001)
    assert credits_of({"x-processing-time": "2"}) == pytest.approx(0.004)
    assert credits_of({"x-processing-time": "0.03"}) == pytest.approx(0.0002)  # 0.1 s minimum
    assert credits_of({"x-processing-time": "0"}) == pytest.approx(0.0002)


def test_credits_of_remote_processing_time_wins():
    h = {"x-processing-time": "2.0", "X-Remote-Processing-Time": "0.3"}
    assert credits_of(h) == pytest.approx((0.1 + 0.3) / 500)
    assert credits_of({"x-remote-processing-time": "0"}) == pytest.approx(0.0002)


def test_credits_of_absent_or_garbage():
    assert credits_of({}) is None
    assert credits_of({"content-type": "application/json"}) is None
    for bad in ["", "abc", "nan", "inf", "-inf", "-0.5", "1e400"]:
        assert credits_of({"x-processing-time": bad}) is None, bad
        # a bad remote time falls back to the processing time
        assert credits_of({"x-remote-processing-time": bad, "x-processing-time": "1"}) == pytest.approx(0.002)


# -- calls cap ------------------------------------------------------------------------------

def test_calls_cap_is_never_exceeded_by_many_threads():
    b = Budget(BudgetConfig(calls_per_day=50), clock=Clock(T0 + 3600))
    granted: list[Reservation] = []
    lock = threading.Lock()

    def worker() -> None:
        for _ in range(100):
            res = b.reserve(P.ON_DEMAND)
            if res is not None:
                with lock:
                    granted.append(res)
                b.settle(res, 0.0002, reached=True)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(granted) == 50
    v = b.view()
    assert v.calls == 50 and v.exhausted and v.calls_limit == 50
    assert v.credits == pytest.approx(50 * 0.0002)
    assert b.reserve(P.ON_DEMAND) is None


def test_credits_cap_is_never_exceeded_by_many_threads():
    b = Budget(BudgetConfig(credits_per_day=0.01), clock=Clock(T0 + 3600))
    count = [0]
    lock = threading.Lock()

    def worker() -> None:
        for _ in range(100):
            if call(b, credits=0.0002):
                with lock:
                    count[0] += 1

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert count[0] == 50
    assert b.view().credits <= 0.01 + 1e-9 and b.exhausted()


# -- credits cap ----------------------------------------------------------------------------

def test_credits_cap_holds_estimates_until_settled():
    b = Budget(BudgetConfig(credits_per_day=0.002), clock=Clock(T0 + 3600))
    # Nothing seen yet: each call in flight holds the 0.0002 minimum.
    held = [b.reserve(P.ON_DEMAND) for _ in range(10)]
    assert all(held)
    assert b.reserve(P.ON_DEMAND) is None  # 10 x 0.0002 in flight fill 0.002
    assert not b.exhausted()  # in flight is not spent: replies may be cheaper
    for res in held:
        b.settle(res, 0.0002, reached=True)
    assert b.view().credits == pytest.approx(0.002)
    assert b.exhausted() and b.reserve(P.ON_DEMAND) is None


def test_credits_estimate_is_the_dearest_call_seen():
    b = Budget(BudgetConfig(credits_per_day=0.002), clock=Clock(T0 + 3600))
    assert call(b, credits=0.0004)  # 0.0004 spent; estimate now 0.0004
    held = []
    while (res := b.reserve(P.ON_DEMAND)) is not None:
        held.append(res)
    assert len(held) == 4  # 0.0016 left / 0.0004
    for res in held:
        b.settle(res, 0.0002, reached=True)  # cheaper than feared
    assert b.view().credits == pytest.approx(0.0012)
    assert not b.exhausted()
    more = [b.reserve(P.ON_DEMAND), b.reserve(P.ON_DEMAND)]
    assert all(more) and b.reserve(P.ON_DEMAND) is None  # 0.0008 left / 0.0004
    for res in more:
        b.settle(res, 0.0004, reached=True)
    v = b.view()
    assert v.credits == pytest.approx(0.002) and v.exhausted and v.calls == 7


def test_credits_exhausted_when_the_next_call_would_not_fit():
    b = Budget(BudgetConfig(credits_per_day=0.001), clock=Clock(T0 + 3600))
    for _ in range(4):
        assert call(b, credits=0.0002)
    assert not b.exhausted()  # 0.0002 left: one more minimum call fits
    assert call(b, credits=0.0002)
    assert b.exhausted()


def test_float_dust_does_not_cost_a_call():
    # 0.0002 + 0.0002 + 0.0002 > 0.0006 in floating point
    b = Budget(BudgetConfig(credits_per_day=0.0006), clock=Clock(T0 + 3600))
    assert call(b, credits=0.0002) and call(b, credits=0.0002)
    assert not b.exhausted()
    assert call(b, credits=0.0002)
    assert b.exhausted()


# -- refund ---------------------------------------------------------------------------------

def test_a_call_that_reached_nothing_is_given_back():
    b = Budget(BudgetConfig(calls_per_day=3, credits_per_day=0.0006), clock=Clock(T0 + 3600))
    held = [b.reserve(P.ON_DEMAND) for _ in range(3)]
    assert all(held) and b.reserve(P.ON_DEMAND) is None
    assert b.exhausted()
    b.settle(held[0], None, reached=False)  # connection refused
    b.settle(held[0], None, reached=False)  # settling twice changes nothing
    v = b.view()
    assert v.calls == 2 and v.credits == 0 and not v.exhausted
    again = b.reserve(P.ON_DEMAND)
    assert again is not None and b.reserve(P.ON_DEMAND) is None
    for res in (held[1], held[2], again):
        b.settle(res, 0.0002, reached=True)
    assert b.view().calls == 3 and b.view().credits == pytest.approx(0.0006)


# -- days -----------------------------------------------------------------------------------

def test_local_midnight_resets_the_counters(caplog: pytest.LogCaptureFixture):
    clock = Clock(T0 + 23 * 3600)
    b = Budget(BudgetConfig(calls_per_day=3), clock=clock)
    for _ in range(3):
        assert call(b)
    late = b.reserve(P.ON_DEMAND)
    assert late is None and b.exhausted()
    for _ in range(10):
        b.reserve(P.ON_DEMAND)
        b.exhausted()
        b.view()
    assert len(budget_warnings(caplog, "spent")) == 1
    msg = budget_warnings(caplog, "spent")[0]
    assert "2024-03-10" in msg and "3 calls" in msg and "until midnight" in msg

    clock.t = END - 1
    assert b.exhausted() and b.view().day == "2024-03-10"
    clock.t = END
    v = b.view()
    assert v.day == "2024-03-11" and v.calls == 0 and not v.exhausted
    for _ in range(3):
        assert call(b)
    assert b.exhausted()
    msgs = budget_warnings(caplog, "spent")
    assert len(msgs) == 2 and "2024-03-11" in msgs[1]


def test_a_reply_after_midnight_is_not_counted_on_the_new_day():
    clock = Clock(END - 5)
    b = Budget(BudgetConfig(calls_per_day=10, credits_per_day=1.0), clock=clock)
    res = b.reserve(P.ON_DEMAND)
    assert res is not None
    clock.t = END + 5
    b.settle(res, 0.5, reached=True)
    v = b.view()
    assert v.day == "2024-03-11" and v.calls == 0 and v.credits == 0


def test_a_clock_stepping_back_across_midnight_keeps_the_day():
    clock = Clock(END + 300)  # 00:05 on the 11th
    b = Budget(BudgetConfig(calls_per_day=5), clock=clock)
    for _ in range(5):
        assert call(b)
    clock.t = END - 300  # NTP steps back to 23:55 on the 10th: not a fresh budget
    assert b.exhausted() and b.view().day == "2024-03-11"
    assert b.reserve(P.ON_DEMAND) is None
    clock.t = END - 3 * DAY  # a clock days behind is taken as the truth
    assert b.view().day == "2024-03-08" and not b.exhausted()


def test_dst_days_are_23_and_25_hours(monkeypatch: pytest.MonkeyPatch):
    set_tz(monkeypatch, "Europe/Berlin")
    # 2024-03-31 (23 h): from 2024-03-30 23:00 UTC to 2024-03-31 22:00 UTC.
    start, end = 1711843200 - 3600, 1711843200 + 22 * 3600
    clock = Clock(start)
    b = Budget(BudgetConfig(calls_per_day=23), clock=clock)
    assert b.view().day == "2024-03-31"
    granted = []
    while clock.t < end:
        if b.reserve(P.CHANGE) is not None:
            granted.append(clock.t)
        clock.t += 10
    assert b.view().day == "2024-04-01"
    assert 20 <= len(granted) <= 23
    assert granted[-1] > end - 2 * 3600  # spread over 23 hours, not 24
    # After the bucket's burst (a quarter of 23), one an hour: 23 calls over 23 hours.
    assert min(b - a for a, b in zip(granted[6:], granted[7:])) >= 0.9 * 3600
    # 2024-10-27 (25 h): from 2024-10-26 22:00 UTC to 2024-10-27 23:00 UTC.
    clock.t = 1729987200 - 7200 + 3600  # 2024-10-27 00:00 + 1 h, local
    assert b.view().day == "2024-10-27"
    clock.t = 1729987200 + 23 * 3600 - 1
    assert b.view().day == "2024-10-27"
    clock.t += 1
    assert b.view().day == "2024-10-28"


# -- restarts -------------------------------------------------------------------------------

def test_claims_are_written_in_blocks_not_per_call(tmp_path: Path):
    f = CountingFile(tmp_path / "budget.json")
    b = Budget(BudgetConfig(calls_per_day=1000), file=f, clock=Clock(T0 + 3600))
    for _ in range(100):
        assert call(b, credits=None)
    assert len(f.saves) == 10  # block = 1000 // 100 = 10 calls
    doc = json.loads((tmp_path / "budget.json").read_text())
    assert doc["day"] == "2024-03-10" and 100 <= doc["calls_claimed"] <= 110


def test_restart_after_a_crash_starts_at_the_claim(tmp_path: Path):
    path = tmp_path / "budget.json"
    cfg = BudgetConfig(calls_per_day=1000, credits_per_day=1.0)
    clock = Clock(T0 + 3600)
    first = Budget(cfg, file=JsonFile(path), clock=clock)
    n1 = sum(call(first, credits=0.0004) for _ in range(37))
    in_flight = first.reserve(P.ON_DEMAND)  # the process dies with this call out
    assert n1 == 37 and in_flight is not None
    # crash: no flush, no settle
    second = Budget(cfg, file=JsonFile(path), clock=clock)
    v = second.view()
    assert 38 <= v.calls <= 38 + 10
    assert 37 * 0.0004 + 0.0004 - 1e-12 <= v.credits <= 37 * 0.0004 + 0.0004 + 0.01 + 1e-9
    n2 = sum(call(second, credits=None) for _ in range(2000))
    assert n1 + 1 + n2 <= 1000
    assert n2 == 1000 - v.calls


def test_many_crashes_never_exceed_the_cap(tmp_path: Path):
    path = tmp_path / "budget.json"
    cfg = BudgetConfig(calls_per_day=120)
    clock = Clock(T0 + 3600)
    total = 0
    for lifetime in range(8):
        b = Budget(cfg, file=JsonFile(path), clock=clock)
        for _ in range(7 + 5 * lifetime):
            total += call(b, credits=None)
            clock.t += 1
    assert 100 <= total <= 120


def test_credit_claims_survive_a_crash(tmp_path: Path):
    path = tmp_path / "budget.json"
    cfg = BudgetConfig(credits_per_day=0.01)
    clock = Clock(T0 + 3600)
    first = Budget(cfg, file=JsonFile(path), clock=clock)
    spent = 0.0
    for _ in range(12):
        assert call(first, credits=0.0004)
        spent += 0.0004
    second = Budget(cfg, file=JsonFile(path), clock=clock)
    assert spent - 1e-12 <= second.view().credits <= spent + 0.0001 + 0.0004 + 1e-9
    while call(second, credits=0.0004):
        spent += 0.0004
    assert spent <= 0.01 + 1e-9


def test_flush_writes_the_exact_counts(tmp_path: Path):
    path = tmp_path / "budget.json"
    cfg = BudgetConfig(calls_per_day=1000, credits_per_day=1.0)
    clock = Clock(T0 + 3600)
    first = Budget(cfg, file=JsonFile(path), clock=clock)
    for _ in range(37):
        assert call(first, credits=0.0004)
    doc = json.loads(path.read_text())
    assert doc["calls_claimed"] > 37
    first.flush()
    doc = json.loads(path.read_text())
    assert doc["calls_claimed"] == 37 and doc["credits_claimed"] == pytest.approx(37 * 0.0004)
    second = Budget(cfg, file=JsonFile(path), clock=clock)
    v = second.view()
    assert v.calls == 37 and v.credits == pytest.approx(37 * 0.0004)
    # after a flush the process may go on: the next call claims again
    assert call(first)
    assert json.loads(path.read_text())["calls_claimed"] > 38


def test_unlimited_budget_counts_and_persists_roughly(tmp_path: Path):
    path = tmp_path / "budget.json"
    clock = Clock(T0 + 3600)
    f = CountingFile(path)
    b = Budget(BudgetConfig(), file=f, clock=clock)
    for _ in range(150):
        assert call(b, P.HEARTBEAT)  # nothing capped: nothing paced
    v = b.view()
    assert v.calls == 150 and not v.exhausted and not v.pacing and v.calls_limit is None
    assert len(f.saves) <= 4
    again = Budget(BudgetConfig(), file=JsonFile(path), clock=clock)
    assert 150 <= again.view().calls <= 250


def test_another_days_file_or_a_bad_file_is_a_fresh_day(tmp_path: Path, caplog: pytest.LogCaptureFixture):
    path = tmp_path / "budget.json"
    cfg = BudgetConfig(calls_per_day=10)
    clock = Clock(T0 + 3600)
    path.write_text(json.dumps({"day": "2024-03-09", "calls_claimed": 10, "credits_claimed": 0}))
    assert Budget(cfg, file=JsonFile(path), clock=clock).view().calls == 0
    path.write_text(json.dumps({"day": "2024-03-10", "calls_claimed": 10, "credits_claimed": 0}))
    assert Budget(cfg, file=JsonFile(path), clock=clock).exhausted()
    for bad in [{"day": "2024-03-10", "calls_claimed": "10", "credits_claimed": 0},
                {"day": "2024-03-10", "calls_claimed": -1, "credits_claimed": 0},
                {"day": "2024-03-10", "calls_claimed": 3, "credits_claimed": -1},
                {"day": "yesterday", "calls_claimed": 3, "credits_claimed": 0},
                {"calls_claimed": 3}]:
        path.write_text(json.dumps(bad))
        caplog.clear()
        assert Budget(cfg, file=JsonFile(path), clock=clock).view().calls == 0
        assert len(budget_warnings(caplog, "not usable")) == 1, bad
    path.write_text("{corrupt")
    assert Budget(cfg, file=JsonFile(path), clock=clock).view().calls == 0


def test_a_restart_with_the_clock_behind_keeps_the_saved_day(tmp_path: Path):
    # Power cut at 00:20; at boot the clock reads 23:30 the day before until NTP.
    path = tmp_path / "budget.json"
    cfg = BudgetConfig(calls_per_day=5)
    first = Budget(cfg, file=JsonFile(path), clock=Clock(END + 1200))
    for _ in range(5):
        assert call(first)
    clock = Clock(END - 1800)
    second = Budget(cfg, file=JsonFile(path), clock=clock)
    assert second.view().day == "2024-03-11" and second.exhausted()
    clock.t = END + 1300
    assert second.exhausted()


def test_a_failing_disk_does_not_stop_calls(tmp_path: Path):
    (tmp_path / "plain").write_text("x")
    b = Budget(BudgetConfig(calls_per_day=100), file=JsonFile(tmp_path / "plain" / "b.json"),
               clock=Clock(T0 + 3600))
    assert sum(call(b) for _ in range(10)) == 10


# -- pacing -------------------------------------------------------------------------------

def first_allowed(priority: Priority, t0: float, limit: int = 100) -> float:
    """Seconds after the pacing bucket was emptied at t0 (its 10 calls spent on
    demand) until a call of ``priority`` is allowed."""
    b = Budget(BudgetConfig(calls_per_day=limit), clock=Clock(t0))
    for _ in range(10):
        assert call(b, P.ON_DEMAND, now=t0)
    t = t0
    while b.reserve(priority, now=t) is None:
        t += 1
    return t - t0


def test_pacing_order_changes_first_heartbeats_last():
    t0 = T0 + 6 * 3600
    fair = (END - t0) / 90  # 90 calls left, spread until midnight
    delays = {p: first_allowed(p, t0) for p in P}
    assert delays[P.ON_DEMAND] == 0
    assert 0 < delays[P.CONFIRM] < delays[P.CHANGE] < delays[P.HEARTBEAT]
    assert delays[P.CHANGE] == pytest.approx(fair, rel=0.02)
    assert delays[P.CONFIRM] == pytest.approx(fair / 2, rel=0.02)
    assert delays[P.HEARTBEAT] == pytest.approx(2 * fair, rel=0.03)


def test_on_demand_is_never_paced_only_refused_when_spent():
    clock = Clock(T0 + 6 * 3600)
    b = Budget(BudgetConfig(calls_per_day=20), clock=clock)
    for _ in range(5):  # the bucket holds a quarter of a small cap
        assert call(b, P.CHANGE)
    assert b.reserve(P.CHANGE) is None and b.reserve(P.HEARTBEAT) is None
    assert b.view().pacing
    for _ in range(15):
        assert call(b, P.ON_DEMAND)
    assert b.reserve(P.ON_DEMAND) is None and b.exhausted()


def test_a_generous_budget_is_not_paced():
    clock = Clock(T0 + 6 * 3600)
    b = Budget(BudgetConfig(calls_per_day=100_000), clock=clock)
    for _ in range(360):  # one call every 10 s for an hour
        assert call(b, P.CHANGE)
        assert call(b, P.HEARTBEAT, now=clock.t + 5)
        clock.t += 10
    v = b.view()
    assert v.calls == 720 and not v.pacing and v.min_interval == 0


def simulate(cfg: BudgetConfig, start: float, priorities: tuple[Priority, ...] = (P.CHANGE,),
             step: float = 10) -> tuple[Budget, list[tuple[float, Priority]]]:
    clock = Clock(start)
    b = Budget(cfg, clock=clock)
    granted = []
    while clock.t < END:
        for p in priorities:
            if call(b, p, credits=0.0002):
                granted.append((clock.t, p))
        if clock.t == T0 + 12 * 3600:
            v = b.view()
            assert v.pacing and 800 < v.min_interval < 1100  # about 45 calls left for 12 h
        clock.t += step
    return b, granted


def test_a_busy_day_is_spread_until_midnight():
    b, granted = simulate(BudgetConfig(calls_per_day=100), T0)
    times = [t for t, _ in granted]
    assert 95 <= len(times) <= 100
    assert times[-1] >= END - 3600  # the last call in the final hour, not all spent by morning
    assert 45 <= sum(t < T0 + 12 * 3600 for t in times) <= 57  # about half, plus the first burst
    gaps = [b - a for a, b in zip(times, times[1:])]
    assert min(gaps[10:]) >= 0.9 * 864  # after the bucket's burst of 10: about 100 a day
    assert b.view(END + 1).calls == 0 and not b.view(END + 1).exhausted  # a fresh day
    assert call(b, P.ON_DEMAND, now=END + 1)
    assert call(b, P.CHANGE, now=END + 2)  # a fresh day starts with a full pacing bucket


def test_a_busy_day_credits_only_is_spread_until_midnight():
    _, granted = simulate(BudgetConfig(credits_per_day=0.02), T0)  # 100 calls at 0.0002
    times = [t for t, _ in granted]
    assert 95 <= len(times) <= 100 and times[-1] >= END - 3600


def test_changes_win_over_heartbeats_when_tight():
    _, granted = simulate(BudgetConfig(calls_per_day=100), T0, priorities=(P.HEARTBEAT, P.CHANGE))
    assert len(granted) <= 100
    assert len(granted) >= 95
    # while the bucket holds its first burst both go; once it is empty, changes take every slot
    assert all(p == P.CHANGE for _, p in granted[10:])


def test_a_quiet_morning_leaves_a_faster_evening():
    _, granted = simulate(BudgetConfig(calls_per_day=100), T0 + 18 * 3600 + 5)
    times = [t for t, _ in granted]
    assert 95 <= len(times) <= 100 and times[-1] >= END - 3600
    gaps = [b - a for a, b in zip(times, times[1:])]
    assert max(gaps) < 300  # 6 h / 100 calls = 216 s apart, not the morning's 864 s


# -- servers without billing headers ------------------------------------------------------

def test_credits_limit_without_billing_headers_counts_calls_only(caplog: pytest.LogCaptureFixture):
    clock = Clock(T0 + 3600)
    b = Budget(BudgetConfig(calls_per_day=20, credits_per_day=0.001), clock=clock)
    assert sum(call(b, credits=None) for _ in range(30)) == 20  # not stopped after 5
    v = b.view()
    assert v.calls == 20 and v.credits == 0 and v.exhausted
    assert len(budget_warnings(caplog, "no billing headers")) == 1

    only_credits = Budget(BudgetConfig(credits_per_day=0.001), clock=clock)
    assert sum(call(only_credits, credits=None) for _ in range(50)) == 50
    assert not only_credits.exhausted()


def test_credits_limit_without_billing_headers_does_not_pace():
    clock = Clock(T0 + 3600)
    b = Budget(BudgetConfig(credits_per_day=0.001), clock=clock)
    for _ in range(360):  # a change every 10 s for an hour; 0.001 credits would pace at 5 calls a day
        assert call(b, P.CHANGE, credits=None)
        clock.t += 10
    assert not b.view().pacing


def test_credits_limit_is_enforced_until_the_first_reply_says_otherwise(caplog: pytest.LogCaptureFixture):
    b = Budget(BudgetConfig(credits_per_day=0.001), clock=Clock(T0 + 3600))
    held = [b.reserve(P.ON_DEMAND) for _ in range(5)]
    assert all(held) and b.reserve(P.ON_DEMAND) is None
    assert budget_warnings(caplog, "no billing headers") == []
    b.settle(held[0], None, reached=True)
    assert b.reserve(P.ON_DEMAND) is not None
    assert len(budget_warnings(caplog, "no billing headers")) == 1


def test_a_billing_server_keeps_the_credits_cap():
    b = Budget(BudgetConfig(credits_per_day=0.001), clock=Clock(T0 + 3600))
    assert call(b, credits=0.0002)
    # an error reply without headers does not switch the cap off once billing was seen
    assert call(b, credits=None)
    assert sum(call(b, credits=0.0002) for _ in range(10)) == 4
    assert b.exhausted()


def test_view_is_a_plain_snapshot():
    b = Budget(BudgetConfig(calls_per_day=10, credits_per_day=0.5), clock=Clock(T0 + 3600))
    assert call(b, credits=0.001)
    assert b.view() == BudgetView(day="2024-03-10", calls=1, credits=pytest.approx(0.001), calls_limit=10,
                                  credits_limit=0.5, exhausted=False, pacing=False, min_interval=0.0)
    assert not math.isnan(b.view().credits)
