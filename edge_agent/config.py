"""Configuration: YAML file -> typed, validated, frozen dataclasses.

Every problem raises :class:`ConfigError` naming the key path and what is wrong,
e.g. ``cameras[1].fps: must be > 0, got -2``.  Unknown keys are errors, so a typo
never passes silently.  ``${VAR}`` (or ``${VAR:-default}``) expands from the
environment in any string value; a bare ``$VAR`` is an error (it would be taken
literally), and :func:`masked` prints a config that parses back to the same one.
"""

from __future__ import annotations

import enum
import ipaddress
import math
import os
import re
import socket
import stat
from dataclasses import dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any, Mapping

import yaml

from .redact import redact_url, url_has_credentials

NAME_RE = re.compile(r"^[a-z0-9_-]+$")
MODEL_RE = re.compile(r"^[A-Za-z0-9_.-]+/[0-9]+$")
ENV_RE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
BARE_ENV_RE = re.compile(r"^\$([A-Z_][A-Z0-9_]*)$")  # $NAME: a shell habit, taken literally by YAML
MASK = "***"

# Bounds on what a config may make the agent do, so a hostile or broken file is a
# config error (exit 2) within a second and in bounded memory, never a hang, a
# traceback or an out-of-memory kill.
MAX_CONFIG_BYTES = 64 * 1024  # a real config is a few KB; pure-Python YAML parses 64 KiB in < 1 s
MAX_KEY_FILE_BYTES = 4096  # an API key (or the status page's password) is one short line
MAX_NODES = 10_000  # values after YAML aliases are followed (a 64 KiB file without aliases has fewer)
MAX_DEPTH = 32  # nesting levels; a real config needs 5
# The systemd unit's TasksMax= caps the service's threads. Measured (`edge-agent run` on
# N H.264 file cameras, counting /proc/PID/task): each camera costs its capture thread,
# one FFmpeg decode thread per CPU core and one more native thread started with the
# decoder. `edge-agent run` caps FFmpeg's decode threads at 4 (OPENCV_FFMPEG_THREADS:
# a Pi has 4 cores; more add nothing at our frame rates), so a camera costs at most 6.
# The agent itself: the main thread, paho's, asyncio's default executor (at most
# cores + 4) and one more: 11 on a Pi, 13 on an 8-core machine. With TasksMax=256:
# 13 + 16 x 6 = 109 tasks, more than twice that to spare for reopens and bursts.
TASKS_MAX = 256
THREADS_PER_CAMERA = 6
AGENT_THREADS = 13
MAX_CAMERAS = 16


class ConfigError(ValueError):
    """A config problem; ``str()`` is ``<key path>: <what is wrong>``."""

    def __init__(self, key: str, problem: str):
        self.key = key
        self.problem = problem
        super().__init__(f"{key}: {problem}" if key else problem)


@dataclass(frozen=True)
class TlsConfig:
    ca_certs: str | None = None
    certfile: str | None = None
    keyfile: str | None = None
    insecure: bool = False


@dataclass(frozen=True)
class BudgetConfig:
    """A daily cap on what the API may cost, across all cameras (None: no cap)."""
    calls_per_day: int | None = None
    credits_per_day: float | None = None

    @property
    def limited(self) -> bool:
        return self.calls_per_day is not None or self.credits_per_day is not None


KEY_TRANSPORTS = ("query", "header")  # the API key in the URL's query (Roboflow's way) or a header


@dataclass(frozen=True)
class ApiConfig:
    model: str
    url: str = "https://classify.roboflow.com"
    api_key: str = field(default="", repr=False)
    api_key_file: str | None = None
    key_transport: str = "query"  # one of KEY_TRANSPORTS
    timeout: float = 10.0
    max_in_flight: int = 2
    image_size: int = 416
    jpeg_quality: int = 80
    retry_initial: float = 1.0
    retry_max: float = 8.0  # failed calls do not bill; a minute blind after the API is back would cost more
    unauthorized_retry: float = 60.0
    ca_certs: str | None = None  # a CA bundle for a self-hosted server's certificate
    insecure: bool = False  # do not verify the server's TLS certificate (logged as a warning)
    budget: BudgetConfig = BudgetConfig()


MQTT_TLS_PORT = 8883


@dataclass(frozen=True)
class MqttConfig:
    topic_prefix: str
    host: str = "localhost"
    port: int = 1883  # MQTT_TLS_PORT with tls
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    tls: TlsConfig | None = None
    qos: int = 1
    client_id: str = ""
    keepalive: int = 30
    max_pending: int = 1000


@dataclass(frozen=True)
class DecideConfig:
    min_confidence: float = 0.5
    confirm: int = 2  # the newest results that must agree on a new class (consecutive)
    window: int = 5  # the last results looked at ...
    votes: int = 4  # ... of which at least this many must be the new class
    stale_after: float = 60.0  # s a needed check may fail before the state is marked stale


Box = tuple[float, float, float, float]


class DecodeMode(str, enum.Enum):
    """``cameras[].decode``: which frames of an H.264/H.265 source FFmpeg decodes."""
    AUTO = "auto"  # keyframes only when the camera looks no more often than they come
    ALL = "all"
    KEYFRAMES = "keyframes"

    def __str__(self) -> str:  # the word, on every Python (3.11 changed str() of mixed-in enums)
        return self.value


@dataclass(frozen=True)
class ChangeConfig:
    """The change gate: classify only when the picture changed (see change.py)."""
    enabled: bool = True
    threshold: float = 0.01  # share of the picture (0..1) that must differ
    heartbeat: float = 600.0  # s: classify at least this often anyway; 0 = never
    ignore: tuple[Box, ...] = ()  # x, y, w, h as fractions of the frame


@dataclass(frozen=True)
class CameraConfig:
    name: str
    source: str
    fps: float = 2.0
    loop: bool = False
    stall_timeout: float = 10.0
    decide: DecideConfig = DecideConfig()
    region: tuple[float, float, float, float] | None = None  # x1, y1, x2, y2 as fractions
    classes: tuple[str, ...] = ()  # a Home Assistant binary_sensor for each
    change: ChangeConfig = ChangeConfig()
    decode: DecodeMode = DecodeMode.AUTO  # FFmpeg sources (see sources/opencv.py)
    resolution: tuple[int, int] = (1280, 720)  # the Pi camera's (rpicam) capture size
    options: tuple[str, ...] = ()  # extra arguments for rpicam-vid, e.g. ["--rotation", "180"]


@dataclass(frozen=True)
class StatusAuthConfig:
    """HTTP basic auth for the status page (every route but /healthz)."""
    username: str
    password: str = field(repr=False)  # from ``password`` or read from ``password_file``
    password_file: str | None = None  # resolved against the config's folder


@dataclass(frozen=True)
class StatusConfig:
    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = 8080
    auth: StatusAuthConfig | None = None
    public: bool = False  # reachable from other machines without auth, on purpose (logged as a warning)

    @property
    def listen(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    @property
    def loopback(self) -> bool:
        return is_loopback_host(self.host)


def is_loopback_host(host: str) -> bool:
    """Only this machine can reach it: 127.0.0.0/8, ::1 (also IPv4-mapped) or localhost."""
    if host.lower().rstrip(".") == "localhost":
        return True
    try:
        addr = ipaddress.ip_address(host)
    except ValueError:
        return False  # any other name may resolve to anything
    mapped = getattr(addr, "ipv4_mapped", None)
    return addr.is_loopback or bool(mapped and mapped.is_loopback)


@dataclass(frozen=True)
class HomeAssistantConfig:
    discovery: bool = True
    prefix: str = "homeassistant"
    classes: tuple[str, ...] = ()
    stale_unavailable: bool = False  # the class sensor is unavailable while the state is stale


@dataclass(frozen=True)
class EventsConfig:
    """The local event history and store-and-forward (outputs/eventstore.py)."""
    keep_days: float = 14.0
    max_mb: float = 200.0
    max_pending: int = 10_000  # undelivered events kept while the broker is away; beyond, the oldest go


@dataclass(frozen=True)
class Config:
    device_id: str
    api: ApiConfig
    mqtt: MqttConfig
    decide: DecideConfig
    cameras: tuple[CameraConfig, ...]
    status_interval: float = 30.0
    status: StatusConfig = StatusConfig()
    homeassistant: HomeAssistantConfig = HomeAssistantConfig()
    log_summary_interval: float = 300.0
    state_dir: str = ""  # resolved at load: $STATE_DIRECTORY, else ~/.local/state/edge-agent
    events: EventsConfig = EventsConfig()

    def secrets(self) -> list[str]:
        """Every string that must never be emitted (logs, MQTT, errors)."""
        out = [self.api.api_key, self.mqtt.password or "",
               self.status.auth.password if self.status.auth else ""]
        for cam in self.cameras:
            if cam.source.startswith("exec:"):  # a command line: any URL in it may carry credentials
                import shlex

                for word in shlex.split(cam.source[len("exec:"):]):
                    out.extend(_url_secrets(word))
            else:
                out.extend(_url_secrets(cam.source))
        out.extend(_url_secrets(self.api.url))
        return [s for s in out if s]


def _url_secrets(url: str) -> list[str]:
    from urllib.parse import urlsplit

    if not url_has_credentials(url):
        return []
    parts = urlsplit(url)
    return [s for s in (parts.password, f"{parts.username}:{parts.password}") if s and len(s) >= 3]


# --------------------------------------------------------------------------- reader


class _Section:
    """Reads one mapping, remembering which keys were used."""

    def __init__(self, path: str, data: Any):
        if data is None:
            data = {}
        if not isinstance(data, Mapping):
            raise ConfigError(path or "top level", f"must be a mapping, got {_show(data)}")
        self.path = path
        for k in data:
            if not isinstance(k, str):
                raise ConfigError(path or "top level", f"has a key that is not a name: {_show(k)}")
        self.data = dict(data)
        self.used: set[str] = set()

    def key(self, name: str) -> str:
        return f"{self.path}.{name}" if self.path else name

    def raw(self, name: str, default: Any = None) -> Any:
        self.used.add(name)
        return self.data.get(name, default)

    def has(self, name: str) -> bool:
        return name in self.data and self.data[name] is not None

    def str(self, name: str, default: str | None = None, *, required: bool = False,
            pattern: re.Pattern[str] | None = None, hint: str = "") -> str | None:
        value = self.raw(name)
        if value is None:
            if required:
                raise ConfigError(self.key(name), "is required")
            return default
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise ConfigError(self.key(name), f"must be a string, got {_show(value)}")
        value = str(value)
        if required and not value:
            raise ConfigError(self.key(name), "must not be empty")
        if pattern is not None and not pattern.match(value):
            raise ConfigError(self.key(name), f"must match {hint or pattern.pattern}, got {value!r}")
        return value

    def num(self, name: str, default: float, *, integer: bool = False, gt: float | None = None,
            ge: float | None = None, le: float | None = None) -> Any:
        value = self.raw(name)
        if value is None:
            return default
        if isinstance(value, str):  # e.g. "${MQTT_PORT}" after expansion
            value = _number_from_text(value, integer)
        kinds = (int,) if integer else (int, float)
        if isinstance(value, bool) or not isinstance(value, kinds):
            want = "an integer" if integer else "a number"
            raise ConfigError(self.key(name), f"must be {want}, got {_show(value)}")
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(self.key(name), f"must be a finite number, got {value}")
        if isinstance(value, int) and abs(value) > 10**15:
            raise ConfigError(self.key(name), f"is out of range, got {_show(value)}")
        if gt is not None and not value > gt:
            raise ConfigError(self.key(name), f"must be > {_fmt(gt)}, got {value}")
        if ge is not None and not value >= ge:
            raise ConfigError(self.key(name), f"must be >= {_fmt(ge)}, got {value}")
        if le is not None and not value <= le:
            raise ConfigError(self.key(name), f"must be <= {_fmt(le)}, got {value}")
        return int(value) if integer else float(value)

    def bool(self, name: str, default: bool) -> bool:
        value = self.raw(name)
        if value is None:
            return default
        if isinstance(value, str) and value.strip().lower() in ("true", "false"):
            value = value.strip().lower() == "true"  # e.g. "${LOOP}" after expansion
        if not isinstance(value, bool):
            raise ConfigError(self.key(name), f"must be true or false, got {_show(value)}")
        return value

    def choice(self, name: str, default: str, choices: tuple[str, ...]) -> str:
        value = self.str(name, default)
        if value not in choices:
            raise ConfigError(self.key(name), f"must be one of {', '.join(choices)}, got {value!r}")
        return value

    def done(self, known: set[str] | None = None) -> None:
        """Fail on the first key not read (or, given ``known``, not among them)."""
        known = self.used if known is None else known
        unknown = sorted(set(self.data) - known)
        if unknown:
            raise ConfigError(self.key(unknown[0]), "unknown key" + _did_you_mean(unknown[0], known))


def _number_from_text(text: str, integer: bool) -> Any:
    """A number written as text (from ``${VAR}``); unchanged if it is not one."""
    try:
        return int(text.strip()) if integer else float(text.strip())
    except ValueError:
        return text


def _did_you_mean(name: str, known: set[str]) -> str:
    import difflib

    close = difflib.get_close_matches(name, sorted(known), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _fmt(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


def _show(value: Any) -> str:
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > 10**30:
        return f"a {len(str(abs(value)))}-digit number"
    text = repr(value)
    return text if len(text) <= 100 else text[:97] + "..."


# --------------------------------------------------------------------------- env


def expand_env(node: Any, env: Mapping[str, str], path: str = "") -> Any:
    """Expand ``${VAR}`` / ``${VAR:-default}`` in every string of a parsed YAML tree.

    YAML aliases (``*name``) share one object however often they are used, but this
    copies each use; nested aliases ("billion laughs") would grow without end, so
    the walk stops with a ConfigError past MAX_NODES values or MAX_DEPTH levels."""
    count = [0]

    def walk(node: Any, path: str, depth: int) -> Any:
        count[0] += 1
        if count[0] > MAX_NODES:
            raise ConfigError(path, f"the config has more than {MAX_NODES} values once YAML aliases "
                                    "(*name) are expanded; are aliases nested in aliases?")
        if depth > MAX_DEPTH:
            raise ConfigError(path, f"nested more than {MAX_DEPTH} levels deep")
        if isinstance(node, Mapping):
            return {k: walk(v, f"{path}.{k}" if path else str(k), depth + 1) for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v, f"{path}[{i}]", depth + 1) for i, v in enumerate(node)]
        if isinstance(node, str):
            bare = BARE_ENV_RE.match(node)
            if bare:
                raise ConfigError(path, f"looks like an environment variable; write ${{{bare.group(1)}}} to use one")

            def repl(m: re.Match[str]) -> str:
                name, default = m.group(1), m.group(2)
                if name in env and env[name] != "":
                    return env[name]
                if default is not None:
                    return default
                raise ConfigError(path, f"environment variable {name} is not set")

            return ENV_RE.sub(repl, node)
        return node

    return walk(node, path, 0)


def literal_secrets(text: str) -> bool:
    """Does this config text write a secret out (not ``${VAR}`` or a key file)?"""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError:
        return False
    if not isinstance(data, Mapping):
        return False
    found = []
    status = data.get("status")
    auth = status.get("auth") if isinstance(status, Mapping) else None
    for section, key in (("api", "api_key"), ("mqtt", "password"), ("auth", "password")):
        holder = auth if section == "auth" else data.get(section)
        value = holder.get(key) if isinstance(holder, Mapping) else None
        if isinstance(value, (str, int)) and str(value) and not ENV_RE.fullmatch(str(value).strip()):
            found.append(key)
    for cam in data.get("cameras") or []:
        if isinstance(cam, Mapping) and url_has_credentials(str(cam.get("source", ""))) \
                and not ENV_RE.search(str(cam.get("source", ""))):
            found.append("source")
    return bool(found)


def default_device_id() -> str:
    name = re.sub(r"[^a-z0-9_-]+", "-", socket.gethostname().lower()).strip("-")
    return name or "edge-agent"


# --------------------------------------------------------------------------- sections


def _decide(sec: _Section) -> DecideConfig:
    d = DecideConfig(
        min_confidence=sec.num("min_confidence", DecideConfig.min_confidence, ge=0, le=1),
        confirm=sec.num("confirm", DecideConfig.confirm, integer=True, ge=1, le=100),
        window=sec.num("window", DecideConfig.window, integer=True, ge=1, le=100),
        votes=sec.num("votes", DecideConfig.votes, integer=True, ge=1, le=100),
        stale_after=sec.num("stale_after", DecideConfig.stale_after, gt=0),
    )
    if d.votes > d.window:
        raise ConfigError(sec.key("votes"), f"must be <= {sec.key('window')} ({d.window}), got {d.votes}")
    sec.done()
    return d


def _api(sec: _Section, env_base: Path) -> ApiConfig:
    sec.done(known={f.name for f in fields(ApiConfig)})  # "modle:" is a typo, not a missing model
    url = sec.str("url", ApiConfig.url) or ""
    if not re.match(r"^https?://[^/\s]+", url):
        raise ConfigError(sec.key("url"), f"must be an http:// or https:// URL, got {redact_url(url)!r}")
    model = sec.str("model", required=True, pattern=MODEL_RE, hint="<dataset-slug>/<version>, e.g. garage-door/3")
    key = sec.str("api_key", ApiConfig.api_key)
    key_file = sec.str("api_key_file")
    if key and key_file:
        raise ConfigError(sec.key("api_key_file"), "give api_key or api_key_file, not both")
    if key_file:
        path = Path(key_file)
        if not path.is_absolute():
            path = env_base / path
        key = read_bounded_text(path, MAX_KEY_FILE_BYTES, sec.key("api_key_file"), "").strip()
        if not key:
            raise ConfigError(sec.key("api_key_file"), f"{str(path)!r} is empty")
    if any(c.isspace() for c in key or ""):
        raise ConfigError(sec.key("api_key"), "must not contain white space")
    cfg = ApiConfig(
        url=url.rstrip("/"),
        model=model or "",
        api_key=key or "",
        api_key_file=str(path) if key_file else None,  # resolved against the config's folder
        key_transport=sec.choice("key_transport", ApiConfig.key_transport, KEY_TRANSPORTS),
        timeout=sec.num("timeout", ApiConfig.timeout, gt=0),
        max_in_flight=sec.num("max_in_flight", ApiConfig.max_in_flight, integer=True, ge=1, le=64),
        image_size=sec.num("image_size", ApiConfig.image_size, integer=True, ge=32, le=4096),
        jpeg_quality=sec.num("jpeg_quality", ApiConfig.jpeg_quality, integer=True, ge=1, le=100),
        retry_initial=sec.num("retry_initial", ApiConfig.retry_initial, gt=0),
        retry_max=sec.num("retry_max", ApiConfig.retry_max, gt=0),
        unauthorized_retry=sec.num("unauthorized_retry", ApiConfig.unauthorized_retry, gt=0),
        ca_certs=sec.str("ca_certs"),
        insecure=sec.bool("insecure", False),
        budget=_budget(_Section(sec.key("budget"), sec.raw("budget"))),
    )
    if cfg.ca_certs and not Path(cfg.ca_certs).is_file():
        raise ConfigError(sec.key("ca_certs"), f"file {cfg.ca_certs!r} does not exist")
    if cfg.retry_max < cfg.retry_initial:
        raise ConfigError(sec.key("retry_max"), f"must be >= api.retry_initial ({_fmt(cfg.retry_initial)}), got {_fmt(cfg.retry_max)}")
    sec.done()
    return cfg


def _budget(sec: _Section) -> BudgetConfig:
    calls = sec.num("calls_per_day", None, integer=True, ge=1)
    credits = sec.num("credits_per_day", None, gt=0)
    sec.done()
    return BudgetConfig(calls_per_day=calls, credits_per_day=credits)


def _boxes(sec: _Section, name: str) -> tuple[Box, ...]:
    """A list of ``[x, y, w, h]`` boxes as fractions of the frame."""
    value = sec.raw(name)
    if value is None:
        return ()
    key = sec.key(name)
    if not isinstance(value, list):
        raise ConfigError(key, f"must be a list of [x, y, w, h] boxes as fractions of the frame, got {_show(value)}")
    boxes = []
    for i, box in enumerate(value):
        if (not isinstance(box, list) or len(box) != 4
                or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in box)):
            raise ConfigError(f"{key}[{i}]", f"must be [x, y, w, h] as fractions of the frame, got {_show(box)}")
        x, y, w, h = (float(v) for v in box)
        if not (0 <= x < 1 and 0 <= y < 1 and 0 < w and 0 < h and x + w <= 1 + 1e-9 and y + h <= 1 + 1e-9):
            raise ConfigError(f"{key}[{i}]", f"needs 0 <= x, y < 1, w and h > 0 and the box inside the frame, got {box}")
        boxes.append((x, y, w, h))
    return tuple(boxes)


def _change(sec: _Section) -> ChangeConfig:
    d = ChangeConfig
    cfg = ChangeConfig(
        enabled=sec.bool("enabled", d.enabled),
        threshold=sec.num("threshold", d.threshold, gt=0, le=1),
        heartbeat=sec.num("heartbeat", d.heartbeat, ge=0),
        ignore=_boxes(sec, "ignore"),
    )
    sec.done()
    return cfg


def default_state_dir(env: Mapping[str, str]) -> str:
    """systemd's ``StateDirectory=`` (``$STATE_DIRECTORY``), else the XDG state folder."""
    given = env.get("STATE_DIRECTORY", "")
    if given:
        return given.split(":")[0]
    base = env.get("XDG_STATE_HOME") or os.path.join(env.get("HOME") or os.path.expanduser("~"), ".local", "state")
    return os.path.join(base, "edge-agent")


def _tls(sec: _Section) -> TlsConfig:
    tls = TlsConfig(
        ca_certs=sec.str("ca_certs"),
        certfile=sec.str("certfile"),
        keyfile=sec.str("keyfile"),
        insecure=sec.bool("insecure", False),
    )
    for name in ("ca_certs", "certfile", "keyfile"):
        value = getattr(tls, name)
        if value and not Path(value).is_file():
            raise ConfigError(sec.key(name), f"file {value!r} does not exist")
    if tls.keyfile and not tls.certfile:
        raise ConfigError(sec.key("keyfile"), "needs mqtt.tls.certfile too")
    sec.done()
    return tls


def _mqtt(sec: _Section, device_id: str) -> MqttConfig:
    prefix = sec.str("topic_prefix", f"edge_agent/{device_id}") or ""
    if not prefix or any(c in prefix for c in "+#\0") or prefix.startswith("/") or prefix.endswith("/") or "//" in prefix:
        raise ConfigError(sec.key("topic_prefix"),
                          f"must be a topic without wildcards or empty levels, got {prefix!r}")
    password = sec.str("password")
    username = sec.str("username")
    if password and not username:
        raise ConfigError(sec.key("password"), "needs mqtt.username too")
    # "tls:" alone (null) or "tls: {}" is TLS verified against the system's CAs
    tls = _tls(_Section(sec.key("tls"), sec.raw("tls"))) if "tls" in sec.data else None
    cfg = MqttConfig(
        topic_prefix=prefix,
        host=sec.str("host", MqttConfig.host) or MqttConfig.host,
        port=sec.num("port", MQTT_TLS_PORT if tls else MqttConfig.port, integer=True, ge=1, le=65535),
        username=username,
        password=password,
        tls=tls,
        qos=sec.num("qos", MqttConfig.qos, integer=True, ge=0, le=2),
        client_id=sec.str("client_id", f"edge-agent-{device_id}") or "",
        keepalive=sec.num("keepalive", MqttConfig.keepalive, integer=True, ge=5, le=3600),
        max_pending=sec.num("max_pending", MqttConfig.max_pending, integer=True, ge=1, le=1_000_000),
    )
    sec.done()
    return cfg


def _source(sec: _Section) -> str:
    value = sec.raw("source")
    if value is None:
        raise ConfigError(sec.key("source"), "is required")
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise ConfigError(sec.key("source"), f"must be a device index, a path or a URL, got {_show(value)}")
    if isinstance(value, int) and value < 0:
        raise ConfigError(sec.key("source"), f"device index must be >= 0, got {value}")
    text = str(value).strip()
    if not text:
        raise ConfigError(sec.key("source"), "must not be empty")
    if text.startswith("exec:"):
        import shlex

        try:
            argv = shlex.split(text[len("exec:"):])
        except ValueError as exc:
            raise ConfigError(sec.key("source"), f"exec: command line does not parse: {exc}") from None
        if not argv:
            raise ConfigError(sec.key("source"), "exec: needs a command, e.g. exec:rpicam-vid -t 0 --codec mjpeg -o -")
    elif text == "rpicam" or text.startswith("rpicam:"):
        n = text[len("rpicam:"):] if ":" in text else "0"
        if not n.isdigit():
            raise ConfigError(sec.key("source"), f"must be rpicam or rpicam:<camera number>, got {text!r}")
    return text


def _resolution(sec: _Section) -> tuple[int, int]:
    value = sec.raw("resolution")
    if value is None:
        return CameraConfig.resolution
    if (not isinstance(value, list) or len(value) != 2
            or not all(isinstance(v, int) and not isinstance(v, bool) and 16 <= v <= 8192 for v in value)):
        raise ConfigError(sec.key("resolution"), f"must be [width, height] in pixels (16..8192), got {_show(value)}")
    return (value[0], value[1])


def _options(sec: _Section) -> tuple[str, ...]:
    value = sec.raw("options")
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, (str, int, float)) and not isinstance(v, bool)
                                              for v in value):
        raise ConfigError(sec.key("options"), f"must be a list of command-line arguments, got {_show(value)}")
    return tuple(str(v) for v in value)


def _region(sec: _Section) -> tuple[float, float, float, float] | None:
    value = sec.raw("region")
    if value is None:
        return None
    key = sec.key("region")
    if not isinstance(value, list) or len(value) != 4:
        raise ConfigError(key, f"must be [x1, y1, x2, y2] as fractions of the frame, got {_show(value)}")
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
        raise ConfigError(key, f"must be four numbers, got {value}")
    x1, y1, x2, y2 = (float(v) for v in value)
    if not (0 <= x1 < x2 <= 1 and 0 <= y1 < y2 <= 1):
        raise ConfigError(key, f"needs 0 <= x1 < x2 <= 1 and 0 <= y1 < y2 <= 1, got {value}")
    return (x1, y1, x2, y2)


def _classes(sec: _Section, default: tuple[str, ...] = ()) -> tuple[str, ...]:
    value = sec.raw("classes")
    if value is None:
        return default
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ConfigError(sec.key("classes"), f"must be a list of class names, got {_show(value)}")
    if len(set(value)) != len(value):
        raise ConfigError(sec.key("classes"), f"has a duplicate: {value}")
    return tuple(value)


def _status(sec: _Section, base_dir: Path) -> StatusConfig:
    listen = sec.str("listen", StatusConfig().listen) or ""
    host, sep, port_text = listen.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ConfigError(sec.key("listen"), f"must be HOST:PORT, e.g. 127.0.0.1:8080, got {listen!r}")
    raw_auth = sec.raw("auth")
    auth = _status_auth(_Section(sec.key("auth"), raw_auth), base_dir) if raw_auth is not None else None
    cfg = StatusConfig(enabled=sec.bool("enabled", StatusConfig.enabled), host=host, port=int(port_text), auth=auth,
                       public=sec.bool("public", StatusConfig.public))
    sec.done()
    if cfg.enabled and not cfg.loopback and cfg.auth is None and not cfg.public:
        raise ConfigError(sec.key("listen"), f"{listen} is reachable from other machines; "
                          "set status.auth: {username, password} or status.public: true")
    return cfg


def _status_auth(sec: _Section, base_dir: Path) -> StatusAuthConfig:
    sec.done(known={"username", "password", "password_file"})
    username = sec.str("username", required=True) or ""
    if ":" in username:
        raise ConfigError(sec.key("username"), "must not contain ':' (HTTP basic auth cannot carry it)")
    password = sec.str("password")
    password_file = sec.str("password_file")
    if password is not None and password_file:
        raise ConfigError(sec.key("password_file"), "give password or password_file, not both")
    path: Path | None = None
    if password_file:
        path = Path(password_file)
        if not path.is_absolute():
            path = base_dir / path
        password = read_bounded_text(path, MAX_KEY_FILE_BYTES, sec.key("password_file"), "").rstrip("\r\n")
        if not password:
            raise ConfigError(sec.key("password_file"), f"{str(path)!r} is empty")
    elif password is None:
        raise ConfigError(sec.key("password"), "is required (or status.auth.password_file)")
    elif not password:
        raise ConfigError(sec.key("password"), "must not be empty")
    return StatusAuthConfig(username=username, password=password, password_file=str(path) if path else None)


def _homeassistant(sec: _Section) -> HomeAssistantConfig:
    prefix = sec.str("prefix", HomeAssistantConfig.prefix) or ""
    if not prefix or any(c in prefix for c in "+#\0") or prefix.startswith("/") or prefix.endswith("/"):
        raise ConfigError(sec.key("prefix"), f"must be a topic without wildcards, got {prefix!r}")
    cfg = HomeAssistantConfig(discovery=sec.bool("discovery", HomeAssistantConfig.discovery), prefix=prefix,
                              classes=_classes(sec),
                              stale_unavailable=sec.bool("stale_unavailable", HomeAssistantConfig.stale_unavailable))
    sec.done()
    return cfg


def _camera(sec: _Section, decide_raw: dict[str, Any], decide_path: str,
            classes: tuple[str, ...] = ()) -> CameraConfig:
    sec.done(known={f.name for f in fields(CameraConfig)})  # "sorce:" is a typo, not a missing source
    name = sec.str("name", required=True, pattern=NAME_RE, hint="[a-z0-9_-]")
    source = _source(sec)
    merged = dict(decide_raw)
    own = sec.raw("decide")
    if own is not None:
        if not isinstance(own, Mapping):
            raise ConfigError(sec.key("decide"), f"must be a mapping, got {_show(own)}")
        merged.update(own)
        decide_path = sec.key("decide")
    cam = CameraConfig(
        name=name or "",
        source=source,
        fps=sec.num("fps", CameraConfig.fps, gt=0, le=60),
        loop=sec.bool("loop", CameraConfig.loop),
        stall_timeout=sec.num("stall_timeout", CameraConfig.stall_timeout, gt=0),
        decide=_decide(_Section(decide_path, merged)),
        region=_region(sec),
        classes=_classes(sec, classes),
        change=_change(_Section(sec.key("change"), sec.raw("change"))),
        decode=DecodeMode(sec.choice("decode", CameraConfig.decode.value, tuple(m.value for m in DecodeMode))),
        resolution=_resolution(sec),
        options=_options(sec),
    )
    sec.done()
    return cam


def parse_config(data: Any, env: Mapping[str, str] | None = None, base_dir: Path | None = None) -> Config:
    """Validate a parsed YAML document. Pure apart from reading ``api_key_file``."""
    env = os.environ if env is None else env
    data = expand_env(data, env)
    root = _Section("", data)
    root.done(known={f.name for f in fields(Config)})  # a misspelt section before its "is required"
    device_id = root.str("device_id", None, pattern=NAME_RE, hint="[a-z0-9_-]") or default_device_id()
    if not root.has("api"):
        raise ConfigError("api", "is required")
    api = _api(_Section("api", root.raw("api")), base_dir or Path.cwd())
    mqtt = _mqtt(_Section("mqtt", root.raw("mqtt")), device_id)
    decide_raw = root.raw("decide") or {}
    decide = _decide(_Section("decide", decide_raw))
    ha = _homeassistant(_Section("homeassistant", root.raw("homeassistant")))
    status = _status(_Section("status", root.raw("status")), base_dir or Path.cwd())
    cams_raw = root.raw("cameras")
    if not isinstance(cams_raw, list) or not cams_raw:
        raise ConfigError("cameras", "must be a non-empty list of cameras")
    if len(cams_raw) > MAX_CAMERAS:
        raise ConfigError("cameras", f"at most {MAX_CAMERAS} cameras, got {len(cams_raw)} (the service's "
                          f"TasksMax={TASKS_MAX} allows {MAX_CAMERAS} at up to {THREADS_PER_CAMERA} threads each "
                          f"plus {AGENT_THREADS} for the agent, with room to spare)")
    cameras = []
    seen: set[str] = set()
    for i, raw in enumerate(cams_raw):
        cam = _camera(_Section(f"cameras[{i}]", raw), dict(decide_raw), "decide", ha.classes)
        if cam.name in seen:
            raise ConfigError(f"cameras[{i}].name", f"duplicate camera name {cam.name!r}")
        seen.add(cam.name)
        cameras.append(cam)
    status_interval = root.num("status_interval", Config.status_interval, gt=0)
    summary = root.num("log_summary_interval", Config.log_summary_interval, ge=0)
    events_sec = _Section("events", root.raw("events"))
    events = EventsConfig(
        keep_days=events_sec.num("keep_days", EventsConfig.keep_days, gt=0, le=3650),
        max_mb=events_sec.num("max_mb", EventsConfig.max_mb, gt=0, le=100_000),
        max_pending=events_sec.num("max_pending", EventsConfig.max_pending, integer=True, ge=1, le=10_000_000),
    )
    events_sec.done()
    state_dir = root.str("state_dir", None) or default_state_dir(env)
    state_path = Path(state_dir)
    if not state_path.is_absolute():
        state_path = (base_dir or Path.cwd()) / state_path
    root.done()
    if not api.api_key and "roboflow.com" in api.url:
        raise ConfigError("api.api_key", f"is required for {api.url}")
    return Config(device_id=device_id, api=api, mqtt=mqtt, decide=decide, cameras=tuple(cameras),
                  status_interval=status_interval, status=status, homeassistant=ha,
                  log_summary_interval=summary, state_dir=str(state_path), events=events)


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISDIR, "a directory"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return "not a regular file"


def _size_text(n: int) -> str:
    return f"{n // 1024} KiB" if n % 1024 == 0 else f"{n} bytes"


class _Loader(yaml.SafeLoader):
    """``yaml.safe_load``'s loader, refusing to nest deeper than MAX_DEPTH: PyYAML
    composes recursively (64 KiB of ``[`` is a RecursionError after a second)."""

    _depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self._depth >= MAX_DEPTH:
            raise yaml.composer.ComposerError(None, None, f"nested more than {MAX_DEPTH} levels deep",
                                              self.peek_event().start_mark)
        self._depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def read_bounded_text(path: Path, limit: int, key: str, what: str) -> str:
    """The UTF-8 text of a regular file of at most ``limit`` bytes, else a ConfigError.

    Never opens a FIFO, a device or a directory (``/dev/zero`` never ends, a FIFO
    blocks until a writer comes) and never reads more than ``limit + 1`` bytes."""
    name = f"{what} {str(path)!r}" if what else repr(str(path))
    try:
        before = os.stat(path)
        if not stat.S_ISREG(before.st_mode):
            raise ConfigError(key, f"{name} is {_kind(before.st_mode)}, not a regular file")
        if before.st_size > limit:
            raise ConfigError(key, f"{name} is larger than {_size_text(limit)} ({before.st_size} bytes)")
        # O_NONBLOCK: should it be swapped for a FIFO after the check, open() does not block.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOCTTY", 0))
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise ConfigError(key, f"{name} is {_kind(st.st_mode)}, not a regular file")
            chunks: list[bytes] = []
            size = 0
            while size <= limit:
                chunk = os.read(fd, limit + 1 - size)
                if not chunk:
                    break
                chunks.append(chunk)
                size += len(chunk)
        finally:
            os.close(fd)
    except OSError as exc:
        raise ConfigError(key, f"cannot read {name}: {exc.strerror or exc}") from None
    data = b"".join(chunks)
    if len(data) > limit:
        raise ConfigError(key, f"{name} is larger than {_size_text(limit)}")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(key, f"{name} is not UTF-8 text at byte {exc.start}") from None


def load_config(path: str | Path, env: Mapping[str, str] | None = None) -> Config:
    path = Path(path)
    text = read_bounded_text(path, MAX_CONFIG_BYTES, "", "config file")
    try:
        data = yaml.load(text, Loader=_Loader)  # noqa: S506 - a SafeLoader
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError("", f"{path}: not valid YAML{where}: {getattr(exc, 'problem', exc)}") from None
    except RecursionError:
        raise ConfigError("", f"{path}: not valid YAML: nested too deeply") from None
    except (ValueError, TypeError, OverflowError) as exc:  # e.g. a date 2024-13-45, a 5000-digit number
        raise ConfigError("", f"{path}: not valid YAML: {str(exc)[:200]}") from None
    if data is None:
        raise ConfigError("", f"{path}: the file is empty")
    return parse_config(data, env, base_dir=path.parent)


# --------------------------------------------------------------------------- display


def masked(cfg: Config) -> dict[str, Any]:
    """The effective config as plain data, every secret masked (``***``).

    It is itself a valid config meaning the same (``check`` prints it): parsed
    again it gives an equal Config, but for the masked secrets. So None values
    are left out (``tls: null`` would mean TLS), tuples become lists, ``status``
    is written as ``listen: HOST:PORT`` and a key read from a file is shown as
    that file, not as a masked key next to it (both would be an error)."""

    def conv(obj: Any) -> Any:
        if is_dataclass(obj):
            return {f.name: conv(getattr(obj, f.name)) for f in fields(obj) if getattr(obj, f.name) is not None}
        if isinstance(obj, enum.Enum):
            return obj.value
        if isinstance(obj, (tuple, list)):
            return [conv(x) for x in obj]
        return obj

    out = conv(cfg)
    api = out["api"]
    if cfg.api.api_key_file or not cfg.api.api_key:
        api.pop("api_key", None)
    else:
        api["api_key"] = MASK
    api["url"] = redact_url(api["url"])
    if cfg.mqtt.password:
        out["mqtt"]["password"] = MASK
    status: dict[str, Any] = {"enabled": cfg.status.enabled, "listen": cfg.status.listen}
    auth = cfg.status.auth
    if auth is not None:
        status["auth"] = ({"username": auth.username, "password_file": auth.password_file} if auth.password_file
                          else {"username": auth.username, "password": MASK})
    status["public"] = cfg.status.public
    out["status"] = status
    for cam in out["cameras"]:
        cam["source"] = redact_url(cam["source"])
    return out
