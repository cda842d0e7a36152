"""A daily API budget with credit accounting (pure logic, clock injected, thread safe).

The hosted API bills per image: ``credits = max(x-processing-time, 0.1 s) / 500 s``
a call, so at least 0.0002 credits.  The budget caps calls and/or credits per local
calendar day across all cameras, restarts included, and spreads what is left over
the rest of the day so a busy morning cannot leave the evening blind.

Persistence without SD-card wear: the state file holds a CLAIM ahead of the real
count (``calls_claimed >= calls``, ``credits_claimed >= credits``).  Only when the
real count would pass the claim is a new claim written (a block further on), and a
restart starts from the claim.  A crash can only over-count, never under-count, so
the cap holds over any number of restarts; :meth:`Budget.flush` writes the exact
values on a clean stop.

Pacing is a token bucket in calls: it refills at ``rate = calls still affordable
/ seconds until midnight`` and holds at most a burst (:data:`BURST_SHARE` of the
daily cap, at least :data:`BURST_MIN` calls, at most a quarter of the cap). A
change and its confirmations go out at once while the bucket holds calls; when
the spend runs ahead of the day the bucket is empty and calls come at ``rate``,
so what is left lasts until midnight. Priorities need different levels: a
change needs one call in the bucket, a confirmation half of one, a heartbeat
two (so heartbeats go last and changes first), and an on-demand request none
(it is refused only when the day is spent). Since ``rate`` is recomputed from
what is left, a quiet morning leaves a faster evening.
"""

from __future__ import annotations

import enum
import logging
import math
import threading
import time
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from datetime import time as dtime
from typing import Any, Callable, Mapping

from .config import BudgetConfig
from .storage.files import JsonFile

log = logging.getLogger(__name__)

MIN_CREDITS = 0.1 / 500  # what the cheapest call costs (0.1 s billed minimum)
UNLIMITED_CALLS_BLOCK = 100  # claim block when nothing is capped: "calls today" only roughly survives a crash
UNLIMITED_CREDITS_BLOCK = UNLIMITED_CALLS_BLOCK * MIN_CREDITS
BURST_SHARE = 0.02  # the bucket's size, as a share of the daily cap
BURST_MIN = 10  # calls
EPS = 1e-9  # credits are sums of floats: 5 x 0.0002 must fit in 0.001


def stepped_back(day: date, later: date | None) -> bool:
    """The clock stepped back across midnight (``day`` is the day before ``later``):
    keep counting on the later day. A clock more than a day behind is taken as the truth."""
    return later is not None and 0 < (later - day).days <= 1


class Priority(enum.IntEnum):
    """Why a call is wanted; lower value = more important (paced last)."""
    ON_DEMAND = 0  # a user asked ("classify now")
    CONFIRM = 1  # follow-up calls that confirm a state change
    CHANGE = 2  # the picture changed
    HEARTBEAT = 3  # nothing changed, but it has been long since the last call
    PROBE = 4  # on the fallback: is the primary back? (failover.py; paced as a change)


# Calls that must be in the bucket before a call of this priority goes out.
NEEDS: dict[Priority, float] = {
    Priority.ON_DEMAND: -math.inf,
    Priority.CONFIRM: 0.5,
    Priority.CHANGE: 1.0,
    Priority.HEARTBEAT: 2.0,
    Priority.PROBE: 1.0,
}


def _seconds(value: str | None) -> float | None:
    """A header's seconds, or None when missing or not a finite number >= 0."""
    if value is None:
        return None
    try:
        s = float(value.strip())
    except ValueError:
        return None
    return s if math.isfinite(s) and s >= 0 else None


def credits_of(headers: Mapping[str, str]) -> float | None:
    """Credits one call cost, from the reply headers (names case-insensitive).

    ``x-remote-processing-time`` set: ``(0.1 + remote) / 500``; else
    ``x-processing-time``: ``max(pt, 0.1) / 500``; neither: None (a self-hosted
    server: count calls only).  A value that is not a finite number >= 0 (garbage,
    negative, NaN, inf) counts as absent: a bad remote time falls back to the
    processing time, and a bad processing time alone gives None, because inventing
    a price would be a guess either way and the call is still counted.
    """
    lower = {k.lower(): v for k, v in headers.items()}
    remote = _seconds(lower.get("x-remote-processing-time"))
    if remote is not None:
        return (0.1 + remote) / 500
    pt = _seconds(lower.get("x-processing-time"))
    if pt is not None:
        return max(pt, 0.1) / 500
    return None


@dataclass(frozen=True)
class BudgetView:
    """What status, the page and metrics show."""
    day: str  # local date, YYYY-MM-DD
    calls: int  # calls today (counted when a call is reserved)
    credits: float  # credits today (from reply headers; 0 when the server sends none)
    calls_limit: int | None
    credits_limit: float | None
    exhausted: bool
    pacing: bool  # a call was held back for pacing within the last fair interval
    min_interval: float  # seconds between change calls while pacing (0 when not pacing)


@dataclass(eq=False)
class Reservation:
    """One claimed call; hand it back to :meth:`Budget.settle` exactly once."""
    day: str
    priority: Priority
    at: float
    estimate: float  # credits held for it until the reply says what it cost
    settled: bool = False


class Budget:
    """The day's calls and credits, across all cameras.

    ``reserve`` before each call, ``settle`` after it.  Calls are counted at
    ``reserve`` (so concurrent cameras cannot overshoot), credits at ``settle``
    (the reply says the price); meanwhile each reservation holds an estimate: the
    dearest call seen today, else the 0.0002 minimum.  The credit cap therefore
    holds exactly when no call costs more than the dearest one before it; a dearer
    call can overshoot by the difference, once.

    A server that sends no billing headers (self-hosted) cannot be held to
    ``credits_per_day``: once a reply without them arrives and none with them has
    today, one warning is logged and only calls are enforced.  Until the first
    reply of the day the credit cap is enforced (the safe side).

    With no cap configured the budget still counts (for status) and persists with
    a block of 100 calls, so "calls today" survives a restart roughly (a crash
    shows up to 100 too many).

    The day is the clock's local calendar day.  The day never steps back by one
    day (a Raspberry Pi has no RTC: at boot the clock may read shortly before the
    last shutdown until NTP corrects it), so a restart around midnight cannot
    reopen the day's budget; a clock more than a day behind is taken as the truth.

    One lock guards the counters; the state file is written outside it, so
    ``exhausted()``, called per frame, never waits for the SD card.  A reservation
    that needs a new claim returns only after the claim is written.  A claim that
    cannot be written (disk full, read-only) is logged by :class:`JsonFile` and the
    call goes ahead: the cap still holds while this process lives.
    """

    def __init__(self, cfg: BudgetConfig, file: JsonFile | None = None,
                 clock: Callable[[], float] = time.time):
        self.cfg = cfg
        self._file = file
        self._clock = clock
        self._lock = threading.Lock()
        self._io = threading.Lock()
        calls_limit = cfg.calls_per_day
        self._calls_block = (max(1, min(50, calls_limit // 100)) if calls_limit is not None
                             else UNLIMITED_CALLS_BLOCK)
        self._credits_block = (cfg.credits_per_day / 100 if cfg.credits_per_day is not None
                               else UNLIMITED_CREDITS_BLOCK)
        self._seq = 0  # the claim version the counters need on disk
        self._durable = 0  # the claim version last written
        self._tokens: float | None = None  # calls in the pacing bucket (None: full)
        self._refilled: float | None = None
        self._warned_headerless = False
        self._new_day(date.fromtimestamp(self._clock()))
        if file is not None:
            self._load(file.load())

    # -- day bookkeeping -------------------------------------------------------------

    def _new_day(self, d: date) -> None:
        self._date = d
        self.day = d.isoformat()
        self._start = datetime.combine(d, dtime()).timestamp()
        self._end = datetime.combine(d + timedelta(days=1), dtime()).timestamp()
        self.calls = 0
        self.credits = 0.0
        self._inflight = 0
        self._outstanding = 0.0  # credit estimates of unsettled reservations
        self._dearest = 0.0  # the dearest call seen today
        self._billed = False  # a reply today carried billing headers
        self._headerless = False  # a reply today carried none
        self._claim_calls = 0
        self._claim_credits = 0.0
        self._paced_at: float | None = None
        self._tokens = None  # a fresh day starts with a full pacing bucket
        self._exhausted_logged = False

    def _roll(self, now: float) -> None:
        if self._start <= now < self._end:
            return
        d = date.fromtimestamp(now)
        if stepped_back(d, self._date):
            return
        self._new_day(d)

    def _load(self, doc: dict[str, Any]) -> None:
        if not doc:
            return
        try:
            d = date.fromisoformat(doc["day"])
            calls, credits = doc["calls_claimed"], doc["credits_claimed"]
            if isinstance(calls, bool) or not isinstance(calls, int) or calls < 0:
                raise ValueError("calls_claimed")
            if isinstance(credits, bool) or not isinstance(credits, (int, float)) \
                    or not math.isfinite(credits) or credits < 0:
                raise ValueError("credits_claimed")
        except (KeyError, TypeError, ValueError) as e:
            log.warning("budget state in %s is not usable (%s); counting today from zero",
                        self._file.path if self._file else "?", e)
            return
        if not 0 <= (d - self._date).days <= 1:
            return  # another day's counts: a fresh day
        if d != self._date:
            self._new_day(d)  # a day ahead: the clock is behind (see the class docstring)
        self.calls = self._claim_calls = calls
        self.credits = self._claim_credits = float(credits)
        dearest = doc.get("credits_max")
        if isinstance(dearest, (int, float)) and not isinstance(dearest, bool) \
                and math.isfinite(dearest) and dearest > 0:
            self._dearest = float(dearest)

    # -- rules ------------------------------------------------------------------------

    def _estimate(self) -> float:
        return self._dearest or MIN_CREDITS

    def _credits_enforced(self) -> bool:
        return self.cfg.credits_per_day is not None and (self._billed or not self._headerless)

    def _spent(self) -> bool:
        if self.cfg.calls_per_day is not None and self.calls >= self.cfg.calls_per_day:
            return True
        return self._credits_enforced() and \
            self.credits + self._estimate() > self.cfg.credits_per_day + EPS  # type: ignore[operator]

    def _check_spent(self) -> bool:
        spent = self._spent()
        if spent and not self._exhausted_logged:
            self._exhausted_logged = True
            log.warning("API budget for %s spent: %d calls, %.4f credits; no more calls until midnight",
                        self.day, self.calls, self.credits)
        return spent

    def _affordable(self) -> float:
        """Calls still affordable today (inf when nothing is capped)."""
        left = math.inf
        if self.cfg.calls_per_day is not None:
            left = self.cfg.calls_per_day - self.calls
        if self._credits_enforced():
            money = self.cfg.credits_per_day - self.credits - self._outstanding  # type: ignore[operator]
            left = min(left, money / self._estimate())
        return left

    def _burst(self) -> float:
        limit = self._affordable() + self.calls  # the day's cap in calls (inf when uncapped)
        return max(1.0, min(max(BURST_MIN, BURST_SHARE * limit), limit / 4))

    def _refill(self, now: float) -> float:
        """The calls in the pacing bucket now (inf when nothing is capped)."""
        fair = self._fair(now)
        if fair == 0.0:
            return math.inf
        burst = self._burst()
        if self._tokens is None or self._refilled is None:
            self._tokens = burst
        elif now > self._refilled and math.isfinite(fair):
            self._tokens = min(burst, self._tokens + (now - self._refilled) / fair)
        self._refilled = now if self._refilled is None else max(self._refilled, now)
        return self._tokens

    def _fair(self, now: float) -> float:
        """Seconds between calls that make what is left last until midnight."""
        left = self._affordable()
        if left == math.inf:
            return 0.0
        if left <= 0:
            return math.inf
        return max(0.0, self._end - now) / left

    def _renew_claim(self) -> None:
        """Raise the claim a block past the counters when they would pass it."""
        raised = False
        if self.calls > self._claim_calls:
            claim = self.calls + self._calls_block
            if self.cfg.calls_per_day is not None:
                claim = max(self.calls, min(claim, self.cfg.calls_per_day))
            self._claim_calls = claim
            raised = True
        used = self.credits + self._outstanding
        if used > self._claim_credits + EPS:
            claim = used + self._credits_block
            if self.cfg.credits_per_day is not None:
                claim = max(used, min(claim, self.cfg.credits_per_day))
            self._claim_credits = claim
            raised = True
        if raised:
            self._seq += 1

    def _doc(self, exact: bool) -> dict[str, Any]:
        if exact:
            self._claim_calls = self.calls
            self._claim_credits = self.credits + self._outstanding
        return {"day": self.day, "calls_claimed": self._claim_calls,
                "credits_claimed": self._claim_credits, "credits_max": self._dearest}

    def _persist(self, need: int) -> None:
        """Make sure claim version ``need`` (or a later one) is on disk; without the state lock."""
        if self._file is None:
            return
        with self._io:
            if self._durable >= need:
                return
            with self._lock:
                doc, seq = self._doc(exact=False), self._seq
            self._file.save(doc)
            self._durable = seq

    # -- API ----------------------------------------------------------------------------

    def exhausted(self, now: float | None = None) -> bool:
        """True when today's budget is spent: no more calls until midnight (cheap)."""
        now = self._clock() if now is None else now
        with self._lock:
            self._roll(now)
            return self._check_spent()

    def reserve(self, priority: Priority, now: float | None = None) -> Reservation | None:
        """Claim one call now, or None: the budget is spent, the credits still held
        by calls in flight leave no room, or pacing says not yet for this priority.
        ``ON_DEMAND`` is never paced; when it gets None the caller logs the refusal
        (``exhausted()`` says whether the day is spent)."""
        now = self._clock() if now is None else now
        with self._lock:
            self._roll(now)
            if self._check_spent():
                return None
            estimate = self._estimate()
            if self._credits_enforced() and self.credits + self._outstanding + estimate \
                    > self.cfg.credits_per_day + EPS:  # type: ignore[operator]
                return None
            tokens = self._refill(now)
            if tokens < NEEDS[Priority(priority)]:
                self._paced_at = now
                return None
            if math.isfinite(tokens):
                self._tokens = tokens - 1
            self.calls += 1
            self._inflight += 1
            self._outstanding += estimate
            self._renew_claim()
            need = self._seq
            self._check_spent()
            res = Reservation(self.day, Priority(priority), now, estimate)
        self._persist(need)
        return res

    def settle(self, res: Reservation, credits: float | None, reached: bool) -> None:
        """After the reply: ``credits`` from :func:`credits_of`; ``reached`` False when no
        HTTP reply came back at all (connection refused, DNS, timeout before any
        response): the call is given back.  A timeout after the request went out may
        still have been billed: pass ``reached=True`` then.  Settling twice, or a
        reservation from a day already over, changes nothing."""
        if credits is not None and not (math.isfinite(credits) and credits >= 0):
            credits = None
        with self._lock:
            if res.settled:
                return
            res.settled = True
            self._roll(self._clock())
            if res.day != self.day:
                return  # yesterday's call: its counts closed with its day
            self._inflight -= 1
            self._outstanding = self._outstanding - res.estimate if self._inflight > 0 else 0.0
            if not reached:
                self.calls = max(0, self.calls - 1)
                return  # the claim on disk stays higher: only ever an over-count
            if credits is None:
                self._headerless = True
                if self.cfg.credits_per_day is not None and not self._billed \
                        and not self._warned_headerless:
                    self._warned_headerless = True
                    log.warning("api.budget.credits_per_day is set, but the server sends no billing "
                                "headers (x-processing-time): enforcing calls only")
            else:
                self._billed = True
                self.credits += credits
                self._dearest = max(self._dearest, credits)
            self._renew_claim()
            need = self._seq
            self._check_spent()
        self._persist(need)

    def view(self, now: float | None = None) -> BudgetView:
        """A snapshot for status, the page and metrics.  ``pacing`` is true when a call
        was held back for pacing within the last fair interval."""
        now = self._clock() if now is None else now
        with self._lock:
            self._roll(now)
            fair = self._fair(now)
            pacing = self._paced_at is not None and math.isfinite(fair) and now - self._paced_at <= fair \
                and self._refill(now) < NEEDS[Priority.CHANGE]
            return BudgetView(
                day=self.day, calls=self.calls, credits=self.credits,
                calls_limit=self.cfg.calls_per_day, credits_limit=self.cfg.credits_per_day,
                exhausted=self._check_spent(), pacing=pacing,
                min_interval=fair if pacing else 0.0,
            )

    def flush(self) -> None:
        """Write the exact counters (on a clean stop), so a restart does not start from the claim."""
        if self._file is None:
            return
        with self._io:
            with self._lock:
                doc = self._doc(exact=True)
                self._seq += 1
                seq = self._seq
            self._file.save(doc)
            self._durable = seq
