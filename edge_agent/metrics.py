"""Prometheus metrics. The agent tallies as things happen, in plain counts of its
own (no global state); prometheus_client is imported on the first scrape, which
renders the tallies and reads the live figures (frame counters, camera and MQTT
health, the budget) from the objects that own them. A device nobody scrapes does
not carry prometheus_client's modules: about 1.5 MB of heap (bench/bench_sources.py).

Training data (``dataset.enabled``): frames by reason and outcome, and the upload
queue's length and size, read live from the agent's collection; no series at all
while nothing is collected.

Views (issue #21): every per-camera series is per target, ``camera`` its name (a view
``<camera>-<view>``, a camera without views as before), and ``edge_agent_camera_info``
(always 1) says what each is: ``source_camera`` (the camera it looks through), ``view``
(empty for a camera without views) and ``model``, to group a camera's views by.

Endpoints (issue #22): requests by endpoint and outcome and their latency, tallied;
``edge_agent_endpoint_active{endpoint}``, read live, is 1 for the endpoint calls go to
and 0 for the other (only ``primary`` without ``api.fallback``).

The figures are the agent's, not the web's: the status server only serves
``render()`` on GET /metrics, and nothing here imports from ``web/``."""

from __future__ import annotations

import bisect
from collections import Counter, defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Iterable

from .budget import Priority
from .collection_view import Outcome, Reason

if TYPE_CHECKING:
    from .camera import CameraRuntime
    from .config import CameraConfig
    from prometheus_client.registry import CollectorRegistry
    from prometheus_client.metrics_core import Metric

REASONS = tuple(p.name.lower() for p in Priority)
OUTCOMES = ("ok", "http_4xx", "http_5xx", "timeout", "connection", "rate_limited", "bad_reply")
_KIND_TO_OUTCOME = {"unauthorized": "http_4xx"}
LATENCY_BUCKETS = (0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0)


def outcome_of(kind: str) -> str:
    """The ``outcome`` label of an ApiError kind (an ``ApiErrorKind``, a StrEnum: its word)."""
    return _KIND_TO_OUTCOME.get(kind, str(kind))


@dataclass(frozen=True)
class CameraInfo:
    """What a per-camera series is about: the labels of ``edge_agent_camera_info``."""

    camera: str  # the target's name: the ``camera`` label of every per-camera series
    source_camera: str  # the camera it looks through: itself unless it is a view
    view: str = ""  # the view's own name; empty (no label) for a camera without views
    model: str = ""  # the model it calls (the effective one)

    @classmethod
    def of(cls, cfg: "CameraConfig") -> "CameraInfo":
        return cls(cfg.name, cfg.view_of or cfg.name, cfg.view or "", cfg.model or "")


class Latency:
    """A histogram's state: a count per bucket (the last one is +Inf) and the sum."""

    def __init__(self) -> None:
        self.counts = [0] * (len(LATENCY_BUCKETS) + 1)
        self.sum = 0.0

    def observe(self, seconds: float) -> None:
        self.counts[bisect.bisect_left(LATENCY_BUCKETS, seconds)] += 1
        self.sum += seconds

    def cumulative(self) -> list[tuple[float, int]]:
        """(upper bound, observations at or below it), +Inf last, as Prometheus counts them."""
        out, total = [], 0
        for bound, n in zip((*LATENCY_BUCKETS, float("inf")), self.counts):
            total += n
            out.append((bound, total))
        return out


class _Live:
    """Reads the agent's live figures at scrape time."""

    def __init__(self, read: Callable[[], dict]):
        self._read = read

    def collect(self) -> Iterable[Metric]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        data = self._read()
        families = {
            "captured": CounterMetricFamily("edge_agent_frames_captured", "Frames grabbed from the camera",
                                            labels=["camera"]),
            "dropped": CounterMetricFamily("edge_agent_frames_dropped",
                                           "Frames not sent (rate, in-flight limit or backoff)", labels=["camera"]),
            "sent": CounterMetricFamily("edge_agent_frames_sent", "Frames sent to the API", labels=["camera"]),
            "unchanged": CounterMetricFamily("edge_agent_frames_unchanged",
                                             "Frames the change gate looked at and found unchanged (no call)",
                                             labels=["camera"]),
        }
        online = GaugeMetricFamily("edge_agent_camera_online", "1 while the camera delivers frames", labels=["camera"])
        enabled = GaugeMetricFamily("edge_agent_camera_enabled", "1 unless classification is paused",
                                    labels=["camera"])
        for cam in data["cameras"]:
            for key, fam in families.items():
                fam.add_metric([cam["name"]], cam[key])
            online.add_metric([cam["name"]], 1 if cam["online"] else 0)
            enabled.add_metric([cam["name"]], 1 if cam["enabled"] else 0)
        yield from families.values()
        yield online
        yield enabled
        yield GaugeMetricFamily("edge_agent_mqtt_connected", "1 while connected to the broker",
                                value=1 if data["mqtt_connected"] else 0)
        yield CounterMetricFamily("edge_agent_mqtt_messages_dropped",
                                  "Messages dropped while the broker was unreachable", value=data["mqtt_dropped"])
        yield GaugeMetricFamily("edge_agent_requests_in_flight", "API requests in flight", value=data["in_flight"])
        budget = data["budget"]
        yield GaugeMetricFamily("edge_agent_api_calls_today", "API calls made today (local day), all cameras",
                                value=budget.calls)
        yield GaugeMetricFamily("edge_agent_api_credits_today", "API credits spent today (from billing headers)",
                                value=budget.credits)
        yield GaugeMetricFamily("edge_agent_api_budget_exhausted", "1 while the day's API budget is spent",
                                value=1 if budget.exhausted else 0)
        endpoints = data.get("endpoints")  # {"primary": in use, "fallback": in use} (the fallback's when configured)
        if endpoints:
            active = GaugeMetricFamily("edge_agent_endpoint_active", "1 for the API endpoint calls go to "
                                       "(primary, fallback), 0 for the other", labels=["endpoint"])
            for endpoint, in_use in endpoints.items():
                active.add_metric([endpoint], 1 if in_use else 0)
            yield active
        dataset = data.get("dataset")  # None unless dataset.enabled
        if dataset is not None:
            yield from _dataset_families(dataset)


def _dataset_families(dataset: dict) -> Iterable[Metric]:
    """``{"counts": {(reason, outcome): n}, "queued": n, "queued_bytes": n}`` as Prometheus reads it;
    every (reason, outcome) series is there from the start, at zero."""
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

    counts = {(str(r), str(o)): 0 for r in Reason for o in Outcome}
    counts.update(dataset["counts"])
    uploads = CounterMetricFamily("edge_agent_dataset_uploads", "Frames sampled for training by why (reason) and "
                                  "what became of them (outcome: queued, uploaded, duplicate, limited, similar, "
                                  "refused, dropped; failed counts upload tries)", labels=["reason", "outcome"])
    for (reason, outcome), n in sorted(counts.items()):
        uploads.add_metric([reason, outcome], n)
    yield uploads
    yield GaugeMetricFamily("edge_agent_dataset_queue_length", "Frames waiting to upload to the dataset",
                            value=dataset["queued"])
    yield GaugeMetricFamily("edge_agent_dataset_queue_bytes", "Bytes of the frames waiting to upload",
                            value=dataset["queued_bytes"])


class _Tallied:
    """Renders the Metrics' tallies (and what each camera is) at scrape time."""

    def __init__(self, metrics: Metrics):
        self._m = metrics

    def collect(self) -> Iterable[Metric]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
        from prometheus_client.utils import floatToGoString

        m = self._m
        info = GaugeMetricFamily("edge_agent_camera_info", "What each camera series is (always 1): the camera it "
                                 "looks through, the view (empty: a camera without views) and the model",
                                 labels=["camera", "source_camera", "view", "model"])
        for i in m.info:
            info.add_metric([i.camera, i.source_camera, i.view, i.model], 1)
        yield info
        requests = CounterMetricFamily("edge_agent_requests", "API requests by outcome", labels=["camera", "outcome"])
        for (cam, outcome), n in m.requests.items():
            requests.add_metric([cam, outcome], n)
        yield requests
        latency = HistogramMetricFamily("edge_agent_request_latency_seconds", "API round trip of successful requests",
                                        labels=["camera"])
        for cam, hist in m.latency.items():
            latency.add_metric([cam], [(floatToGoString(b), n) for b, n in hist.cumulative()], hist.sum)
        yield latency
        calls = CounterMetricFamily("edge_agent_api_calls", "API calls by why they were made "
                                    "(change, confirm, heartbeat, on_demand)", labels=["camera", "reason"])
        for (cam, reason), n in m.calls.items():
            calls.add_metric([cam, reason], n)
        yield calls
        credits = CounterMetricFamily("edge_agent_api_credits", "API credits spent, from the billing headers",
                                      labels=["camera"])
        for cam, c in m.credits.items():
            credits.add_metric([cam], c)
        yield credits
        by_endpoint = CounterMetricFamily("edge_agent_endpoint_requests", "API requests by endpoint (primary, "
                                          "fallback) and outcome", labels=["endpoint", "outcome"])
        for (endpoint, outcome), n in m.endpoint_requests.items():
            by_endpoint.add_metric([endpoint, outcome], n)
        yield by_endpoint
        latency = HistogramMetricFamily("edge_agent_endpoint_latency_seconds", "Round trip of successful requests "
                                        "by endpoint", labels=["endpoint"])
        for endpoint, hist in m.endpoint_latency.items():
            latency.add_metric([endpoint], [(floatToGoString(b), n) for b, n in hist.cumulative()], hist.sum)
        yield latency


class Metrics:
    def __init__(self, cameras: "Mapping[str, CameraRuntime] | Iterable[str]", read_live: Callable[[], dict],
                 endpoints: Iterable[str] = ("primary",)):
        """``cameras``: the agent's runtimes by target name (what each is read from its
        config), or bare names (each a camera without views, model unknown);
        ``endpoints``: "primary", and "fallback" when one is configured."""
        self._read_live = read_live
        self.info = [CameraInfo.of(c.cfg) for c in cameras.values()] if isinstance(cameras, Mapping) \
            else [CameraInfo(name, name) for name in cameras]
        self._registry: CollectorRegistry | None = None
        self.requests: Counter[tuple[str, str]] = Counter()
        self.calls: Counter[tuple[str, str]] = Counter()
        self.credits: Counter[str] = Counter()
        self.latency: defaultdict[str, Latency] = defaultdict(Latency)
        self.endpoint_requests: Counter[tuple[str, str]] = Counter()
        self.endpoint_latency: dict[str, Latency] = {}
        for endpoint in endpoints:
            for outcome in OUTCOMES:
                self.endpoint_requests[endpoint, outcome] = 0
            self.endpoint_latency[endpoint] = Latency()
        for cam in (i.camera for i in self.info):  # every series exists from the start, so rate() works at once
            for outcome in OUTCOMES:
                self.requests[cam, outcome] = 0
            for reason in REASONS:
                self.calls[cam, reason] = 0
            self.latency[cam] = Latency()
            self.credits[cam] = 0.0

    def request_ok(self, camera: str, seconds: float) -> None:
        self.requests[camera, "ok"] += 1
        self.latency[camera].observe(seconds)

    def call(self, camera: str, reason: Priority | None, credits: float | None) -> None:
        """One API call made (whatever its outcome), and what it cost."""
        if reason is not None:
            self.calls[camera, reason.name.lower()] += 1
        if credits:
            self.credits[camera] += credits

    def request_failed(self, camera: str, kind: str) -> None:
        self.requests[camera, outcome_of(kind)] += 1

    def endpoint_ok(self, endpoint: str, seconds: float) -> None:
        self.endpoint_requests[str(endpoint), "ok"] += 1
        self.endpoint_latency.setdefault(str(endpoint), Latency()).observe(seconds)

    def endpoint_failed(self, endpoint: str, kind: str) -> None:
        self.endpoint_requests[str(endpoint), outcome_of(kind)] += 1

    def render(self) -> tuple[bytes, str]:
        from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

        if self._registry is None:
            self._registry = CollectorRegistry()
            self._registry.register(_Tallied(self))
            self._registry.register(_Live(self._read_live))
        return generate_latest(self._registry), CONTENT_TYPE_LATEST
