"""The classify step: one request per delivered frame, the reply turned into a
:class:`~edge_agent.pipeline.result.Result` and run through the stages in
capture order (a camera's frame waits for the one taken before it, however the
replies overtake each other). A failed request is counted, logged once per
episode, shown on the status topic and backed off (``ApiGuard``); it never stops
the loop. The admission slot is settled exactly once, whatever happens."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..classify import ApiError, ApiErrorKind, ApiGuard, Classifier, Reply
from ..config import ApiConfig
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
    client: Classifier
    guard: ApiGuard
    pipeline: Pipeline
    status: StatusTopic
    metrics: Metrics
    redact: Redactor
    tasks: TaskSet

    def submit(self, cam: "CameraRuntime", frame: "Frame") -> None:
        """On the loop: classify ``frame``; its result goes through the stages after the
        camera's previous frame's."""
        prev = cam.order_tail
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        cam.order_tail = done
        self.tasks.spawn(self._process(cam, frame, prev, done))

    async def _process(self, cam: "CameraRuntime", frame: "Frame", prev: asyncio.Future[None] | None,
                       done: asyncio.Future[None]) -> None:
        reply: Reply | None = None
        started = time.monotonic()
        try:
            credits: float | None = None
            reached = True
            try:
                reply = await self.client.classify(frame.jpeg, model=cam.cfg.model)
            except ApiError as err:
                credits, reached = err.credits, err.reached
                self._failed(cam, frame, err, started)
            except Exception:  # a bug, not an API fault: say so, keep running
                log.exception("%s: classifying a frame failed unexpectedly", cam.name)
            else:
                credits = reply.credits
                self._ok(cam, started, reply)
            finally:
                if frame.slot is not None:
                    frame.slot.finish(credits=credits, reached=reached)
                    self.metrics.call(cam.name, frame.slot.reason, credits)
            if prev is not None and not prev.done():
                # Apply in capture order: wait for the previous frame of this camera.
                await asyncio.shield(prev)
            if reply is not None:
                self.pipeline.run(Result(cam, frame, reply, started))
        finally:
            if not done.done():
                done.set_result(None)

    def _failed(self, cam: "CameraRuntime", frame: "Frame", err: ApiError, started: float) -> None:
        before = self.guard.status
        delay, should_log = self.guard.failure(err, started, time.monotonic())
        cam.admission.forget_reference()  # no result for the frame the gate compares with: look afresh
        cam.admission.mark_unchecked(time.monotonic())
        cam.figures.requests_failed += 1
        if cam.results.latest is None:
            cam.results.unclassified = frame.preview  # the page shows it, so the camera can be aimed meanwhile
        self.metrics.request_failed(cam.name, err.kind)
        cam.health.last_error = self.redact(f"api: {err.description}")
        if should_log:
            if err.kind is ApiErrorKind.UNAUTHORIZED:
                log.error("API key rejected (HTTP %s) by %s: check api.api_key; retrying every %g s",
                          err.status, self.redact(self.api.url), self.api.unauthorized_retry)
            else:
                log.warning("API %s; next request in %.1f s (backoff)", self.redact(err.description), delay)
        self.status.publish(cam, force=True)
        if self.guard.status != before:
            self.status.publish_all()

    def _ok(self, cam: "CameraRuntime", started: float, reply: Reply) -> None:
        before = self.guard.status
        cam.figures.latency.add(time.monotonic(), reply.latency_ms)
        self.metrics.request_ok(cam.name, reply.latency_ms / 1000)
        failures = self.guard.success(started)
        if failures:
            log.info("API recovered after %d failed request(s)", failures)
        if self.guard.status != before:
            self.status.publish_all()
