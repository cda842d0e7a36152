"""Home Assistant MQTT discovery payloads (pure).

One device per agent; per target (``Config.targets()``: a camera without views, or
each view of a camera, as camera ``<camera>-<view>``) a sensor whose state is the decided class
(attributes: the state message: confidence, since, predictions), a confidence
sensor in % (the newest result's confidence in the decided class), an image entity
showing the snapshot, a "Classify now" button, and a binary_sensor for each class
listed in config; per agent, "API calls today" and "API credits today" sensors (read
from the first target's status, which carries the day's spend of all cameras). Every
entity is available only while the agent is online *and* its camera is
(``availability_mode: all``; a view's status carries its camera's health). ``unique_id``s
are built from the device id and the target's name, so they stay the same across
restarts; a camera without views keeps the ids and names it always had.

Names: a camera's entities are named after the camera as written ("door class"); a
view's after its camera and its view, the view's dashes and underscores read as spaces
("garage left door class" for view ``left-door`` of camera ``garage``), never the
target's name ``garage-left-door``. All sit in the agent's one device.

With training data collected (``dataset.enabled``), per target whose sampling is on: a
"Save for training" button (an empty payload on ``P/<camera>/collect``: the last
classified frame, labelled with the model's guess), a "Correct class" select with the
camera's classes (the chosen class on the same topic: labelled by a person; it shows the
decided class, read from the retained state) and a "Saved for training today" sensor;
per agent, "Waiting to upload" (the queue is shared by all cameras, so one sensor, not
one per camera). Turned off, their configs are no longer made, so the agent clears
them as it clears any stale config of its own, and Home Assistant drops the entities.

With a fallback endpoint (``api.fallback``, issue #22), per agent, an "API endpoint"
sensor: the endpoint calls go to (``primary`` or ``fallback``), read from the first
target's status (every status carries it, as the day's spend), with the fallback's
``reason``, ``since``, ``calls`` and ``failed`` as attributes. Without a fallback it is
not made (and so cleared, as the training-data entities are).

Every entity that shows a value reads a retained topic (state, confidence, snapshot,
status, availability), so Home Assistant has a value within seconds of its own restart.
The event entity reads ``P/<camera>/event``, which is not retained by design: HA's event
entity fires on a message (and ignores a retained one), it keeps no value of its own.
Every template tolerates an empty payload (a removed camera's topics being cleared):
it renders nothing (a numeric sensor ignores it, the class sensor shows an empty
state; neither logs a line), or "offline" for availability.

Field names and types follow Home Assistant's MQTT schemas
(homeassistant/components/mqtt/{schemas,config,sensor,binary_sensor,image,button,select}.py);
tests/ha_schema.py checks them.
"""

from __future__ import annotations

import json
import re
from typing import Any

from .. import __version__
from ..config import CameraConfig, Config
from .topics import Topics

# Every template tolerates an empty payload (a retained topic being cleared: ``value_json``
# is then undefined) and renders nothing, which Home Assistant ignores without a log line,
# or "offline". Only ``is defined`` tests touch a value that may be undefined: HA logs any
# other use of one (even its truth value).
CAMERA_AVAILABLE = "{{ 'online' if value_json is defined and value_json.camera == 'online' else 'offline' }}"
# The newest result's confidence in the decided class, from the retained P/<camera>/confidence.
CONFIDENCE = ("{% if value_json is not defined %}{% elif value_json.confidence is defined "
              "and value_json.confidence is not none %}{{ (value_json.confidence * 100) | round(1) }}"
              "{% else %}None{% endif %}")
STATE_CLASS = "{{ value_json['class'] if value_json is defined and value_json['class'] is defined else '' }}"
# The attributes: the state message; {} for an empty one (HA logs "Erroneous JSON" for a payload
# that is not a JSON object).
STATE_ATTRIBUTES = "{{ value if value_json is defined and value_json is mapping else '{}' }}"
OTHER = "other"  # the event type of a change to a class the camera does not list
STATE_FRESH = ("{{ 'online' if value_json is defined and value_json is mapping "
               "and not (value_json.stale | default(false)) else 'offline' }}")


# The dataset field of the status (DatasetStatus.payload()); absent when nothing is collected.
HAS_DATASET = ("value_json is defined and value_json is mapping and value_json.dataset is defined "
               "and value_json.dataset is mapping")
# The shared figures of the upload queue, as the "Waiting to upload" sensor's attributes.
QUEUE_ATTRIBUTES = ("{% if " + HAS_DATASET + " %}{% set d = value_json.dataset %}{{ {'queued_mb': d.queued_mb, "
                    "'sent_today': d.sent_today, 'dropped': d.dropped, 'paused': d.paused, "
                    "'last_error': d.last_error} | tojson }}{% else %}{}{% endif %}")


# The endpoint calls go to (the status's ``endpoint``: "primary" or "fallback"); nothing for a
# status without one (an older agent's, or an empty payload).
ENDPOINT = ("{% if value_json is defined and value_json is mapping and value_json.endpoint is defined %}"
            "{{ value_json.endpoint }}{% endif %}")
# Its attributes: the status's ``fallback`` (EndpointsView.payload()) but its ``active`` (the state).
ENDPOINT_ATTRIBUTES = ("{% if value_json is defined and value_json is mapping and value_json.fallback is defined "
                       "and value_json.fallback is mapping %}{% set f = value_json.fallback %}{{ {'reason': f.reason, "
                       "'since': f.since, 'calls': f.calls, 'failed': f.failed} | tojson }}{% else %}{}{% endif %}")


def dataset_figure(field: str) -> str:
    """A training-data sensor's template: a field of the status's ``dataset``; nothing
    (ignored by Home Assistant) while the status carries none."""
    return "{% if " + HAS_DATASET + " %}{{ value_json.dataset." + field + " }}{% endif %}"


def decided_option(classes: tuple[str, ...] | list[str]) -> str:
    """The "Correct class" select's template: the decided class when it is one of the
    options, else ``None`` (HA shows no option; a state not among them would be logged as
    "Invalid option", and HA 2024.3 logs an empty one too)."""
    listed = json.dumps(list(classes))
    return ("{% if value_json is defined and value_json is mapping and value_json['class'] is defined "
            "and value_json['class'] in " + listed + " %}{{ value_json['class'] }}{% else %}None{% endif %}")


def day_spend(field: str) -> str:
    """A budget sensor's template (the day's spend is in every camera's status)."""
    return ("{% if value_json is defined %}{{ value_json.budget." + field + " if value_json.budget is defined "
            "else 0 }}{% endif %}")


def event_types(classes: tuple[str, ...] | list[str]) -> list[str]:
    """The camera's classes, and ``other`` for a change to a class it does not list (the
    model may name more classes than the camera lists; HA rejects, and logs, an event whose
    type it was not told)."""
    return list(classes) + ([] if OTHER in classes else [OTHER])


def event_template(classes: tuple[str, ...] | list[str]) -> str:
    """The event entity's template: the event's class as the event type (``other`` when
    the camera does not list it), the class, previous, confidence, at and id as attributes."""
    listed = json.dumps(list(classes))
    return ("{% if value_json is defined %}{{ {'event_type': value_json['class'] if value_json['class'] in "
            + listed + " else '" + OTHER + "', 'class': value_json['class'], 'previous': value_json.previous, "
            "'confidence': value_json.confidence, 'at': value_json.at, 'id': value_json.id} | tojson }}{% endif %}")


def is_class(cls: str) -> str:
    """A binary sensor's template: ON while ``cls`` is the state; nothing for an empty payload."""
    return ("{% if value_json is defined and value_json['class'] is defined %}"
            "{{ 'ON' if value_json['class'] == " + json.dumps(cls) + " else 'OFF' }}{% endif %}")


def slug(text: str) -> str:
    """An object id part HA accepts: ``[a-zA-Z0-9_-]+``."""
    return re.sub(r"[^a-zA-Z0-9_-]+", "_", text).strip("_") or "x"


def label(cam: CameraConfig) -> str:
    """What a target's entity names start with: a camera's name as written; for a view,
    its camera's name and the view's name with ``-`` and ``_`` read as spaces."""
    if cam.view_of is None or cam.view is None:
        return cam.name
    return f"{cam.view_of} {re.sub(r'[-_]+', ' ', cam.view).strip() or cam.view}"


def node_id(cfg: Config) -> str:
    return f"edge_agent_{cfg.device_id}"


def device(cfg: Config) -> dict[str, Any]:
    return {
        "identifiers": [node_id(cfg)],
        "name": f"edge-agent {cfg.device_id}",
        "manufacturer": "edge-agent",
        "model": "edge-agent camera classifier",
        "sw_version": __version__,
    }


def birth_topic(cfg: Config) -> str:
    return f"{cfg.homeassistant.prefix}/status"


def own_configs_filter(cfg: Config) -> str:
    """Every discovery config this agent may ever have published (retained)."""
    return f"{cfg.homeassistant.prefix}/+/{node_id(cfg)}/+/config"


def is_stale(cfg: Config, current: set[str], topic: str, payload: bytes) -> bool:
    """A retained config of ours that the current config no longer makes (a camera
    or class removed; ``current`` holds the topics it does make): it should be
    cleared so Home Assistant drops the entity."""
    if not payload or not re.fullmatch(re.escape(cfg.homeassistant.prefix) + r"/\w+/" + re.escape(node_id(cfg))
                                       + r"/[a-zA-Z0-9_-]+/config", topic):
        return False
    return topic not in current


def entity_id(domain: str, object_id: str) -> str:
    """The entity id Home Assistant should give the entity: ``sensor.edge_agent_garage_pi_door_class``."""
    return f"{domain}.{re.sub(r'[^a-z0-9_]+', '_', object_id.lower()).strip('_')}"


def _common(cfg: Config, topics: Topics, cam: CameraConfig | None, key: str, domain: str) -> dict[str, Any]:
    """What every entity carries; ``cam`` None for an entity of the whole agent.

    ``default_entity_id`` (with its domain) is what Home Assistant 2025.10 and later
    read; ``object_id``, deprecated there and ignored from 2026.4, stays for older ones."""
    node = node_id(cfg)
    object_id = f"{node}_{cam.name}_{key}" if cam is not None else f"{node}_{key}"
    availability: list[dict[str, str]] = [{"topic": topics.availability}]
    if cam is not None:
        availability.append({"topic": topics.status(cam.name), "value_template": CAMERA_AVAILABLE})
    return {
        "unique_id": object_id,
        "object_id": object_id,
        "default_entity_id": entity_id(domain, object_id),
        "device": device(cfg),
        "origin": {"name": "edge-agent", "sw_version": __version__},
        "availability": availability,
        "availability_mode": "all",
        "qos": cfg.mqtt.qos,
    }


def discovery_messages(cfg: Config, topics: Topics) -> list[tuple[str, dict[str, Any]]]:
    """``(config topic, payload)`` for every entity of every target (camera or view)."""
    prefix, node = cfg.homeassistant.prefix, node_id(cfg)
    out: list[tuple[str, dict[str, Any]]] = []
    targets = cfg.targets()
    collecting = [cam for cam in targets if cfg.dataset.enabled and cam.sampling.enabled]
    for cam in targets:
        name = label(cam)
        state = topics.state(cam.name)
        cls_sensor = {
            **_common(cfg, topics, cam, "class", "sensor"),
            "name": f"{name} class",
            "icon": "mdi:cctv",
            "state_topic": state,
            "value_template": STATE_CLASS,
            "json_attributes_topic": state,  # stale, stale_since, stale_reason and votes are attributes
            "json_attributes_template": STATE_ATTRIBUTES,
        }
        if cfg.homeassistant.stale_unavailable:  # opted in: unavailable while unchecked
            cls_sensor["availability"] = cls_sensor["availability"] + [{"topic": state, "value_template": STATE_FRESH}]
        out.append((f"{prefix}/sensor/{node}/{cam.name}_class/config", cls_sensor))
        out.append((f"{prefix}/sensor/{node}/{cam.name}_confidence/config", {
            **_common(cfg, topics, cam, "confidence", "sensor"),
            "name": f"{name} confidence",
            "icon": "mdi:percent",
            # The newest result's confidence in the decided class (not only the one that decided it),
            # retained: a value right after Home Assistant's own restart.
            "state_topic": topics.confidence(cam.name),
            "value_template": CONFIDENCE,
            "unit_of_measurement": "%",
            "state_class": "measurement",
        }))
        out.append((f"{prefix}/image/{node}/{cam.name}_snapshot/config", {
            **_common(cfg, topics, cam, "snapshot", "image"),
            "name": f"{name} snapshot",
            "image_topic": topics.snapshot(cam.name),
            "content_type": "image/jpeg",
        }))
        out.append((f"{prefix}/button/{node}/{cam.name}_classify/config", {
            **_common(cfg, topics, cam, "classify", "button"),
            "name": f"{name} classify now",
            "icon": "mdi:camera-iris",
            "command_topic": topics.classify(cam.name),
            "payload_press": "PRESS",
        }))
        if cam.classes:  # an event entity: automations trigger on "door -> open" without templates
            out.append((f"{prefix}/event/{node}/{cam.name}_change/config", {
                **_common(cfg, topics, cam, "change", "event"),
                "name": f"{name} change",
                "icon": "mdi:swap-horizontal",
                "state_topic": topics.event(cam.name),
                "event_types": event_types(cam.classes),
                "value_template": event_template(cam.classes),
            }))
        used: set[str] = set()
        for cls in cam.classes:
            key = slug(cls)
            while key in used:
                key += "_"
            used.add(key)
            out.append((f"{prefix}/binary_sensor/{node}/{cam.name}_{key}/config", {
                **_common(cfg, topics, cam, f"is_{key}", "binary_sensor"),
                "name": f"{name} {cls}",
                "state_topic": state,
                "value_template": is_class(cls),
                "payload_on": "ON",
                "payload_off": "OFF",
            }))
        if cam in collecting:
            out.extend(_collect_entities(cfg, topics, cam))
    if collecting:  # the queue is shared by all cameras: one sensor, read from a collecting camera's status
        out.append((f"{prefix}/sensor/{node}/dataset_queued/config", {
            **_common(cfg, topics, None, "dataset_queued", "sensor"),
            "name": "Waiting to upload",
            "icon": "mdi:tray-arrow-up",
            "state_topic": topics.status(collecting[0].name),
            "value_template": dataset_figure("queued"),
            "json_attributes_topic": topics.status(collecting[0].name),
            "json_attributes_template": QUEUE_ATTRIBUTES,
            "unit_of_measurement": "frames",
            "state_class": "measurement",
            "entity_category": "diagnostic",
        }))
    status = topics.status(targets[0].name)  # every target's status carries the day's spend and the endpoint
    if cfg.api.fallback is not None:  # which endpoint classifies: only worth a sensor with two of them
        out.append((f"{prefix}/sensor/{node}/api_endpoint/config", {
            **_common(cfg, topics, None, "api_endpoint", "sensor"),
            "name": "API endpoint",
            "icon": "mdi:server-network",
            "state_topic": status,
            "value_template": ENDPOINT,
            "json_attributes_topic": status,
            "json_attributes_template": ENDPOINT_ATTRIBUTES,
            "entity_category": "diagnostic",
        }))
    for key, name, field, icon in (("api_calls_today", "API calls today", "calls_today", "mdi:counter"),
                                   ("api_credits_today", "API credits today", "credits_today", "mdi:cash")):
        out.append((f"{prefix}/sensor/{node}/{key}/config", {
            **_common(cfg, topics, None, key, "sensor"),
            "name": name,
            "icon": icon,
            "state_topic": status,
            "value_template": day_spend(field),
            "state_class": "total_increasing",
            "entity_category": "diagnostic",
        }))
    return out


def _collect_entities(cfg: Config, topics: Topics, cam: CameraConfig) -> list[tuple[str, dict[str, Any]]]:
    """A collecting camera's training-data entities (see the module's docstring)."""
    prefix, node, name = cfg.homeassistant.prefix, node_id(cfg), label(cam)
    out: list[tuple[str, dict[str, Any]]] = [(f"{prefix}/button/{node}/{cam.name}_save_for_training/config", {
        **_common(cfg, topics, cam, "save_for_training", "button"),
        "name": f"{name} save for training",
        "icon": "mdi:content-save",
        "command_topic": topics.collect(cam.name),
        "payload_press": "",  # empty: the last classified frame, labelled with the model's guess
    })]
    if cam.classes:
        out.append((f"{prefix}/select/{node}/{cam.name}_correct_class/config", {
            **_common(cfg, topics, cam, "correct_class", "select"),
            "name": f"{name} correct class",
            "icon": "mdi:tag",
            "command_topic": topics.collect(cam.name),  # the chosen class: labelled by a person
            "options": list(cam.classes),
            "state_topic": topics.state(cam.name),  # retained: shows the decided class
            "value_template": decided_option(cam.classes),
        }))
    status = topics.status(cam.name)
    out.append((f"{prefix}/sensor/{node}/{cam.name}_saved_today/config", {
        **_common(cfg, topics, cam, "saved_today", "sensor"),
        "name": f"{name} saved for training today",
        "icon": "mdi:image-multiple",
        "state_topic": status,
        "value_template": dataset_figure("saved_today"),
        "unit_of_measurement": "frames",
        # a count that restarts at 0 each day: HA reads a decrease as a new cycle
        "state_class": "total_increasing",
        "entity_category": "diagnostic",
    }))
    return out
