"""The wiring: capture -> encode -> classify -> decide -> publish, in one place,
and the lifecycle: what is started, and its teardown tied to its start.

Threads: one per camera (OpenCV), paho's network thread, and this asyncio loop,
which owns every piece of mutable agent state. Capture threads call in only
through their camera's :class:`~edge_agent.admission.Admission` (thread-safe:
rate, change gate, budget, API guard, in-flight limit) and one hand-over point,
``hop`` (``call_soon_threadsafe``).

A delivered frame is classified (``pipeline/call.py``) and its result goes
through the stages (``pipeline/stages.py``) to the outputs (``outputs/registry.py``).
The classifier and the outputs are made by factories the caller may replace, so
the agent's logic is tested in-process with fakes (``tests/inprocess.py``).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any, Callable

from . import __version__
from .admission import Admission, InFlight
from .budget import Budget
from .camera import CameraRuntime, by_camera
from .capture import CaptureWorker, Frame, Tap
from .classify import ApiGuard, Classifier, build_classifier, build_endpoint
from .config import ApiConfig
from .endpoints import Endpoints
from .commands import Commands
from .config import Config, ConfigError
from .dataset.collect import Collection
from .metrics import Metrics
from .outputs.control import MAX_FPS
from .outputs.dispatch import Dispatcher, Output, OutputHealth
from .outputs.mqtt import MqttOutput
from .outputs.registry import OutputContext, build_outputs
from .pipeline import Calls, Pipeline, StageContext, build_stages
from .redact import Redactor
from .sdnotify import Notifier
from .status_topic import StatusTopic
from .storage.eventlog import EventLog
from .storage.files import JsonFile, ensure_state_dir
from .storage.settings import Settings
from .supervise import supervise
from .tasks import TaskSet
from .watch import CameraWatch

log = logging.getLogger(__name__)

STOP_GRACE = 2.5  # seconds in-flight requests get on SIGTERM (the whole stop must fit in 5 s)


class Agent:
    def __init__(self, cfg: Config, redactor: Redactor | None = None, notifier: Notifier | None = None, *,
                 classifier: Callable[[Config], tuple[Classifier, Any]] | None = None,
                 fallback: Callable[[ApiConfig], tuple[Classifier, Any]] | None = None,
                 outputs: Callable[[OutputContext], list[Output]] | None = None,
                 worker_seams: Callable[[Any], dict[str, Any]] | None = None):
        self.cfg = cfg
        self.notifier = notifier or Notifier()
        self.redact = redactor or Redactor(cfg.secrets())
        self._make_classifier = classifier or build_classifier
        self._make_fallback = fallback or build_endpoint
        self._make_outputs = outputs or build_outputs
        self._worker_seams = worker_seams or (lambda cam_cfg: {})  # tests: a fake source and clock per camera
        self.inflight = InFlight(cfg.api.max_in_flight)
        state_dir = self._state_dir()
        self.budget = Budget(cfg.api.budget, JsonFile(state_dir / "budget.json") if state_dir else None)
        self.endpoints = Endpoints(cfg.api, self.budget, self.redact)  # the primary, and a fallback (#22)
        self.settings = Settings(JsonFile(state_dir / "settings.json") if state_dir else None, max_fps=MAX_FPS)
        # One runtime per thing classified: a camera, or each view of a camera (#21), named as published.
        fallback_door = self.endpoints if self.endpoints.fallback is not None else None
        self.cameras = {c.name: CameraRuntime.create(c, Admission(c, inflight=self.inflight, budget=self.budget,
                                                                   api_ready=self.endpoints.ready,
                                                                   fallback=fallback_door))
                        for c in cfg.targets()}
        self.events = EventLog(state_dir / "events.db" if state_dir else None, cfg.events)
        self.collection = Collection(cfg, state_dir) if cfg.dataset.enabled else None
        self.metrics = Metrics(self.cameras, self._live_metrics,
                               endpoints=[str(r.name) for r in (self.endpoints.primary, self.endpoints.fallback) if r])
        self.outputs = Dispatcher()  # attached at the start, once the loop runs
        self.status = StatusTopic(cfg, self.cameras, self.endpoints, self.budget, self.outputs,
                                  collection=self.collection)
        self.commands = Commands(self.cameras, self.settings, self.budget, self.status, self.outputs,
                                 self.collection)
        self.commands.restore_settings()
        self.watch = CameraWatch(self.cameras, self.status, self.outputs, self.budget, self.redact,
                                 self._on_all_ended)
        self.tasks = TaskSet()
        self.started_at = time.time()
        self._stop = asyncio.Event()
        self.reloading = False  # set by SIGHUP: a new agent with a new config follows
        self._all_ended = False
        self._background: list[asyncio.Task[None]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._calls: Calls | None = None
        self._probes = 0  # probes asked for (failover): which camera is asked next

    def _state_dir(self) -> Path | None:
        """The state folder (budget, settings), created 0700; without one the agent still runs."""
        try:
            return ensure_state_dir(self.cfg.state_dir)
        except OSError as exc:
            log.warning("state_dir %s cannot be used (%s): the budget and settings made over MQTT "
                        "will not survive a restart", self.cfg.state_dir, exc.strerror or exc)
            return None

    # -- what others read and ask ------------------------------------------------------

    @property
    def guard(self) -> ApiGuard:
        """The API's status and last error as shown: the endpoint in use's."""
        return self.endpoints.guard

    def mqtt(self) -> OutputHealth | None:
        """The MQTT output's figures (the page and systemd's readiness read them)."""
        return self.outputs.health_of(MqttOutput.name)

    @property
    def busy(self) -> bool:
        """Frames are being classified or applied (or, sampled, kept for training)."""
        return bool(self.tasks) or (self.collection is not None and self.collection.busy)

    def threads_stuck(self) -> bool:
        """After the stop: is a capture thread still inside a blocking call?"""
        return any(cam.worker is not None and cam.worker.alive for cam in self.cameras.values())

    def request_stop(self) -> None:
        if not self._stop.is_set():
            log.info("stopping")
            self._stop.set()

    def _on_all_ended(self) -> None:
        self._all_ended = True
        self._stop.set()

    # -- the lifecycle -----------------------------------------------------------------

    async def run(self) -> int:
        loop = self._loop = asyncio.get_running_loop()
        cfg = self.cfg
        views = len(self.cameras) - sum(1 for c in cfg.cameras if not c.views)
        log.info("edge-agent %s starting: %d camera(s)%s, model %s at %s, MQTT %s:%d prefix %s",
                 __version__, len(cfg.cameras), f" ({views} view(s))" if views else "", cfg.api.model,
                 self.redact(cfg.api.url), cfg.mqtt.host, cfg.mqtt.port, cfg.mqtt.topic_prefix)
        async with AsyncExitStack() as stack:  # torn down in the reverse order of this
            if cfg.status.enabled:  # first: a port in use is a config error, said before anything is opened
                await self._start_status_server(stack)
            stack.push_async_callback(self._last_words)
            client, session = self._make_classifier(cfg)
            if session is not None:
                stack.push_async_callback(session.close)
            fallback_client = None
            if (fallback_api := cfg.api.fallback_api()) is not None:
                fallback_client, fallback_session = self._make_fallback(fallback_api)
                if fallback_session is not None:
                    stack.push_async_callback(fallback_session.close)
            self.endpoints.attach(client, fallback_client)
            await self.events.open()
            stack.push_async_callback(self.events.close)
            await self._remember_states()
            self.outputs.attach(self._make_outputs(OutputContext(
                cfg, loop, self.commands, self.events if self.events.store is not None else None)))
            self.outputs.start()
            stack.push_async_callback(self.outputs.stop)
            if self.collection is not None:
                await self._start_collection(stack, session)
            pipeline = Pipeline(build_stages(StageContext(cfg.api.model, self.outputs, self.events,
                                                          self.tasks.spawn, self.collection)))
            self._calls = Calls(cfg.api, self.endpoints, pipeline, self.status, self.metrics, self.redact,
                                self.tasks)
            stack.push_async_callback(self._stop_work)
            for views in by_camera(self.cameras.values()).values():  # one capture thread, one decode, per camera
                worker = self._make_worker(views)
                for cam in views:
                    cam.worker = worker
                worker.start()
            self._background = [asyncio.create_task(self.watch.watchdog()), asyncio.create_task(supervise(self)),
                                asyncio.create_task(self.events.prune_forever())]
            if cfg.log_summary_interval > 0:
                self._background.append(asyncio.create_task(self.watch.summaries(cfg.log_summary_interval)))
            if self.endpoints.fallback is not None:
                self._background.append(asyncio.create_task(
                    self.endpoints.run(self._ask_probe, self._cancel_probes, self.status.publish_all)))
                self._background.append(asyncio.create_task(self.endpoints.warm_up()))
            await self._stop.wait()
        return 0

    async def _start_status_server(self, stack: AsyncExitStack) -> None:
        from .web.server import ListenError, StatusServer

        server = StatusServer(self)
        try:
            await server.start()
        except ListenError as exc:
            if exc.in_use:
                raise ConfigError("status.listen", f"{exc.where} is in use; choose another port or set "
                                                   "status.enabled: false") from None
            raise ConfigError("status.listen", f"cannot listen on {exc.where}: {exc.reason}") from None
        stack.push_async_callback(server.stop)

    async def _start_collection(self, stack: AsyncExitStack, session: Any) -> None:
        """Training data: the queue opened and the uploader started, over the agent's
        HTTP session (or one of its own when the classifier brought none)."""
        assert self.collection is not None
        if session is None:
            import aiohttp

            session = aiohttp.ClientSession()
            stack.push_async_callback(session.close)
        await self.collection.start(session)
        stack.push_async_callback(self.collection.close)  # after the last results were sampled

    async def _remember_states(self) -> None:
        """The state each camera had before this start (the event store keeps it): a
        restart that decides the same state again is no event and keeps its ``since``."""
        for cam in self.cameras.values():
            before = await self.events.decided_before(cam.name)
            if before is not None:
                self.commands.remember_state(cam.name, *before)

    def _make_worker(self, views: list[CameraRuntime]) -> CaptureWorker:
        loop = self._loop
        assert loop is not None
        first = views[0].cfg
        camera = first if first.view_of is None else dataclasses.replace(
            first, name=first.view_of, region=None, view_of=None, view=None)  # the source's settings are shared

        def hop(fn: Any, *args: Any) -> bool:
            try:
                loop.call_soon_threadsafe(fn, *args)
                return True
            except RuntimeError:  # loop closed: the agent is gone
                return False

        def deliver_to(cam: CameraRuntime) -> Callable[[Frame], None]:
            def deliver(frame: Frame) -> None:
                if not hop(self._on_frame, cam, frame) and frame.slot is not None:
                    frame.slot.release()
            return deliver

        def on_event(kind: Any, detail: str | None) -> None:
            for cam in views:  # the camera's health is each of its views'
                hop(self.watch.event, cam, kind, detail)

        def on_snapshot(preview: Any, at: float) -> None:
            hop(self._snapshot, views, preview, at)

        taps = [Tap(cam.cfg, cam.admission, deliver_to(cam),
                    keep_original=self.collection is not None and self.collection.collecting(cam.name))
                for cam in views]
        return CaptureWorker(
            camera, image_size=self.cfg.api.image_size, jpeg_quality=self.cfg.api.jpeg_quality, taps=taps,
            on_event=on_event, on_snapshot=on_snapshot,
            **{"open_timeout": min(30.0, max(5.0, camera.stall_timeout)), **self._worker_seams(camera)})

    def _snapshot(self, views: list[CameraRuntime], preview: Any, at: float) -> None:
        """The capture thread's answer to a snapshot request: for each view that asked."""
        for cam in views:
            if cam.snapshot_asked:
                cam.snapshot_asked = False
                self.commands.fresh_snapshot(cam, preview, at)

    def _ask_probe(self) -> bool:
        """On the fallback: the next frame of one camera that delivers goes to the primary
        (in turn, so one camera's trouble does not stop the probes)."""
        ready = [cam for cam in self.cameras.values() if cam.health.online and cam.enabled]
        if not ready:
            return False
        self._probes += 1
        ready[self._probes % len(ready)].admission.probe_now()
        return True

    def _cancel_probes(self) -> None:
        """A probe asked for and not sent (its camera went offline or paused), or no longer
        wanted (back on the primary): withdrawn, so no frame goes past the gate as one."""
        for cam in self.cameras.values():
            cam.admission.cancel_probe()

    def _on_frame(self, cam: CameraRuntime, frame: Frame) -> None:
        if (self._stop.is_set() and not self._all_ended) or self._calls is None:
            # A stop was asked for after this frame was taken: start no new work.
            if frame.slot is not None:
                frame.slot.release()
            return
        self._calls.submit(cam, frame)

    def _live_metrics(self) -> dict[str, Any]:
        mqtt = self.mqtt()
        return {
            "cameras": [{"name": cam.name, "online": cam.health.online, "enabled": cam.enabled, **cam.counters()}
                        for cam in self.cameras.values()],
            "mqtt_connected": bool(mqtt and mqtt.connected),
            "mqtt_dropped": mqtt.messages_dropped if mqtt else 0,
            "in_flight": self.inflight.count,
            "budget": self.budget.view(),
            "endpoints": {str(r.name): r is self.endpoints.active
                          for r in (self.endpoints.primary, self.endpoints.fallback) if r is not None},
            "dataset": None if self.collection is None else {
                "counts": self.collection.counts(), "queued": self.collection.queue_length(),
                "queued_bytes": self.collection.queue_bytes()},
        }

    # -- the stop ------------------------------------------------------------------------

    async def _stop_work(self) -> None:
        """No new frame, the capture threads asked to stop, requests in flight finished
        (or cancelled after a grace), and each camera's last status sent."""
        self.status.stopping = True
        if self.collection is not None:
            self.collection.finishing()  # the upload under way gets the drain's grace to finish
        if self.reloading:
            self.notifier.send("RELOADING=1")  # READY=1 comes again from the next agent
        else:
            self.notifier.stopping()
        for cam in self.cameras.values():
            cam.admission.close()
        for task in self._background:
            task.cancel()
        for cam in self.cameras.values():
            if cam.worker:
                cam.worker.stop()
        # A file that ended: let every request finish (each is bounded by the
        # API timeout). A signal: give them a short grace, then cancel.
        await self.tasks.drain(self.cfg.api.timeout + 1 if self._all_ended else STOP_GRACE)
        for cam in self.cameras.values():
            cam.health.online = False
            self.status.publish(cam, force=True)

    async def _last_words(self) -> None:
        """After the outputs, the event log and the HTTP session are closed."""
        self.budget.flush()
        deadline = time.monotonic() + 1.0
        for cam in self.cameras.values():
            if cam.worker:
                cam.worker.join(max(0.0, deadline - time.monotonic()))
        log.info("stopped")
