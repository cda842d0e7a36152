"""The wiring: capture -> encode -> classify -> decide -> publish, in one place.

Threads: one per camera (OpenCV), paho's network thread, and this asyncio loop,
which owns every piece of mutable agent state. Capture threads call in only
through their camera's :class:`~edge_agent.admission.Admission` (thread-safe:
rate, change gate, budget, API guard, in-flight limit) and ``call_soon_threadsafe``.

The classifier client and the MQTT output are made by factories the caller may
replace, so the agent's logic is tested in-process with fakes
(``tests/test_agent_inprocess.py``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from typing import Any, Callable, Protocol

import numpy as np

from . import __version__
from .annotate import annotate
from .admission import Admission, InFlight
from .budget import Budget
from .camera import CameraRuntime, Latest
from .capture import CaptureWorker, Frame
from .classify import ApiError, ApiGuard, ClassifyClient, Reply, new_session
from .config import Config, ConfigError
from .decide import Kind, State
from .encode import encode_jpeg, resize_for_api
from .episode import Episode
from .health import assess
from .messages import ResultMessage, StatusMessage, budget_payload, confidence_payload, state_payload
from .outputs.control import MAX_FPS, Command
from .outputs.dispatch import Dispatcher, Output
from .outputs.mqtt import MqttOutput
from .redact import Redactor
from .sdnotify import Notifier
from .storage.event import Event
from .storage.eventlog import EventLog
from .storage.files import JsonFile, ensure_state_dir
from .storage.settings import Settings
from .supervise import supervise
from .web.metrics import Metrics
from .web.view import summary_line

log = logging.getLogger(__name__)

WATCHDOG_PERIOD = 0.5
STOP_GRACE = 2.5  # seconds in-flight requests get on SIGTERM (the whole stop must fit in 5 s)
THUMBNAIL_SIZE = 320  # longest side of an event's picture in the history


class Classifier(Protocol):
    async def classify(self, jpeg: bytes) -> Reply: ...


def _mqtt_output(agent: "Agent", loop: asyncio.AbstractEventLoop) -> Output:
    return MqttOutput(agent.cfg, loop, agent, agent.events if agent.events.store is not None else None,
                      cameras=len(agent.cameras))


def _api_classifier(cfg: Config) -> tuple[Classifier, Any]:
    """The real client, and the aiohttp session to close at the end."""
    session = new_session(cfg.api)
    return ClassifyClient(cfg.api, session), session


class Agent:
    def __init__(self, cfg: Config, redactor: Redactor | None = None, notifier: Notifier | None = None, *,
                 classifier: Callable[[Config], tuple[Classifier, Any]] | None = None,
                 output: Callable[["Agent", asyncio.AbstractEventLoop], Output] | None = None,
                 worker_seams: Callable[[Any], dict[str, Any]] | None = None):
        self.cfg = cfg
        self.notifier = notifier or Notifier()
        self.redact = redactor or Redactor(cfg.secrets())
        self._make_classifier = classifier or _api_classifier
        self._make_output = output or _mqtt_output
        self._worker_seams = worker_seams or (lambda cam_cfg: {})  # tests: a fake source and clock per camera
        self.guard = ApiGuard(cfg.api)
        self.inflight = InFlight(cfg.api.max_in_flight)
        state_dir = self._state_dir()
        self.budget = Budget(cfg.api.budget, JsonFile(state_dir / "budget.json") if state_dir else None)
        self.settings = Settings(JsonFile(state_dir / "settings.json") if state_dir else None, max_fps=MAX_FPS)
        self.cameras = {c.name: CameraRuntime.create(c, Admission(c, inflight=self.inflight, budget=self.budget,
                                                                   api_ready=self.guard.ready))
                        for c in cfg.cameras}
        for cam in self.cameras.values():
            kept = self.settings.restore(cam.name, cam.cfg.fps)
            if kept.fps is not None:
                cam.admission.set_fps(kept.fps)
            if kept.paused:
                cam.admission.paused = True
        self._refusals = Episode()  # classify-now requests refused while the budget is spent
        self.events = EventLog(state_dir / "events.db" if state_dir else None, cfg.events)
        self.metrics = Metrics(self.cameras, self._live_metrics)
        self.started_at = time.time()
        self._stop = asyncio.Event()
        self.reloading = False  # set by SIGHUP: a new agent with a new config follows
        self._stopping = False
        self._all_ended = False
        self._tasks: set[asyncio.Task[None]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self.publisher: Output | None = None  # the MQTT output (status for people reads it)
        self.outputs = Dispatcher([])
        self.client: Classifier | None = None

    def _state_dir(self) -> Path | None:
        """The state folder (budget, settings), created 0700; without one the agent still runs."""
        try:
            return ensure_state_dir(self.cfg.state_dir)
        except OSError as exc:
            log.warning("state_dir %s cannot be used (%s): the budget and settings made over MQTT "
                        "will not survive a restart", self.cfg.state_dir, exc.strerror or exc)
            return None

    # -- control -------------------------------------------------------------------

    def request_stop(self) -> None:
        if not self._stop.is_set():
            log.info("stopping")
            self._stop.set()

    async def run(self) -> int:
        loop = self._loop = asyncio.get_running_loop()
        cfg = self.cfg
        log.info("edge-agent %s starting: %d camera(s), model %s at %s, MQTT %s:%d prefix %s",
                 __version__, len(self.cameras), cfg.api.model, self.redact(cfg.api.url), cfg.mqtt.host,
                 cfg.mqtt.port, cfg.mqtt.topic_prefix)
        server = None
        if cfg.status.enabled:  # first: a port in use is a config error, said before anything is opened
            from .web.server import StatusServer

            server = StatusServer(self)
            try:
                await server.start()
            except RuntimeError as exc:
                where = f"{cfg.status.host}:{cfg.status.port}"
                if "in use" in str(exc):
                    raise ConfigError("status.listen", f"{where} is in use; choose another port or set "
                                                       "status.enabled: false") from None
                raise ConfigError("status.listen", f"cannot listen on {where}: {str(exc).rsplit(': ', 1)[-1]}") \
                    from None
        self.client, session = self._make_classifier(cfg)
        await self.events.open()
        await self._remember_states()
        self.publisher = self._make_output(self, loop)
        self.outputs = Dispatcher([self.publisher])
        self.outputs.start()
        for cam in self.cameras.values():
            cam.worker = self._make_worker(cam)
            cam.worker.start()
        background = [asyncio.create_task(self._watchdog()), asyncio.create_task(supervise(self)),
                      asyncio.create_task(self.events.prune_forever())]
        if cfg.log_summary_interval > 0:
            background.append(asyncio.create_task(self._summaries()))
        try:
            await self._stop.wait()
        finally:
            await self._shutdown(background, session)
            if server is not None:
                await server.stop()
        return 0

    async def _remember_states(self) -> None:
        """The state each camera had before this start (the event store keeps it): a
        restart that decides the same state again is no event and keeps its ``since``."""
        for cam in self.cameras.values():
            before = await self.events.decided_before(cam.name)
            if before is not None:
                self.remember_state(cam.name, *before)

    def threads_stuck(self) -> bool:
        """After the stop: is a capture thread still inside a blocking call?"""
        return any(cam.worker is not None and cam.worker.alive for cam in self.cameras.values())

    @property
    def busy(self) -> bool:
        """Frames are being classified or applied."""
        return bool(self._tasks)

    def _make_worker(self, cam: CameraRuntime) -> CaptureWorker:
        loop = self._loop
        assert loop is not None

        def hop(fn: Any, *args: Any) -> bool:
            try:
                loop.call_soon_threadsafe(fn, *args)
                return True
            except RuntimeError:  # loop closed: the agent is gone
                return False

        def deliver(frame: Frame) -> None:
            if not hop(self._on_frame, cam, frame) and frame.slot is not None:
                frame.slot.release()

        return CaptureWorker(
            cam.cfg, image_size=self.cfg.api.image_size, jpeg_quality=self.cfg.api.jpeg_quality,
            admission=cam.admission, deliver=deliver,
            on_event=lambda kind, detail: hop(self._camera_event, cam, kind, detail),
            on_snapshot=lambda preview, at: hop(self._fresh_snapshot, cam, preview, at),
            **{"open_timeout": min(30.0, max(5.0, cam.cfg.stall_timeout)), **self._worker_seams(cam.cfg)})

    # -- frames --------------------------------------------------------------------

    def _on_frame(self, cam: CameraRuntime, frame: Frame) -> None:
        if self._stop.is_set() and not self._all_ended:
            # A stop was asked for after this frame was taken: start no new work.
            if frame.slot is not None:
                frame.slot.release()
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
            credits: float | None = None
            reached = True
            try:
                reply = await self.client.classify(frame.jpeg)
            except ApiError as err:
                credits, reached = err.credits, err.reached
                self._api_failed(cam, err, started, frame.preview)
            except Exception:  # a bug, not an API fault: say so, keep running
                log.exception("%s: classifying a frame failed unexpectedly", cam.name)
            else:
                credits = reply.credits
                self._api_ok(cam, started, reply)
            finally:
                if frame.slot is not None:
                    frame.slot.finish(credits=credits, reached=reached)
                    self.metrics.call(cam.name, frame.slot.reason, credits)
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
        cam.latest = Latest(frame.seq, frame.preview, reply.result, frame.captured_at, reply.latency_ms)
        cam.recent.append((frame.captured_at, reply.result.top, reply.result.confidence))
        state = cam.debouncer.feed(reply.result.top, reply.result.confidence, frame.captured_at,
                                   picture_changed=bool(frame.slot and frame.slot.picture_changed))
        decided = cam.debouncer.state
        in_state = None if decided is None else next(
            (p.confidence for p in reply.result.predictions if p.cls == decided.cls), 0.0)
        msg = ResultMessage(cam.name, self.cfg.api.model, reply.result, frame.captured_at, reply.latency_ms,
                            decided.cls if decided else None, in_state)
        self.outputs.result(cam.name, msg.payload())
        was_stale = cam.stale_since is not None
        cam.admission.unchecked_since = None
        cam.stale_since = None
        # The change gate keeps calling until a started change is confirmed.
        cam.admission.note_result(agrees=not cam.debouncer.pending, decided=state is not None)
        if state is None and was_stale and decided is not None:
            log.info("%s: the state is checked again (no longer stale)", cam.name)
            self.outputs.state(cam.name, self._state_payload(cam))
        if state is not None:
            if state.kind is Kind.RESUMED:
                log.info("%s: state -> %s as before the restart (since %s; confidence %.2f, %d of %d results): "
                         "no event", cam.name, state.cls,
                         time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(state.since)), state.confidence,
                         state.votes, state.window)
            else:
                log.info("%s: state -> %s (confidence %.2f, %d of %d results)", cam.name, state.cls,
                         state.confidence, state.votes, state.window)
            self.outputs.state(cam.name, self._state_payload(cam))
            self._publish_snapshot(cam, cam.latest.jpeg(cam.cfg.region))
            if state.kind is Kind.CHANGE:  # an event is a change: a state decided again after a restart is none
                self._spawn(self._record_event(cam, state, frame.captured_at, frame.preview))
            else:
                cam.previous_class = state.cls
        if decided is not None:
            # Retained, after every result: Home Assistant's confidence sensor has a value at once
            # after its own restart, while the state is sent only when it changes.
            self.outputs.confidence(cam.name, confidence_payload(decided.cls, in_state or 0.0, frame.captured_at))

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _record_event(self, cam: CameraRuntime, state: State, at: float, preview: np.ndarray) -> None:
        """A decided state change: committed to the event log, then published (and
        marked delivered when the broker acknowledges it)."""
        try:
            thumb = encode_jpeg(resize_for_api(preview, THUMBNAIL_SIZE), 70)
        except Exception:  # a picture is a nice-to-have; the event is not
            thumb = None
        event = await self.events.add(cam.name, state.cls, state.confidence, at, thumb, since=state.since)
        if event is None:  # no durable log: published all the same, not kept
            event = Event(id=int(time.time() * 1000), camera=cam.name, cls=state.cls, previous=cam.previous_class,
                          confidence=state.confidence, at=at, delivered=False, has_thumbnail=False)
        cam.previous_class = state.cls
        self.outputs.event(event)

    def _state_payload(self, cam: CameraRuntime) -> bytes:
        state = cam.debouncer.state
        assert state is not None
        return state_payload(state, cam.latest.result.predictions if cam.latest else None, cam.stale_since)

    def _check_stale(self, cam: CameraRuntime, now: float) -> None:
        """Honest when stale: a check that was needed has failed for ``stale_after``."""
        since = cam.admission.unchecked_since
        if since is None or cam.stale_since is not None or now - since < cam.cfg.decide.stale_after:
            return
        cam.stale_since = time.time() - (now - since)
        log.warning("%s: the state could not be checked for %.0f s (%s): marked stale", cam.name, now - since,
                    "API budget spent" if self.budget.exhausted() else (cam.last_error or "API failing"))
        if cam.debouncer.state is not None:
            self.outputs.state(cam.name, self._state_payload(cam))

    # -- snapshots -------------------------------------------------------------------

    def _publish_snapshot(self, cam: CameraRuntime, jpeg: bytes) -> None:
        cam.snapshot = jpeg
        self.outputs.snapshot(cam.name, jpeg)

    def _fresh_snapshot(self, cam: CameraRuntime, preview: np.ndarray, captured_at: float) -> None:
        state = cam.debouncer.state
        label = f"{state.cls} (since {time.strftime('%H:%M:%S', time.localtime(state.since))})" if state \
            else "no state yet"
        self._publish_snapshot(cam, annotate(preview, label, cam.cfg.region))
        log.info("%s: snapshot published on request", cam.name)

    # -- control (from the MQTT output's control topics) -----------------------------------

    def has_camera(self, name: str) -> bool:
        return name in self.cameras

    def remember_state(self, camera: str, cls: str, since: float) -> None:
        """The state before the restart: from the event store at start, else (no usable
        state_dir) the camera's retained state read back from the broker; used only while
        nothing is known or decided yet."""
        cam = self.cameras.get(camera)
        if cam is not None and cam.debouncer.state is None and cam.previous_class is None:
            cam.debouncer.remember(cls, since)
            cam.previous_class = cls

    def command(self, cmd: Command) -> None:
        cam = self.cameras.get(cmd.camera)
        if cam is not None:
            self._apply_command(cam, cmd)

    def _apply_command(self, cam: CameraRuntime, cmd: Command) -> None:
        if cmd.field == "snapshot":
            if cam.worker is not None and cam.online:
                cam.worker.request_snapshot()
            elif cam.latest is not None:
                self._publish_snapshot(cam, cam.latest.jpeg(cam.cfg.region))
            return
        if cmd.field == "classify":
            self._classify_now(cam)
            return
        if cmd.field == "enabled":
            cam.admission.paused = not cmd.value
            if cmd.value:
                cam.admission.forget_reference()  # the picture may have changed while paused
            log.info("%s: classification %s", cam.name, "resumed" if cam.enabled else "paused")
        elif cmd.field == "fps":
            assert isinstance(cmd.value, float)
            cam.admission.set_fps(cmd.value)
            log.info("%s: fps set to %g", cam.name, cmd.value)
        self.settings.record(cam.name, enabled=cam.enabled, fps=cam.fps, config_fps=cam.cfg.fps)
        self._publish_status(cam, force=True)

    def _classify_now(self, cam: CameraRuntime) -> None:
        """``P/<camera>/classify``: the newest frame, past the gate, not past the budget."""
        if self.budget.exhausted():
            if self._refusals.fail("spent"):
                view = self.budget.view()
                log.warning("%s: 'classify now' refused: the API budget for %s is spent (%d calls); "
                            "further refusals today are not logged", cam.name, view.day, view.calls)
            return
        self._refusals.ok()
        cam.admission.classify_now()
        log.info("%s: classifying the newest frame on request", cam.name)

    # -- API health ------------------------------------------------------------------

    def _api_failed(self, cam: CameraRuntime, err: ApiError, started: float,
                    frame_preview: np.ndarray | None = None) -> None:
        before = self.guard.status
        delay, should_log = self.guard.failure(err, started, time.monotonic())
        cam.admission.forget_reference()  # no result for the frame the gate compares with: look afresh
        if cam.admission.unchecked_since is None:
            cam.admission.unchecked_since = time.monotonic()
        cam.requests_failed += 1
        if cam.latest is None and frame_preview is not None:
            cam.unclassified = frame_preview  # the page shows it, so the camera can be aimed meanwhile
        self.metrics.request_failed(cam.name, err.kind)
        cam.last_error = self.redact(f"api: {err.description}")
        if should_log:
            if err.kind == "unauthorized":
                log.error("API key rejected (HTTP %s) by %s: check api.api_key; retrying every %g s",
                          err.status, self.redact(self.cfg.api.url), self.cfg.api.unauthorized_retry)
            else:
                log.warning("API %s; next request in %.1f s (backoff)", self.redact(err.description), delay)
        self._publish_status(cam, force=True)
        if self.guard.status != before:
            self._publish_all_status()

    def _api_ok(self, cam: CameraRuntime, started: float, reply: Reply) -> None:
        before = self.guard.status
        cam.latency.add(time.monotonic(), reply.latency_ms)
        self.metrics.request_ok(cam.name, reply.latency_ms / 1000)
        failures = self.guard.success(started)
        if failures:
            log.info("API recovered after %d failed request(s)", failures)
        if self.guard.status != before:
            self._publish_all_status()

    # -- camera health -----------------------------------------------------------------

    def _camera_event(self, cam: CameraRuntime, kind: str, detail: str | None) -> None:
        cam.opened = True
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
            cam.failures += 1
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
        """Stall detection independent of the capture thread, rates, periodic status."""
        while True:
            await asyncio.sleep(WATCHDOG_PERIOD)
            now = time.monotonic()
            for cam in self.cameras.values():
                w = cam.worker
                if w is None or cam.ended:
                    continue
                counts = cam.counters()
                self._check_stale(cam, now)
                cam.rate_in.sample(now, counts["captured"])
                cam.rate_out.sample(now, counts["sent"])
                last = w.last_frame_mono
                h = assess(w, now)
                if h.blocked and (cam.online or not cam.episode.active):
                    # Longer than any open or read may take: the source hangs in OpenCV.
                    self._camera_event(cam, "offline", f"capture blocked for {h.busy_for:.0f} s")
                elif cam.online and h.stalled:
                    # The capture thread may still be inside a blocking read: say so now.
                    self._camera_event(cam, "offline", f"no frame for {cam.cfg.stall_timeout:g} s")
                elif not cam.online and last is not None and last > cam.offline_at:
                    # Frames flow again without a reopen (a slow source caught up).
                    self._camera_event(cam, "online", None)
                self._publish_status(cam)

    async def _summaries(self) -> None:
        """One line per camera every ``log_summary_interval`` seconds."""
        before = {name: (cam.counters(), cam.requests_ok, cam.requests_failed) for name, cam in self.cameras.items()}
        while True:
            await asyncio.sleep(self.cfg.log_summary_interval)
            now = time.monotonic()
            for name, cam in self.cameras.items():
                counts, ok, failed = before[name]
                log.info("%s", summary_line(cam, self.cfg.log_summary_interval, counts, ok, failed, now))
                before[name] = (cam.counters(), cam.requests_ok, cam.requests_failed)

    # -- status ---------------------------------------------------------------------

    def status_of(self, cam: CameraRuntime) -> StatusMessage:
        counts = cam.counters()
        pub = self.publisher
        return StatusMessage(
            camera="online" if cam.online else "offline",
            api=self.guard.status,
            frames_captured=counts["captured"],
            frames_dropped=counts["dropped"],
            frames_sent=counts["sent"],
            requests_ok=cam.requests_ok,
            requests_failed=cam.requests_failed,
            messages_dropped=pub.messages_dropped if pub else 0,
            last_error=cam.last_error,
            enabled=cam.enabled,
            fps=cam.fps,
            camera_failures=cam.failures,
            mqtt_disconnects=pub.disconnects if pub else 0,
            frames_unchanged=counts["unchanged"],
            calls=counts["sent"],
            last_change=None if cam.admission.last_change_at is None else round(cam.admission.last_change_at, 3),
            budget=budget_payload(self.budget.view()),
            decode=cam.worker.source_info if cam.worker else None,
            device=self.cfg.device_id,
        )

    def _publish_status(self, cam: CameraRuntime, *, force: bool = False) -> None:
        if self.publisher is None:
            return
        if not cam.opened and not self._stopping:
            return  # before the first open attempt "offline" would be a false alarm, "online" a guess
        msg = self.status_of(cam)
        now = time.monotonic()
        prev = cam.last_status
        changed = prev is None or msg.health() != prev.health()
        periodic = prev is not None and msg != prev and now - cam.last_status_at >= self.cfg.status_interval
        if not (force or changed or periodic):
            return
        cam.last_status, cam.last_status_at = msg, now
        self.outputs.status(cam.name, msg.payload())

    def _publish_all_status(self) -> None:
        for cam in self.cameras.values():
            self._publish_status(cam)

    def _live_metrics(self) -> dict[str, Any]:
        pub = self.publisher
        return {
            "cameras": [{"name": cam.name, "online": cam.online, "enabled": cam.enabled, **cam.counters()}
                        for cam in self.cameras.values()],
            "mqtt_connected": bool(pub and pub.connected),
            "mqtt_dropped": pub.messages_dropped if pub else 0,
            "in_flight": self.inflight.count,
            "budget": self.budget.view(),
        }

    # -- stop -----------------------------------------------------------------------

    async def _shutdown(self, background: list[asyncio.Task[None]], session: object) -> None:
        self._stopping = True
        if self.reloading:
            self.notifier.send("RELOADING=1")  # READY=1 comes again from the next agent
        else:
            self.notifier.stopping()
        for cam in self.cameras.values():
            cam.admission.closed = True
        for task in background:
            task.cancel()
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
        await self.outputs.stop()
        await self.events.close()
        if session is not None:
            await session.close()
        self.budget.flush()
        deadline = time.monotonic() + 1.0
        for cam in self.cameras.values():
            if cam.worker:
                cam.worker.join(max(0.0, deadline - time.monotonic()))
        log.info("stopped")
