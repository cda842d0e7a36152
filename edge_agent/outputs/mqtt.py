"""The MQTT output: results, states, status, snapshots and events on the broker,
Home Assistant discovery, and the control topics.

* Retained topics (state, confidence, status, snapshot, discovery) are remembered
  here and published again after every (re)connect and Home Assistant birth.
* The agent's own retained states are read back (the subscription lasts, and the
  broker sends them again at every connect; only the first, before any state is
  decided, is used): the state before a restart when no event store says it (a
  restart deciding it again is no event).
* Events go out at QoS 1 and are marked delivered in the event log only when the
  broker acknowledges them; after a connect every undelivered event is sent again
  in order (at least once: a subscriber deduplicates by ``id``).
* Control messages (``set/…``, ``snapshot/request``, ``classify``) are parsed here
  and handed to the agent's ``Controls``; anyone on the broker may send anything,
  so bad input costs at most a log line a minute.
* What is published is per target (``Config.targets()``): a camera without views, or a
  view as camera ``<camera>-<view>``.
* A target no longer in the config (a camera or a view removed, or a camera that gained
  views: its own topics give way to its views'): its discovery configs are cleared first,
  its retained state, confidence, status and snapshot only once Home Assistant has dropped
  the entities that read them (``removal.py`` decides when), so HA logs nothing.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Protocol

from ..config import Config
from ..episode import Throttle
from ..messages import ConfidenceMessage, ResultMessage, StateMessage, StatusMessage, parse_state
from ..redact import bounded
from ..storage.event import Event
from ..storage.reader import EventReader
from .control import Command, parse_command
from .dispatch import OutputHealth
from .homeassistant import birth_topic, discovery_messages, is_stale, own_configs_filter
from .publish import MqttPublisher
from .removal import Removals, topics_named
from .topics import Topics

log = logging.getLogger(__name__)

REPUBLISH_SETTLE = 0.5  # s after Home Assistant's birth before republishing (births coalesce)
REPUBLISH_MIN_INTERVAL = 10.0  # s between two republishes for births
FORWARD_PAGE = 100  # undelivered events sent at once after a connect
FORWARD_ACK_WAIT = 10.0  # s to wait for a page's acknowledgements


class Controls(Protocol):
    """What the control topics may do to the agent."""

    def has_camera(self, name: str) -> bool: ...
    def command(self, cmd: Command) -> None: ...
    def remember_state(self, camera: str, cls: str, since: float) -> None: ...


class MqttOutput:
    name = "mqtt"

    def __init__(self, cfg: Config, loop: asyncio.AbstractEventLoop, controls: Controls,
                 events: EventReader | None = None):
        self.cfg = cfg
        self.topics = Topics(cfg.mqtt.topic_prefix)
        self.controls = controls
        self.events = events
        # Home Assistant discovery: fixed by the config, so built once.
        self.discovery = [(topic, json.dumps(payload, separators=(",", ":")).encode())
                          for topic, payload in discovery_messages(cfg, self.topics)] \
            if cfg.homeassistant.discovery else []
        self._discovery_topics = {topic for topic, _ in self.discovery}
        self._retained: dict[str, bytes] = {}  # topic -> the latest retained payload
        # Our own retained status topics: one of a camera no longer in the config is cleared,
        # with that camera's state and snapshot (as its discovery configs are).
        subscriptions = self.topics.control_filters + (f"{self.topics.prefix}/+/status",)
        # Our own retained states, read back (again at each connect; the agent uses only the
        # first, before anything is decided): the state before a restart when there is no
        # event store to say it (no usable state_dir).
        self._state_topics = {self.topics.state(t.name): t.name for t in cfg.targets()}
        self._targets = frozenset(self._state_topics.values())  # what publishes a status now
        subscriptions += tuple(self._state_topics)
        self._removals = Removals()
        self._removal_due: asyncio.TimerHandle | None = None
        if cfg.homeassistant.discovery:
            subscriptions += (birth_topic(cfg), own_configs_filter(cfg))
        retained = len(self.discovery) + 4 * len(self._targets) + 1
        self.publisher = MqttPublisher(cfg.mqtt, self.topics, loop, on_connect=self._on_connect,
                                       subscriptions=subscriptions, on_message=self.on_message,
                                       retained_burst=2 * retained + FORWARD_PAGE + 16)
        self._control_log = Throttle(60.0)
        self._republish_due: asyncio.TimerHandle | None = None
        self._republished_at = float("-inf")
        self._forwarding: asyncio.Task[None] | None = None
        self.events_sent = 0
        self.events_acked = 0

    # -- what the agent's dispatcher calls ---------------------------------------------

    def start(self) -> None:
        self.publisher.start()

    async def stop(self) -> None:
        if self._republish_due is not None:
            self._republish_due.cancel()
        if self._removal_due is not None:
            self._removal_due.cancel()
        for camera, topics in self._removals.flush():  # not left behind (the templates tolerate it)
            self._clear(camera, topics)
        if self._forwarding is not None:
            self._forwarding.cancel()
        await self.publisher.stop()

    def result(self, camera: str, msg: ResultMessage) -> None:
        self.publisher.publish(self.topics.result(camera), msg.payload())

    def state(self, camera: str, msg: StateMessage) -> None:
        self._retain(self.topics.state(camera), msg.payload())

    def status(self, camera: str, msg: StatusMessage) -> None:
        self._retain(self.topics.status(camera), msg.payload())

    def confidence(self, camera: str, msg: ConfidenceMessage) -> None:
        self._retain(self.topics.confidence(camera), msg.payload())

    def snapshot(self, camera: str, jpeg: bytes) -> None:
        self._retain(self.topics.snapshot(camera), jpeg)

    def event(self, event: Event) -> None:
        if self.events is None:  # no durable log: best effort at QoS 1
            self.publisher.publish(self.topics.event(event.camera), _event_bytes(event))
        elif self._forwarding is None or self._forwarding.done():
            self._send_event(event)
        # else: the forwarder is sending older ones first; it reaches this one in order

    def health(self) -> OutputHealth:
        p = self.publisher
        return OutputHealth(self.name, p.connected, p.messages_dropped, p.disconnects, p.pending)

    # -- inside ------------------------------------------------------------------------

    def _retain(self, topic: str, payload: bytes) -> None:
        self._retained[topic] = payload
        self.publisher.publish(topic, payload, retain=True)

    def _send_event(self, event: Event) -> bool:
        assert self.events is not None
        ok = self.publisher.publish_acked(self.topics.event(event.camera), _event_bytes(event),
                                          lambda: self._acked(event.id))
        if ok:
            self.events_sent += 1
        return ok

    def _acked(self, event_id: int) -> None:
        self.events_acked += 1
        if self.events is not None:
            self.events.delivered([event_id])

    def _on_connect(self) -> None:
        self._republish()
        self._schedule_removals()
        if self.events is not None:
            if self._forwarding is not None:
                self._forwarding.cancel()
            self._forwarding = asyncio.get_running_loop().create_task(self._forward())

    async def _forward(self) -> None:
        """Every undelivered event, in order, a page at a time, each page acknowledged
        before the next (a broker outage of any length is a backlog, not a burst)."""
        assert self.events is not None
        after, total = 0, 0
        while self.publisher.connected:
            page = await self.events.undelivered(after, FORWARD_PAGE)
            if not page:
                break
            before = self.events_acked
            for event in page:
                if not self._send_event(event):
                    return  # the connection went: the next connect starts again
                after = event.id
            total += len(page)
            deadline = time.monotonic() + FORWARD_ACK_WAIT
            while self.events_acked - before < len(page) and time.monotonic() < deadline \
                    and self.publisher.connected:
                await asyncio.sleep(0.02)
        if total:
            log.info("MQTT: sent %d event(s) held while the broker was away", total)

    def _republish(self) -> None:
        """After every (re)connect and Home Assistant birth: every retained topic."""
        for topic, payload in self.discovery:
            self.publisher.publish(topic, payload, retain=True)
        for topic, payload in self._retained.items():
            self.publisher.publish(topic, payload, retain=True)

    def on_message(self, topic: str, payload: bytes, retained: bool = False) -> None:
        """Every message from the broker."""
        cfg = self.cfg
        if cfg.homeassistant.discovery and topic == birth_topic(cfg):
            if payload.strip() == b"online":
                self._schedule_republish()
            return
        if cfg.homeassistant.discovery and topic.endswith("/config"):
            if is_stale(cfg, self._discovery_topics, topic, payload):
                log.info("removing the Home Assistant entity of %s (no longer in the config)", topic)
                self._removals.config_clearing(topic, topics_named(payload))
                self.publisher.publish(topic, b"", retain=True)
            elif not payload:  # a config cleared, ours echoed back: Home Assistant has it too
                self._removals.config_cleared(topic, self._now())
                self._schedule_removals()
            return
        camera = self._state_topics.get(topic)
        if camera is not None:
            before = parse_state(payload) if retained and payload else None
            if before is not None:
                self.controls.remember_state(camera, *before)
            return
        gone = self._removed_camera(topic, payload, retained)
        if gone is not None:
            if self._removals.camera_gone(gone, (self.topics.state(gone), self.topics.confidence(gone),
                                                 self.topics.snapshot(gone), self.topics.status(gone)), self._now()):
                log.info("camera %r is no longer in the config: its Home Assistant entities are removed first, "
                         "its retained state, confidence, snapshot and status cleared once they are gone", gone[:40])
                self._schedule_removals()
            return
        parsed = self.topics.parse_control(topic)
        if parsed is None:
            return
        camera, field = parsed
        if retained:
            # Commands act when sent, not at every start: what was set is kept in state_dir.
            self._bad_control(f"retained control message on {bounded(topic, 120)} ignored "
                              "(send commands without the retain flag; settings are kept in state_dir)")
            return
        if not self.controls.has_camera(camera):
            self._bad_control(f"control message for unknown camera {camera[:40]!r} on {bounded(topic, 120)} ignored")
            return
        try:
            cmd = parse_command(camera, field, payload)
        except ValueError as exc:
            self._bad_control(f"{camera}: control message on {bounded(topic, 120)} ignored: {exc}")
            return
        self.controls.command(cmd)

    def _removed_camera(self, topic: str, payload: bytes, retained: bool) -> str | None:
        """The camera of a retained status that is ours but of no target of the config (a
        camera or view removed; a camera that now has views publishes only as its views)."""
        prefix = self.topics.prefix + "/"
        if not (retained and payload and topic.startswith(prefix) and topic.endswith("/status")):
            return None
        camera = topic[len(prefix):-len("/status")]
        if not camera or "/" in camera or camera in self._targets or self._removals.pending(camera):
            return None
        try:  # only this device's: agents may share a prefix with cameras of their own
            if json.loads(payload).get("device") != self.cfg.device_id:
                return None
        except (ValueError, AttributeError, UnicodeDecodeError, RecursionError):
            return None
        return camera

    @staticmethod
    def _now() -> float:
        return asyncio.get_running_loop().time()

    def _schedule_removals(self) -> None:
        """Look again when the next removed camera's topics may be cleared."""
        if self._removal_due is not None:
            self._removal_due.cancel()
            self._removal_due = None
        now = self._now()
        at = self._removals.next_check(now)
        if at is not None:
            self._removal_due = asyncio.get_running_loop().call_later(max(0.0, at - now) + 0.01,
                                                                     self._clear_due)

    def _clear_due(self) -> None:
        self._removal_due = None
        if not self.publisher.connected:
            return  # looked at again on the next connect
        for camera, topics in self._removals.due(self._now()):
            self._clear(camera, topics)
        self._schedule_removals()

    def _clear(self, camera: str, topics: list[str]) -> None:
        log.info("clearing the retained %s of camera %r (no longer in the config)",
                 ", ".join(t.rsplit("/", 1)[-1] for t in topics), camera[:40])
        for topic in topics:
            self.publisher.publish(topic, b"", retain=True)

    def _bad_control(self, line: str) -> None:
        left_out = self._control_log.allow(time.monotonic())
        if left_out is not None:
            more = f" ({left_out} more bad control message(s) ignored since the last such line)" if left_out else ""
            log.warning("%s%s; at most one such line a minute", line, more)

    def _schedule_republish(self) -> None:
        """Home Assistant's birth: discovery and state again, once however many births
        arrive together (a flood of them must not become a flood of republishes)."""
        if self._republish_due is not None:
            return
        loop = asyncio.get_running_loop()
        wait = max(REPUBLISH_SETTLE, self._republished_at + REPUBLISH_MIN_INTERVAL - loop.time())

        def go() -> None:
            self._republish_due = None
            self._republished_at = loop.time()
            log.info("Home Assistant came online: publishing discovery and current state again")
            self._republish()

        self._republish_due = loop.call_later(wait, go)


def _event_bytes(event: Event) -> bytes:
    return json.dumps(event.payload(), separators=(",", ":"), ensure_ascii=False).encode()
