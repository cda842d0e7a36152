"""Which endpoint classifies: the primary, or the fallback while the primary cannot
(pure logic: the caller passes the clock; the loop owns it).

The rules (issue #22):

* **Unreachable** is a connection error, a timeout or a 5xx: never a 4xx. A
  wrong key or model (401, 403, 404) is the user's to fix, not an outage, and a
  429 is the primary answering; neither fails over.
* **To the fallback** when the primary has not answered for ``switch_after``
  seconds. Silence is counted from the start of the oldest request that has
  not been answered, so a request that hangs switches as soon as a refused one
  (a hang of 30 s does not wait for its own 30-s timeout), and a refusal or a
  good reply in between starts the count again. With ``budget`` in ``when``, at
  once when the day's budget is spent, and back when it is renewed.
* **While on the fallback** for an outage the primary is probed with a real
  classification every ``probe`` seconds, the wait doubled after each failed
  probe up to ``probe_max``. A probe is a normal call of the primary's and counts
  against the budget, so none is due while the budget is spent.
* **Back** when a primary request succeeds (a probe, or one in flight).
* Both down: the agent stays on the fallback and the states go stale as with
  one endpoint; whichever comes back first is used again.

Each switch is a :class:`Switch`, logged once by the caller with its reason.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from .backoff import Backoff
from .classify import ApiErrorKind
from .config import FailoverWhen, FallbackConfig
from .strenum import StrEnum

UNREACHABLE = frozenset({ApiErrorKind.CONNECTION, ApiErrorKind.TIMEOUT, ApiErrorKind.HTTP_5XX})


class Endpoint(StrEnum):
    """Where a call goes (the word results, the status topic and metrics carry)."""
    PRIMARY = "primary"
    FALLBACK = "fallback"


class Reason(StrEnum):
    """Why the agent switched (the word logs and the status topic carry)."""
    UNREACHABLE = "unreachable"  # to the fallback: the primary did not answer for switch_after
    BUDGET = "budget"  # to the fallback: the day's budget is spent
    RECOVERED = "recovered"  # back: a request to the primary succeeded
    BUDGET_RENEWED = "budget_renewed"  # back: the budget is no longer spent


@dataclass(frozen=True)
class Switch:
    to: Endpoint
    reason: Reason
    silent_for: float = 0.0  # s the primary had not answered (to the fallback for an outage)


class Failover:
    """The switching state of one agent. Methods are called on the event loop; the
    capture threads only read :attr:`active` and :meth:`probe_due` (plain reads)."""

    def __init__(self, cfg: FallbackConfig, rng: random.Random | None = None):
        self.cfg = cfg
        self.on_budget = FailoverWhen.BUDGET in cfg.when
        self.on_outage = FailoverWhen.UNREACHABLE in cfg.when
        self.active = Endpoint.PRIMARY
        self.reason: Reason | None = None  # why on the fallback (UNREACHABLE or BUDGET); None on the primary
        self._outstanding: dict[int, float] = {}  # primary requests in flight: token -> start (monotonic)
        self._failing_since: float | None = None  # the start of the oldest request that failed unanswered
        self._last_failure: float | None = None  # when the newest of them failed
        self._probe = Backoff(cfg.probe, cfg.probe_max, rng=rng)
        self.next_probe = math.inf  # monotonic; inf: none due
        self.probing = False  # a probe was asked for and has not come back
        self._probe_token: int | None = None  # the probe's request, once sent

    # -- what the primary's requests say ----------------------------------------------

    def sent(self, token: int, started: float, probe: bool = False) -> None:
        """A request went to the primary (``probe``: the probe asked for)."""
        self._outstanding[token] = started
        if probe:
            self._probe_token = token

    def succeeded(self, token: int, now: float) -> Switch | None:
        """The primary classified: it is up. Back from an outage (not from a spent budget),
        if it answered within ``switch_after`` (a primary slower than that is no better
        than a down one, and would make the agent switch to and fro)."""
        started = self._outstanding.pop(token, now)
        self._probe_done(token)
        self._failing_since = self._last_failure = None
        self._probe.reset()
        if self.active is Endpoint.FALLBACK and self.reason is Reason.UNREACHABLE:
            if now - started <= self.cfg.switch_after:
                return self._to(Endpoint.PRIMARY, Reason.RECOVERED)
            self.next_probe = now + self._probe.next_delay()
        return None

    def failed(self, token: int, kind: ApiErrorKind, started: float, now: float,
               fallback_ok: bool = True) -> Switch | None:
        """The primary's request failed: an outage (``UNREACHABLE``) counts toward the
        switch; any other failure is the primary answering (and not a reason to switch).
        A failed probe doubles the wait for the next, unless the fallback is failing too
        (then the primary is tried again as soon as on the first wait)."""
        self._outstanding.pop(token, None)
        if self._probe_done(token) and self.active is Endpoint.FALLBACK:
            self.next_probe = now + (self._probe.next_delay() if fallback_ok else self._probe.initial)
        if kind not in UNREACHABLE:
            self._failing_since = self._last_failure = None
            return None
        if self._failing_since is None or started < self._failing_since:
            self._failing_since = started
        self._last_failure = now
        return self.tick(now)

    def forget(self, token: int, now: float) -> None:
        """A request that ended without a word on the primary: given up at the switch (it
        is retried on the fallback), or cut by a bug. A probe so ended is asked again
        after the first wait."""
        self._outstanding.pop(token, None)
        if self._probe_done(token) and self.active is Endpoint.FALLBACK:
            self.next_probe = now + self._probe.initial

    def _probe_done(self, token: int) -> bool:
        """Was ``token`` the probe? Then it is over."""
        if token != self._probe_token:
            return False
        self._probe_token, self.probing = None, False
        return True

    # -- the clock and the budget --------------------------------------------------------

    def silent_since(self, now: float) -> float | None:
        """Since when the primary has not answered (monotonic), or None: the oldest
        request still waiting, or the oldest that failed while the failures go on (the
        newest within ``switch_after``: one failure on a quiet scene, with nothing asked
        since, is no outage)."""
        starts = list(self._outstanding.values())
        if self._failing_since is not None and self._last_failure is not None \
                and now - self._last_failure < self.cfg.switch_after:
            starts.append(self._failing_since)
        return min(starts) if starts else None

    def tick(self, now: float, budget_spent: bool = False) -> Switch | None:
        """Called on every failure and about once a second: is a switch due?"""
        if self.active is Endpoint.PRIMARY:
            silent = self.silent_since(now)
            if self.on_outage and silent is not None and now - silent >= self.cfg.switch_after:
                self.next_probe = now + self._probe.next_delay()
                return self._to(Endpoint.FALLBACK, Reason.UNREACHABLE, silent_for=now - silent)
            if self.on_budget and budget_spent:
                return self._to(Endpoint.FALLBACK, Reason.BUDGET)
        elif self.reason is Reason.BUDGET and not budget_spent:
            return self._to(Endpoint.PRIMARY, Reason.BUDGET_RENEWED)
        return None

    def probe_due(self, now: float, budget_spent: bool = False) -> bool:
        """On the fallback for an outage, and time to try the primary again (a probe
        counts against the budget: none while it is spent)."""
        return (self.active is Endpoint.FALLBACK and self.reason is Reason.UNREACHABLE and not self.probing
                and now >= self.next_probe and not budget_spent)

    def probe_sent(self) -> None:
        """A probe went out: no other is due until it comes back (succeeded or failed)."""
        self.probing = True

    def probe_missed(self, now: float) -> None:
        """A probe was asked for but no camera sent one (all offline, paused or deferred):
        ask again after the same wait, without doubling it."""
        self.probing, self._probe_token = False, None
        self.next_probe = now + self._probe.initial

    def _to(self, to: Endpoint, reason: Reason, silent_for: float = 0.0) -> Switch:
        self.active = to
        self.reason = reason if to is Endpoint.FALLBACK else None
        if to is Endpoint.PRIMARY:
            self.next_probe = math.inf
            self.probing, self._probe_token = False, None
            self._probe.reset()
            self._failing_since = self._last_failure = None
        return Switch(to, reason, silent_for)
