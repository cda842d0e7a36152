"""Home Assistant's MQTT discovery schemas, transcribed for the tests.

Read from Home Assistant core's source (homeassistant/components/mqtt/):
  config.py        SCHEMA_BASE (qos, encoding), MQTT_RO_SCHEMA (state_topic required, value_template)
  schemas.py       MQTT_AVAILABILITY_SINGLE_SCHEMA / _LIST_SCHEMA, MQTT_ENTITY_DEVICE_INFO_SCHEMA,
                   MQTT_ORIGIN_INFO_SCHEMA, MQTT_ENTITY_COMMON_SCHEMA
  sensor.py        _PLATFORM_SCHEMA_BASE + validate_sensor_state_and_device_class_config
  binary_sensor.py PLATFORM_SCHEMA_MODERN
  image.py         PLATFORM_SCHEMA_BASE + validate_topic_required
  button.py        PLATFORM_SCHEMA_MODERN (command_topic required, payload_press, retain)
  select.py        MQTT_RW_SCHEMA + options (required), command_template, value_template
  discovery.py     TOPIC_MATCHER
  util.py          valid_topic / valid_subscribe_topic

Each key maps to a check with the same meaning as the voluptuous validator
there (cv.string, cv.boolean, cv.positive_int, cv.icon, valid_subscribe_topic,
vol.In...). HA's DISCOVERY_SCHEMA silently *removes* unknown keys; here an
unknown key is an error, so a misspelt key fails the test instead of being
dropped without a word.
"""

from __future__ import annotations

import re
from typing import Any, Callable
from urllib.parse import urlsplit

Check = Callable[[Any], None]

TOPIC_MATCHER = re.compile(r"(?P<component>\w+)/(?:(?P<node_id>[a-zA-Z0-9_-]+)/)?(?P<object_id>[a-zA-Z0-9_-]+)/config")


class Invalid(ValueError):
    pass


def string(v: Any) -> None:  # cv.string also coerces numbers; our payloads send real strings
    if not isinstance(v, str):
        raise Invalid(f"expected a string, got {v!r}")


def optional_string(v: Any) -> None:  # vol.Any(cv.string, None)
    if v is not None:
        string(v)


def boolean(v: Any) -> None:
    if not isinstance(v, bool):
        raise Invalid(f"expected a boolean, got {v!r}")


def positive_int(v: Any) -> None:
    if isinstance(v, bool) or not isinstance(v, int) or v < 0:
        raise Invalid(f"expected an int >= 0, got {v!r}")


def qos(v: Any) -> None:
    if v not in (0, 1, 2) or isinstance(v, bool):
        raise Invalid(f"qos must be 0, 1 or 2, got {v!r}")


def icon(v: Any) -> None:  # cv.icon: 'Icons should be specified in the form "prefix:name"'
    string(v)
    if ":" not in v:
        raise Invalid(f"icon must be prefix:name, got {v!r}")


def template(v: Any) -> None:
    string(v)


def url(v: Any) -> None:
    string(v)
    if urlsplit(v).scheme not in ("http", "https", "homeassistant"):
        raise Invalid(f"not a configuration URL: {v!r}")


def valid_topic(v: Any) -> None:
    string(v)
    raw = v.encode("utf-8")
    if not raw or len(raw) > 65535:
        raise Invalid("topic must be 1..65535 bytes")
    for ch in v:
        if ch == "\0" or ch <= "\u001f" or "\u007f" <= ch <= "\u009f":
            raise Invalid("topic has a control character")
        if "\ufdd0" <= ch <= "\ufdef" or (ord(ch) & 0xFFFF) in (0xFFFE, 0xFFFF):
            raise Invalid("topic has a non-character")


def subscribe_topic(v: Any) -> None:
    valid_topic(v)
    for i, c in enumerate(v):
        if c == "+" and ((i > 0 and v[i - 1] != "/") or (i < len(v) - 1 and v[i + 1] != "/")):
            raise Invalid("single-level wildcard must occupy an entire level")
    idx = v.find("#")
    if idx != -1 and (idx != len(v) - 1 or (len(v) > 1 and v[idx - 1] != "/")):
        raise Invalid("multi-level wildcard misplaced")


def publish_topic(v: Any) -> None:  # util.valid_publish_topic: no wildcards
    valid_topic(v)
    if "+" in v or "#" in v:
        raise Invalid("Wildcards cannot be used in topic names")


def one_of(*allowed: Any) -> Check:
    def check(v: Any) -> None:
        if v not in allowed:
            raise Invalid(f"expected one of {allowed}, got {v!r}")
    return check


def optional(check: Check) -> Check:
    def inner(v: Any) -> None:
        if v is not None:
            check(v)
    return inner


def list_of(check: Check) -> Check:
    def inner(v: Any) -> None:
        items = v if isinstance(v, list) else [v]  # cv.ensure_list
        for item in items:
            check(item)
    return inner


def mapping(fields: dict[str, Check], required: tuple[str, ...] = ()) -> Check:
    def inner(v: Any) -> None:
        validate(v, fields, required)
    return inner


def validate(payload: Any, fields: dict[str, Check], required: tuple[str, ...] = ()) -> None:
    if not isinstance(payload, dict):
        raise Invalid(f"expected a mapping, got {payload!r}")
    for key in required:
        if key not in payload:
            raise Invalid(f"required key {key!r} missing")
    for key, value in payload.items():
        if key not in fields:
            raise Invalid(f"key {key!r} is not in the schema (Home Assistant would drop it)")
        try:
            fields[key](value)
        except Invalid as exc:
            raise Invalid(f"{key}: {exc}") from None


def _connection(v: Any) -> None:  # vol.All(vol.Length(2), [cv.string])
    if not isinstance(v, list) or len(v) != 2:
        raise Invalid(f"a connection is [type, id], got {v!r}")
    list_of(string)(v)


def _device(v: Any) -> None:
    validate(v, {
        "identifiers": list_of(string),
        "connections": list_of(_connection),
        "manufacturer": string, "model": string, "model_id": string, "name": string, "hw_version": string,
        "serial_number": string, "sw_version": string, "via_device": string, "suggested_area": string,
        "configuration_url": url,
    })
    if not (v.get("identifiers") or v.get("connections")):
        raise Invalid("Device must have at least one identifying value in 'identifiers' and/or 'connections'")


SCHEMA_BASE: dict[str, Check] = {"qos": qos, "encoding": string}
RO: dict[str, Check] = {**SCHEMA_BASE, "state_topic": subscribe_topic, "value_template": template}
AVAILABILITY: dict[str, Check] = {
    "availability_topic": subscribe_topic,
    "availability_template": template,
    "payload_available": string,
    "payload_not_available": string,
    "availability_mode": one_of("all", "any", "latest"),
    "availability": list_of(mapping({"topic": subscribe_topic, "payload_available": string,
                                     "payload_not_available": string, "value_template": template},
                                    required=("topic",))),
}
ENTITY_COMMON: dict[str, Check] = {
    **AVAILABILITY,
    "device": _device,
    "origin": mapping({"name": string, "sw_version": string, "support_url": url}, required=("name",)),
    "enabled_by_default": boolean,
    "entity_category": one_of("config", "diagnostic"),
    "icon": icon,
    "json_attributes_topic": subscribe_topic,
    "json_attributes_template": template,
    "object_id": string,
    "default_entity_id": string,
    "unique_id": string,
}
SENSOR: dict[str, Check] = {
    **RO,
    "device_class": optional(string),
    "expire_after": positive_int,
    "force_update": boolean,
    "last_reset_value_template": template,
    "name": optional_string,
    "options": list_of(string),
    "suggested_display_precision": positive_int,
    "state_class": optional(one_of("measurement", "measurement_angle", "total", "total_increasing")),
    "unit_of_measurement": optional_string,
    **ENTITY_COMMON,
}
BINARY_SENSOR: dict[str, Check] = {
    **RO,
    "device_class": optional(string),
    "expire_after": positive_int,
    "force_update": boolean,
    "name": optional_string,
    "off_delay": positive_int,
    "payload_off": string,
    "payload_on": string,
    **ENTITY_COMMON,
}
IMAGE: dict[str, Check] = {
    **SCHEMA_BASE,
    "content_type": string,
    "name": optional_string,
    "url_topic": subscribe_topic,
    "image_topic": subscribe_topic,
    "image_encoding": one_of("b64", "raw"),
    "url_template": template,
    **ENTITY_COMMON,
}

BUTTON: dict[str, Check] = {
    **SCHEMA_BASE,
    "command_template": template,
    "command_topic": publish_topic,
    "device_class": optional(one_of("identify", "restart", "update")),
    "name": optional_string,
    "payload_press": string,
    "retain": boolean,
    **ENTITY_COMMON,
}

SELECT: dict[str, Check] = {  # config.MQTT_RW_SCHEMA + select.PLATFORM_SCHEMA_MODERN
    **SCHEMA_BASE,
    "command_topic": publish_topic,
    "optimistic": boolean,
    "retain": boolean,
    "state_topic": subscribe_topic,
    "command_template": template,
    "name": optional_string,
    "options": list_of(string),  # cv.ensure_list (our options are strings)
    "value_template": template,
    **ENTITY_COMMON,
}

EVENT: dict[str, Check] = {
    **RO,
    "device_class": optional(one_of("button", "doorbell", "motion")),
    "event_types": list_of(string),
    "name": optional_string,
    **ENTITY_COMMON,
}


def validate_discovery(topic: str, payload: dict[str, Any], prefix: str = "homeassistant") -> str:
    """Validate one discovery message the way HA would; returns the component."""
    if not topic.startswith(prefix + "/"):
        raise Invalid(f"{topic} is not under the discovery prefix {prefix}")
    m = TOPIC_MATCHER.fullmatch(topic[len(prefix) + 1:])
    if not m:
        raise Invalid(f"{topic} does not match HA's discovery TOPIC_MATCHER")
    component = m.group("component")
    if "availability_topic" in payload and "availability" in payload:
        raise Invalid("availability_topic and availability are exclusive")
    if component == "sensor":
        validate(payload, SENSOR, required=("state_topic",))
        if "last_reset_value_template" in payload and payload.get("state_class") != "total":
            raise Invalid("last_reset_value_template needs state_class total")
        if payload.get("options") is not None:
            if payload.get("state_class") or payload.get("unit_of_measurement"):
                raise Invalid("options not allowed with state_class or unit_of_measurement")
            if payload.get("device_class") != "enum":
                raise Invalid("options needs device_class enum")
    elif component == "binary_sensor":
        validate(payload, BINARY_SENSOR, required=("state_topic",))
    elif component == "image":
        validate(payload, IMAGE)
        if "image_topic" not in payload and "url_topic" not in payload:
            raise Invalid("Expected one of [`image_topic`, `url_topic`], got none")
        if "image_topic" in payload and "url_topic" in payload:
            raise Invalid("image_topic and url_topic are exclusive")
        if "content_type" in payload and "url_topic" in payload:
            raise Invalid("content_type can not be used together with url_topic")
    elif component == "event":
        validate(payload, EVENT, required=("state_topic", "event_types"))
        if not payload["event_types"]:
            raise Invalid("event_types must not be empty")
    elif component == "button":
        validate(payload, BUTTON, required=("command_topic",))
    elif component == "select":
        validate(payload, SELECT, required=("command_topic", "options"))
    else:
        raise Invalid(f"no schema transcribed for component {component!r}")
    return component
