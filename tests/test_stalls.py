"""What a Pi in a garage meets, for real and bounded in time: an RTSP camera that
freezes or dies, an MJPEG stream cut mid-frame, a broker that is not there at
start, an API unreachable for a minute, and a SIGKILL. Every test asserts on what
MQTT shows, and that no secret leaked into anything the agent emitted."""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import Iterator

import pytest
import requests

from tests.helpers import AgentProc, Broker, Msg, Recorder, agent_config, free_port, wait_until
from tests.streams import MjpegCamera, RtspCamera, need_gst
from tools.standin_api import StandinApi, ThreadedStandin

KEY = "rf_stalls_SECRET_key_2718"
CAM_PW = "rtsp-PASSWORD-31415"
PREFIX = "edge_agent/test"
STALL = 3.0  # stall_timeout in these tests


@pytest.fixture
def rtsp() -> Iterator[RtspCamera]:
    need_gst()
    cam = RtspCamera(free_port(), "red", password=CAM_PW).start()
    yield cam
    cam.stop()


def start_agent(tmp_path: Path, api: StandinApi, broker_port: int, source: str, **extra) -> AgentProc:
    cam = {"name": "cam", "source": source, "fps": 2, "stall_timeout": STALL, **extra.pop("camera", {})}
    cfg = agent_config(api_url=api.url, broker_port=broker_port, api_key=KEY, cameras=[cam], **extra)
    return AgentProc(tmp_path, cfg)


def stop(agent: AgentProc) -> None:
    agent.signal(signal.SIGTERM)
    assert agent.wait(10) == 0
    agent.close()


def assert_no_secrets(agent: AgentProc, *recorders: Recorder) -> None:
    emitted = [agent.log()] + [m.payload.decode(errors="replace") for r in recorders for m in r.all()]
    for text in emitted:
        assert KEY not in text and CAM_PW not in text


def trip(rec: Recorder, first: str, act) -> tuple[float, Msg]:
    """Wait for state ``first``, do ``act()`` to the camera, and wait for the agent to
    call it offline; returns when ``act`` ran and the offline status message."""
    rec.wait_for("cam/state", lambda m: m.json()["class"] == first, timeout=30)
    at = time.monotonic()
    act()
    off = rec.wait_for("cam/status", lambda m: m.json()["camera"] == "offline", after=at, timeout=STALL + 10)
    return at, off


def statuses_after(rec: Recorder, after: float, pred) -> bool:
    return any(m.at >= after and pred(m.json()) for m in rec.all("cam/status"))


@pytest.mark.parametrize("decode", ["auto", "keyframes"])
def test_rtsp_server_frozen_then_resumed(tmp_path: Path, rtsp: RtspCamera, broker: Broker, recorder: Recorder,
                                        decode: str):
    with ThreadedStandin(StandinApi(api_key=KEY)) as api:
        agent = start_agent(tmp_path, api, broker.port, rtsp.url(), camera={"decode": decode})
        try:
            frozen_at, off = trip(recorder, "red", lambda: rtsp.signal(signal.SIGSTOP))
            assert off.at - frozen_at <= STALL + 2.5
            assert "no frame" in off.json()["last_error"] or "read failed" in off.json()["last_error"]
            time.sleep(6)  # reopen attempts against the frozen server time out and back off
            resumed_at = time.monotonic()
            rtsp.signal(signal.SIGCONT)
            recorder.wait_for("cam/status", lambda m: m.json()["camera"] == "online", after=resumed_at, timeout=60)
            recorder.wait_for("cam/result", after=resumed_at, timeout=20)
            assert agent.proc.poll() is None
        finally:
            stop(agent)
    log = agent.log()
    offline = [ln.split("camera offline: ", 1)[1] for ln in log.splitlines() if "cam: camera offline" in ln]
    # One episode: one line when it starts, one more only for a new kind of trouble
    # (the stall, then reopening failing), however many attempts there were.
    assert 1 <= len(offline) <= 2 and len(set(offline)) == len(offline), offline
    assert offline[0].startswith("no frame for 3 s")
    assert "camera back online after" in log
    assert_no_secrets(agent, recorder)


@pytest.mark.parametrize("decode", ["auto", "keyframes"])
def test_rtsp_server_killed_and_restarted(tmp_path: Path, rtsp: RtspCamera, broker: Broker, recorder: Recorder,
                                         decode: str):
    with ThreadedStandin(StandinApi(api_key=KEY)) as api:
        agent = start_agent(tmp_path, api, broker.port, rtsp.url(), camera={"decode": decode})
        try:
            def kill() -> None:
                rtsp.signal(signal.SIGKILL)
                rtsp.proc.wait(5)

            killed_at, _ = trip(recorder, "red", kill)
            time.sleep(3)
            rtsp.start("blue")  # back on the same port, now seeing something else
            back = recorder.wait_for("cam/state", lambda m: m.json()["class"] == "blue", after=killed_at, timeout=60)
            assert statuses_after(recorder, killed_at, lambda s: s["camera"] == "online")
            assert back.at > killed_at
        finally:
            stop(agent)
    assert_no_secrets(agent, recorder)


def test_mjpeg_stream_cut_mid_frame(tmp_path: Path, broker: Broker, recorder: Recorder):
    with MjpegCamera("red", fps=10) as cam, ThreadedStandin(StandinApi(api_key=KEY)) as api:
        url = cam.url.replace("http://", f"http://viewer:{CAM_PW}@")
        agent = start_agent(tmp_path, api, broker.port, url)
        try:
            cut_at, off = trip(recorder, "red", cam.cut_mid_frame.set)
            assert off.at - cut_at <= STALL + 2.5
            cam.color = "green"
            cam.cut_mid_frame.clear()
            recorder.wait_for("cam/state", lambda m: m.json()["class"] == "green", after=cut_at, timeout=40)
            assert statuses_after(recorder, off.at, lambda s: s["camera"] == "online")
        finally:
            stop(agent)
    assert_no_secrets(agent, recorder)


def test_broker_unreachable_at_start(tmp_path: Path, videos):
    port = free_port()
    with ThreadedStandin(StandinApi(api_key=KEY)) as api:
        agent = start_agent(tmp_path, api, port, str(videos["red_long"]), camera={"loop": True})
        broker = Broker(tmp_path, port=port)
        rec = None
        try:
            wait_until(lambda: len(api.requests()) >= 4, 20, what="classifying with no broker")
            assert agent.proc.poll() is None
            broker.start()
            rec = Recorder(port, PREFIX)
            rec.wait_for("availability", lambda m: m.payload == b"online", timeout=40)
            assert rec.wait_for("cam/state", timeout=20).json()["class"] == "red"
            rec.wait_for("cam/result", timeout=20)
        finally:
            stop(agent)
            if rec:
                rec.close()
            broker.stop()
    assert "MQTT cannot connect" in agent.log()
    assert_no_secrets(agent)


def test_api_unreachable_for_20_s(tmp_path: Path, broker: Broker, recorder: Recorder):
    """The API stops accepting connections for 20 s while the scene changes. Backoff
    grows to its cap (so a minute costs a handful of attempts, not one per frame),
    there is no burst of queued requests when it returns, and the state is right
    after the first request."""
    with MjpegCamera("red", fps=10) as cam:
        api = StandinApi(api_key=KEY)
        runner = ThreadedStandin(api)
        runner.__enter__()
        port = api.port
        agent = start_agent(tmp_path, api, broker.port, cam.url, camera={"fps": 5, "decide": {"confirm": 1, "window": 1, "votes": 1}},
                            retry_initial=0.5, retry_max=8, timeout=2)
        status_url = f"http://{agent_status(agent)}/metrics"
        try:
            recorder.wait_for("cam/state", lambda m: m.json()["class"] == "red", timeout=30)
            runner.__exit__(None, None, None)  # the API host stops accepting connections
            down_at = time.monotonic()
            cam.color = "blue"  # the scene changes while the API is away
            time.sleep(20)
            attempts = connection_failures(status_url)
            api = StandinApi(api_key=KEY, port=port)
            runner = ThreadedStandin(api)
            runner.__enter__()
            up_at = time.monotonic()
            first = recorder.wait_for("cam/result", after=up_at, timeout=15)
            assert first.json()["top"] == "blue"
            state = recorder.wait_for("cam/state", after=up_at, timeout=5)
            assert state.json()["class"] == "blue" and state.at - first.at < 0.5  # within one request
            time.sleep(3)
            reqs = [r.at for r in api.requests()]
        finally:
            stop(agent)
            runner.__exit__(None, None, None)
    # 20 s with backoff 0.5 -> 8 s: about 5 attempts to reach the cap, then one per 4..8 s.
    assert 3 <= attempts <= 11, attempts
    # No burst: from the first request on, never more than fps (5/s) in any second.
    for i, t in enumerate(reqs):
        assert len([x for x in reqs[i:] if x < t + 1.0]) <= 5 + 1
    assert statuses_after(recorder, down_at, lambda s: s["api"] == "error" and "cannot connect" in s["last_error"])
    assert recorder.last("cam/status").json()["api"] == "ok"
    log = agent.log()
    assert log.count("API cannot connect") == 1 and "API recovered after" in log
    assert_no_secrets(agent, recorder)


def agent_status(agent: AgentProc) -> str:
    import yaml

    return yaml.safe_load(agent.config_path.read_text())["status"]["listen"]


def connection_failures(metrics_url: str) -> float:
    from prometheus_client.parser import text_string_to_metric_families

    text = requests.get(metrics_url, timeout=5).text
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            if s.name == "edge_agent_requests_total" and s.labels.get("outcome") == "connection":
                return s.value
    raise AssertionError("no connection outcome in /metrics")


def test_sigkill_leaves_offline_by_last_will(tmp_path: Path, videos, broker: Broker, recorder: Recorder):
    with ThreadedStandin(StandinApi(api_key=KEY)) as api:
        agent = start_agent(tmp_path, api, broker.port, str(videos["red_long"]), camera={"loop": True})
        try:
            recorder.wait_for("availability", lambda m: m.payload == b"online", timeout=20)
            recorder.wait_for("cam/state", timeout=20)
            killed_at = time.monotonic()
            agent.signal(signal.SIGKILL)
            agent.wait(5)
            recorder.wait_for("availability", lambda m: m.payload == b"offline", after=killed_at, timeout=10)
        finally:
            agent.close()
    late = Recorder(broker.port, PREFIX)
    try:
        assert late.wait_for("availability", timeout=5).payload == b"offline"  # retained
    finally:
        late.close()
