"""Removing a camera without Home Assistant logging a line: its discovery configs are
cleared first, its retained state, confidence, snapshot and status only once HA has
dropped the entities that read them.

The order is decided in pure code (edge_agent/outputs/removal.py, clock passed in); then
checked with a real broker and the agent as a process, by a subscriber that records the
order of every message as Home Assistant would receive them."""

from __future__ import annotations

import json
import signal
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from edge_agent.config import parse_config
from edge_agent.outputs.homeassistant import discovery_messages
from edge_agent.outputs.removal import MAX_PENDING, Removals, topics_named
from edge_agent.outputs.topics import Topics
from tests.helpers import AgentProc, Broker, agent_config, wait_until
from tools.standin_api import StandinApi, ThreadedStandin

KEY = "rf_removal_SECRET_4"
PREFIX = "edge_agent/test"
GONE = tuple(f"{PREFIX}/gone/{k}" for k in ("state", "confidence", "snapshot", "status"))


# -- pure ------------------------------------------------------------------------------

def test_topics_named_reads_every_topic_a_config_reads_and_nothing_else():
    cfg = parse_config({"device_id": "test", "api": {"url": "http://127.0.0.1:9", "model": "m/1"},
                        "mqtt": {"topic_prefix": PREFIX},
                        "cameras": [{"name": "gone", "source": "x.mp4", "classes": ["red"]}]}, {})
    named = {t: topics_named(json.dumps(p).encode()) for t, p in discovery_messages(cfg, Topics(PREFIX))}
    cls = named["homeassistant/sensor/edge_agent_test/gone_class/config"]
    assert cls == {f"{PREFIX}/gone/state", f"{PREFIX}/gone/status", f"{PREFIX}/availability"}
    assert named["homeassistant/sensor/edge_agent_test/gone_confidence/config"] >= {f"{PREFIX}/gone/confidence"}
    assert named["homeassistant/image/edge_agent_test/gone_snapshot/config"] >= {f"{PREFIX}/gone/snapshot"}
    for bad in (b"", b"not json", b"[1, 2]", b'{"state_topic": 5}', b"{" * 100000):
        assert topics_named(bad) == frozenset()
    assert topics_named(b'{"stat_t": "a/b", "avty": [{"t": "c"}], "x": "y"}') == {"a/b"}


def test_state_topics_wait_for_the_empty_configs_to_come_back_and_settle():
    r = Removals(settle=3, max_wait=20)
    assert r.camera_gone("gone", GONE, now=0.0)
    assert not r.camera_gone("gone", GONE, now=0.1)  # known already
    r.config_clearing("hass/sensor/n/gone_class/config", {GONE[0], GONE[3]})
    r.config_clearing("hass/image/n/gone_snapshot/config", {GONE[2], GONE[3]})
    assert r.due(2.9) == []  # found just now: the retained configs may still be arriving
    # confidence is named by no config still waiting: it goes first; the rest wait for the echoes
    assert r.due(3.0) == [("gone", [GONE[1]])]
    r.config_cleared("hass/sensor/n/gone_class/config", now=4.0)
    assert r.due(5.0) == []  # the snapshot's config has not come back; the state's echo is 1 s old
    assert r.next_check(5.0) == 7.0
    assert r.due(7.0) == [("gone", [GONE[0]])]
    r.config_cleared("hass/image/n/gone_snapshot/config", now=8.0)
    assert r.due(10.9) == []
    assert r.due(11.0) == [("gone", [GONE[2], GONE[3]])]
    assert r.next_check(11.0) is None and not r.pending("gone")


def test_an_echo_that_never_comes_holds_nothing_for_ever():
    r = Removals(settle=3, max_wait=20)
    r.camera_gone("gone", GONE, now=0.0)
    r.config_clearing("hass/sensor/n/gone_class/config", set(GONE))
    assert r.due(19.9) == [] and r.next_check(10.0) == 20.0
    assert r.due(20.0) == [("gone", list(GONE))]


def test_flush_at_stop_and_bounds():
    r = Removals()
    r.camera_gone("gone", GONE, now=0.0)
    r.config_clearing("c", set(GONE))
    assert r.flush() == [("gone", list(GONE))] and r.flush() == []
    for i in range(MAX_PENDING + 10):
        r.camera_gone(f"c{i}", GONE, now=0.0)
        r.config_clearing(f"t{i}", set(GONE))
    assert sum(r.pending(f"c{i}") for i in range(MAX_PENDING + 10)) == MAX_PENDING


# -- with a broker ---------------------------------------------------------------------

class OrderRecorder:
    """Subscribes to ``homeassistant/#`` and ``P/#`` as Home Assistant does; keeps every
    message in arrival order."""

    def __init__(self, port: int):
        self.msgs: list[tuple[str, bytes, bool]] = []
        self._lock = threading.Lock()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"order-{id(self)}")
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe([("homeassistant/#", 1), (f"{PREFIX}/#", 1)])
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def _on_message(self, c, u, m) -> None:  # noqa: ANN001
        with self._lock:
            self.msgs.append((m.topic, bytes(m.payload), bool(m.retain)))

    def all(self) -> list[tuple[str, bytes, bool]]:
        with self._lock:
            return list(self.msgs)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def _leave_a_removed_camera(port: int) -> list[tuple[str, bytes]]:
    """What an agent with a camera 'gone' left on the broker: its real discovery configs
    (made by the agent's own code) and its retained state, confidence, snapshot and status."""
    cfg = parse_config({"device_id": "test", "api": {"url": "http://127.0.0.1:9", "model": "colours/1"},
                        "mqtt": {"topic_prefix": PREFIX}, "homeassistant": {"classes": ["red", "blue"]},
                        "cameras": [{"name": "gone", "source": "x.mp4"}]}, {})
    left = [(t, json.dumps(p).encode()) for t, p in discovery_messages(cfg, Topics(PREFIX)) if "/gone_" in t]
    left += [(GONE[0], b'{"class": "red", "confidence": 0.9, "since": 1.0}'),
             (GONE[1], b'{"class": "red", "confidence": 0.9, "at": 2.0}'),
             (GONE[2], b"\xff\xd8jpeg"),
             (GONE[3], json.dumps({"camera": "online", "device": "test"}).encode())]
    pub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="leaver")
    pub.connect("127.0.0.1", port)
    pub.loop_start()
    try:
        for topic, payload in left:
            pub.publish(topic, payload, qos=1, retain=True).wait_for_publish(5)
    finally:
        pub.loop_stop()
        pub.disconnect()
    return left


@pytest.mark.timeout(90)
def test_removing_a_camera_clears_no_topic_a_live_config_still_names(tmp_path: Path, videos, broker: Broker):
    left = _leave_a_removed_camera(broker.port)
    configs = {t: topics_named(p) for t, p in left if t.endswith("/config")}
    assert len(configs) >= 6 and all(configs.values())
    ha = OrderRecorder(broker.port)
    try:
        wait_until(lambda: len(ha.all()) >= len(left), 10, what="the retained topics")
        with ThreadedStandin(StandinApi(api_key=KEY)) as api:
            cfg = agent_config(api_url=api.url, broker_port=broker.port, api_key=KEY,
                               cameras=[{"name": "door", "source": str(videos["red_long"]), "fps": 2, "loop": True}])
            agent = AgentProc(tmp_path, cfg)
            try:
                # cleared while the agent runs, not only at its stop
                wait_until(lambda: {t for t, p, _ in ha.all() if t in GONE and not p} == set(GONE), 30,
                           what="the removed camera's state, confidence, snapshot and status cleared")
            finally:
                agent.signal(signal.SIGTERM)
                assert agent.wait(10) == 0
                agent.close()
        log = agent.log()
        assert "Traceback" not in log
    finally:
        ha.close()
    msgs = ha.all()
    cleared_at = {t: i for i, (t, p, _) in enumerate(msgs) if not p}
    assert set(configs) <= cleared_at.keys(), "every discovery config of the removed camera is cleared"
    for i, (topic, payload, _) in enumerate(msgs):
        if payload or topic.endswith("/config"):
            continue
        naming = [c for c, named in configs.items() if topic in named]
        late = [c for c in naming if cleared_at[c] > i]
        assert not late, f"{topic} was cleared while these configs still named it: {late}"


@pytest.mark.timeout(90)
def test_turning_training_data_off_clears_its_entities_and_nothing_else(tmp_path: Path, videos, broker: Broker):
    """dataset.enabled was on (the agent made the training-data entities), now it is off: their
    retained configs are cleared; the camera's own topics, which its other entities still read,
    stay."""
    before = parse_config({"device_id": "test", "api": {"url": "http://127.0.0.1:9", "model": "colours/1",
                                                        "api_key": KEY},
                           "mqtt": {"topic_prefix": PREFIX}, "dataset": {"enabled": True},
                           "cameras": [{"name": "door", "source": "x.mp4", "classes": ["red", "blue"]}]}, {})
    left = {t: json.dumps(p).encode() for t, p in discovery_messages(before, Topics(PREFIX))
            if any(k in t for k in ("save_for_training", "correct_class", "saved_today", "dataset_queued"))}
    assert len(left) == 4
    pub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="dataset-leaver")
    pub.connect("127.0.0.1", broker.port)
    pub.loop_start()
    try:
        for topic, payload in left.items():
            pub.publish(topic, payload, qos=1, retain=True).wait_for_publish(5)
    finally:
        pub.loop_stop()
        pub.disconnect()
    ha = OrderRecorder(broker.port)
    try:
        wait_until(lambda: len(ha.all()) >= len(left), 10, what="the retained configs")
        with ThreadedStandin(StandinApi(api_key=KEY)) as api:
            cfg = agent_config(api_url=api.url, broker_port=broker.port, api_key=KEY, prefix=PREFIX, cameras=[
                {"name": "door", "source": str(videos["red_long"]), "fps": 2, "loop": True,
                 "classes": ["red", "blue"]}])
            agent = AgentProc(tmp_path, cfg)
            try:
                wait_until(lambda: {t for t, p, _ in ha.all() if t in left and not p} == set(left), 30,
                           what="the training-data configs cleared")
                wait_until(lambda: any(t == f"{PREFIX}/door/state" and p for t, p, _ in ha.all()), 30,
                           what="door's state")
                time.sleep(4)  # Removals.SETTLE and more: nothing of door's is cleared after them
            finally:
                agent.signal(signal.SIGTERM)
                assert agent.wait(10) == 0
                agent.close()
    finally:
        ha.close()
    cleared = {t for t, p, _ in ha.all() if not p}
    assert cleared == set(left), cleared - set(left)  # door's state, status, confidence, snapshot stay


@pytest.mark.timeout(90)
def test_removing_one_view_clears_its_topics_and_nothing_of_the_other(tmp_path: Path, videos, broker: Broker):
    """#21: an agent had camera garage with views left and right-door (its configs and retained
    topics on the broker); the agent now runs with view left only: right-door's configs are
    cleared, then its state, confidence, snapshot and status; nothing of left's."""
    views = [{"name": "left", "region": [0, 0, 0.5, 1]}, {"name": "right-door", "region": [0.5, 0, 1, 1]}]
    before = parse_config({"device_id": "test", "api": {"url": "http://127.0.0.1:9", "model": "colours/1"},
                           "mqtt": {"topic_prefix": PREFIX},
                           "cameras": [{"name": "garage", "source": "x.mp4", "classes": ["red", "blue"],
                                        "views": views}]}, {})
    gone = tuple(f"{PREFIX}/garage-right-door/{k}" for k in ("state", "confidence", "snapshot", "status"))
    left = [(t, json.dumps(p).encode()) for t, p in discovery_messages(before, Topics(PREFIX))]
    for view in ("garage-left", "garage-right-door"):
        left += [(f"{PREFIX}/{view}/state", b'{"class": "red", "confidence": 0.9, "since": 1.0}'),
                 (f"{PREFIX}/{view}/confidence", b'{"class": "red", "confidence": 0.9, "at": 2.0}'),
                 (f"{PREFIX}/{view}/snapshot", b"\xff\xd8jpeg"),
                 (f"{PREFIX}/{view}/status", json.dumps({"camera": "online", "device": "test"}).encode())]
    pub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="view-leaver")
    pub.connect("127.0.0.1", broker.port)
    pub.loop_start()
    try:
        for topic, payload in left:
            pub.publish(topic, payload, qos=1, retain=True).wait_for_publish(5)
    finally:
        pub.loop_stop()
        pub.disconnect()
    configs = {t: topics_named(p) for t, p in left if "/garage-right-door_" in t}
    assert len(configs) == 7
    ha = OrderRecorder(broker.port)
    try:
        wait_until(lambda: len(ha.all()) >= len(left), 10, what="the retained topics")
        with ThreadedStandin(StandinApi(api_key=KEY)) as api:
            cfg = agent_config(api_url=api.url, broker_port=broker.port, api_key=KEY, cameras=[
                {"name": "garage", "source": str(videos["red_blue_split"]), "fps": 2, "loop": True,
                 "classes": ["red", "blue"], "views": views[:1]}])
            agent = AgentProc(tmp_path, cfg)
            try:
                wait_until(lambda: {t for t, p, _ in ha.all() if t in gone and not p} == set(gone), 30,
                           what="the removed view's state, confidence, snapshot and status cleared")
                time.sleep(1)
            finally:
                agent.signal(signal.SIGTERM)
                assert agent.wait(10) == 0
                agent.close()
        assert "Traceback" not in agent.log()
    finally:
        ha.close()
    msgs = ha.all()
    cleared_at = {t: i for i, (t, p, _) in enumerate(msgs) if not p}
    assert set(cleared_at) == set(configs) | set(gone), sorted(set(cleared_at) ^ (set(configs) | set(gone)))
    for topic in gone:
        naming = [c for c, named in configs.items() if topic in named]
        assert naming and all(cleared_at[c] < cleared_at[topic] for c in naming), topic
