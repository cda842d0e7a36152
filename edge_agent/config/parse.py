"""Parsing a whole config: the top level's order, and the rules that span fields.

Design rule: every key is read by the generic reader (reader.py) from the fields'
specs (model.py); what is here is only what one field cannot say alone: the order
the top-level sections are read in (the MQTT defaults need the device's name, a
camera's classes default to Home Assistant's), a camera's ``decide`` laid over
the top-level one, and one small rule per section for the limits that span its
fields (``votes <= window``, a key or a key file, not both). Each rule is named
after its dataclass in RULES, and the reader runs it wherever that section is.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any, Mapping

from .env import default_device_id, default_state_dir, expand_env
from .display import plain
from .errors import ConfigError, fmt, show
from .files import read_key_file, read_yaml
from .limits import MAX_VIEWS, too_many_cameras
from .model import (MQTT_TLS_PORT, ApiConfig, CameraConfig, Config, DatasetConfig, DecideConfig, EventsConfig,
                    FallbackConfig, ViewConfig, MqttConfig,
                    StatusAuthConfig, StatusConfig, TlsConfig, is_loopback_host)
from .reader import read, read_field
from .section import Section
from .spec import Context, Rule


def _api_key(values: dict[str, Any], sec: Section) -> None:
    """``api_key`` or ``api_key_file`` (read now), not both; no white space in it."""
    key, key_file = values["api_key"], values["api_key_file"]
    if key and key_file:
        raise ConfigError(sec.key("api_key_file"), "give api_key or api_key_file, not both")
    if key_file:
        key = read_key_file(key_file, sec.key("api_key_file")).strip()
        if not key:
            raise ConfigError(sec.key("api_key_file"), f"{key_file!r} is empty")
    if any(c.isspace() for c in key):
        raise ConfigError(sec.key("api_key"), "must not contain white space")
    values["api_key"] = key


def _api(values: dict[str, Any], sec: Section, ctx: Context) -> None:
    _api_key(values, sec)
    if values["retry_max"] < values["retry_initial"]:
        raise ConfigError(sec.key("retry_max"), f"must be >= api.retry_initial ({fmt(values['retry_initial'])}), "
                          f"got {fmt(values['retry_max'])}")


def _fallback(values: dict[str, Any], sec: Section, ctx: Context) -> None:
    _api_key(values, sec)
    if values["probe_max"] < values["probe"]:
        raise ConfigError(sec.key("probe_max"), f"must be >= {sec.key('probe')} ({fmt(values['probe'])}), "
                          f"got {fmt(values['probe_max'])}")


def _mqtt(values: dict[str, Any], sec: Section, ctx: Context) -> None:
    if values["password"] and not values["username"]:
        raise ConfigError(sec.key("password"), "needs mqtt.username too")
    if values["tls"] is not None and sec.get("port") is None:
        values["port"] = MQTT_TLS_PORT


def _tls(values: dict[str, Any], sec: Section, ctx: Context) -> None:
    if values["keyfile"] and not values["certfile"]:
        raise ConfigError(sec.key("keyfile"), "needs mqtt.tls.certfile too")


def _decide(values: dict[str, Any], sec: Section, ctx: Context) -> None:
    if values["votes"] > values["window"]:
        raise ConfigError(sec.key("votes"), f"must be <= {sec.key('window')} ({values['window']}), "
                          f"got {values['votes']}")


def _dataset(values: dict[str, Any], sec: Section, ctx: Context) -> None:
    _api_key(values, sec)
    if 0 < values["max_size"] < 32:
        raise ConfigError(sec.key("max_size"), f"must be 0 (as captured) or at least 32, got {values['max_size']}")


def _camera(values: dict[str, Any], sec: Section, ctx: Context) -> None:
    """A camera's views, each laid over the camera: its ``decide``, ``change`` and
    ``sampling`` under the view's own keys, its ``classes`` and ``model`` the
    defaults. A camera with views has no region of its own."""
    raw = sec.get("views")
    if raw is None:
        return
    key = sec.key("views")
    if not isinstance(raw, list) or not raw:
        raise ConfigError(key, f"must be a non-empty list of views ({{name, region, model, ...}}), got {show(raw)}")
    if values["region"] is not None:
        raise ConfigError(sec.key("region"), "a camera with views has no region of its own: give each view its "
                          "region")
    if len(raw) > MAX_VIEWS:
        raise ConfigError(key, f"at most {MAX_VIEWS} views a camera, got {len(raw)}")
    under = {name: plain(values[name]) for name in ("decide", "change", "sampling")}
    views: list[ViewConfig] = []
    for i, item in enumerate(raw):
        view = read(ViewConfig, Section(f"{key}[{i}]", item), ctx,
                    defaults={"classes": values["classes"], "model": values["model"]}, inherit=under)
        if any(v.name == view.name for v in views):
            raise ConfigError(f"{key}[{i}].name", f"duplicate view name {view.name!r}")
        views.append(view)
    values["views"] = tuple(views)


def _status(values: dict[str, Any], sec: Section, ctx: Context) -> None:
    if values["enabled"] and not is_loopback_host(values["host"]) and values["auth"] is None \
            and not values["public"]:
        raise ConfigError(sec.key("listen"), f"{sec.get('listen')} is reachable from other machines; "
                          "set status.auth: {username, password} or status.public: true")


def _status_auth(values: dict[str, Any], sec: Section, ctx: Context) -> None:
    password, password_file = values["password"], values["password_file"]
    if password is not None and password_file:
        raise ConfigError(sec.key("password_file"), "give password or password_file, not both")
    if password_file:
        password = read_key_file(password_file, sec.key("password_file")).rstrip("\r\n")
        if not password:
            raise ConfigError(sec.key("password_file"), f"{password_file!r} is empty")
    elif password is None:
        raise ConfigError(sec.key("password"), "is required (or status.auth.password_file)")
    elif not password:
        raise ConfigError(sec.key("password"), "must not be empty")
    values["password"] = password


RULES: Mapping[type, Rule] = {ApiConfig: _api, FallbackConfig: _fallback, MqttConfig: _mqtt, TlsConfig: _tls, DecideConfig: _decide,
                              StatusConfig: _status, StatusAuthConfig: _status_auth, DatasetConfig: _dataset,
                              CameraConfig: _camera}

_FIELDS = {f.name: f for f in dataclasses.fields(Config)}


def _names_unique(cameras: list[CameraConfig]) -> None:
    """A view is published as camera ``<camera>-<view>``: no two things may share a name."""
    seen: dict[str, str] = {}
    for i, cam in enumerate(cameras):
        names = [(f"cameras[{i}].name", cam.name)] if not cam.views else \
            [(f"cameras[{i}].views[{j}].name", f"{cam.name}-{v.name}") for j, v in enumerate(cam.views)]
        for key, name in names:
            if name in seen:
                raise ConfigError(key, f"{name!r} is also {seen[name]}: a view is published as "
                                  "<camera>-<view>, and names must be unique across cameras and views")
            seen[name] = f"the name of {key.rsplit('.', 1)[0]}"
    for i, cam in enumerate(cameras):  # a camera with views is a name too (its topics' prefix)
        if cam.views and cam.name in seen:
            raise ConfigError(f"cameras[{i}].name", f"{cam.name!r} is also {seen[cam.name]}")


def parse_config(data: Any, env: Mapping[str, str] | None = None, base_dir: Path | None = None) -> Config:
    """Validate a parsed YAML document. Pure apart from reading ``api_key_file``."""
    env = os.environ if env is None else env
    base = base_dir or Path.cwd()
    ctx = Context(base_dir=base, rules=RULES)
    root = Section("", expand_env(data, env))
    root.check_keys(set(_FIELDS))  # a misspelt section before its "is required"

    def root_field(name: str) -> Any:
        return read_field(_FIELDS[name], root, ctx)

    device_id = root_field("device_id") or default_device_id()
    api = root_field("api")
    mqtt = read(MqttConfig, Section("mqtt", root.get("mqtt")), ctx,
                defaults={"topic_prefix": f"edge_agent/{device_id}", "client_id": f"edge-agent-{device_id}"})
    decide_raw = root.get("decide") or {}  # as ever: a null, empty or false decide is every default
    decide = read(DecideConfig, Section("decide", decide_raw), ctx)
    ha = root_field("homeassistant")
    status = root_field("status")
    cams_raw = root.get("cameras")
    if not isinstance(cams_raw, list) or not cams_raw:
        raise ConfigError("cameras", "must be a non-empty list of cameras")
    if (problem := too_many_cameras(len(cams_raw))) is not None:
        raise ConfigError("cameras", problem)
    dataset: DatasetConfig = root_field("dataset")  # before the cameras: its sampling's errors name it
    dataset_raw = root.get("dataset")
    sampling_raw = dataset_raw.get("sampling") if isinstance(dataset_raw, dict) else None
    cameras: list[CameraConfig] = []
    for i, raw in enumerate(cams_raw):
        cam = read(CameraConfig, Section(f"cameras[{i}]", raw), ctx, defaults={"classes": ha.classes},
                   inherit={"decide": dict(decide_raw),
                            "sampling": dict(sampling_raw) if isinstance(sampling_raw, dict) else {}})
        if any(c.name == cam.name for c in cameras):
            raise ConfigError(f"cameras[{i}].name", f"duplicate camera name {cam.name!r}")
        cameras.append(cam)
    _names_unique(cameras)
    status_interval = root_field("status_interval")
    summary = root_field("log_summary_interval")
    events: EventsConfig = root_field("events")
    state_path = Path(root_field("state_dir") or default_state_dir(env))
    if not state_path.is_absolute():
        state_path = base / state_path
    if not api.api_key and "roboflow.com" in api.url:
        raise ConfigError("api.api_key", f"is required for {api.url}")
    if api.fallback is not None:  # its key is the primary's unless it has its own
        api = dataclasses.replace(api, fallback=dataclasses.replace(
            api.fallback, api_key=api.fallback.api_key or api.api_key))
        if not api.fallback.api_key and "roboflow.com" in api.fallback.url:
            raise ConfigError("api.fallback.api_key", f"is required for {api.fallback.url} (or api.api_key)")
    dataset = dataclasses.replace(dataset, project=dataset.project or api.model.split("/")[0],
                                  api_key=dataset.api_key or api.api_key)  # the API's, by default
    if dataset.enabled and not dataset.api_key and "roboflow.com" in dataset.url:
        raise ConfigError("dataset.api_key", f"is required for {dataset.url} (or api.api_key)")
    given: dict[str, Any] = dict(device_id=device_id, api=api, mqtt=mqtt, decide=decide, cameras=tuple(cameras),
                                 status_interval=status_interval, status=status, homeassistant=ha,
                                 log_summary_interval=summary, state_dir=str(state_path), events=events,
                                 dataset=dataset)
    for name in _FIELDS.keys() - given.keys():  # a top-level field with no rule above: read by its spec
        given[name] = root_field(name)
    return Config(**given)


def load_config(path: str | Path, env: Mapping[str, str] | None = None) -> Config:
    path = Path(path)
    return parse_config(read_yaml(path), env, base_dir=path.parent)

