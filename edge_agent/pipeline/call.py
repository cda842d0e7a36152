"""The classify step: one request per delivered frame, the reply turned into a
:class:`~edge_agent.pipeline.result.Result` and run through the stages in
capture order (a camera's frame waits for the one taken before it, however the
replies overtake each other). A failed request is counted, logged once per
episode, shown on the status topic and backed off (``ApiGuard``); it never stops
the loop. The admission slot is settled exactly once, whatever happens.

With a fallback (``endpoints.py``) the slot says where the request goes. A frame
is never lost to a switch: a request to the primary that fails once calls are on
the fallback, or still waits on the primary when they switch (a hang), is given
up and the frame classified by the fallback. The budget is billed for the
primary's request only; the call is counted once, where it went first."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..budget import Priority
from ..checking import Why
from ..classify import ApiError, ApiErrorKind, Reply
from ..config import ApiConfig
from ..endpoints import Endpoints, Route
from ..failover import Endpoint
from ..redact import Redactor
from ..status_topic import StatusTopic
from ..tasks import TaskSet
from ..metrics import Metrics
from .result import Result
from .run import Pipeline

if TYPE_CHECKING:
    from ..camera import CameraRuntime
    from ..capture import Frame

log = logging.getLogger(__name__)


@dataclass
class Calls:
    api: ApiConfig
    endpoints: Endpoints
    pipeline: Pipeline
    status: StatusTopic
    metrics: Metrics
    redact: Redactor
    tasks: TaskSet

    def submit(self, cam: "CameraRuntime", frame: "Frame") -> None:
        """On the loop: classify ``frame``; its result goes through the stages after the
        camera's previous frame's. A probe of the primary (failover) is outside that
        order: a primary that hangs must not hold the fallback's results behind it; its
        result is used only if no later frame's came first."""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if frame.slot is not None and frame.slot.reason is Priority.PROBE:
            prev = None
        else:
            prev, cam.order_tail = cam.order_tail, done
        self.tasks.spawn(self._process(cam, frame, prev, done))

    async def _process(self, cam: "CameraRuntime", frame: "Frame", prev: asyncio.Future[None] | None,
                       done: asyncio.Future[None]) -> None:
        slot = frame.slot
        started = time.monotonic()
        answer: Answer | None = None
        try:
            try:
                endpoint = slot.endpoint if slot is not None else self.endpoints.active.name
                if endpoint is Endpoint.PRIMARY and self.endpoints.takes_all() and slot is not None \
                        and slot.reason is not Priority.PROBE:
                    # Decided for the primary just before calls switched: never sent there.
                    slot.bill(credits=None, reached=False)
                    endpoint = Endpoint.FALLBACK
                answer = await self._call(cam, frame, endpoint, started)
                if slot is not None:
                    # The budget counts the primary only; a call is counted once, where it went first.
                    slot.bill(credits=answer.credits, reached=answer.reached)
                    self.metrics.call(cam.name, slot.reason, answer.credits)
                if answer.retry:  # the primary is down and calls went to the fallback: this frame too
                    answer = await self._call(cam, frame, Endpoint.FALLBACK, time.monotonic())
            finally:
                if slot is not None:
                    # Billed above; if not (the stop cut the request short), it may have been sent: kept.
                    slot.finish(credits=None, reached=True)
            if prev is not None and not prev.done():
                # Apply in capture order: wait for the previous frame of this camera.
                await asyncio.shield(prev)
            if answer is not None and answer.reply is not None and frame.seq > cam.applied_seq:
                cam.applied_seq = frame.seq
                self.pipeline.run(Result(cam, frame, answer.reply, started, endpoint=answer.endpoint,
                                         model=answer.model))
        finally:
            if not done.done():
                done.set_result(None)

    async def _call(self, cam: "CameraRuntime", frame: "Frame", endpoint: Endpoint, started: float) -> "Answer":
        """One request to ``endpoint``, counted, logged and backed off."""
        route = self.endpoints.route(endpoint)
        primary = route.name is Endpoint.PRIMARY
        model = route.model_for(cam.cfg.model, self.api.model)
        token = self.endpoints.token()
        if primary:
            self.endpoints.sent(token, started, probe=frame.slot is not None and frame.slot.reason is Priority.PROBE)
        try:
            reply = await self._request(route, frame.jpeg, model)
        except ApiError as err:
            retry = self._failed(cam, frame, err, started, route, token)
            return Answer(route.name, model, None, err.credits if primary else None, err.reached and primary, retry)
        except Abandoned:
            self.endpoints.forget(token)
            log.debug("%s: a request to the primary was given up for the fallback", cam.name)
            return Answer(route.name, model, None, None, True, retry=self._fallback_ready())  # it went out
        except asyncio.CancelledError:
            self.endpoints.forget(token)
            raise
        except Exception:  # a bug, not an API fault: say so, keep running
            self.endpoints.forget(token)
            log.exception("%s: classifying a frame failed unexpectedly", cam.name)
            return Answer(route.name, model, None, None, primary)
        self._ok(cam, started, reply, route, token)
        return Answer(route.name, model, reply, reply.credits if primary else None, primary)

    async def _request(self, route: Route, jpeg: bytes, model: str | None) -> Reply:
        """The request; one to the primary is given up (``Abandoned``) when calls leave it
        for the fallback while it waits (a hang must not hold its frame until its timeout)."""
        assert route.client is not None, "Endpoints.attach() comes before the first call"
        request = route.client.classify(jpeg, model=model)
        if route.name is not Endpoint.PRIMARY or self.endpoints.fallback is None or self.endpoints.takes_all():
            return await request
        task = asyncio.ensure_future(request)
        left = self.endpoints.left_primary()
        try:
            await asyncio.wait((task, left), return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:  # the stop's grace is over: the request goes with it
            task.cancel()
            raise
        if task.done():
            return task.result()
        task.cancel()
        await asyncio.wait((task,))  # its own end; a cancel of ours is not swallowed
        if not task.cancelled() and task.exception() is None:
            return task.result()  # it answered as it was given up
        raise Abandoned

    def _failed(self, cam: "CameraRuntime", frame: "Frame", err: ApiError, started: float, route: Route,
                token: int) -> bool:
        """Count, log once per episode, back off; True: retry the frame on the fallback."""
        endpoints = self.endpoints
        before = endpoints.guard.status
        delay, should_log = route.guard.failure(err, started, time.monotonic())
        route.failed += 1
        self.metrics.endpoint_failed(route.name, err.kind)
        switch = endpoints.failed(token, err.kind, started) if route.name is Endpoint.PRIMARY else None
        # Calls are on the fallback now (this failure switched them, or it was a probe): so is this frame.
        retry = route.name is Endpoint.PRIMARY and endpoints.takes_all() and self._fallback_ready()
        cam.figures.requests_failed += 1
        self.metrics.request_failed(cam.name, err.kind)
        if not retry:
            cam.admission.forget_reference()  # no result for the frame the gate compares with: look afresh
            cam.admission.mark_unchecked(time.monotonic(), Why.API)
            if cam.results.latest is None:
                cam.results.unclassified = frame.preview  # the page shows it, so the camera can be aimed meanwhile
            cam.health.last_error = self.redact(f"api: {err.description}")
        which = "" if endpoints.fallback is None else f"{route.name} "
        if should_log:
            if err.kind is ApiErrorKind.UNAUTHORIZED:
                log.error("API key rejected (HTTP %s) by %s: check %s; retrying every %g s",
                          err.status, self.redact(route.api.url),
                          "api.fallback.api_key" if route.name is Endpoint.FALLBACK else "api.api_key",
                          route.api.unauthorized_retry)
            else:
                log.warning("%sAPI %s; next request in %.1f s (backoff)", which, self.redact(err.description),
                            delay)
        self.status.publish(cam, force=True)
        if switch is not None or endpoints.guard.status != before:
            self.status.publish_all()
        return retry

    def _fallback_ready(self) -> bool:
        fallback = self.endpoints.fallback
        return fallback is not None and fallback.guard.ready(time.monotonic())

    def _ok(self, cam: "CameraRuntime", started: float, reply: Reply, route: Route, token: int) -> None:
        endpoints = self.endpoints
        before = endpoints.guard.status
        cam.figures.latency.add(time.monotonic(), reply.latency_ms)
        self.metrics.request_ok(cam.name, reply.latency_ms / 1000)
        self.metrics.endpoint_ok(route.name, reply.latency_ms / 1000)
        route.ok += 1
        failures = route.guard.success(started)
        if failures:
            log.info("%sAPI recovered after %d failed request(s)",
                     "" if endpoints.fallback is None else f"{route.name} ", failures)
        switch = endpoints.succeeded(token) if route.name is Endpoint.PRIMARY else None
        if switch is not None or endpoints.guard.status != before:
            self.status.publish_all()


@dataclass(frozen=True)
class Answer:
    """What one request came to."""

    endpoint: Endpoint
    model: str | None  # as asked of that endpoint
    reply: Reply | None  # None: it failed
    credits: float | None  # what the primary billed (None from the fallback)
    reached: bool  # the primary may have billed it (the budget keeps the call)
    retry: bool = False  # retry the frame on the fallback


class Abandoned(Exception):
    """A request to the primary given up because calls left it for the fallback."""
