import contextlib
import copy
import os
import resource
import time
from pathlib import Path
from typing import Mapping

import pytest
import yaml

from edge_agent.config import (MAX_CAMERAS, MAX_CONFIG_BYTES, MAX_KEY_FILE_BYTES, MQTT_TLS_PORT, ApiConfig, CameraConfig,
                                Config, ConfigError, DecideConfig, DecodeMode, EventsConfig, HomeAssistantConfig,
                                MqttConfig, StatusConfig, load_config, masked, parse_config)

GOOD = {
    "device_id": "garage-pi",
    "api": {"url": "https://classify.roboflow.com", "model": "garage-door/3", "api_key": "${ROBOFLOW_API_KEY}"},
    "mqtt": {"host": "localhost"},
    "decide": {"min_confidence": 0.5, "confirm": 2},
    "cameras": [{"name": "door", "source": "/dev/video0", "fps": 2},
                {"name": "gate", "source": "rtsp://user:hunter22@10.0.0.5/stream", "fps": 1,
                 "decide": {"confirm": 3}}],
}
ENV = {"ROBOFLOW_API_KEY": "rf_SECRET_KEY_123"}


def with_change(path: str, value, base=GOOD):
    data = copy.deepcopy(base)
    node = data
    keys = path.replace("]", "").replace("[", ".").split(".")
    for k in keys[:-1]:
        node = node[int(k)] if k.isdigit() else node.setdefault(k, {})
    last = keys[-1]
    if value is DELETE:
        del node[int(last) if last.isdigit() else last]
    elif last.isdigit():
        node[int(last)] = value
    else:
        node[last] = value
    return data


DELETE = object()


def test_good_config_and_defaults():
    cfg = parse_config(GOOD, ENV)
    assert cfg.device_id == "garage-pi"
    assert cfg.api.api_key == "rf_SECRET_KEY_123"
    assert cfg.api.url == "https://classify.roboflow.com"
    assert (cfg.api.timeout, cfg.api.max_in_flight, cfg.api.image_size, cfg.api.jpeg_quality) == (10, 2, 416, 80)
    assert cfg.api.key_transport == "query"
    assert cfg.mqtt.topic_prefix == "edge_agent/garage-pi"
    assert (cfg.mqtt.port, cfg.mqtt.qos) == (1883, 1)
    door, gate = cfg.cameras
    assert (door.fps, door.loop, door.stall_timeout) == (2.0, False, 10.0)
    assert door.decide.confirm == 2 and gate.decide.confirm == 3
    assert gate.decide.min_confidence == 0.5  # per-camera override merges over the global decide


def test_what_is_left_out_is_the_dataclass_default():
    # Defaults live in one place, the dataclasses; the reader falls back to them.
    minimal = {"api": {"model": "garage-door/3", "url": "http://127.0.0.1:9001"},
               "cameras": [{"name": "door", "source": "0"}]}
    cfg = parse_config(minimal, {})
    assert cfg.api == ApiConfig(model="garage-door/3", url="http://127.0.0.1:9001")
    assert cfg.mqtt == MqttConfig(topic_prefix=cfg.mqtt.topic_prefix, client_id=cfg.mqtt.client_id)
    assert cfg.cameras[0] == CameraConfig(name="door", source="0")
    assert cfg.cameras[0].decode is DecodeMode.AUTO
    assert (cfg.status, cfg.homeassistant, cfg.events, cfg.decide) == (StatusConfig(), HomeAssistantConfig(),
                                                                       EventsConfig(), DecideConfig())
    assert (cfg.status_interval, cfg.log_summary_interval) == (Config.status_interval, Config.log_summary_interval)
    assert parse_config({**minimal, "mqtt": {"tls": None}}, {}).mqtt.port == MQTT_TLS_PORT
    assert masked(cfg)["cameras"][0]["decode"] == "auto"  # printed as the word it is written as


@pytest.mark.parametrize("path,value,message", [
    ("cameras[1].fps", -2, "cameras[1].fps: must be > 0, got -2"),
    ("cameras[0].fps", "fast", "cameras[0].fps: must be a number, got 'fast'"),
    ("cameras[0].name", "Door 1", "cameras[0].name: must match [a-z0-9_-], got 'Door 1'"),
    ("cameras[1].name", "door", "cameras[1].name: duplicate camera name 'door'"),
    ("cameras[0].source", DELETE, "cameras[0].source: is required"),
    ("cameras[0].source", -1, "cameras[0].source: device index must be >= 0, got -1"),
    ("cameras[0].loop", "yes", "cameras[0].loop: must be true or false, got 'yes'"),
    ("cameras[0].fsp", 2, "cameras[0].fsp: unknown key (did you mean 'fps'?)"),
    ("cameras[0].decide", {"confirm": 0}, "cameras[0].decide.confirm: must be >= 1, got 0"),
    ("cameras", [], "cameras: must be a non-empty list of cameras"),
    ("cameras", DELETE, "cameras: must be a non-empty list of cameras"),
    ("api.model", "garage-door", "api.model: must match <dataset-slug>/<version>, e.g. garage-door/3, got 'garage-door'"),
    ("api.model", DELETE, "api.model: is required"),
    ("api.url", "ftp://x", "api.url: must be an http:// or https:// URL, got 'ftp://x'"),
    ("api.timeout", 0, "api.timeout: must be > 0, got 0"),
    ("api.max_in_flight", 2.5, "api.max_in_flight: must be an integer, got 2.5"),
    ("api.max_in_flight", True, "api.max_in_flight: must be an integer, got True"),
    ("api.image_size", 8, "api.image_size: must be >= 32, got 8"),
    ("api.jpeg_quality", 101, "api.jpeg_quality: must be <= 100, got 101"),
    ("api.key_transport", "cookie", "api.key_transport: must be one of query, header, got 'cookie'"),
    ("api.api_key", DELETE, "api.api_key: is required for https://classify.roboflow.com"),
    ("api.api_key_file", "/nonexistent/key", "api.api_key_file: give api_key or api_key_file, not both"),
    ("api.retry_max", 0.1, "api.retry_max: must be >= api.retry_initial (1), got 0.1"),
    ("api.colour", 1, "api.colour: unknown key"),
    ("api", DELETE, "api: is required"),
    ("api", "x", "api: must be a mapping, got 'x'"),
    ("mqtt.port", 70000, "mqtt.port: must be <= 65535, got 70000"),
    ("mqtt.qos", 3, "mqtt.qos: must be <= 2, got 3"),
    ("mqtt.topic_prefix", "a/#", "mqtt.topic_prefix: must be a topic without wildcards or empty levels, got 'a/#'"),
    ("mqtt.topic_prefix", "a/", "mqtt.topic_prefix: must be a topic without wildcards or empty levels, got 'a/'"),
    ("mqtt.password", "pw", "mqtt.password: needs mqtt.username too"),
    ("mqtt.tls", {"ca_certs": "/nonexistent/ca.pem"}, "mqtt.tls.ca_certs: file '/nonexistent/ca.pem' does not exist"),
    ("decide.min_confidence", 1.5, "decide.min_confidence: must be <= 1, got 1.5"),
    ("device_id", "Garage Pi", "device_id: must match [a-z0-9_-], got 'Garage Pi'"),
    ("extra", 1, "extra: unknown key"),
    ("cameras[0].region", [0.1, 0.2, 0.05, 0.9], "cameras[0].region: needs 0 <= x1 < x2 <= 1 and 0 <= y1 < y2 <= 1, got [0.1, 0.2, 0.05, 0.9]"),
    ("cameras[0].region", [0, 0, 1], "cameras[0].region: must be [x1, y1, x2, y2] as fractions of the frame, got a list"),
    ("cameras[0].region", [0, 0, "1", 1], "cameras[0].region: must be four numbers, got [0, 0, '1', 1]"),
    ("cameras[0].classes", "open", "cameras[0].classes: must be a list of class names, got 'open'"),
    ("homeassistant.classes", ["a", "a"], "homeassistant.classes: has a duplicate: ['a', 'a']"),
    ("homeassistant.discovery", "on", "homeassistant.discovery: must be true or false, got 'on'"),
    ("homeassistant.prefix", "ha/#", "homeassistant.prefix: must be a topic without wildcards, got 'ha/#'"),
    ("status.listen", "8080", "status.listen: must be HOST:PORT, e.g. 127.0.0.1:8080, got '8080'"),
    ("status.listen", "0.0.0.0:99999", "status.listen: must be HOST:PORT, e.g. 127.0.0.1:8080, got '0.0.0.0:99999'"),
    ("status.port", 1, "status.port: unknown key"),
    ("log_summary_interval", -1, "log_summary_interval: must be >= 0, got -1"),
    ("api.ca_certs", "/nonexistent/ca.pem", "api.ca_certs: file '/nonexistent/ca.pem' does not exist"),
    ("api.insecure", "yes", "api.insecure: must be true or false, got 'yes'"),
    ("api.budget", {"calls_per_day": 0}, "api.budget.calls_per_day: must be >= 1, got 0"),
    ("api.budget", {"calls_per_day": 2.5}, "api.budget.calls_per_day: must be an integer, got 2.5"),
    ("api.budget", {"credits_per_day": -1}, "api.budget.credits_per_day: must be > 0, got -1"),
    ("api.budget", {"calls_a_day": 5}, "api.budget.calls_a_day: unknown key (did you mean 'calls_per_day'?)"),
    ("cameras[0].change", {"threshold": 0}, "cameras[0].change.threshold: must be > 0, got 0"),
    ("cameras[0].change", {"threshold": 2}, "cameras[0].change.threshold: must be <= 1, got 2"),
    ("cameras[0].change", {"heartbeat": -5}, "cameras[0].change.heartbeat: must be >= 0, got -5"),
    ("cameras[0].change", {"enabled": "no"}, "cameras[0].change.enabled: must be true or false, got 'no'"),
    ("cameras[0].change", {"ignore": [[0.8, 0, 0.3, 0.1]]},
     "cameras[0].change.ignore[0]: needs 0 <= x, y < 1, w and h > 0 and the box inside the frame, got [0.8, 0, 0.3, 0.1]"),
    ("cameras[0].change", {"ignore": [0.8, 0, 0.2, 0.1]},
     "cameras[0].change.ignore[0]: must be [x, y, w, h] as fractions of the frame, got 0.8"),
    ("cameras[0].change", "on", "cameras[0].change: must be a mapping, got 'on'"),
    ("api.timeout", float("inf"), "api.timeout: must be a finite number, got inf"),
    ("api.retry_max", float("nan"), "api.retry_max: must be a finite number, got nan"),
    ("status_interval", 10**400, "status_interval: is out of range, got a 401-digit number"),
])
def test_bad_configs_name_the_key_and_the_problem(path, value, message):
    with pytest.raises(ConfigError) as err:
        parse_config(with_change(path, value), ENV)
    assert str(err.value) == message


def test_status_homeassistant_region_and_classes():
    data = with_change("status", {"listen": "0.0.0.0:9090", "enabled": False})
    data = with_change("homeassistant", {"prefix": "ha", "classes": ["open", "closed"]}, data)
    data = with_change("cameras[0].region", [0.25, 0, 0.75, 0.5], data)
    data = with_change("cameras[1].classes", ["person"], data)
    cfg = parse_config(data, ENV)
    assert (cfg.status.host, cfg.status.port, cfg.status.enabled) == ("0.0.0.0", 9090, False)
    assert cfg.homeassistant.prefix == "ha" and cfg.homeassistant.discovery
    assert cfg.cameras[0].region == (0.25, 0.0, 0.75, 0.5) and cfg.cameras[0].classes == ("open", "closed")
    assert cfg.cameras[1].classes == ("person",) and cfg.cameras[1].region is None
    defaults = parse_config(GOOD, ENV)
    assert (defaults.status.host, defaults.status.port) == ("127.0.0.1", 8080)  # localhost unless asked


def test_missing_environment_variable_is_named():
    with pytest.raises(ConfigError) as err:
        parse_config(GOOD, {})
    assert str(err.value) == "api.api_key: environment variable ROBOFLOW_API_KEY is not set"


def test_env_default_and_expansion_anywhere():
    data = with_change("mqtt.host", "${BROKER:-broker.lan}")
    data = with_change("cameras[0].source", "rtsp://${CAM_USER}:${CAM_PASS}@cam/1", data)
    cfg = parse_config(data, {**ENV, "CAM_USER": "u", "CAM_PASS": "p4ss"})
    assert cfg.mqtt.host == "broker.lan"
    assert cfg.cameras[0].source == "rtsp://u:p4ss@cam/1"


def test_numbers_and_booleans_from_the_environment():
    data = with_change("mqtt.port", "${PORT}")
    data = with_change("cameras[0].fps", "${FPS}", data)
    data = with_change("cameras[0].loop", "${LOOP}", data)
    cfg = parse_config(data, {**ENV, "PORT": "1884", "FPS": "2.5", "LOOP": "true"})
    assert (cfg.mqtt.port, cfg.cameras[0].fps, cfg.cameras[0].loop) == (1884, 2.5, True)
    with pytest.raises(ConfigError, match=r"^mqtt.port: must be an integer, got 'eighty'$"):
        parse_config(data, {**ENV, "PORT": "eighty", "FPS": "2", "LOOP": "false"})


def test_api_key_file(tmp_path: Path):
    (tmp_path / "key").write_text("file_key_abc\n")
    data = with_change("api.api_key", DELETE)
    data = with_change("api.api_key_file", str(tmp_path / "key"), data)
    assert parse_config(data, {}).api.api_key == "file_key_abc"
    data = with_change("api.api_key_file", str(tmp_path / "missing"), data)
    with pytest.raises(ConfigError, match=r"^api.api_key_file: cannot read '.*missing': No such file"):
        parse_config(data, {})


def test_local_inference_server_needs_no_key():
    data = with_change("api.url", "http://127.0.0.1:9001/")
    data = with_change("api.api_key", DELETE, data)
    cfg = parse_config(data, {})
    assert cfg.api.url == "http://127.0.0.1:9001" and cfg.api.api_key == ""


def test_load_config_file_errors(tmp_path: Path):
    p = tmp_path / "c.yaml"
    p.write_text("api: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML at line"):
        load_config(p)
    p.write_text("")
    with pytest.raises(ConfigError, match="the file is empty"):
        load_config(p)
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_config(tmp_path / "nope.yaml")
    p.write_text(yaml.safe_dump(GOOD))
    assert load_config(p, ENV).cameras[0].name == "door"


def test_masked_hides_every_secret():
    data = with_change("mqtt.username", "bob")
    data = with_change("mqtt.password", "mqtt-pw-999", data)
    cfg = parse_config(data, ENV)
    text = yaml.safe_dump(masked(cfg))
    for secret in ("rf_SECRET_KEY_123", "hunter22", "mqtt-pw-999"):
        assert secret not in text
    assert "rtsp://***@10.0.0.5/stream" in text
    assert set(cfg.secrets()) >= {"rf_SECRET_KEY_123", "hunter22", "mqtt-pw-999"}
    assert "rf_SECRET" not in repr(cfg)


def test_example_configs_in_the_repo_are_valid():
    root = Path(__file__).resolve().parent.parent / "config"
    files = sorted(root.glob("*.yaml"))
    assert files, "config/ has example configs"
    for f in files:
        load_config(f, {"ROBOFLOW_API_KEY": "k" * 20, "CREDENTIALS_DIRECTORY": str(root)})


def test_change_gate_budget_and_state_dir_defaults_and_values(tmp_path):
    cfg = parse_config(GOOD, {"ROBOFLOW_API_KEY": "k", "HOME": "/home/pi"})
    cam = cfg.cameras[0]
    assert cam.change.enabled and cam.change.threshold == 0.01 and cam.change.heartbeat == 600
    assert cam.change.ignore == () and not cfg.api.budget.limited
    assert cfg.state_dir == "/home/pi/.local/state/edge-agent"
    assert parse_config(GOOD, {"ROBOFLOW_API_KEY": "k", "STATE_DIRECTORY": "/var/lib/edge-agent:/x"}).state_dir \
        == "/var/lib/edge-agent"  # systemd's StateDirectory=
    data = with_change("cameras[0].change", {"enabled": False, "threshold": 0.05, "heartbeat": 0,
                                             "ignore": [[0.8, 0.0, 0.2, 0.08]]})
    data["api"]["budget"] = {"calls_per_day": 5000, "credits_per_day": 2}
    data["state_dir"] = "state"
    cfg = parse_config(data, {"ROBOFLOW_API_KEY": "k"}, base_dir=tmp_path)
    cam = cfg.cameras[0]
    assert (cam.change.enabled, cam.change.threshold, cam.change.heartbeat) == (False, 0.05, 0)
    assert cam.change.ignore == ((0.8, 0.0, 0.2, 0.08),)
    assert cfg.api.budget.calls_per_day == 5000 and cfg.api.budget.credits_per_day == 2.0
    assert cfg.state_dir == str(tmp_path / "state")  # relative to the config's folder


# --------------------------------------------------------------------------- hostile files
# Each must be a ConfigError (exit 2 from the command line) within a second and in
# bounded memory: never a traceback, never a hang, never an out-of-memory kill.


@contextlib.contextmanager
def memory_capped(extra_mb: int = 512):
    """Cap this process's address space at what it uses now plus ``extra_mb``, so a
    regression fails with MemoryError instead of eating the machine."""
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    with open("/proc/self/statm") as f:
        now = int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    resource.setrlimit(resource.RLIMIT_AS, (now + extra_mb * 2**20, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def good_text() -> str:
    return yaml.safe_dump(GOOD)


ALIAS_BOMB = """
lol:
  a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]
  b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]
  c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]
  d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]
  e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]
  f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]
  g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f]
  h: &h [*g, *g, *g, *g, *g, *g, *g, *g, *g]
  i: &i [*h, *h, *h, *h, *h, *h, *h, *h, *h]
"""


@pytest.mark.timeout(10)
def test_alias_bomb_is_refused_quickly_in_bounded_memory(tmp_path: Path):
    p = tmp_path / "c.yaml"
    p.write_text(good_text() + ALIAS_BOMB)  # 9**9 strings once expanded; 1 KB of text
    start = time.monotonic()
    with memory_capped(512), pytest.raises(ConfigError) as err:
        load_config(p, ENV)
    assert time.monotonic() - start < 1
    assert err.value.key.startswith("lol.")
    assert "more than 10000 values once YAML aliases (*name) are expanded" in err.value.problem
    # Aliases as such are fine: a small shared block is a normal use.
    p.write_text("defaults: &d {fps: 1, loop: true}\n" + good_text().replace("fps: 2", "<<: *d"))
    with pytest.raises(ConfigError, match=r"^defaults: unknown key$"):
        load_config(p, ENV)


@pytest.mark.timeout(10)
def test_deep_nesting_and_odd_scalars_are_config_errors(tmp_path: Path):
    p = tmp_path / "c.yaml"
    for text, message in [
        ("x: " + "[" * 30000 + "]" * 30000, "nested more than 32 levels deep"),  # PyYAML: RecursionError
        ("x:\n" + "".join(" " * i + "- \n" for i in range(200)), "nested more than 32 levels deep"),
        (good_text() + "state_dir: 2024-13-45\n", "not valid YAML: month must be in 1..12"),  # a bad date
        (good_text() + "status_interval: 1" + "0" * 5000 + "\n", "not valid YAML: Exceeds the limit"),
    ]:
        p.write_text(text)
        start = time.monotonic()
        with pytest.raises(ConfigError, match=message):
            load_config(p, ENV)
        assert time.monotonic() - start < 1
    deep: dict = {"a": 1}
    for _ in range(40):
        deep = {"a": deep}
    with pytest.raises(ConfigError, match=r"^extra(\.a)+: nested more than 32 levels deep$"):
        parse_config(with_change("extra", deep), ENV)


def test_config_file_size_is_limited(tmp_path: Path):
    assert MAX_CONFIG_BYTES == 64 * 1024
    p = tmp_path / "c.yaml"
    text = good_text()
    p.write_text(text + "#" * (MAX_CONFIG_BYTES - len(text) - 1) + "\n")  # exactly at the limit: fine
    assert p.stat().st_size == MAX_CONFIG_BYTES and load_config(p, ENV).device_id == "garage-pi"
    p.write_text(text + "#" * (MAX_CONFIG_BYTES - len(text)) + "\n")
    with pytest.raises(ConfigError) as err:
        load_config(p, ENV)
    assert str(err.value) == f"config file {str(p)!r} is larger than 64 KiB ({MAX_CONFIG_BYTES + 1} bytes)"


@pytest.mark.timeout(10)
def test_config_file_must_be_a_regular_file(tmp_path: Path):
    fifo = tmp_path / "fifo.yaml"
    os.mkfifo(fifo)
    with memory_capped(512):
        for path, kind in [("/dev/zero", "a character device"), (str(fifo), "a FIFO"), (str(tmp_path), "a directory")]:
            start = time.monotonic()
            with pytest.raises(ConfigError) as err:
                load_config(path, ENV)
            assert str(err.value) == f"config file {path!r} is {kind}, not a regular file"
            assert time.monotonic() - start < 1


def key_file_config(path) -> dict:
    data = with_change("api.api_key", DELETE)
    return with_change("api.api_key_file", str(path), data)


@pytest.mark.timeout(10)
def test_api_key_file_dev_zero_fifo_and_size(tmp_path: Path):
    fifo = tmp_path / "key-fifo"
    os.mkfifo(fifo)  # nobody ever writes to it: opening it for reading would block forever
    with memory_capped(512):
        for path, kind in [("/dev/zero", "a character device"), (str(fifo), "a FIFO")]:
            start = time.monotonic()
            with pytest.raises(ConfigError) as err:
                parse_config(key_file_config(path), {})
            assert str(err.value) == f"api.api_key_file: {path!r} is {kind}, not a regular file"
            assert time.monotonic() - start < 1
    key = tmp_path / "key"
    key.write_text("k" * MAX_KEY_FILE_BYTES)
    assert parse_config(key_file_config(key), {}).api.api_key == "k" * 4096
    key.write_text("k" * (MAX_KEY_FILE_BYTES + 1))
    with pytest.raises(ConfigError) as err:
        parse_config(key_file_config(key), {})
    assert str(err.value) == f"api.api_key_file: {str(key)!r} is larger than 4 KiB (4097 bytes)"


def test_non_utf8_config_and_key_file(tmp_path: Path):
    p = tmp_path / "c.yaml"
    text = good_text().encode()
    p.write_bytes(text + b"# caf\xe9\n")
    with pytest.raises(ConfigError) as err:
        load_config(p, ENV)
    assert str(err.value) == f"config file {str(p)!r} is not UTF-8 text at byte {len(text) + 5}"
    key = tmp_path / "key"
    key.write_bytes(b"rf_\xff\xfekey\n")
    with pytest.raises(ConfigError) as err:
        parse_config(key_file_config(key), {})
    assert str(err.value) == f"api.api_key_file: {str(key)!r} is not UTF-8 text at byte 3"


@pytest.mark.parametrize("change,message", [
    (lambda d: d.update({1: "x"}), "top level: has a key that is not a name: 1"),
    (lambda d: d.update({True: "y", "zzz": 1}), "top level: has a key that is not a name: True"),
    (lambda d: d["api"].update({None: 1}), "api: has a key that is not a name: None"),
    (lambda d: d["cameras"][0].update({2.5: 1}), "cameras[0]: has a key that is not a name: 2.5"),
    (lambda d: d["decide"].update({1: 2}), "decide: has a key that is not a name: 1"),
    (lambda d: d["cameras"][1]["decide"].update({1: 2}), "cameras[1].decide: has a key that is not a name: 1"),
    (lambda d: d["api"].update({"budget": {7: 1, "calls_per_day": 5}}), "api.budget: has a key that is not a name: 7"),
])
def test_keys_that_are_not_names_are_config_errors(change, message):
    data = copy.deepcopy(GOOD)
    change(data)
    with pytest.raises(ConfigError) as err:  # not a TypeError from sorting or comparing keys
        parse_config(data, ENV)
    assert str(err.value) == message


def test_mixed_keys_in_a_yaml_file(tmp_path: Path):
    p = tmp_path / "c.yaml"
    p.write_text(good_text() + "1: x\ntrue: y\nzebra: 1\n")
    with pytest.raises(ConfigError, match=r"^top level: has a key that is not a name: (1|True)$"):
        load_config(p, ENV)
    p.write_text("- just\n- a list\n")
    with pytest.raises(ConfigError, match=r"^top level: must be a mapping, got a list$"):
        load_config(p, ENV)
    p.write_text(good_text() + "cameras:\n- [[a], {1: b}]\n")
    with pytest.raises(ConfigError, match=r"^cameras\[0\]: must be a mapping, got a list$"):
        load_config(p, ENV)


def test_top_level_typo_gets_did_you_mean():
    data = with_change("cameras", DELETE)
    data["camera"] = GOOD["cameras"]
    with pytest.raises(ConfigError) as err:
        parse_config(data, ENV)
    assert str(err.value) == "camera: unknown key (did you mean 'cameras'?)"  # not "cameras: must be a non-empty list"
    data = with_change("api", DELETE)
    data["apii"] = GOOD["api"]
    with pytest.raises(ConfigError, match=r"^apii: unknown key \(did you mean 'api'\?\)$"):
        parse_config(data, ENV)
    # In a section too, a misspelt required key is a typo, not a missing key.
    data = with_change("api.model", DELETE)
    data["api"]["modle"] = "garage-door/3"
    with pytest.raises(ConfigError, match=r"^api.modle: unknown key \(did you mean 'model'\?\)$"):
        parse_config(data, ENV)
    data = with_change("cameras[0].source", DELETE)
    data["cameras"][0]["sorce"] = "0"
    with pytest.raises(ConfigError, match=r"^cameras\[0\].sorce: unknown key \(did you mean 'source'\?\)$"):
        parse_config(data, ENV)


def test_number_of_cameras_is_limited_by_the_services_tasks_max():
    unit = (Path(__file__).resolve().parent.parent / "systemd" / "edge-agent.service").read_text()
    assert "\nTasksMax=256\n" in unit  # MAX_CAMERAS is derived from it: change both together
    assert MAX_CAMERAS == 16
    cams = [{"name": f"c{i}", "source": str(i)} for i in range(500)]
    assert len(parse_config(with_change("cameras", cams[:MAX_CAMERAS]), ENV).cameras) == 16
    for n in (17, 500):
        with pytest.raises(ConfigError) as err:
            parse_config(with_change("cameras", cams[:n]), ENV)
        assert err.value.key == "cameras"
        assert err.value.problem.startswith(f"at most 16 cameras, got {n} (the service's TasksMax=256 allows 16 ")


# --------------------------------------------------------------------------- issue #13: the first hour


@pytest.mark.parametrize("path,value,message", [
    ("api.api_key", "$ROBOFLOW_API_KEY",
     "api.api_key: looks like an environment variable; write ${ROBOFLOW_API_KEY} to use one"),
    ("mqtt.password", "$MQTT_PASSWORD",
     "mqtt.password: looks like an environment variable; write ${MQTT_PASSWORD} to use one"),
    ("cameras[0].source", "$CAMERA_URL",
     "cameras[0].source: looks like an environment variable; write ${CAMERA_URL} to use one"),
    ("cameras[0].options", ["--rotation", "$ROT"],
     "cameras[0].options[1]: looks like an environment variable; write ${ROT} to use one"),
])
def test_bare_dollar_variable_is_an_error_showing_the_braces(path, value, message):
    with pytest.raises(ConfigError) as err:
        parse_config(with_change(path, value), ENV)
    assert str(err.value) == message


def test_dollar_text_that_is_not_a_variable_name_is_kept():
    for text in ("$lower", "a$B", "$1ABC", "$", "pa$$word", "$ABC-1"):
        assert parse_config(with_change("api.api_key", text), ENV).api.api_key == text
    # A variable's value is not looked at again: it may well start with "$".
    assert parse_config(GOOD, {"ROBOFLOW_API_KEY": "$ABC"}).api.api_key == "$ABC"


def test_tls_null_means_tls_with_the_systems_cas(tmp_path: Path):
    for value in (None, {}):
        cfg = parse_config(with_change("mqtt.tls", value), ENV)
        assert cfg.mqtt.tls is not None and cfg.mqtt.tls.ca_certs is None and not cfg.mqtt.tls.insecure
        assert cfg.mqtt.port == 8883
        shown = masked(cfg)["mqtt"]
        assert shown["tls"] == {"insecure": False} and shown["port"] == 8883
    cfg = parse_config(GOOD, ENV)
    assert cfg.mqtt.tls is None and "tls" not in masked(cfg)["mqtt"]  # no TLS: no key at all


def test_status_prints_as_listen_and_parses_back():
    cfg = parse_config(with_change("status", {"listen": "[::1]:9090", "enabled": False}), ENV)
    assert masked(cfg)["status"] == {"enabled": False, "listen": "[::1]:9090", "public": False}
    assert parse_config(with_change("status", masked(cfg)["status"]), ENV).status == cfg.status


def _file(tmp_path: Path, name: str, text: str = "x\n") -> str:
    p = tmp_path / name
    p.write_text(text)
    return str(p)


def full_config(tmp_path: Path, *, key_file: bool) -> dict:
    """Every section and every key."""
    return {
        "device_id": "full-pi",
        "api": {"url": "https://serverless.roboflow.com", "model": "garage-door/3",
                **({"api_key_file": _file(tmp_path, "api_key", "rf_FILE_key_42\n")} if key_file
                   else {"api_key": "${ROBOFLOW_API_KEY}"}),
                "key_transport": "header", "timeout": 5, "max_in_flight": 3, "image_size": 320,
                "jpeg_quality": 70, "retry_initial": 0.5, "retry_max": 4, "unauthorized_retry": 30,
                "ca_certs": _file(tmp_path, "api-ca.pem"), "insecure": False,
                "budget": {"calls_per_day": 5000, "credits_per_day": 2.5}},
        "mqtt": {"host": "broker.lan", "port": 8884, "username": "agent", "password": "${MQTT_PASSWORD}",
                 "tls": {"ca_certs": _file(tmp_path, "ca.pem"), "certfile": _file(tmp_path, "cert.pem"),
                         "keyfile": _file(tmp_path, "key.pem"), "insecure": True},
                 "topic_prefix": "home/garage", "qos": 2, "client_id": "garage-agent", "keepalive": 60,
                 "max_pending": 50},
        "decide": {"min_confidence": 0.6, "confirm": 3, "window": 6, "votes": 5, "stale_after": 90},
        "status_interval": 10,
        "log_summary_interval": 0,
        "state_dir": "state",
        "status": {"enabled": True, "listen": "0.0.0.0:9090", "public": True,
                   "auth": ({"username": "viewer", "password_file": _file(tmp_path, "status_pw", "pw-FILE-77\n")}
                            if key_file else {"username": "viewer", "password": "${STATUS_PASSWORD}"})},
        "homeassistant": {"discovery": False, "prefix": "ha", "classes": ["open", "closed"],
                          "stale_unavailable": True},
        "events": {"keep_days": 7, "max_mb": 50, "max_pending": 500},
        "cameras": [
            {"name": "door", "source": "rpicam:1", "fps": 1.5, "loop": False, "stall_timeout": 20,
             "decide": {"confirm": 2, "window": 3, "votes": 2}, "region": [0.25, 0.4, 0.75, 1.0],
             "classes": ["open"], "change": {"enabled": True, "threshold": 0.05, "heartbeat": 0,
                                             "ignore": [[0.8, 0.0, 0.2, 0.08], [0.0, 0.9, 0.5, 0.1]]},
             "decode": "keyframes", "resolution": [640, 480], "options": ["--rotation", "180", "--hflip"]},
            {"name": "gate", "source": 2},
            {"name": "yard", "source": "rtsp://10.0.0.7/stream", "decode": "all", "loop": True},
        ],
    }


FULL_ENV = {"ROBOFLOW_API_KEY": "rf_ENV_key_77", "MQTT_PASSWORD": "mqtt-ENV-pw", "STATUS_PASSWORD": "status-ENV-pw"}


def round_trip(cfg, env: Mapping[str, str], tmp_path: Path):
    """What ``check`` prints, loaded again as a config file. Each masked secret (``***``)
    comes back through an environment variable holding the real one."""
    import dataclasses

    from edge_agent.config import MASK

    shown = masked(cfg)
    text = yaml.safe_dump(shown, sort_keys=False)
    for secret in cfg.secrets():
        assert secret not in text
    secrets = {"api": ("api_key", cfg.api.api_key), "mqtt": ("password", cfg.mqtt.password)}
    data = yaml.safe_load(text)
    env = dict(env)
    for section, (key, real) in secrets.items():
        if data[section].get(key) == MASK:
            data[section][key] = f"${{RT_{section.upper()}}}"
            env[f"RT_{section.upper()}"] = real
    auth = data["status"].get("auth")
    if auth and auth.get("password") == MASK:
        auth["password"] = "${RT_STATUS}"
        env["RT_STATUS"] = cfg.status.auth.password
    p = tmp_path / "printed.yaml"
    p.write_text(yaml.safe_dump(data, sort_keys=False))
    again = load_config(p, env)
    assert masked(again) == shown  # printing is stable too
    assert dataclasses.asdict(again) == dataclasses.asdict(cfg)
    return again


def test_check_output_is_a_config_meaning_the_same_example_and_demo(tmp_path: Path):
    root = Path(__file__).resolve().parent.parent / "config"
    for name, env in [("example.yaml", {"ROBOFLOW_API_KEY": "k" * 20, "HOME": "/home/pi"}),
                      ("demo.yaml", {})]:  # the demo's ${VAR:-default}s
        cfg = load_config(root / name, env)
        assert round_trip(cfg, env, tmp_path) == cfg


@pytest.mark.parametrize("key_file", [False, True])
def test_check_output_is_a_config_meaning_the_same_every_key(tmp_path: Path, key_file: bool):
    cfg = parse_config(full_config(tmp_path, key_file=key_file), FULL_ENV, base_dir=tmp_path)
    assert cfg.status.auth is not None and cfg.status.public and cfg.mqtt.tls.insecure
    assert cfg.cameras[0].change.ignore[1] == (0.0, 0.9, 0.5, 0.1) and cfg.cameras[0].options[2] == "--hflip"
    shown = masked(cfg)
    assert shown["status"]["listen"] == "0.0.0.0:9090" and "host" not in shown["status"]
    if key_file:
        assert "api_key" not in shown["api"] and shown["api"]["api_key_file"] == str(tmp_path / "api_key")
        assert shown["status"]["auth"] == {"username": "viewer", "password_file": str(tmp_path / "status_pw")}
        assert cfg.status.auth.password == "pw-FILE-77"
    else:
        assert shown["api"]["api_key"] == "***" and shown["status"]["auth"]["password"] == "***"
    assert shown["mqtt"]["password"] == "***" and isinstance(shown["cameras"][0]["resolution"], list)
    assert round_trip(cfg, FULL_ENV, tmp_path) == cfg


def test_status_listen_off_this_machine_needs_auth_or_public(tmp_path: Path):
    with pytest.raises(ConfigError) as err:
        parse_config(with_change("status.listen", "0.0.0.0:8080"), ENV)
    assert str(err.value) == ("status.listen: 0.0.0.0:8080 is reachable from other machines; "
                              "set status.auth: {username, password} or status.public: true")
    for listen in ("[::]:8080", "192.168.1.20:8080", "garage-pi.lan:8080", "[::ffff:10.0.0.1]:80"):
        with pytest.raises(ConfigError, match=r"^status.listen: .* is reachable from other machines"):
            parse_config(with_change("status.listen", listen), ENV)
    for listen in ("127.0.0.1:8080", "127.0.0.2:8080", "[::1]:8080", "::1:8080", "localhost:8080",
                   "LOCALHOST:80", "[::ffff:127.0.0.1]:8080"):
        cfg = parse_config(with_change("status.listen", listen), ENV)
        assert cfg.status.loopback and cfg.status.auth is None and not cfg.status.public, listen
    cfg = parse_config(with_change("status", {"listen": "0.0.0.0:8080", "public": True}), ENV)
    assert cfg.status.public and cfg.status.auth is None
    cfg = parse_config(with_change("status", {"listen": "0.0.0.0:8080", "auth": {"username": "me", "password": "pw1"}}),
                       ENV)
    assert cfg.status.auth.username == "me" and cfg.status.auth.password == "pw1" and not cfg.status.public
    cfg = parse_config(with_change("status", {"listen": "0.0.0.0:8080", "public": True,
                                              "auth": {"username": "me", "password": "${PW}"}}), {**ENV, "PW": "pw2"})
    assert cfg.status.public and cfg.status.auth.password == "pw2"
    assert parse_config(with_change("status", {"listen": "0.0.0.0:8080", "enabled": False}), ENV).status.host \
        == "0.0.0.0"  # not started: nothing to protect


@pytest.mark.parametrize("auth,message", [
    ({"password": "pw"}, "status.auth.username: is required"),
    ({"username": "me"}, "status.auth.password: is required (or status.auth.password_file)"),
    ({"username": "me", "password": ""}, "status.auth.password: must not be empty"),
    ({"username": "me", "password": "pw", "password_file": "/etc/hostname"},
     "status.auth.password_file: give password or password_file, not both"),
    ({"username": "a:b", "password": "pw"},
     "status.auth.username: must not contain ':' (HTTP basic auth cannot carry it)"),
    ({"username": "me", "pasword": "pw"}, "status.auth.pasword: unknown key (did you mean 'password'?)"),
    ({"username": "me", "password_file": "/nonexistent/pw"},
     "status.auth.password_file: cannot read '/nonexistent/pw': No such file or directory"),
    ("me:pw", "status.auth: must be a mapping, got 'me:pw'"),
])
def test_status_auth_problems_name_the_key(auth, message):
    with pytest.raises(ConfigError) as err:
        parse_config(with_change("status.auth", auth), ENV)
    assert str(err.value) == message
    with pytest.raises(ConfigError, match=r"^status.public: must be true or false, got 'yes'$"):
        parse_config(with_change("status.public", "yes"), ENV)


def test_status_password_file_and_secret(tmp_path: Path):
    (tmp_path / "pw").write_text("s3cret-STATUS-pw\n")
    data = with_change("status.auth", {"username": "me", "password_file": "pw"})
    cfg = parse_config(data, ENV, base_dir=tmp_path)  # relative to the config's folder
    assert cfg.status.auth.password == "s3cret-STATUS-pw"
    assert cfg.status.auth.password_file == str(tmp_path / "pw")
    assert "s3cret-STATUS-pw" in cfg.secrets() and "s3cret" not in repr(cfg)
    assert "s3cret" not in yaml.safe_dump(masked(cfg))
    (tmp_path / "pw").write_text("\n")
    with pytest.raises(ConfigError, match=r"^status.auth.password_file: '.*pw' is empty$"):
        parse_config(data, ENV, base_dir=tmp_path)
    cfg = parse_config(with_change("status.auth", {"username": "me", "password": "${PW}"}), {**ENV, "PW": "env-PW-1"})
    assert "env-PW-1" in cfg.secrets() and masked(cfg)["status"]["auth"] == {"username": "me", "password": "***"}


def test_literal_status_password_counts_as_a_literal_secret():
    from edge_agent.config import literal_secrets

    assert literal_secrets("status: {auth: {username: me, password: hunter2}}")
    assert not literal_secrets("status: {auth: {username: me, password: '${STATUS_PW}'}}")
    assert not literal_secrets("status: {auth: {username: me, password_file: /run/pw}}")
