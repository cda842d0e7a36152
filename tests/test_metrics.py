"""Metrics: the agent's tallies as Prometheus reads them, and prometheus_client
loaded only when somebody scrapes."""

from __future__ import annotations

import subprocess
import sys
from types import SimpleNamespace

from prometheus_client.parser import text_string_to_metric_families

from edge_agent.budget import Priority
from edge_agent.metrics import Metrics


def samples(metrics: Metrics) -> dict[tuple[str, tuple], float]:
    body, content_type = metrics.render()
    assert content_type.startswith("text/plain")
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for fam in text_string_to_metric_families(body.decode()) for s in fam.samples}


def live() -> dict:
    return {"cameras": [{"name": "door", "online": True, "enabled": True, "captured": 7, "dropped": 2, "sent": 5,
                         "unchanged": 1}],
            "mqtt_connected": True, "mqtt_dropped": 3, "in_flight": 1,
            "budget": SimpleNamespace(calls=4, credits=0.5, exhausted=False)}


def test_tallies_render_as_prometheus_counts():
    m = Metrics(["door", "yard"], live)
    for seconds in (0.05, 0.12, 20.0):
        m.request_ok("door", seconds)
    m.request_failed("door", "unauthorized")
    m.request_failed("door", "timeout")
    m.call("door", Priority.CHANGE, 1.5)
    m.call("door", Priority.CHANGE, None)
    m.call("door", None, 0.25)
    s = samples(m)
    door = ("camera", "door")
    assert s[("edge_agent_requests_total", (door, ("outcome", "ok")))] == 3
    assert s[("edge_agent_requests_total", (door, ("outcome", "http_4xx")))] == 1
    assert s[("edge_agent_requests_total", (door, ("outcome", "timeout")))] == 1
    # a bucket counts what is at or below its bound; +Inf counts all
    assert s[("edge_agent_request_latency_seconds_bucket", (door, ("le", "0.05")))] == 1
    assert s[("edge_agent_request_latency_seconds_bucket", (door, ("le", "0.1")))] == 1
    assert s[("edge_agent_request_latency_seconds_bucket", (door, ("le", "0.15")))] == 2
    assert s[("edge_agent_request_latency_seconds_bucket", (door, ("le", "10.0")))] == 2
    assert s[("edge_agent_request_latency_seconds_bucket", (door, ("le", "+Inf")))] == 3
    assert s[("edge_agent_request_latency_seconds_count", (door,))] == 3
    assert abs(s[("edge_agent_request_latency_seconds_sum", (door,))] - 20.17) < 1e-9
    assert s[("edge_agent_api_calls_total", (door, ("reason", "change")))] == 2
    assert s[("edge_agent_api_credits_total", (door,))] == 1.75
    # every series of a quiet camera is there from the start, at zero
    yard = ("camera", "yard")
    assert s[("edge_agent_requests_total", (yard, ("outcome", "http_5xx")))] == 0
    assert s[("edge_agent_api_calls_total", (yard, ("reason", "heartbeat")))] == 0
    assert s[("edge_agent_request_latency_seconds_count", (yard,))] == 0
    # the live figures are read at scrape time
    assert s[("edge_agent_frames_sent_total", (door,))] == 5
    assert s[("edge_agent_mqtt_messages_dropped_total", ())] == 3
    assert s[("edge_agent_api_calls_today", ())] == 4


def test_prometheus_client_is_loaded_on_the_first_scrape_only():
    code = ("import sys, edge_agent.cli, edge_agent.agent, edge_agent.web.server\n"
            "from edge_agent.metrics import Metrics\n"
            "print('prometheus_client' in sys.modules)\n"
            "m = Metrics(['a'], lambda: {'cameras': [], 'mqtt_connected': False, 'mqtt_dropped': 0,"
            " 'in_flight': 0, 'budget': type('B', (), {'calls': 0, 'credits': 0, 'exhausted': False})})\n"
            "m.request_ok('a', 0.1)\n"
            "print('prometheus_client' in sys.modules)\n"
            "m.render()\n"
            "print('prometheus_client' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.split() == ["False", "False", "True"]


def test_training_data_series_only_while_collecting():
    m = Metrics(["door"], live)  # no "dataset" key (an older agent's figures): no series
    assert not [k for k in samples(m) if k[0].startswith("edge_agent_dataset")]
    m = Metrics(["door"], lambda: {**live(), "dataset": None})  # dataset.enabled off
    assert not [k for k in samples(m) if k[0].startswith("edge_agent_dataset")]
    figures = {"counts": {("overruled", "uploaded"): 4, ("change", "limited"): 2}, "queued": 3, "queued_bytes": 123456}
    m = Metrics(["door"], lambda: {**live(), "dataset": figures})
    s = samples(m)
    up = "edge_agent_dataset_uploads_total"
    assert s[(up, (("outcome", "uploaded"), ("reason", "overruled")))] == 4
    assert s[(up, (("outcome", "limited"), ("reason", "change")))] == 2
    # every (reason, outcome) there from the start, at zero, so rate() works at once
    from edge_agent.dataset.sampling import Reason
    from edge_agent.collection_view import Outcome

    series = {k for k in s if k[0] == up}
    assert len(series) == len(Reason) * len(Outcome)
    assert s[(up, (("outcome", "dropped"), ("reason", "random")))] == 0
    assert s[("edge_agent_dataset_queue_length", ())] == 3
    assert s[("edge_agent_dataset_queue_bytes", ())] == 123456


def test_camera_info_says_what_each_series_is():
    """Views (#21): every series keeps ``camera`` = the target's name; edge_agent_camera_info
    groups a camera's views and names their models."""
    from edge_agent.admission import Admission, InFlight
    from edge_agent.budget import Budget
    from edge_agent.camera import CameraRuntime
    from edge_agent.config import parse_config

    cfg = parse_config({
        "api": {"url": "http://127.0.0.1:9", "model": "colours/1", "api_key": "k"}, "mqtt": {"topic_prefix": "p"},
        "cameras": [{"name": "garage", "source": "rtsp://cam/garage", "model": "doors/2",
                     "views": [{"name": "left", "region": [0, 0, 0.5, 1]},
                               {"name": "right", "region": [0.5, 0, 1, 1], "model": "bins/7"}]},
                    {"name": "door", "source": "rtsp://cam/door"}]}, {})
    budget, inflight = Budget(cfg.api.budget), InFlight(2)
    runtimes = {t.name: CameraRuntime.create(t, Admission(t, inflight=inflight, budget=budget,
                                                          api_ready=lambda now: True)) for t in cfg.targets()}
    s = samples(Metrics(runtimes, live))
    info = {k for k, v in s.items() if k[0] == "edge_agent_camera_info" and v == 1}
    assert info == {
        ("edge_agent_camera_info", (("camera", "garage-left"), ("model", "doors/2"), ("source_camera", "garage"),
                                    ("view", "left"))),
        ("edge_agent_camera_info", (("camera", "garage-right"), ("model", "bins/7"), ("source_camera", "garage"),
                                    ("view", "right"))),
        ("edge_agent_camera_info", (("camera", "door"), ("model", "colours/1"), ("source_camera", "door"),
                                    ("view", "")))}
    # the tallies' series are per target, from the start: a view is a camera named <camera>-<view>
    assert s[("edge_agent_requests_total", (("camera", "garage-right"), ("outcome", "ok")))] == 0
    assert not [k for k in s if ("camera", "garage") in k[1]]
    # bare names (an older caller): each a camera of its own, its model unknown
    s = samples(Metrics(["door"], live))
    assert s[("edge_agent_camera_info", (("camera", "door"), ("model", ""), ("source_camera", "door"),
                                         ("view", "")))] == 1


def test_the_endpoint_in_use_is_a_gauge_per_endpoint(tmp_path):
    """#22: edge_agent_endpoint_active{endpoint} is 1 for the endpoint calls go to, 0 for the
    other, read live from the agent's endpoints (Agent._live_metrics)."""
    import time

    from edge_agent.agent import Agent
    from edge_agent.config import parse_config

    def active(s: dict) -> dict[str, float]:
        return {dict(k[1])["endpoint"]: v for k, v in s.items() if k[0] == "edge_agent_endpoint_active"}

    assert active(samples(Metrics(["door"], live))) == {}  # no "endpoints" key (an older caller): no series
    assert active(samples(Metrics(["door"], lambda: {**live(), "endpoints": {"primary": False, "fallback": True}}))) \
        == {"primary": 0, "fallback": 1}

    def agent(fallback: dict | None) -> Agent:
        api = {"url": "http://127.0.0.1:9", "model": "colours/1", "api_key": "k"}
        return Agent(parse_config({"api": {**api, **({"fallback": fallback} if fallback else {})},
                                   "mqtt": {"topic_prefix": "p"}, "state_dir": str(tmp_path / "state"),
                                   "cameras": [{"name": "door", "source": "rtsp://cam/door"}]}, {}))

    assert active(samples(agent(None).metrics)) == {"primary": 1}  # one endpoint: always in use
    a = agent({"url": "http://192.168.1.20:9001", "switch_after": 5})
    assert active(samples(a.metrics)) == {"primary": 1, "fallback": 0}
    a.endpoints.sent(a.endpoints.token(), time.monotonic() - 6, probe=False)  # the primary silent for 6 s
    assert a.endpoints.tick(lambda: False, lambda: None) is not None  # the once-a-second look: switched
    s = samples(a.metrics)
    assert active(s) == {"primary": 0, "fallback": 1}
    # the tallies beside it: a series per endpoint from the start
    assert s[("edge_agent_endpoint_requests_total", (("endpoint", "fallback"), ("outcome", "ok")))] == 0
