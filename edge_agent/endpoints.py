"""The endpoints the agent classifies with: the primary (``api``) and, when
configured, a fallback (``api.fallback``), each with its own client, backoff
(``ApiGuard``) and figures, and the switching between them (``failover.py``).

Design rule: the switching logic is ``Failover``'s (pure); this object owns it on
the event loop, logs each switch once with its reason (never a URL's
credentials), asks a camera for a probe when one is due, and answers the
capture threads' two questions (``takes_all``, ``takes_spent``: plain reads).
Without a fallback it is the primary alone, and everything behaves as before.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any, Callable

from .budget import Budget
from .classify import ApiError, ApiErrorKind, ApiGuard, ApiStatus, Classifier
from .config import ApiConfig, FallbackConfig
from .failover import Endpoint, Failover, Reason, Switch
from .redact import Redactor

log = logging.getLogger(__name__)

TICK = 1.0  # s between looks at the clock and the budget (only with a fallback)
PROBE_WAIT = 10.0  # s a probe asked of a camera may take to go out before another camera is asked


@dataclass
class Route:
    """One endpoint as the agent uses it."""

    name: Endpoint
    api: ApiConfig  # its url, model, key and timeout
    guard: ApiGuard
    client: Classifier | None = None  # attached once the loop runs (Endpoints.attach)
    renames: FallbackConfig | None = None  # the fallback's: its model in place of api.model
    ok: int = 0  # requests answered with a classification
    failed: int = 0  # requests that failed (any kind)

    def model_for(self, model: str | None, api_model: str) -> str | None:
        """What this endpoint is asked for a target whose model is ``model``."""
        if self.renames is None or model is None:
            return model
        return self.renames.model_for(model, api_model)


@dataclass(frozen=True)
class EndpointsView:
    """What the status topic, the page and metrics show."""

    active: Endpoint
    reason: Reason | None  # why on the fallback
    since: float | None  # epoch s of the last switch
    fallback: bool  # one is configured
    fallback_ok: int
    fallback_failed: int

    def payload(self) -> dict[str, Any] | None:
        """The status topic's ``fallback`` object; None without a fallback."""
        if not self.fallback:
            return None
        return {"active": str(self.active), "reason": None if self.reason is None else str(self.reason),
                "since": None if self.since is None else round(self.since, 3),
                "calls": self.fallback_ok + self.fallback_failed, "failed": self.fallback_failed}


class Endpoints:
    def __init__(self, api: ApiConfig, budget: Budget, redact: Redactor,
                 clock: Callable[[], float] = time.monotonic):
        self.api = api
        self.budget = budget
        self.redact = redact
        self._clock = clock
        self.primary = Route(Endpoint.PRIMARY, api, ApiGuard(api))
        fb_api = api.fallback_api()
        self.fallback: Route | None = None
        self.failover: Failover | None = None
        if fb_api is not None and api.fallback is not None:
            self.fallback = Route(Endpoint.FALLBACK, fb_api, ApiGuard(fb_api), renames=api.fallback)
            self.failover = Failover(api.fallback)
        self._left_primary: asyncio.Future[None] | None = None
        self._probe_asked_at: float | None = None
        self._since_wall: float | None = None
        self._tokens = 0

    def attach(self, primary: Classifier, fallback: Classifier | None) -> None:
        """The clients, made once the loop runs (a fallback's when one is configured)."""
        self.primary.client = primary
        if self.fallback is not None:
            if fallback is None:
                raise ValueError("api.fallback is configured but no client was made for it")
            self.fallback.client = fallback

    # -- the capture threads' side (plain reads) ------------------------------------------

    def takes_all(self) -> bool:
        return self.failover is not None and self.failover.active is Endpoint.FALLBACK

    def takes_spent(self) -> bool:
        return self.failover is not None and self.failover.on_budget

    def ready(self, now: float) -> bool:
        """May a call go at ``now`` (monotonic)? The endpoint in use is not backing off
        (a probe is asked for only when the primary may be tried: see ``tick``)."""
        return self.active.guard.ready(now)

    # -- the loop's side ------------------------------------------------------------------

    @property
    def active(self) -> Route:
        return self.fallback if self.takes_all() and self.fallback is not None else self.primary

    @property
    def guard(self) -> ApiGuard:
        """The active endpoint's backoff: its status and last error are the API's as shown."""
        return self.active.guard

    def route(self, endpoint: Endpoint) -> Route:
        return self.fallback if endpoint is Endpoint.FALLBACK and self.fallback is not None else self.primary

    def token(self) -> int:
        self._tokens += 1
        return self._tokens

    def sent(self, token: int, started: float, probe: bool) -> None:
        """A request goes to the primary (a probe, or a normal call)."""
        if self.failover is not None:
            self.failover.sent(token, started, probe)
            if probe:
                self._probe_asked_at = None

    def left_primary(self) -> asyncio.Future[None]:
        """Done when calls leave the primary for the fallback: a request still waiting on
        the primary then is given up and retried there."""
        if self._left_primary is None or self._left_primary.done():
            self._left_primary = asyncio.get_running_loop().create_future()
        return self._left_primary

    def succeeded(self, token: int) -> Switch | None:
        if self.failover is None:
            return None
        return self._note(self.failover.succeeded(token, self._clock()))

    def failed(self, token: int, kind: ApiErrorKind, started: float) -> Switch | None:
        if self.failover is None:
            return None
        fallback_ok = self.fallback is not None and self.fallback.guard.status is ApiStatus.OK
        return self._note(self.failover.failed(token, kind, started, self._clock(), fallback_ok))

    def forget(self, token: int) -> None:
        """A primary request that ended without a reply or an error (given up at the switch,
        or cut short by a bug): no longer waited on."""
        if self.failover is not None:
            self.failover.forget(token, self._clock())

    def tick(self, ask_probe: Callable[[], bool], cancel_probes: Callable[[], None]) -> Switch | None:
        """About once a second: a switch due (silence, the budget), a probe to ask for.
        A probe asked of a camera that did not send it in ``PROBE_WAIT`` (offline,
        paused, paced) is withdrawn, as are all on a switch back."""
        if self.failover is None:
            return None
        now = self._clock()
        spent = self.budget.exhausted()
        switch = self._note(self.failover.tick(now, spent))
        if self._probe_asked_at is not None and (now - self._probe_asked_at >= PROBE_WAIT or switch is not None):
            self._probe_asked_at = None
            cancel_probes()
            if switch is None:
                self.failover.probe_missed(now)
        if self.failover.probe_due(now, spent) and self.primary.guard.ready(now) and ask_probe():
            self.failover.probe_sent()
            self._probe_asked_at = now
        return switch

    async def run(self, ask_probe: Callable[[], bool], cancel_probes: Callable[[], None],
                  on_switch: Callable[[], None]) -> None:
        """The tick, forever (started only with a fallback)."""
        while True:
            await asyncio.sleep(TICK)
            if self.tick(ask_probe, cancel_probes) is not None:
                on_switch()

    def _note(self, switch: Switch | None) -> Switch | None:
        """Log a switch once, with its reason; wake requests still waiting on the primary."""
        if switch is None:
            return None
        self._since_wall = time.time()
        fb = self.fallback.api.url if self.fallback is not None else ""
        if switch.to is Endpoint.FALLBACK:
            if switch.reason is Reason.UNREACHABLE:
                guard = self.primary.guard
                error = f" ({self.redact(guard.last_error)})" if guard.status is not ApiStatus.OK \
                    and guard.last_error else " (a request still waits for its reply)"
                why = f"the primary has not answered for {switch.silent_for:.1f} s{error}"
                # A request still waiting on a primary that is down is given up and its frame
                # classified by the fallback. (Not for a spent budget: those calls are paid for.)
                if self._left_primary is not None and not self._left_primary.done():
                    self._left_primary.set_result(None)
            else:
                why = "the day's API budget is spent"
            log.warning("switching to the fallback endpoint %s: %s", self.redact(fb), why)
        else:
            why = "a request to it succeeded" if switch.reason is Reason.RECOVERED else "the day's budget is renewed"
            log.info("back on the primary endpoint %s: %s", self.redact(self.primary.api.url), why)
        return switch

    async def warm_up(self) -> None:
        """At the start, one classification of a small grey picture by the fallback: a
        self-hosted server loads (or downloads) the model on its first request, which in
        an outage would fail just when it is needed. Said once either way."""
        fallback = self.fallback
        if fallback is None or fallback.client is None:
            return
        import cv2
        import numpy as np

        jpeg = cv2.imencode(".jpg", np.full((64, 64, 3), 128, np.uint8))[1].tobytes()
        where = self.redact(fallback.api.url)
        try:
            reply = await fallback.client.classify(jpeg, model=fallback.api.model)
        except ApiError as err:
            log.warning("the fallback endpoint %s did not classify a test picture (%s): it cannot stand in for "
                        "the primary until it does (try: edge-agent classify --endpoint fallback)", where,
                        self.redact(err.description))
        else:
            log.info("the fallback endpoint %s answers (model %s, %.0f ms)", where, fallback.api.model,
                     reply.latency_ms)

    def view(self) -> EndpointsView:
        fo = self.failover
        fb = self.fallback
        return EndpointsView(
            active=self.active.name, reason=fo.reason if fo is not None else None, since=self._since_wall,
            fallback=fb is not None, fallback_ok=fb.ok if fb is not None else 0, fallback_failed=fb.failed if fb is not None else 0)

