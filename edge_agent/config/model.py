"""Configuration model: typed, validated, frozen dataclasses, each field with its bounds beside it.

Design rule: a field declares its default, its limits, its converter and whether
it is required in one place, its spec (``fps: float = num(2.0, gt=0, le=60)``;
see spec.py), and nothing else states them: the generic reader (reader.py) reads
every section from these declarations, and the defaults a reader falls back to
are the dataclasses' own. A limit that spans fields (``votes <= window``) is a
rule in parse.py, named after its section.
"""

from __future__ import annotations

import dataclasses
import enum
import ipaddress
from dataclasses import dataclass

from . import convert
from .convert import BATCH_RE, MODEL_RE, NAME_RE, PROJECT_RE, Box  # noqa: F401 - Box: the annotations below
from .env import source_secrets, url_secrets
from .spec import NO_DEFAULT, Presence, choice, custom, derived, flag, integer, num, section, sections, text


@dataclass(frozen=True)
class TlsConfig:
    ca_certs: str | None = text(None, convert=convert.existing_file)
    certfile: str | None = text(None, convert=convert.existing_file)
    keyfile: str | None = text(None, convert=convert.existing_file)
    insecure: bool = flag(False)


@dataclass(frozen=True)
class BudgetConfig:
    """A daily cap on what the API may cost, across all cameras (None: no cap)."""
    calls_per_day: int | None = integer(None, ge=1)
    credits_per_day: float | None = num(None, gt=0)

    @property
    def limited(self) -> bool:
        return self.calls_per_day is not None or self.credits_per_day is not None


class FailoverWhen(str, enum.Enum):
    """``api.fallback.when``: what sends calls to the fallback (failover.py)."""
    UNREACHABLE = "unreachable"  # the primary's connection errors, timeouts and 5xx (never a 4xx)
    BUDGET = "budget"  # the day's api.budget is spent

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class FallbackConfig:
    """A second endpoint serving the same route and reply (a self-hosted inference
    server on the LAN, say), used while the primary cannot classify (failover.py)."""
    url: str = text(required=True, convert=convert.http_url)  # e.g. http://192.168.1.20:9001
    model: str | None = text(None, pattern=MODEL_RE, hint="<dataset-slug>/<version>")  # in place of api.model
    api_key: str = text("", repr=False)  # default api.api_key; or read from api_key_file (parse.py)
    api_key_file: str | None = text(None, convert=convert.config_path)
    timeout: float = num(10.0, gt=0, le=600)  # s per request
    when: tuple[FailoverWhen, ...] = custom((FailoverWhen.UNREACHABLE,), convert=convert.words_of(FailoverWhen))
    switch_after: float = num(10.0, gt=0, le=3600)  # s the primary fails (or hangs) before calls go here
    probe: float = num(60.0, gt=0, le=3600)  # s between probes of the primary while here ...
    probe_max: float = num(600.0, gt=0, le=86_400)  # ... doubled after each failed probe, up to this
    ca_certs: str | None = text(None, convert=convert.existing_file)  # a CA bundle for its TLS certificate
    insecure: bool = flag(False)  # do not verify its TLS certificate (logged as a warning)

    def model_for(self, model: str, api_model: str) -> str:
        """What the fallback is asked for a target whose model is ``model``: ``fallback.model``
        in place of ``api.model``; a camera's or view's own model as it is."""
        return self.model if self.model is not None and model == api_model else model


KEY_TRANSPORTS = ("query", "header")  # the API key in the URL's query (Roboflow's way) or a header


@dataclass(frozen=True)
class ApiConfig:
    model: str = text(required=True, pattern=MODEL_RE, hint="<dataset-slug>/<version>, e.g. garage-door/3")
    url: str = text("https://classify.roboflow.com", convert=convert.http_url)
    api_key: str = text("", repr=False)  # or read from api_key_file (parse.py)
    api_key_file: str | None = text(None, convert=convert.config_path)  # resolved against the config's folder
    key_transport: str = choice("query", KEY_TRANSPORTS)
    timeout: float = num(10.0, gt=0)
    max_in_flight: int = integer(2, ge=1, le=64)
    image_size: int = integer(416, ge=32, le=4096)
    jpeg_quality: int = integer(80, ge=1, le=100)
    retry_initial: float = num(1.0, gt=0)
    # failed calls do not bill; a minute blind after the API is back would cost more
    retry_max: float = num(8.0, gt=0)  # and >= retry_initial
    unauthorized_retry: float = num(60.0, gt=0)
    ca_certs: str | None = text(None, convert=convert.existing_file)  # a CA bundle for a self-hosted server
    insecure: bool = flag(False)  # do not verify the server's TLS certificate (logged as a warning)
    budget: BudgetConfig = section(BudgetConfig)
    fallback: FallbackConfig | None = section(FallbackConfig, Presence.GIVEN)  # None: the primary alone

    def fallback_api(self) -> "ApiConfig | None":
        """The fallback as an endpoint of its own (its client and backoff are the
        primary's kind): its url, model, key, timeout and TLS; no budget, no fallback."""
        fb = self.fallback
        if fb is None:
            return None
        return dataclasses.replace(self, url=fb.url, model=fb.model or self.model, api_key=fb.api_key,
                                   api_key_file=None, timeout=fb.timeout, ca_certs=fb.ca_certs,
                                   insecure=fb.insecure, budget=BudgetConfig(), fallback=None)


MQTT_TLS_PORT = 8883


@dataclass(frozen=True)
class MqttConfig:
    topic_prefix: str = text(convert=convert.mqtt_topic)  # default edge_agent/<device_id>
    host: str = text("localhost", blank_is_default=True)
    port: int = integer(1883, ge=1, le=65535)  # MQTT_TLS_PORT with tls
    username: str | None = text(None)
    password: str | None = text(None, repr=False)  # needs username
    tls: TlsConfig | None = section(TlsConfig, Presence.PRESENT)  # "tls:" alone: verified against the system's CAs
    qos: int = integer(1, ge=0, le=2)
    client_id: str = text("")  # default edge-agent-<device_id>
    keepalive: int = integer(30, ge=5, le=3600)
    max_pending: int = integer(1000, ge=1, le=1_000_000)


@dataclass(frozen=True)
class DecideConfig:
    min_confidence: float = num(0.5, ge=0, le=1)
    confirm: int = integer(2, ge=1, le=100)  # the newest results that must agree on a new class (consecutive)
    window: int = integer(5, ge=1, le=100)  # the last results looked at ...
    votes: int = integer(4, ge=1, le=100)  # ... of which at least this many must be the new class (<= window)
    stale_after: float = num(60.0, gt=0)  # s a needed check may fail before the state is marked stale


class DecodeMode(str, enum.Enum):
    """``cameras[].decode``: which frames of an H.264/H.265 source FFmpeg decodes."""
    AUTO = "auto"  # keyframes only when the camera looks no more often than they come
    ALL = "all"
    KEYFRAMES = "keyframes"

    def __str__(self) -> str:  # the word, on every Python (3.11 changed str() of mixed-in enums)
        return self.value


@dataclass(frozen=True)
class ChangeConfig:
    """The change gate: classify only when the picture changed (see change/)."""
    enabled: bool = flag(True)
    threshold: float = num(0.01, gt=0, le=1)  # share of the picture (0..1) that must differ
    heartbeat: float = num(600.0, ge=0)  # s: classify at least this often anyway; 0 = never
    ignore: tuple[Box, ...] = custom((), convert=convert.boxes)  # x, y, w, h as fractions of the frame


@dataclass(frozen=True)
class SamplingConfig:
    """Which of a camera's results are saved for training (dataset/sampling.py);
    ``cameras[].sampling`` is laid over ``dataset.sampling``."""
    enabled: bool = flag(True)  # this camera's frames may be collected (when dataset.enabled)
    below: float = num(0.6, ge=0, le=1)  # uncertain: top confidence below this ...
    margin: float = num(0.1, ge=0, le=1)  # ... or the top two within this
    overruled: bool = flag(True)  # a confident result the decision did not follow
    change: bool = flag(True)  # the result that decided a new state
    random: float = num(0.0, ge=0, le=1)  # a share of all results
    # x, y, w, h as fractions of the frame: blacked out before upload (a neighbour's window)
    mask: tuple[Box, ...] = custom((), convert=convert.boxes)


@dataclass(frozen=True)
class ViewConfig:
    """One view of a camera (``cameras[].views``): its crop, classified, gated, decided
    and published on its own (as camera ``<camera>-<view>``); what it leaves out is
    the camera's (its ``decide``, ``change`` and ``sampling`` laid under the view's)."""
    name: str = text(required=True, pattern=NAME_RE, hint="[a-z0-9_-]")
    region: tuple[float, float, float, float] | None = custom(None, convert=convert.region)  # None: the whole frame
    model: str | None = text(None, pattern=MODEL_RE, hint="<dataset-slug>/<version>")  # default: the camera's
    classes: tuple[str, ...] = custom((), convert=convert.classes)  # default: the camera's
    change: ChangeConfig = section(ChangeConfig)
    decide: DecideConfig = section(DecideConfig)
    sampling: SamplingConfig = section(SamplingConfig)
    heartbeat: float | None = num(None, ge=0)  # s: change.heartbeat, written short


@dataclass(frozen=True)
class CameraConfig:
    name: str = text(required=True, pattern=NAME_RE, hint="[a-z0-9_-]")
    source: str = custom(required=True, convert=convert.source)
    fps: float = num(2.0, gt=0, le=60)
    loop: bool = flag(False)
    stall_timeout: float = num(10.0, gt=0)
    decide: DecideConfig = section(DecideConfig)  # laid over the top-level decide (parse.py)
    # x1, y1, x2, y2 as fractions of the frame
    region: tuple[float, float, float, float] | None = custom(None, convert=convert.region)
    classes: tuple[str, ...] = custom((), convert=convert.classes)  # a Home Assistant binary_sensor for each
    change: ChangeConfig = section(ChangeConfig)
    decode: DecodeMode = choice(DecodeMode.AUTO, of=DecodeMode)  # FFmpeg sources (see sources/opencv.py)
    # the Pi camera's (rpicam) capture size
    resolution: tuple[int, int] = custom((1280, 720), convert=convert.pixels(lo=16, hi=8192))
    # extra arguments for rpicam-vid, e.g. ["--rotation", "180"]
    options: tuple[str, ...] = custom((), convert=convert.options)
    sampling: SamplingConfig = section(SamplingConfig)  # laid over dataset.sampling (parse.py)
    model: str | None = text(None, pattern=MODEL_RE, hint="<dataset-slug>/<version>")  # default: api.model
    views: tuple[ViewConfig, ...] = sections(ViewConfig, default=())  # read by the camera's rule (parse.py)
    view_of: str | None = derived(None)  # a view's camera (Config.targets); None: a camera as written
    view: str | None = derived(None)  # the view's own name (Config.targets)


@dataclass(frozen=True)
class StatusAuthConfig:
    """HTTP basic auth for the status page (every route but /healthz)."""
    username: str = text(required=True, convert=convert.basic_auth_user)
    password: str = text(repr=False)  # from ``password`` or read from ``password_file`` (parse.py)
    password_file: str | None = text(None, convert=convert.config_path)  # resolved against the config's folder


@dataclass(frozen=True)
class StatusConfig:
    enabled: bool = flag(True)
    # written as one key, listen: HOST:PORT
    host: str = text("127.0.0.1", key="listen", convert=convert.host_port, fills=("host", "port"))
    port: int = derived(8080)
    auth: StatusAuthConfig | None = section(StatusAuthConfig, Presence.GIVEN)
    public: bool = flag(False)  # reachable from other machines without auth, on purpose (logged as a warning)

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
    discovery: bool = flag(True)
    prefix: str = text("homeassistant", convert=convert.discovery_prefix)
    classes: tuple[str, ...] = custom((), convert=convert.classes)
    stale_unavailable: bool = flag(False)  # the class sensor is unavailable while the state is stale


@dataclass(frozen=True)
class EventsConfig:
    """The local event history and store-and-forward (storage/eventstore.py)."""
    keep_days: float = num(14.0, gt=0, le=3650)
    max_mb: float = num(200.0, gt=0, le=100_000)
    # undelivered events kept while the broker is away; beyond, the oldest go
    max_pending: int = integer(10_000, ge=1, le=10_000_000)


DATASET_URL = "https://api.roboflow.com"


@dataclass(frozen=True)
class DatasetConfig:
    """Training data for the user's Roboflow dataset (dataset/): off unless enabled."""
    enabled: bool = flag(False)  # nothing leaves the device for the dataset unless true
    url: str = text(DATASET_URL, convert=convert.http_url)
    project: str = text("", pattern=PROJECT_RE, hint="a project's slug, e.g. garage-door")  # default: api.model's
    api_key: str = text("", repr=False)  # default api.api_key; or read from api_key_file (parse.py)
    api_key_file: str | None = text(None, convert=convert.config_path)
    batch_prefix: str = text("edge-agent", pattern=BATCH_RE, hint="letters, digits, space, - and _")
    max_size: int = integer(1280, ge=0, le=8192)  # longest side of the picture sent; 0 = as captured
    max_mb: float = num(100.0, ge=8, le=100_000)  # the queue waiting to upload (an item is up to 4 MB); beyond, the oldest go
    timeout: float = num(60.0, gt=0, le=600)  # s per upload request
    per_hour: int = integer(10, ge=0, le=600)  # frames per camera in a rolling hour
    per_day: int = integer(50, ge=0, le=100_000)  # ... and per calendar day
    total_per_hour: int | None = integer(None, ge=0, le=600)  # over all cameras (None: no total)
    total_per_day: int | None = integer(None, ge=0, le=100_000)
    sampling: SamplingConfig = section(SamplingConfig)


@dataclass(frozen=True)
class Config:
    device_id: str = text(pattern=NAME_RE, hint="[a-z0-9_-]")  # default: the host name (env.py)
    api: ApiConfig = section(ApiConfig, Presence.REQUIRED)
    mqtt: MqttConfig = section(MqttConfig, default=NO_DEFAULT)
    decide: DecideConfig = section(DecideConfig, default=NO_DEFAULT)
    cameras: tuple[CameraConfig, ...] = sections(CameraConfig)  # 1 to limits.MAX_CAMERAS
    status_interval: float = num(30.0, gt=0)
    status: StatusConfig = section(StatusConfig)
    homeassistant: HomeAssistantConfig = section(HomeAssistantConfig)
    log_summary_interval: float = num(300.0, ge=0)
    state_dir: str = text("")  # resolved at load: $STATE_DIRECTORY, else ~/.local/state/edge-agent
    events: EventsConfig = section(EventsConfig)
    dataset: DatasetConfig = section(DatasetConfig)

    def targets(self) -> tuple[CameraConfig, ...]:
        """What is classified, gated, decided and published, each as a camera: every
        view of a camera with views (named ``<camera>-<view>``, its ``view_of`` the
        camera), else the camera itself; ``model`` always the effective one."""
        out = []
        for cam in self.cameras:
            model = cam.model or self.api.model
            if not cam.views:
                out.append(dataclasses.replace(cam, model=model))
                continue
            for v in cam.views:
                change = v.change if v.heartbeat is None else dataclasses.replace(v.change, heartbeat=v.heartbeat)
                out.append(dataclasses.replace(
                    cam, name=f"{cam.name}-{v.name}", region=v.region, model=v.model or model, classes=v.classes,
                    change=change, decide=v.decide, sampling=v.sampling, views=(), view_of=cam.name, view=v.name))
        return tuple(out)

    def secrets(self) -> list[str]:
        """Every string that must never be emitted (logs, MQTT, errors)."""
        out = [self.api.api_key, self.dataset.api_key, self.mqtt.password or "",
               self.status.auth.password if self.status.auth else ""]
        for cam in self.cameras:
            out.extend(source_secrets(cam.source))
        out.extend(url_secrets(self.api.url))
        if self.api.fallback is not None:
            out.append(self.api.fallback.api_key)
            out.extend(url_secrets(self.api.fallback.url))
        out.extend(url_secrets(self.dataset.url))
        return [s for s in out if s]
