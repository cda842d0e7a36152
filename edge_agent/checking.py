"""After a change, how long the gate keeps checking, and why a state is stale
(pure logic: the caller passes the clock; a lock, as the capture thread asks and
the loop answers).

The rules (issue #24):

* A change the gate saw (or a result asked for on demand, or a heartbeat's, that
  disagrees with the state) **starts checking**: the gate calls at every look
  (``CONFIRM``) until the decision is **settled**, the decided state holding the
  votes since the change (``Debouncer.settled``). A result that names the old
  state does not end it; only the evidence does.
* Checking is bounded: after ``MAX_CONFIRM`` confirming calls without the votes
  agreeing it **gives up**: the state is marked stale at once (``Why.UNSETTLED``),
  and re-checked on a backoff, ``RECHECK_FIRST`` seconds doubling up to the
  heartbeat, each re-check one call, until the votes agree (or a change starts
  checking anew).
* A check that settles is **verified** once, ``stale_after / 2`` later (one call:
  a still picture is not looked at again until the heartbeat, and votes that
  agreed by chance on a mistake, now and then with a poor model, must not hold a
  wrong state fresh that long). If it disagrees, a check starts again.
* Whenever a check the state needed is skipped (the API failing or backing off,
  the budget spent or pacing, every in-flight place taken, classification
  paused) the admission marks it **unchecked** with that reason (:class:`Why`);
  the watchdog marks the state stale after ``decide.stale_after``, saying why.
"""

from __future__ import annotations

import enum
import math
import random
import threading

from .backoff import Backoff
from .strenum import StrEnum

MAX_CONFIRM = 16  # confirming calls after a change before checking gives up (8 s at fps 2)
RECHECK_FIRST = 5.0  # s: the first re-check of a state checking gave up on ...
RECHECK_CAP = 600.0  # ... doubled up to the heartbeat (this when there is none)


class Why(StrEnum):
    """Why a check the state needed did not happen: the state's ``stale_reason``."""
    API = "api"  # the API failed, or is backing off after failures
    BUDGET = "budget"  # the day's budget is spent, or its pacing held the call back
    BUSY = "busy"  # every in-flight place was taken
    PAUSED = "paused"  # classification is paused (set/enabled off)
    UNSETTLED = "unsettled"  # checking gave up without the results agreeing


class Outcome(enum.Enum):
    """What a result did to the checking."""
    SETTLED = "settled"  # the votes agree: checking ends (and a stale mark for it goes)
    CHECKING = "checking"  # not yet: the gate keeps calling
    GAVE_UP = "gave_up"  # the confirming calls are spent: stale now, re-checked on a backoff
    IDLE = "idle"  # nothing was being checked


class Checking:
    def __init__(self, heartbeat: float, verify_after: float = math.inf, rng: random.Random | None = None):
        self._lock = threading.Lock()
        self.verify_after = verify_after  # s after a check settles: one call to verify it
        self.verifying = False  # the next re-check verifies a settled check
        self.active = False  # confirming calls wanted
        self.confirms = 0  # confirming calls made since checking started
        self.recheck_at: float | None = None  # monotonic: a re-check is due (after giving up)
        self.gave_up = False  # checking gave up and the votes have not agreed since
        cap = heartbeat if heartbeat > 0 else RECHECK_CAP
        self._backoff = Backoff(RECHECK_FIRST, max(RECHECK_FIRST, cap), rng=rng)

    def start(self) -> None:
        """A change (the gate saw one, or a result disagreed): check until settled."""
        with self._lock:
            self.active, self.confirms, self.recheck_at, self.verifying = True, 0, None, False
            self._backoff.reset()

    def wants(self, now: float) -> bool:
        """Capture thread: is a checking call due at this look?"""
        with self._lock:
            return (self.active and self.confirms < MAX_CONFIRM) or \
                (self.recheck_at is not None and now >= self.recheck_at)

    def took(self, now: float) -> None:
        """Capture thread: the checking call ``wants`` asked for is made."""
        with self._lock:
            if self.active:
                self.confirms += 1
            elif self.recheck_at is not None and now >= self.recheck_at:
                self.recheck_at = None  # its result schedules the next

    def result(self, settled: bool, now: float) -> Outcome:
        """Loop: a result came in; ``settled``: the votes since the change agree."""
        with self._lock:
            if settled:
                was = self.active or self.gave_up or self.recheck_at is not None
                if self.verifying:  # a later look agrees (the verifying call, or a heartbeat's): verified
                    self.verifying, self.recheck_at = False, None
                    return Outcome.IDLE
                self.active, self.gave_up = False, False
                self.verifying = was and math.isfinite(self.verify_after)
                self.recheck_at = now + self.verify_after if self.verifying else None
                self._backoff.reset()
                return Outcome.SETTLED if was else Outcome.IDLE
            if self.active and self.confirms >= MAX_CONFIRM:
                self.active, self.gave_up = False, True
                self.recheck_at = now + self._backoff.next_delay()
                return Outcome.GAVE_UP
            if self.gave_up and not self.active and self.recheck_at is None:
                self.recheck_at = now + self._backoff.next_delay()  # a re-check that did not settle it
            return Outcome.CHECKING if (self.active or self.gave_up) else Outcome.IDLE
