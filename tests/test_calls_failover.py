"""The classify step with two endpoints (pipeline/call.py, endpoints.py), driven
directly with fake classifiers on the loop: no sockets, no capture thread. What
the end-to-end tests (test_failover_e2e.py) cannot see from outside: the frame in
flight at a switch is classified by the fallback, a paid call is not thrown away,
a request cut short stays counted, a bug leaks nothing, a hung probe holds no
other result."""

from __future__ import annotations

import asyncio
import time
from typing import Any, Awaitable, Callable

import numpy as np
import pytest

from edge_agent.admission import Admission, InFlight
from edge_agent.budget import Budget, Priority
from edge_agent.camera import CameraRuntime
from edge_agent.capture import Frame
from edge_agent.classify import ApiError, ApiErrorKind, Reply
from edge_agent.config import parse_config
from edge_agent.endpoints import Endpoints
from edge_agent.failover import Endpoint, Reason
from edge_agent.metrics import Metrics
from edge_agent.pipeline.call import Calls
from edge_agent.redact import Redactor
from edge_agent.reply import Classification, Prediction
from edge_agent.tasks import TaskSet

pytestmark = pytest.mark.timeout(30)


def reply() -> Reply:
    return Reply({"top": "red"}, Classification("red", 0.9, (Prediction("red", 0.9),)), latency_ms=5.0,
                 credits=0.0002)


class Fake:
    """A classifier that does what ``behave`` says: sleep, return, raise."""

    def __init__(self, behave: Callable[[], Awaitable[Any]] | None = None):
        self.behave = behave or (lambda: asyncio.sleep(0))
        self.calls = self.cancelled = 0

    async def classify(self, jpeg: bytes, model: str | None = None) -> Reply:
        self.calls += 1
        try:
            out = await self.behave()
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        if isinstance(out, Exception):
            raise out
        return reply()


class Pipe:
    def __init__(self) -> None:
        self.results: list[Any] = []

    def run(self, r: Any) -> None:
        self.results.append(r)


class Status:
    def publish(self, cam: Any, force: bool = False) -> None:
        pass

    def publish_all(self) -> None:
        pass


class Rig:
    def __init__(self, primary: Fake, fallback: Fake | None, budget: dict | None = None, **fb: Any):
        api: dict[str, Any] = {"url": "http://127.0.0.1:9", "model": "colours/1", "api_key": "k", "max_in_flight": 4}
        if fallback is not None:
            api["fallback"] = {"url": "http://127.0.0.1:10", "switch_after": 1, "probe": 1, **fb}
        if budget:
            api["budget"] = budget
        cfg = parse_config({"device_id": "t", "api": api, "mqtt": {"topic_prefix": "t"},
                            "status": {"enabled": False}, "homeassistant": {"discovery": False},
                            "cameras": [{"name": "cam", "source": "rtsp://x/y", "fps": 2,
                                         "change": {"enabled": False}}]}, {})
        redact = Redactor(cfg.secrets())
        self.budget = Budget(cfg.api.budget)
        self.endpoints = Endpoints(cfg.api, self.budget, redact)
        self.endpoints.attach(primary, fallback)
        target = cfg.targets()[0]
        self.admission = Admission(target, inflight=InFlight(4), budget=self.budget, api_ready=self.endpoints.ready,
                                   fallback=self.endpoints if fallback is not None else None)
        self.cam = CameraRuntime.create(target, self.admission)
        self.pipe = Pipe()
        self.calls = Calls(cfg.api, self.endpoints, self.pipe, Status(),  # type: ignore[arg-type]
                           Metrics(["cam"], lambda: {}, endpoints=["primary", "fallback"]), redact, TaskSet())
        self.seq = 0
        self.t = time.monotonic()

    def submit(self) -> Any:
        """One look admitted and sent, as the capture thread hands it over."""
        self.t += 1.0
        slot = self.admission.open(self.t)
        assert slot is not None and self.admission.decide(slot, None, self.t)
        self.seq += 1
        self.calls.submit(self.cam, Frame("cam", self.seq, time.time(), self.t, b"\xff\xd8", 32, 32,
                                          np.zeros((4, 4, 3), np.uint8), slot=slot))
        return slot

    def tick(self) -> Any:
        return self.endpoints.tick(lambda: False, lambda: None)


async def until(pred: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.01)


async def test_the_frame_waiting_on_a_hung_primary_at_the_switch_is_classified_by_the_fallback():
    primary, fallback = Fake(lambda: asyncio.sleep(30)), Fake()
    rig = Rig(primary, fallback)
    rig.submit()
    await asyncio.sleep(1.05)  # switch_after 1 s of silence
    switch = rig.tick()
    assert switch is not None and switch.reason is Reason.UNREACHABLE
    await until(lambda: len(rig.pipe.results) == 1)
    assert rig.pipe.results[0].endpoint is Endpoint.FALLBACK and primary.cancelled == 1
    assert rig.admission.inflight.count == 0


async def test_a_primary_failure_once_calls_switched_is_retried_on_the_fallback():
    async def refused() -> Exception:
        return ApiError(ApiErrorKind.CONNECTION, "connection refused", reached=False)

    primary, fallback = Fake(refused), Fake()
    rig = Rig(primary, fallback)
    rig.submit()
    await until(lambda: primary.calls == 1)
    await asyncio.sleep(1.05)
    rig.admission.rate.take(rig.t)
    rig.endpoints.guard.not_before = 0  # the primary's backoff aside: one more try, which switches
    rig.submit()
    await until(lambda: len(rig.pipe.results) == 1)
    assert rig.endpoints.takes_all() and rig.pipe.results[0].endpoint is Endpoint.FALLBACK
    assert rig.budget.view().calls == 0  # refused before a connection: nothing billed


async def test_a_switch_for_a_spent_budget_does_not_throw_away_the_paid_call_in_flight():
    primary, fallback = Fake(lambda: asyncio.sleep(0.3)), Fake()
    rig = Rig(primary, fallback, budget={"calls_per_day": 1}, when=["budget"])
    slot = rig.submit()
    assert slot.endpoint is Endpoint.PRIMARY and rig.budget.exhausted()
    await asyncio.sleep(0.05)
    switch = rig.tick()  # the budget's last call is still in flight
    assert switch is not None and switch.reason is Reason.BUDGET
    await until(lambda: len(rig.pipe.results) == 1)
    assert primary.cancelled == 0 and rig.pipe.results[0].endpoint is Endpoint.PRIMARY and fallback.calls == 0


async def test_a_request_cut_short_by_the_stop_stays_counted():
    rig = Rig(Fake(lambda: asyncio.sleep(30)), None, budget={"calls_per_day": 5})
    rig.submit()
    assert rig.budget.view().calls == 1
    await asyncio.sleep(0.05)
    await rig.calls.tasks.drain(0.05)  # the stop's grace is over: cancelled
    assert rig.budget.view().calls == 1 and rig.admission.inflight.count == 0


async def test_a_bug_in_a_primary_call_leaves_nothing_waiting_on_it():
    async def boom() -> None:
        raise ValueError("a bug")

    rig = Rig(Fake(boom), Fake())
    rig.submit()
    await until(lambda: rig.admission.inflight.count == 0)
    assert rig.endpoints.failover is not None and rig.endpoints.failover.silent_since(time.monotonic()) is None
    await asyncio.sleep(1.05)
    assert rig.tick() is None  # no outage was seen: no switch


async def test_a_probe_to_a_primary_that_hangs_holds_no_later_fallback_result():
    async def times_out() -> Exception:
        await asyncio.sleep(1.0)
        return ApiError(ApiErrorKind.TIMEOUT, "no reply")

    primary, fallback = Fake(times_out), Fake()
    rig = Rig(primary, fallback)
    failover = rig.endpoints.failover
    assert failover is not None
    failover.active, failover.reason = Endpoint.FALLBACK, Reason.UNREACHABLE  # on the fallback for an outage
    rig.admission.probe_now()
    probe = rig.submit()
    assert probe.reason is Priority.PROBE and probe.endpoint is Endpoint.PRIMARY
    t0 = time.monotonic()
    rig.submit()
    await until(lambda: len(rig.pipe.results) >= 1)
    assert time.monotonic() - t0 < 0.5 and rig.pipe.results[0].endpoint is Endpoint.FALLBACK
    await until(lambda: rig.admission.inflight.count == 0)
    assert [r.frame.seq for r in rig.pipe.results] == [2]  # the probe's frame, retried later, came after
