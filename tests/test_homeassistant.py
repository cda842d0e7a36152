"""Home Assistant discovery payloads, checked against HA's own schemas (tests/ha_schema.py)
and with their templates rendered by Jinja2 the way HA renders them."""

from __future__ import annotations

import json
import re

import jinja2
import pytest

from edge_agent.config import parse_config
from edge_agent.outputs.homeassistant import birth_topic, discovery_messages, slug
from edge_agent.outputs.topics import Topics
from tests.ha_schema import Invalid, validate_discovery

CFG = parse_config({
    "device_id": "garage-pi",
    "api": {"url": "http://127.0.0.1:9001", "model": "garage-door/3"},
    "homeassistant": {"classes": ["open", "closed"]},
    "cameras": [{"name": "door", "source": "/dev/video0"},
                {"name": "gate", "source": "rtsp://cam/1", "classes": ["car", "person", "big truck"]}],
}, {})
TOPICS = Topics(CFG.mqtt.topic_prefix)
# Training data collected: door and gate sample, porch does not (cameras[].sampling.enabled: false).
DATASET_CFG = parse_config({
    "device_id": "garage-pi",
    "api": {"url": "http://127.0.0.1:9001", "model": "garage-door/3", "api_key": "k"},
    "dataset": {"enabled": True},
    "cameras": [{"name": "door", "source": "/dev/video0", "classes": ["open", "closed"]},
                {"name": "gate", "source": "rtsp://cam/1"},
                {"name": "porch", "source": "rtsp://cam/2", "classes": ["car"], "sampling": {"enabled": False}}],
}, {})
# A fallback endpoint (#22): the agent's "API endpoint" sensor too.
FALLBACK_CFG = parse_config({
    "device_id": "garage-pi",
    "api": {"url": "http://127.0.0.1:9001", "model": "garage-door/3", "api_key": "k",
            "fallback": {"url": "http://192.168.1.20:9001"}},
    "cameras": [{"name": "door", "source": "/dev/video0", "classes": ["open", "closed"]}],
}, {})
EACH = pytest.mark.parametrize("cfg", [CFG, DATASET_CFG, FALLBACK_CFG], ids=["plain", "dataset", "fallback"])


def render(template: str, payload: dict | str) -> str:
    """As Home Assistant renders an MQTT template: ``value`` the payload, ``value_json`` only
    when it is JSON, the result stripped. Any use of an undefined value but an ``is defined``
    test raises here (HA logs it: "'value_json' is undefined", even for its truth value)."""
    value = payload if isinstance(payload, str) else json.dumps(payload)
    variables = {"value": value}
    try:
        variables["value_json"] = json.loads(value)
    except ValueError:
        pass
    env = jinja2.Environment(undefined=jinja2.StrictUndefined)
    return env.from_string(template).render(**variables).strip()


def test_every_payload_is_valid_for_home_assistant():
    msgs = discovery_messages(CFG, TOPICS)
    components = [validate_discovery(topic, payload) for topic, payload in msgs]
    assert components.count("sensor") == 4 + 2 and components.count("image") == 2
    assert components.count("binary_sensor") == 5 and components.count("button") == 2
    assert components.count("event") == 2  # both cameras list classes
    for cfg in (DATASET_CFG, FALLBACK_CFG):
        for topic, payload in discovery_messages(cfg, TOPICS):
            validate_discovery(topic, payload)
    # with a fallback: one sensor more, the agent's "API endpoint" (tests/test_fallback_shown.py)
    assert [t for t, _ in discovery_messages(FALLBACK_CFG, TOPICS) if "api_endpoint" in t] == [
        "homeassistant/sensor/edge_agent_garage-pi/api_endpoint/config"]


def test_unique_ids_are_unique_and_stable_across_restarts():
    ids = [p["unique_id"] for _, p in discovery_messages(CFG, TOPICS)]
    assert len(ids) == len(set(ids))
    assert ids == [p["unique_id"] for _, p in discovery_messages(CFG, TOPICS)]
    assert "edge_agent_garage-pi_door_class" in ids
    topics = [t for t, _ in discovery_messages(CFG, TOPICS)]
    assert "homeassistant/sensor/edge_agent_garage-pi/door_class/config" in topics
    assert "homeassistant/binary_sensor/edge_agent_garage-pi/gate_big_truck/config" in topics


def test_one_device_with_identifiers_and_version():
    devices = {json.dumps(p["device"], sort_keys=True) for _, p in discovery_messages(CFG, TOPICS)}
    assert len(devices) == 1
    dev = json.loads(devices.pop())
    assert dev["identifiers"] == ["edge_agent_garage-pi"] and dev["sw_version"] and dev["model"] and dev["name"]


def test_templates_render_the_state_as_home_assistant_would():
    msgs = dict(discovery_messages(CFG, TOPICS))
    state = {"class": "open", "confidence": 0.934, "since": 1700000000.0,
             "predictions": [{"class": "open", "confidence": 0.934}]}
    cls = msgs["homeassistant/sensor/edge_agent_garage-pi/door_class/config"]
    assert render(cls["value_template"], state) == "open"
    assert cls["json_attributes_topic"] == TOPICS.state("door")
    assert json.loads(render(cls["json_attributes_template"], state)) == state
    conf = msgs["homeassistant/sensor/edge_agent_garage-pi/door_confidence/config"]
    # The confidence follows every result (the newest one's confidence in the decided class), read
    # from a retained topic, so Home Assistant has it right after its own restart.
    assert conf["state_topic"] == TOPICS.confidence("door") == "edge_agent/garage-pi/door/confidence"
    latest = {"class": "open", "confidence": 0.4, "at": 1700000100.0}
    assert render(conf["value_template"], latest) == "40.0" and conf["unit_of_measurement"] == "%"
    assert render(conf["value_template"], {"class": "open"}) == "None"  # no confidence at all: unknown
    is_open = msgs["homeassistant/binary_sensor/edge_agent_garage-pi/door_open/config"]
    is_closed = msgs["homeassistant/binary_sensor/edge_agent_garage-pi/door_closed/config"]
    assert render(is_open["value_template"], state) == is_open["payload_on"]
    assert render(is_closed["value_template"], state) == is_closed["payload_off"]
    truck = msgs["homeassistant/binary_sensor/edge_agent_garage-pi/gate_big_truck/config"]
    assert render(truck["value_template"], {**state, "class": "big truck"}) == "ON"


@EACH
def test_availability_needs_agent_and_camera(cfg):
    for topic, p in discovery_messages(cfg, TOPICS):
        assert p["availability_mode"] == "all"
        if any(k in topic for k in ("api_c", "dataset_queued", "api_endpoint")):  # the agent's, not one camera's
            assert p["availability"] == [{"topic": TOPICS.availability}]
            continue
        agent, camera = p["availability"]
        assert agent == {"topic": TOPICS.availability}
        assert render(camera["value_template"], {"camera": "online"}) == "online"
        assert render(camera["value_template"], {"camera": "offline"}) == "offline"


def test_image_entity_shows_the_snapshot():
    msgs = dict(discovery_messages(CFG, TOPICS))
    img = msgs["homeassistant/image/edge_agent_garage-pi/door_snapshot/config"]
    assert img["image_topic"] == TOPICS.snapshot("door") and img["content_type"] == "image/jpeg"


@pytest.mark.parametrize("mutate,why", [
    (lambda p: p.pop("state_topic"), "required key 'state_topic'"),
    (lambda p: p.update(stat_topic="x"), "not in the schema"),
    (lambda p: p.update(icon="cctv"), "prefix:name"),
    (lambda p: p.update(availability_mode="some"), "expected one of"),
    (lambda p: p.update(state_topic="a/#/b"), "wildcard"),
    (lambda p: p["device"].pop("identifiers"), "at least one identifying value"),
    (lambda p: p.update(options=["a"]), "options"),
])
def test_the_schema_check_catches_mistakes(mutate, why):
    topic, payload = discovery_messages(CFG, TOPICS)[0]
    payload = json.loads(json.dumps(payload))
    mutate(payload)
    with pytest.raises(Invalid, match=why):
        validate_discovery(topic, payload)


def test_slug_and_birth_topic():
    assert slug("big truck!") == "big_truck" and slug("***") == "x"
    assert birth_topic(CFG) == "homeassistant/status"


def test_stale_configs_are_recognised():
    from edge_agent.outputs.homeassistant import is_stale, own_configs_filter

    assert own_configs_filter(CFG) == "homeassistant/+/edge_agent_garage-pi/+/config"
    current = {t for t, _ in discovery_messages(CFG, TOPICS)}
    assert not is_stale(CFG, current, next(iter(current)), b"{}")
    assert is_stale(CFG, current, "homeassistant/sensor/edge_agent_garage-pi/porch_class/config", b"{}")
    assert not is_stale(CFG, current, "homeassistant/sensor/edge_agent_garage-pi/porch_class/config", b"")  # cleared
    assert not is_stale(CFG, current, "homeassistant/sensor/edge_agent_other/porch_class/config", b"{}")  # not ours


def test_classify_now_button_publishes_to_the_classify_topic():
    msgs = dict(discovery_messages(CFG, TOPICS))
    button = msgs["homeassistant/button/edge_agent_garage-pi/door_classify/config"]
    assert button["command_topic"] == "edge_agent/garage-pi/door/classify"
    assert TOPICS.parse_control(button["command_topic"]) == ("door", "classify")
    assert len(button["availability"]) == 2  # only while the agent and its camera are online


def test_budget_sensors_read_the_days_spend_from_the_status():
    msgs = dict(discovery_messages(CFG, TOPICS))
    calls = msgs["homeassistant/sensor/edge_agent_garage-pi/api_calls_today/config"]
    credits = msgs["homeassistant/sensor/edge_agent_garage-pi/api_credits_today/config"]
    status = {"camera": "online", "budget": {"calls_today": 312, "credits_today": 0.0624, "exhausted": False}}
    assert render(calls["value_template"], status) == "312"
    assert render(credits["value_template"], status) == "0.0624"
    assert render(calls["value_template"], {"camera": "online"}) == "0"  # an older agent's status
    assert calls["state_topic"] == TOPICS.status("door")
    assert calls["availability"] == [{"topic": TOPICS.availability}]  # the agent's, not one camera's


def test_stale_state_makes_the_class_sensor_unavailable_only_when_asked():
    msgs = dict(discovery_messages(CFG, TOPICS))
    assert len(msgs["homeassistant/sensor/edge_agent_garage-pi/door_class/config"]["availability"]) == 2
    cfg = parse_config({
        "device_id": "garage-pi", "api": {"url": "http://127.0.0.1:9001", "model": "garage-door/3"},
        "homeassistant": {"stale_unavailable": True}, "cameras": [{"name": "door", "source": "/dev/video0"}],
    }, {})
    msgs = dict(discovery_messages(cfg, TOPICS))
    cls = msgs["homeassistant/sensor/edge_agent_garage-pi/door_class/config"]
    validate_discovery("homeassistant/sensor/edge_agent_garage-pi/door_class/config", cls)
    fresh = cls["availability"][2]
    assert fresh["topic"] == TOPICS.state("door")
    assert render(fresh["value_template"], {"class": "open", "stale": True}) == "offline"
    assert render(fresh["value_template"], {"class": "open", "stale": False}) == "online"
    assert render(fresh["value_template"], {"class": "open"}) == "online"  # an older agent's state


def test_event_entity_maps_the_event_to_home_assistants_event_type():
    msgs = dict(discovery_messages(CFG, TOPICS))
    ev = msgs["homeassistant/event/edge_agent_garage-pi/door_change/config"]
    assert ev["state_topic"] == "edge_agent/garage-pi/door/event" and ev["event_types"] == ["open", "closed", "other"]
    event = {"id": 42, "camera": "door", "class": "open", "previous": "closed", "confidence": 0.93, "at": 1.5}
    assert json.loads(render(ev["value_template"], event)) == {
        "event_type": "open", "class": "open", "previous": "closed", "confidence": 0.93, "at": 1.5, "id": 42}
    # A class the camera does not list (the model names more): "other", never a type HA was not told
    # (HA 2024.3 and 2025.4 log "Invalid event type" for one).
    ajar = json.loads(render(ev["value_template"], {**event, "class": "ajar"}))
    assert ajar["event_type"] == "other" and ajar["class"] == "ajar"
    for topic, p in msgs.items():
        if topic.split("/")[1] == "event":
            assert len(set(p["event_types"])) == len(p["event_types"])
            for cls in p["event_types"][:-1] + ["never listed", 'a "quoted" }} one']:
                fired = json.loads(render(p["value_template"], {**event, "class": cls}))
                assert fired["event_type"] in p["event_types"]


def test_every_config_names_its_entity_id_with_its_domain():
    """Home Assistant 2025.10 deprecated object_id (ignored from 2026.4): default_entity_id
    carries the domain; object_id stays for older versions."""
    for topic, payload in discovery_messages(CFG, TOPICS):
        domain = topic.split("/")[1]
        assert payload["default_entity_id"].startswith(domain + "."), (topic, payload["default_entity_id"])
        assert re.fullmatch(r"[a-z_]+\.[a-z0-9_]+", payload["default_entity_id"])
        assert "object_id" in payload
    msgs = dict(discovery_messages(CFG, TOPICS))
    assert msgs["homeassistant/sensor/edge_agent_garage-pi/door_class/config"]["default_entity_id"] == \
        "sensor.edge_agent_garage_pi_door_class"


@EACH
def test_every_entity_that_shows_a_value_reads_a_retained_topic(cfg):
    """Home Assistant shows a value within seconds of its own restart only for topics the
    broker keeps. The event entity is the exception by design: an event is not retained
    (HA's event entity is stateless: it fires on a message and ignores a retained one)."""
    retained = {TOPICS.availability} | {f(cam.name) for cam in cfg.cameras
                                        for f in (TOPICS.state, TOPICS.confidence, TOPICS.status, TOPICS.snapshot)}
    for topic, p in discovery_messages(cfg, TOPICS):
        component = topic.split("/")[1]
        read = [p[k] for k in ("state_topic", "json_attributes_topic", "image_topic") if k in p]
        read += [a["topic"] for a in p["availability"]]
        if component == "event":
            assert p["state_topic"] == TOPICS.event(topic.split("/")[3].rsplit("_", 1)[0])
            read.remove(p["state_topic"])
        if component == "button":
            assert "state_topic" not in p  # it shows no value
        assert read and set(read) <= retained, (topic, set(read) - retained)


@EACH
@pytest.mark.parametrize("empty", ["", "   "])
def test_every_template_tolerates_an_empty_payload(empty, cfg):
    """A removed camera's retained topics are cleared with empty payloads: a template that
    HA renders on one must not use the undefined value_json (HA logs an error), and must
    render what HA ignores or reads as unavailable."""
    for topic, p in discovery_messages(cfg, TOPICS):
        for key in ("value_template", "json_attributes_template"):
            if key in p:
                out = render(p[key], empty)
                if key == "json_attributes_template":
                    assert out == "{}", (topic, out)  # not "Erroneous JSON"
                elif topic.split("/")[1] == "select":
                    assert out == "None", (topic, out)  # no option (HA 2024.3 logs an empty one as invalid)
                else:
                    assert out == "", (topic, key, out)  # HA ignores an empty state without a log line
        for a in p["availability"]:
            if "value_template" in a:
                assert render(a["value_template"], empty) == "offline", topic
    # and a payload that is JSON but not an object (a number, null) neither
    for topic, p in discovery_messages(cfg, TOPICS):
        for payload in ("42", "null", '"text"'):
            for key in ("value_template", "json_attributes_template"):
                if key in p and topic.split("/")[1] != "event":
                    render(p[key], payload)


# -- training data (issue #20) ------------------------------------------------------------

def _dataset_entities(cfg) -> dict[str, dict]:
    return {t: p for t, p in discovery_messages(cfg, TOPICS)
            if any(k in t for k in ("save_for_training", "correct_class", "saved_today", "dataset_queued"))}


def test_training_data_entities_only_while_collecting():
    assert _dataset_entities(CFG) == {}  # dataset.enabled is off by default
    got = _dataset_entities(DATASET_CFG)
    node = "homeassistant/{}/edge_agent_garage-pi/{}/config"
    assert set(got) == {node.format("button", "door_save_for_training"), node.format("select", "door_correct_class"),
                        node.format("sensor", "door_saved_today"),
                        node.format("button", "gate_save_for_training"),  # gate lists no class: no select
                        node.format("sensor", "gate_saved_today"),
                        node.format("sensor", "dataset_queued")}  # porch does not sample: nothing of porch
    for topic, p in got.items():
        assert validate_discovery(topic, p) == topic.split("/")[1]
        assert p["device"] == dict(discovery_messages(DATASET_CFG, TOPICS))[
            "homeassistant/sensor/edge_agent_garage-pi/door_class/config"]["device"]
    # every camera's sampling off: no entity, not even the shared queue's
    off = parse_config({"device_id": "garage-pi", "api": {"url": "http://127.0.0.1:9001", "model": "g/3",
                                                          "api_key": "k"},
                        "dataset": {"enabled": True, "sampling": {"enabled": False}},
                        "cameras": [{"name": "door", "source": "/dev/video0", "classes": ["open"]}]}, {})
    assert _dataset_entities(off) == {}


def test_save_for_training_publishes_an_empty_payload_on_the_collect_topic():
    msgs = dict(discovery_messages(DATASET_CFG, TOPICS))
    button = msgs["homeassistant/button/edge_agent_garage-pi/door_save_for_training/config"]
    assert button["command_topic"] == "edge_agent/garage-pi/door/collect"
    assert TOPICS.parse_control(button["command_topic"]) == ("door", "collect")
    assert button["payload_press"] == ""  # the last classified frame, labelled with the model's guess
    assert not button.get("retain", False)  # a retained press would save a frame at every reconnect
    assert len(button["availability"]) == 2 and button["default_entity_id"] == \
        "button.edge_agent_garage_pi_door_save_for_training"


def test_correct_class_shows_the_decided_class_and_publishes_the_chosen_one():
    msgs = dict(discovery_messages(DATASET_CFG, TOPICS))
    sel = msgs["homeassistant/select/edge_agent_garage-pi/door_correct_class/config"]
    assert sel["command_topic"] == TOPICS.collect("door") and not sel.get("retain", False)
    assert sel["options"] == ["open", "closed"] and "command_template" not in sel  # the option itself is sent
    assert sel["state_topic"] == TOPICS.state("door")  # retained: the current state at once
    state = {"class": "closed", "confidence": 0.91, "since": 1700000000.0}
    assert render(sel["value_template"], state) == "closed"
    # anything not among the options renders None (no option shown), which HA takes without a
    # log line; it logs "Invalid option" for any other string
    for payload in ({**state, "class": "ajar"}, {**state, "class": None}, {"confidence": 0.5}, "42", "null",
                    '"text"', ""):
        assert render(sel["value_template"], payload) == "None", payload
    assert len(sel["availability"]) == 2


def test_training_data_sensors_read_the_status():
    msgs = dict(discovery_messages(DATASET_CFG, TOPICS))
    saved = msgs["homeassistant/sensor/edge_agent_garage-pi/door_saved_today/config"]
    queued = msgs["homeassistant/sensor/edge_agent_garage-pi/dataset_queued/config"]
    assert saved["state_topic"] == TOPICS.status("door") and len(saved["availability"]) == 2
    # A daily count: total_increasing is HA's class for a total that restarts at 0 each cycle
    # (a decrease starts a new cycle); the queue's length goes up and down: a measurement.
    assert saved["state_class"] == "total_increasing" and queued["state_class"] == "measurement"
    assert saved["unit_of_measurement"] == queued["unit_of_measurement"] == "frames"
    assert queued["state_topic"] == TOPICS.status("door")  # the first collecting camera's: the queue is shared
    assert queued["availability"] == [{"topic": TOPICS.availability}]
    dataset = {"saved_today": 7, "saved_hour": 2, "queued": 3, "queued_mb": 1.25, "sent_today": 9, "dropped": 0,
               "paused": "unauthorized", "last_error": "HTTP 401"}
    status = {"camera": "online", "dataset": dataset}
    assert render(saved["value_template"], status) == "7"
    assert render(queued["value_template"], status) == "3"
    assert json.loads(render(queued["json_attributes_template"], status)) == {
        "queued_mb": 1.25, "sent_today": 9, "dropped": 0, "paused": "unauthorized", "last_error": "HTTP 401"}
    # a status without the figures (nothing collected for this camera, an older agent): nothing,
    # which HA ignores without a line; attributes {}
    for payload in ({"camera": "online"}, {"camera": "online", "dataset": None}, "42", ""):
        assert render(saved["value_template"], payload) == ""
        assert render(queued["value_template"], payload) == ""
        assert render(queued["json_attributes_template"], payload) == "{}"


def test_training_data_entities_are_stale_once_collection_is_off():
    """dataset.enabled turned off (or a camera's sampling): the retained configs it made are
    stale to the agent with the new config, which clears them as any stale config of its own."""
    from edge_agent.outputs.homeassistant import is_stale

    before = _dataset_entities(DATASET_CFG)
    after = {t for t, _ in discovery_messages(CFG, TOPICS)}
    assert before and all(is_stale(CFG, after, t, json.dumps(p).encode()) for t, p in before.items())
    still = {t for t, _ in discovery_messages(DATASET_CFG, TOPICS)}
    assert not any(is_stale(DATASET_CFG, still, t, b"{}") for t in before)
