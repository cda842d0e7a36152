"""MQTT publishing over paho-mqtt 2.x.

paho's own network thread keeps the connection and reconnects forever with
backoff (1 s doubling to 60 s); its callbacks hop onto the asyncio loop, so all
of this object's state is touched from the loop only.

* ``P/availability``: ``online`` retained after every connect; the last will
  publishes ``offline`` retained if the agent dies; ``stop()`` publishes it too.
* While the broker is down, results wait in a bounded queue (the oldest is
  dropped and counted when it is full). Retained topics (state, status) are not
  queued: ``on_connect`` republishes their current values after every connect.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import sys
import time
from collections import deque
from typing import Callable

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode

from ..config import MqttConfig
from ..episode import Episode, Throttle
from .topics import Topics

log = logging.getLogger(__name__)

MAX_INCOMING_PAYLOAD = 64 * 1024  # bytes: Home Assistant's own discovery configs are ~1 KB
MAX_INCOMING_TOPIC = 512  # characters


def _describe(err: BaseException) -> str:
    if isinstance(err, ssl.SSLCertVerificationError):
        return f"TLS certificate not trusted ({err.verify_message})"
    if isinstance(err, ssl.SSLError):
        return f"TLS error ({err.reason or err})"
    if isinstance(err, OSError) and err.strerror:
        return err.strerror
    return type(err).__name__


class MqttPublisher:
    def __init__(self, cfg: MqttConfig, topics: Topics, loop: asyncio.AbstractEventLoop,
                 on_connect: Callable[[], None],
                 subscriptions: tuple[str, ...] = (),
                 on_message: Callable[[str, bytes], None] | None = None,
                 retained_burst: int = 64):
        self.cfg = cfg
        self.topics = topics
        self._loop = loop
        self._on_connect_hook = on_connect
        self._subscriptions = subscriptions
        self._on_message_hook = on_message
        # paho's own queue (QoS>0 messages not yet acknowledged) must also hold the
        # burst of retained messages republished after a connect, or it would refuse them.
        self._retained_burst = retained_burst
        self.connected = False
        self.connects = 0
        self.disconnects = 0
        self.messages_dropped = 0
        self.messages_refused = 0  # incoming messages too big or malformed to read
        self._refused_log = Throttle(60.0)
        self._stopping = False
        self._pending: deque[tuple[str, bytes]] = deque()
        self._tracked: dict[int, Callable[[], None]] = {}  # message id -> what to do when acknowledged
        self._episode = Episode()
        self._client = self._make_client()

    def _make_client(self) -> mqtt.Client:
        cfg = self.cfg
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=cfg.client_id,
                             clean_session=True, protocol=mqtt.MQTTv311)
        client.will_set(self.topics.availability, "offline", qos=1, retain=True)
        if cfg.username:
            client.username_pw_set(cfg.username, cfg.password)
        if cfg.tls is not None:
            client.tls_set(ca_certs=cfg.tls.ca_certs, certfile=cfg.tls.certfile, keyfile=cfg.tls.keyfile,
                           cert_reqs=ssl.CERT_NONE if cfg.tls.insecure else ssl.CERT_REQUIRED)
            if cfg.tls.insecure:
                client.tls_insecure_set(True)
                log.warning("mqtt.tls.insecure is true: the broker's certificate is NOT verified")
        client.reconnect_delay_set(min_delay=1, max_delay=60)
        client.max_queued_messages_set(cfg.max_pending + self._retained_burst)
        client.on_connect = self._paho_on_connect
        client.on_disconnect = self._paho_on_disconnect
        client.on_connect_fail = self._paho_on_connect_fail
        client.on_message = self._paho_on_message
        client.on_publish = self._paho_on_publish
        return client

    # -- paho thread -> loop ------------------------------------------------------

    def _hop(self, fn: Callable[..., None], *args: object) -> None:
        try:
            self._loop.call_soon_threadsafe(fn, *args)
        except RuntimeError:  # loop closed during shutdown
            pass

    def _paho_on_connect(self, client, userdata, flags, reason_code, properties) -> None:  # noqa: ANN001
        if reason_code.is_failure:
            self._hop(self._failed, f"broker refused the connection: {reason_code}")
        else:
            self._hop(self._connected)

    def _paho_on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:  # noqa: ANN001
        self._hop(self._disconnected, f"connection lost ({reason_code})")

    def _paho_on_message(self, client, userdata, msg) -> None:  # noqa: ANN001
        if self._on_message_hook is None:
            return
        # Anyone on the broker can send anything: what the agent reads is small (a
        # number, ON/OFF, a discovery config), so a big or malformed message is
        # dropped here, in paho's thread, before it costs the loop anything.
        try:
            topic = msg.topic
        except UnicodeDecodeError:
            self._hop(self._dropped_message, "a topic that is not UTF-8")
            return
        if len(msg.payload) > MAX_INCOMING_PAYLOAD or len(topic) > MAX_INCOMING_TOPIC:
            self._hop(self._dropped_message, f"{len(msg.payload)} bytes on a topic of {len(topic)} characters")
            return
        self._hop(self._on_message_hook, topic, bytes(msg.payload), bool(msg.retain))

    def _paho_on_publish(self, client, userdata, mid, reason_code, properties) -> None:  # noqa: ANN001
        # The broker acknowledged a QoS 1 message (PUBACK): tracked ones say so on the loop.
        self._hop(self._acked, mid)

    def _paho_on_connect_fail(self, client, userdata) -> None:  # noqa: ANN001
        # paho calls this inside its ``except OSError`` block: the error is still current.
        err = sys.exc_info()[1]
        reason = f": {_describe(err)}" if err is not None else ""
        self._hop(self._failed, f"cannot connect to {self.cfg.host}:{self.cfg.port}{reason}")

    # -- loop side ----------------------------------------------------------------

    def _acked(self, mid: int) -> None:
        done = self._tracked.pop(mid, None)
        if done is not None:
            done()

    def publish_acked(self, topic: str, payload: bytes, on_ack: Callable[[], None]) -> bool:
        """Publish at QoS 1, not retained; ``on_ack`` runs on the loop once the broker
        has acknowledged it. False when not connected (nothing sent: the caller keeps
        the message and sends it again after the next connect)."""
        if not self.connected:
            return False
        info = self._client.publish(topic, payload, qos=1, retain=False)
        if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            return False
        self._tracked[info.mid] = on_ack
        return True

    def _dropped_message(self, what: str) -> None:
        self.messages_refused += 1
        left_out = self._refused_log.allow(time.monotonic())
        if left_out is not None:
            log.warning("MQTT: ignored an incoming message of %s (limits: %d bytes, a %d-character topic)%s; "
                        "at most one such line a minute", what, MAX_INCOMING_PAYLOAD, MAX_INCOMING_TOPIC,
                        f"; {left_out} more since the last such line" if left_out else "")

    def _connected(self) -> None:
        self.connected = True
        self._tracked.clear()  # a new session: the caller sends what was not acknowledged again
        self.connects += 1
        failures = self._episode.ok()
        if self.connects == 1:
            log.info("MQTT connected to %s:%d", self.cfg.host, self.cfg.port)
        else:
            log.info("MQTT connected again to %s:%d (after %d failed attempts)",
                     self.cfg.host, self.cfg.port, failures)
        self._send(self.topics.availability, b"online", retain=True)
        for topic in self._subscriptions:  # a clean session forgets them: subscribe on every connect
            self._client.subscribe(topic, qos=1)
        try:
            self._on_connect_hook()
        except Exception:  # pragma: no cover - a bug in the hook must not stop publishing
            log.exception("republishing after connect failed")
        while self._pending and self.connected:
            topic, payload = self._pending.popleft()
            self._send(topic, payload, retain=False)

    def _disconnected(self, why: str) -> None:
        if self.connected:
            self.disconnects += 1
        self.connected = False
        if not self._stopping and self._episode.fail("down"):
            log.warning("MQTT %s; reconnecting with backoff, results are queued (at most %d)",
                        why, self.cfg.max_pending)

    def _failed(self, why: str) -> None:
        self.connected = False
        if self._episode.fail("down"):
            log.warning("MQTT %s; retrying with backoff", why)

    def _send(self, topic: str, payload: bytes, *, retain: bool) -> bool:
        info = self._client.publish(topic, payload, qos=self.cfg.qos, retain=retain)
        if info.rc == MQTTErrorCode.MQTT_ERR_SUCCESS:
            return True
        if info.rc == MQTTErrorCode.MQTT_ERR_QUEUE_SIZE:
            self.messages_dropped += 1
            return False
        # Not connected after all (paho saw the loss first). QoS>0 messages stay
        # in paho's own queue and go out after the reconnect; QoS 0 ones are lost.
        if self.cfg.qos == 0 and not retain:
            self._enqueue(topic, payload)
        return False

    def _enqueue(self, topic: str, payload: bytes) -> None:
        if len(self._pending) >= self.cfg.max_pending:
            self._pending.popleft()
            self.messages_dropped += 1
        self._pending.append((topic, payload))

    # -- API ------------------------------------------------------------------

    def start(self) -> None:
        self._client.connect_async(self.cfg.host, self.cfg.port, keepalive=self.cfg.keepalive)
        self._client.loop_start()

    def publish(self, topic: str, payload: bytes, *, retain: bool = False) -> None:
        """Publish from the event loop. Never blocks, never raises for a dead broker."""
        if self.connected:
            self._send(topic, payload, retain=retain)
        elif not retain:
            self._enqueue(topic, payload)
        # A retained message while disconnected is dropped on purpose: the hook
        # republishes the current value of every retained topic after connecting.

    @property
    def pending(self) -> int:
        return len(self._pending)

    async def stop(self, timeout: float = 2.0) -> None:
        """Publish ``offline`` (retained), wait for it to leave, disconnect."""
        client = self._client
        self._stopping = True
        if self.connected and client.is_connected():
            info = client.publish(self.topics.availability, b"offline", qos=1, retain=True)
            try:
                await asyncio.wait_for(asyncio.to_thread(info.wait_for_publish, timeout), timeout + 0.5)
            except (asyncio.TimeoutError, RuntimeError, ValueError):
                log.warning("MQTT: could not confirm the 'offline' message before stopping")
        client.disconnect()
        await asyncio.to_thread(client.loop_stop)
        self.connected = False
