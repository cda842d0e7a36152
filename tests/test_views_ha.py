"""Several views of one camera (#21) in Home Assistant: every view's entities in the agent's
one device with readable names and ids from the target's name; a camera without views
exactly as before; every entity that shows a value reads a retained topic; and a view
removed (or a camera that gained views, or lost them) is cleaned up: its discovery configs
first, its retained state, confidence, snapshot and status once those are gone, nothing
of the targets still there.

The discovery payloads are checked against Home Assistant's schemas (tests/ha_schema.py)
and their templates rendered as HA renders them; the removals with the MQTT output in this
process against a real mosquitto, with the retained topics an earlier config left behind."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest

from edge_agent.config import Config, parse_config
from edge_agent.outputs.control import Command
from edge_agent.outputs.homeassistant import discovery_messages, is_stale, label
from edge_agent.outputs.mqtt import MqttOutput
from edge_agent.outputs.removal import topics_named
from edge_agent.outputs.topics import Topics
from tests.ha_schema import validate_discovery
from tests.helpers import Broker
from tests.test_ha_removal import OrderRecorder
from tests.test_homeassistant import render

PREFIX = "edge_agent/test"
TOPICS = Topics(PREFIX)
NODE = "homeassistant/{}/edge_agent_test/{}/config"
GATE = {"name": "gate", "source": "rtsp://cam/1", "classes": ["car", "none"]}
LEFT = {"name": "left-door", "region": [0, 0, 0.5, 1]}
RIGHT = {"name": "right_door", "region": [0.5, 0, 1, 1], "classes": ["parcel", "none"]}


def config(*cameras: dict[str, Any], dataset: bool = False) -> Config:
    data: dict[str, Any] = {"device_id": "test", "api": {"url": "http://127.0.0.1:9", "model": "colours/1",
                                                         "api_key": "k"},
                            "mqtt": {"host": "127.0.0.1", "topic_prefix": PREFIX}, "cameras": list(cameras)}
    if dataset:
        data["dataset"] = {"enabled": True}
    return parse_config(data, {})


def garage(*views: dict[str, Any]) -> dict[str, Any]:
    cam: dict[str, Any] = {"name": "garage", "source": "rtsp://cam/2", "classes": ["open", "closed"]}
    return {**cam, "views": list(views)} if views else cam


TWO_VIEWS = config(garage(LEFT, RIGHT), GATE)
TWO_VIEWS_DATASET = config(garage(LEFT, RIGHT), GATE, dataset=True)
BOTH = pytest.mark.parametrize("cfg", [TWO_VIEWS, TWO_VIEWS_DATASET], ids=["plain", "dataset"])


def _by_target(cfg: Config) -> dict[str, dict[str, dict]]:
    """target name -> {config topic: payload} (the agent's own sensors under '')."""
    out: dict[str, dict[str, dict]] = {}
    names = {t.name for t in cfg.targets()}
    for topic, p in discovery_messages(cfg, TOPICS):
        owner = next((n for n in names if p["unique_id"].startswith(f"edge_agent_test_{n}_")), "")
        out.setdefault(owner, {})[topic] = p
    return out


# -- discovery (pure) ----------------------------------------------------------------------

@BOTH
def test_every_view_s_entities_are_valid_and_in_the_one_device(cfg):
    msgs = discovery_messages(cfg, TOPICS)
    components = [validate_discovery(topic, p) for topic, p in msgs]
    assert len({json.dumps(p["device"], sort_keys=True) for _, p in msgs}) == 1
    by = _by_target(cfg)
    assert set(by) == {"garage-left-door", "garage-right_door", "gate", ""}  # the camera itself has none
    for target in ("garage-left-door", "garage-right_door"):
        kinds = sorted(t.split("/")[1] for t in by[target])
        want = ["binary_sensor", "binary_sensor", "button", "event", "image", "sensor", "sensor"]
        if cfg.dataset.enabled:
            want = sorted(want + ["button", "select", "sensor"])
        assert kinds == want, (target, kinds)
    ids = [p["unique_id"] for _, p in msgs]
    assert len(ids) == len(set(ids)) and ids == [p["unique_id"] for _, p in discovery_messages(cfg, TOPICS)]
    entity_ids = [p["default_entity_id"] for _, p in msgs]
    assert len(entity_ids) == len(set(entity_ids))
    assert components.count("image") == 3


def test_a_view_s_entities_are_named_after_its_camera_and_view_and_identified_by_the_target():
    msgs = dict(discovery_messages(TWO_VIEWS, TOPICS))
    cls = msgs[NODE.format("sensor", "garage-left-door_class")]
    assert cls["name"] == "garage left door class"  # not "garage-left-door class"
    assert cls["unique_id"] == "edge_agent_test_garage-left-door_class"
    assert cls["default_entity_id"] == "sensor.edge_agent_test_garage_left_door_class"
    assert cls["state_topic"] == f"{PREFIX}/garage-left-door/state"
    assert cls["availability"][1]["topic"] == f"{PREFIX}/garage-left-door/status"
    right = msgs[NODE.format("binary_sensor", "garage-right_door_parcel")]
    assert right["name"] == "garage right door parcel"  # the view's own classes
    assert right["unique_id"] == "edge_agent_test_garage-right_door_is_parcel"
    assert render(right["value_template"], {"class": "parcel"}) == "ON"
    left_open = msgs[NODE.format("binary_sensor", "garage-left-door_open")]  # the camera's classes
    assert left_open["name"] == "garage left door open"
    button = msgs[NODE.format("button", "garage-left-door_classify")]
    assert button["name"] == "garage left door classify now"
    assert TOPICS.parse_control(button["command_topic"]) == ("garage-left-door", "classify")
    ev = msgs[NODE.format("event", "garage-right_door_change")]
    assert ev["event_types"] == ["parcel", "none", "other"] and ev["state_topic"] == f"{PREFIX}/garage-right_door/event"
    names = [p["name"] for p in msgs.values()]
    assert not any("-door" in n or "_door" in n for n in names), names
    target = TWO_VIEWS.targets()[0]
    assert label(target) == "garage left door" and label(TWO_VIEWS.targets()[2]) == "gate"


def test_a_camera_without_views_is_exactly_as_before():
    """The plain camera's configs (topics, ids, names, payloads) do not depend on another
    camera having views; and a camera's name is kept as written (dashes and all)."""
    alone = dict(discovery_messages(config(GATE), TOPICS))
    mixed = dict(discovery_messages(TWO_VIEWS, TOPICS))
    gate = {t: p for t, p in alone.items() if "/gate_" in t}
    assert len(gate) == 7 and all(mixed[t] == p for t, p in gate.items())
    assert gate[NODE.format("sensor", "gate_class")]["name"] == "gate class"
    assert gate[NODE.format("sensor", "gate_class")]["unique_id"] == "edge_agent_test_gate_class"
    dashed = dict(discovery_messages(config({**GATE, "name": "front-yard"}), TOPICS))
    cls = dashed[NODE.format("sensor", "front-yard_class")]
    assert (cls["name"], cls["unique_id"]) == ("front-yard class", "edge_agent_test_front-yard_class")


def test_the_agent_s_sensors_read_the_first_target_s_status():
    msgs = dict(discovery_messages(TWO_VIEWS_DATASET, TOPICS))
    for key in ("api_calls_today", "api_credits_today", "dataset_queued"):
        p = msgs[NODE.format("sensor", key)]
        assert p["state_topic"] == f"{PREFIX}/garage-left-door/status", key  # a view's: the camera has none
        assert p["availability"] == [{"topic": TOPICS.availability}]


@BOTH
def test_every_view_entity_that_shows_a_value_reads_a_retained_topic(cfg):
    """Retained: availability, and each target's state, confidence, status and snapshot; the
    camera with views publishes none of its own, so nothing may read P/garage/…."""
    retained = {TOPICS.availability} | {f(t.name) for t in cfg.targets()
                                        for f in (TOPICS.state, TOPICS.confidence, TOPICS.status, TOPICS.snapshot)}
    assert f"{PREFIX}/garage/state" not in retained
    for topic, p in discovery_messages(cfg, TOPICS):
        read = [p[k] for k in ("state_topic", "json_attributes_topic", "image_topic") if k in p]
        read += [a["topic"] for a in p["availability"]]
        if topic.split("/")[1] == "event":
            read.remove(p["state_topic"])  # events are not retained by design
        assert read and set(read) <= retained, (topic, set(read) - retained)


@BOTH
def test_every_view_template_tolerates_an_empty_payload(cfg):
    for topic, p in discovery_messages(cfg, TOPICS):
        if "value_template" in p:
            assert render(p["value_template"], "") == ("None" if topic.split("/")[1] == "select" else ""), topic
        if "json_attributes_template" in p:
            assert render(p["json_attributes_template"], "") == "{}"
        for a in p["availability"]:
            if "value_template" in a:
                assert render(a["value_template"], "") == "offline"


@pytest.mark.parametrize("before, after, gone", [
    (TWO_VIEWS, config(garage(LEFT), GATE), {"garage-right_door"}),  # one view removed
    (config(garage(), GATE), TWO_VIEWS, {"garage"}),  # a camera gains views: its own entities go
    (TWO_VIEWS, config(garage(), GATE), {"garage-left-door", "garage-right_door"}),  # and loses them
], ids=["view-removed", "camera-gains-views", "camera-loses-views"])
def test_exactly_the_removed_target_s_configs_are_stale(before, after, gone):
    current = {t for t, _ in discovery_messages(after, TOPICS)}
    for target, msgs in _by_target(before).items():
        for topic, p in msgs.items():
            assert is_stale(after, current, topic, json.dumps(p).encode()) == (target in gone), (target, topic)


# -- removal, with a real broker ----------------------------------------------------------

class Steer:
    """The agent's side of the MQTT output (``Controls``): the targets it runs."""

    def __init__(self, cfg: Config):
        self.names = {t.name for t in cfg.targets()}
        self.remembered: list[tuple[str, str]] = []

    def has_camera(self, name: str) -> bool:
        return name in self.names

    def command(self, cmd: Command) -> None:
        pass

    def remember_state(self, camera: str, cls: str, since: float) -> None:
        self.remembered.append((camera, cls))


def _own_topics(name: str) -> list[str]:
    return [f(name) for f in (TOPICS.state, TOPICS.confidence, TOPICS.snapshot, TOPICS.status)]


def _leave(port: int, cfg: Config) -> dict[str, bytes]:
    """What an agent with ``cfg`` left on the broker: its discovery configs and every
    target's retained state, confidence, snapshot and status."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    left = {t: json.dumps(p).encode() for t, p in discovery_messages(cfg, TOPICS)}
    for t in cfg.targets():
        state, confidence, snapshot, status = _own_topics(t.name)
        left[state] = json.dumps({"class": t.classes[0], "confidence": 0.9, "since": 1.0}).encode()
        left[confidence] = json.dumps({"class": t.classes[0], "confidence": 0.9, "at": 2.0}).encode()
        left[snapshot] = b"\xff\xd8jpeg"
        left[status] = json.dumps({"camera": "online", "device": "test"}).encode()
    pub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="views-leaver")
    pub.connect("127.0.0.1", port)
    pub.loop_start()
    try:
        for topic, payload in left.items():
            pub.publish(topic, payload, qos=1, retain=True).wait_for_publish(5)
    finally:
        pub.loop_stop()
        pub.disconnect()
    return left


async def _run_output(cfg: Config, until, timeout: float) -> Steer:  # noqa: ANN001
    steer = Steer(cfg)
    out = MqttOutput(cfg, asyncio.get_running_loop(), steer)
    out.start()
    try:
        deadline = time.monotonic() + timeout
        while not until() and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        await asyncio.sleep(1.0)  # anything more it would clear, it clears now
    finally:
        await out.stop()
    return steer


@pytest.mark.timeout(90)
@pytest.mark.parametrize("before, after, gone", [
    ([garage(LEFT, RIGHT), GATE], [garage(LEFT), GATE], {"garage-right_door"}),
    ([garage(), GATE], [garage(LEFT, RIGHT), GATE], {"garage"}),
    ([garage(LEFT, RIGHT), GATE], [garage(), GATE], {"garage-left-door", "garage-right_door"}),
], ids=["view-removed", "camera-gains-views", "camera-loses-views"])
def test_a_removed_target_is_cleaned_up_and_nothing_else(broker: Broker, before, after, gone):
    """The retained topics an agent with ``before`` left; the MQTT output with ``after``
    clears the removed target's discovery configs, then its state, confidence, snapshot and
    status (never while a config naming them is still there), and nothing of the targets
    that stay (``garage`` gone leaves ``garage-left-door`` alone, and the other way round)."""
    old, new = (parse_config({**_raw(c), "mqtt": {"host": "127.0.0.1", "port": broker.port,
                                                  "topic_prefix": PREFIX}}, {}) for c in (before, after))
    left = _leave(broker.port, old)
    stale_configs = {t for t, p in left.items() if t.endswith("/config")
                     and is_stale(new, {t for t, _ in discovery_messages(new, TOPICS)}, t, p)}
    to_clear = stale_configs | {t for name in gone for t in _own_topics(name)}
    assert stale_configs and all(any(f"/{name}_" in t for name in gone) for t in stale_configs)
    ha = OrderRecorder(broker.port)
    try:
        deadline = time.monotonic() + 10
        while len(ha.all()) < len(left) and time.monotonic() < deadline:
            time.sleep(0.05)
        cleared = lambda: {t for t, p, _ in ha.all() if not p}  # noqa: E731
        steer = asyncio.run(_run_output(new, lambda: to_clear <= cleared(), 30))
    finally:
        ha.close()
    msgs = ha.all()
    assert cleared() == to_clear, (sorted(to_clear - cleared()), sorted(cleared() - to_clear))
    # the states read back are those of the targets that stay, never a removed one's
    assert {cam for cam, _ in steer.remembered} == {t.name for t in new.targets()} & {t.name for t in old.targets()}
    cleared_at = {t: i for i, (t, p, _) in enumerate(msgs) if not p}
    for topic in to_clear - stale_configs:
        naming = [c for c in stale_configs if topic in topics_named(left[c])]
        assert naming and all(cleared_at[c] < cleared_at[topic] for c in naming), topic


def _raw(cameras: list[dict[str, Any]]) -> dict[str, Any]:
    return {"device_id": "test", "api": {"url": "http://127.0.0.1:9", "model": "colours/1", "api_key": "k"},
            "cameras": cameras}
