"""The wiring: capture -> encode -> classify -> decide -> publish, in one place.

Threads: one per camera (OpenCV), paho's network thread, and this asyncio loop,
which owns every piece of mutable agent state. Capture threads call in only
through ``_should_take`` (thread-safe: per-camera gate, a locked in-flight
counter, one float read) and ``call_soon_threadsafe``.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from dataclasses import dataclass, field

from . import __version__
from .capture import CaptureWorker, Frame
from .classify import ApiError, ApiGuard, ClassifyClient, Reply, new_session
from .config import CameraConfig, Config
from .decide import Debouncer
from .episode import Episode
from .messages import ResultMessage, StatusMessage, state_payload
from .publish import MqttPublisher
from .rate import RateGate
from .redact import Redactor
from .topics import Topics

log = logging.getLogger("edge_agent.agent")

WATCHDOG_PERIOD = 0.5
STOP_GRACE = 2.5  # seconds in-flight requests get on SIGTERM (the whole stop must fit in 5 s)


class InFlight:
    """A counting limit that capture threads can try without blocking."""

    def __init__(self, limit: int):
        self.limit = limit
        self._n = 0
        self._lock = threading.Lock()

    def try_acquire(self) -> bool:
        with self._lock:
            if self._n >= self.limit:
                return False
            self._n += 1
            return True

    def release(self) -> None:
        with self._lock:
            self._n = max(0, self._n - 1)

    @property
    def count(self) -> int:
        return self._n


@dataclass
class CameraRuntime:
    cfg: CameraConfig
    gate: RateGate
    debouncer: Debouncer
    worker: CaptureWorker | None = None
    online: bool = False
    ended: bool = False
    last_error: str | None = None
    requests_ok: int = 0
    requests_failed: int = 0
    episode: Episode = field(default_factory=Episode)
    order_tail: asyncio.Future[None] | None = None
    last_status: StatusMessage | None = None
    last_status_at: float = 0.0
    offline_at: float = 0.0  # monotonic time it was last marked offline

    @property
    def name(self) -> str:
        return self.cfg.name


class Agent:
    def __init__(self, cfg: Config, redactor: Redactor | None = None):
        self.cfg = cfg
        self.topics = Topics(cfg.mqtt.topic_prefix)
        self.redact = redactor or Redactor(cfg.secrets())
        self.guard = ApiGuard(cfg.api)
        self.inflight = InFlight(cfg.api.max_in_flight)
        self.cameras = {c.name: CameraRuntime(c, RateGate(c.fps), Debouncer(c.decide)) for c in cfg.cameras}
        self._stop = asyncio.Event()
        self._stopping = False
        self._all_ended = False
        self._tasks: set[asyncio.Task[None]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self.publisher: MqttPublisher | None = None
        self.client: ClassifyClient | None = None

    # -- control -------------------------------------------------------------------

    def request_stop(self) -> None:
        if not self._stop.is_set():
            log.info("stopping")
            self._stop.set()

    async def run(self) -> int:
        loop = self._loop = asyncio.get_running_loop()
        cfg = self.cfg
        log.info("edge-agent %s starting: %d camera(s), model %s at %s, MQTT %s:%d prefix %s",
                 __version__, len(self.cameras), cfg.api.model, cfg.api.url, cfg.mqtt.host,
                 cfg.mqtt.port, cfg.mqtt.topic_prefix)
        session = new_session(cfg.api)
        self.client = ClassifyClient(cfg.api, session)
        self.publisher = MqttPublisher(cfg.mqtt, self.topics, loop, on_connect=self._republish)
        self.publisher.start()
        for cam in self.cameras.values():
            cam.worker = self._make_worker(cam)
            cam.worker.start()
        watchdog = asyncio.create_task(self._watchdog())
        try:
            await self._stop.wait()
        finally:
            await self._shutdown(watchdog, session)
        return 0

    def _make_worker(self, cam: CameraRuntime) -> CaptureWorker:
        loop = self._loop
        assert loop is not None

        def deliver(frame: Frame) -> None:
            try:
                loop.call_soon_threadsafe(self._on_frame, cam, frame)
            except RuntimeError:  # loop closed: the agent is gone
                self.inflight.release()

        def on_event(kind: str, detail: str | None) -> None:
            try:
                loop.call_soon_threadsafe(self._camera_event, cam, kind, detail)
            except RuntimeError:
                pass

        return CaptureWorker(
            cam.cfg, image_size=self.cfg.api.image_size, jpeg_quality=self.cfg.api.jpeg_quality,
            should_take=lambda mono: self._should_take(cam, mono), deliver=deliver,
            release=self.inflight.release, on_event=on_event,
            open_timeout=min(10.0, max(2.0, cam.cfg.stall_timeout)))

    # -- capture thread entry point ------------------------------------------------------

    def _should_take(self, cam: CameraRuntime, mono: float) -> bool:
        """Called in the capture thread for every grabbed frame."""
        if self._stopping or not cam.gate.due(mono) or not self.guard.ready(mono):
            return False
        if not self.inflight.try_acquire():
            return False
        cam.gate.take(mono)
        return True

    # -- frames --------------------------------------------------------------------

    def _on_frame(self, cam: CameraRuntime, frame: Frame) -> None:
        if self._stop.is_set() and not self._all_ended:
            # A stop was asked for after this frame was taken: start no new work.
            self.inflight.release()
            return
        prev = cam.order_tail
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        cam.order_tail = done
        task = asyncio.create_task(self._process(cam, frame, prev, done))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _process(self, cam: CameraRuntime, frame: Frame, prev: asyncio.Future[None] | None,
                       done: asyncio.Future[None]) -> None:
        assert self.client is not None
        reply: Reply | None = None
        try:
            started = time.monotonic()
            try:
                reply = await self.client.classify(frame.jpeg)
            except ApiError as err:
                self._api_failed(cam, err, started)
            except Exception:  # a bug, not an API fault: say so, keep running
                log.exception("%s: classifying a frame failed unexpectedly", cam.name)
            else:
                self._api_ok(cam, started)
            finally:
                self.inflight.release()
            if prev is not None and not prev.done():
                # Apply in capture order: wait for the previous frame of this camera.
                await asyncio.shield(prev)
            if reply is not None:
                self._apply(cam, frame, reply)
        finally:
            if not done.done():
                done.set_result(None)

    def _apply(self, cam: CameraRuntime, frame: Frame, reply: Reply) -> None:
        assert self.publisher is not None
        cam.requests_ok += 1
        msg = ResultMessage(cam.name, self.cfg.api.model, reply.result, frame.captured_at, reply.latency_ms)
        self.publisher.publish(self.topics.result(cam.name), msg.payload())
        state = cam.debouncer.feed(reply.result.top, reply.result.confidence, frame.captured_at)
        if state is not None:
            log.info("%s: state -> %s (confidence %.2f)", cam.name, state.cls, state.confidence)
            self.publisher.publish(self.topics.state(cam.name), state_payload(state), retain=True)

    # -- API health ------------------------------------------------------------------

    def _api_failed(self, cam: CameraRuntime, err: ApiError, started: float) -> None:
        before = self.guard.status
        delay, should_log = self.guard.failure(err, started, time.monotonic())
        cam.requests_failed += 1
        cam.last_error = self.redact(f"api: {err.description}")
        if should_log:
            if err.kind == "unauthorized":
                log.error("API key rejected (HTTP %s) by %s: check api.api_key; retrying every %g s",
                          err.status, self.cfg.api.url, self.cfg.api.unauthorized_retry)
            else:
                log.warning("API %s; next request in %.1f s (backoff)", self.redact(err.description), delay)
        self._publish_status(cam, force=True)
        if self.guard.status != before:
            self._publish_all_status()

    def _api_ok(self, cam: CameraRuntime, started: float) -> None:
        before = self.guard.status
        failures = self.guard.success(started)
        if failures:
            log.info("API recovered after %d failed request(s)", failures)
        if self.guard.status != before:
            self._publish_all_status()

    # -- camera health -----------------------------------------------------------------

    def _camera_event(self, cam: CameraRuntime, kind: str, detail: str | None) -> None:
        if kind == "online":
            if cam.online:  # a looping file starting again: nothing new
                return
            failures = cam.episode.ok()
            cam.online = True
            if failures:
                log.info("%s: camera back online after %d failed attempt(s)", cam.name, failures)
            else:
                log.info("%s: camera online (%s)", cam.name, cam.worker.spec.describe() if cam.worker else "")
        elif kind == "offline":
            cam.online = False
            cam.offline_at = time.monotonic()
            text = self.redact(detail or "camera offline")
            cam.last_error = f"camera: {text}"
            if cam.episode.fail(text):
                log.warning("%s: camera offline: %s; reopening with backoff (cap 60 s)", cam.name, text)
        elif kind == "ended":
            cam.online = False
            cam.ended = True
            log.info("%s: video file ended", cam.name)
            if all(c.ended for c in self.cameras.values()):
                self._all_ended = True
                self._stop.set()
        self._publish_status(cam)

    async def _watchdog(self) -> None:
        """Stall detection independent of the capture thread, and periodic status."""
        while True:
            await asyncio.sleep(WATCHDOG_PERIOD)
            now = time.monotonic()
            for cam in self.cameras.values():
                w = cam.worker
                if w is None or cam.ended:
                    continue
                last = w.last_frame_mono
                if cam.online and last is not None and now - last > cam.cfg.stall_timeout:
                    # The capture thread may be stuck inside a blocking read: say so now.
                    self._camera_event(cam, "offline", f"no frame for {cam.cfg.stall_timeout:g} s")
                elif not cam.online and last is not None and last > cam.offline_at:
                    # Frames flow again without a reopen (a slow source caught up).
                    self._camera_event(cam, "online", None)
                self._publish_status(cam)

    # -- status ---------------------------------------------------------------------

    def status_of(self, cam: CameraRuntime) -> StatusMessage:
        w = cam.worker
        pub = self.publisher
        return StatusMessage(
            camera="online" if cam.online else "offline",
            api=self.guard.status,
            frames_captured=w.frames_captured if w else 0,
            frames_dropped=w.frames_dropped if w else 0,
            frames_sent=w.frames_sent if w else 0,
            requests_ok=cam.requests_ok,
            requests_failed=cam.requests_failed,
            messages_dropped=pub.messages_dropped if pub else 0,
            last_error=cam.last_error,
        )

    def _publish_status(self, cam: CameraRuntime, *, force: bool = False) -> None:
        if self.publisher is None:
            return
        msg = self.status_of(cam)
        now = time.monotonic()
        prev = cam.last_status
        changed = prev is None or msg.health() != prev.health()
        periodic = prev is not None and msg != prev and now - cam.last_status_at >= self.cfg.status_interval
        if not (force or changed or periodic):
            return
        cam.last_status, cam.last_status_at = msg, now
        self.publisher.publish(self.topics.status(cam.name), msg.payload(), retain=True)

    def _publish_all_status(self) -> None:
        for cam in self.cameras.values():
            self._publish_status(cam)

    def _republish(self) -> None:
        """After every (re)connect: the current value of every retained topic."""
        assert self.publisher is not None
        for cam in self.cameras.values():
            if cam.debouncer.state is not None:
                self.publisher.publish(self.topics.state(cam.name), state_payload(cam.debouncer.state), retain=True)
            self._publish_status(cam, force=True)

    # -- stop -----------------------------------------------------------------------

    async def _shutdown(self, watchdog: asyncio.Task[None], session: object) -> None:
        self._stopping = True
        watchdog.cancel()
        for cam in self.cameras.values():
            if cam.worker:
                cam.worker.stop()
        if self._tasks:
            # A file that ended: let every request finish (each is bounded by the
            # API timeout). A signal: give them a short grace, then cancel.
            grace = self.cfg.api.timeout + 1 if self._all_ended else STOP_GRACE
            _, pending = await asyncio.wait(set(self._tasks), timeout=grace)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending, timeout=0.5)
        for cam in self.cameras.values():
            cam.online = False
            self._publish_status(cam, force=True)
        assert self.publisher is not None
        await self.publisher.stop()
        await session.close()  # type: ignore[attr-defined]
        deadline = time.monotonic() + 1.0
        for cam in self.cameras.values():
            if cam.worker:
                cam.worker.join(max(0.0, deadline - time.monotonic()))
        log.info("stopped")
