"""Prometheus metrics, with prometheus_client, in a registry of the agent's own
(no global state). Request outcomes and latency are recorded as they happen;
frame counters, camera and MQTT health are read live at scrape time from the
objects that own them."""

from __future__ import annotations

from typing import Callable, Iterable

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from ..budget import Priority

REASONS = tuple(p.name.lower() for p in Priority)
OUTCOMES = ("ok", "http_4xx", "http_5xx", "timeout", "connection", "rate_limited", "bad_reply")
_KIND_TO_OUTCOME = {"unauthorized": "http_4xx"}
LATENCY_BUCKETS = (0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0)


def outcome_of(kind: str) -> str:
    """The ``outcome`` label of an ApiError kind."""
    return _KIND_TO_OUTCOME.get(kind, kind)


class _Live:
    """Reads the agent's live figures at scrape time."""

    def __init__(self, read: Callable[[], dict]):
        self._read = read

    def collect(self) -> Iterable[Metric]:
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


class Metrics:
    def __init__(self, cameras: Iterable[str], read_live: Callable[[], dict]):
        self.registry = CollectorRegistry()
        self.requests = Counter("edge_agent_requests", "API requests by outcome", ["camera", "outcome"],
                                registry=self.registry)
        self.latency = Histogram("edge_agent_request_latency_seconds", "API round trip of successful requests",
                                 ["camera"], buckets=LATENCY_BUCKETS, registry=self.registry)
        self.calls = Counter("edge_agent_api_calls", "API calls by why they were made "
                             "(change, confirm, heartbeat, on_demand)", ["camera", "reason"], registry=self.registry)
        self.credits = Counter("edge_agent_api_credits", "API credits spent, from the billing headers",
                               ["camera"], registry=self.registry)
        for cam in cameras:  # every series exists from the start, so rate() works at once
            for outcome in OUTCOMES:
                self.requests.labels(cam, outcome)
            for reason in REASONS:
                self.calls.labels(cam, reason)
            self.latency.labels(cam)
            self.credits.labels(cam)
        self.registry.register(_Live(read_live))

    def request_ok(self, camera: str, seconds: float) -> None:
        self.requests.labels(camera, "ok").inc()
        self.latency.labels(camera).observe(seconds)

    def call(self, camera: str, reason: Priority | None, credits: float | None) -> None:
        """One API call made (whatever its outcome), and what it cost."""
        if reason is not None:
            self.calls.labels(camera, reason.name.lower()).inc()
        if credits:
            self.credits.labels(camera).inc(credits)

    def request_failed(self, camera: str, kind: str) -> None:
        self.requests.labels(camera, outcome_of(kind)).inc()

    def render(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
