"""Faults, for real: a misbehaving API, a broker that dies, a camera that is not there yet.

Each test is bounded in time; the agent must survive every fault without a restart."""

from __future__ import annotations

import shutil
import signal
import time
from pathlib import Path

from tests.helpers import AgentProc, Broker, Recorder, agent_config, wait_until
from tools.standin_api import StandinApi, ThreadedStandin

KEY = "rf_faults_SECRET_key_77"
PREFIX = "edge_agent/test"


def statuses(rec: Recorder, cam: str = "cam") -> list[dict]:
    return [m.json() for m in rec.all(f"{cam}/status")]


def test_api_faults_then_recovery(tmp_path: Path, videos, broker: Broker, recorder: Recorder):
    """500, then 429 with Retry-After, then garbage, then a hang past the timeout, then a good API."""
    with ThreadedStandin(StandinApi(api_key=KEY)) as api:
        api.add_faults({"status": 500}, {"status": 429, "retry_after": "2"}, {"garbage": True},
                       {"hang": 3}, {"wrong_shape": True})
        cfg = agent_config(api_url=api.url, broker_port=broker.port, api_key=KEY, timeout=1, max_in_flight=1,
                           cameras=[{"name": "cam", "source": str(videos["rgb"]), "fps": 5, "loop": True}])
        agent = AgentProc(tmp_path, cfg)
        try:
            state = recorder.wait_for("cam/state", timeout=40)
            assert agent.proc.poll() is None, "the agent survived every fault"
            # States keep flowing afterwards: the looping video changes colour every 3 s.
            recorder.wait_for("cam/state", lambda m: m.json()["class"] != state.json()["class"], timeout=15,
                              after=state.at)
            reqs = api.requests()
        finally:
            agent.signal(signal.SIGTERM)
            rc = agent.wait(10)
            agent.close()
    assert rc == 0
    assert [r.status for r in reqs[:5]] == [500, 429, 200, 0, 200]  # 0: the hang (client timed out)
    assert all(r.status == 200 for r in reqs[5:])
    # Retry-After: 2 was honoured; the other failures backed off (retry_initial 0.2 s).
    assert reqs[2].at - reqs[1].at >= 1.9
    assert reqs[1].at - reqs[0].at >= 0.09
    api_states = [s["api"] for s in statuses(recorder)]
    assert "error" in api_states and "rate_limited" in api_states and api_states[-1] == "ok"
    failed = [s for s in statuses(recorder) if s["api"] == "error"]
    assert any("HTTP 500" in (s["last_error"] or "") for s in failed)
    assert any("not JSON" in (s["last_error"] or "") for s in failed)
    assert any("no reply within 1 s" in (s["last_error"] or "") for s in failed)
    assert statuses(recorder)[-1]["requests_failed"] == 5
    log = agent.log()
    assert log.count("API server error (HTTP 500)") == 1
    assert log.count("API rate limited") == 1
    assert "API recovered after 5 failed request(s)" in log
    assert KEY not in log


def test_wrong_api_key_is_reported_once_and_retried_slowly(tmp_path: Path, videos, broker: Broker,
                                                           recorder: Recorder):
    with ThreadedStandin(StandinApi(api_key="the-right-key")) as api:
        cfg = agent_config(api_url=api.url, broker_port=broker.port, api_key=KEY,
                           cameras=[{"name": "cam", "source": str(videos["red_long"]), "fps": 10, "loop": True}])
        agent = AgentProc(tmp_path, cfg)
        try:
            recorder.wait_for("cam/status", lambda m: m.json()["api"] == "unauthorized", timeout=20)
            time.sleep(2.5)
            n = len(api.requests())
        finally:
            agent.signal(signal.SIGTERM)
            assert agent.wait(10) == 0
            agent.close()
    assert 2 <= n <= 5  # unauthorized_retry is 1 s here: one slow retry a second, not 10/s
    log = agent.log()
    assert log.count("API key rejected") == 1
    assert KEY not in log


def test_broker_killed_and_restarted(tmp_path: Path, videos):
    broker = Broker(tmp_path).start()
    rec = Recorder(broker.port, PREFIX)
    with ThreadedStandin(StandinApi(api_key=KEY)) as api:
        cfg = agent_config(api_url=api.url, broker_port=broker.port, api_key=KEY,
                           cameras=[{"name": "cam", "source": str(videos["red_long"]), "fps": 5, "loop": True}])
        cfg["mqtt"]["max_pending"] = 5
        cfg["mqtt"]["keepalive"] = 5
        agent = AgentProc(tmp_path, cfg)
        try:
            rec.wait_for("cam/state", timeout=20)
            broker.proc.kill()  # SIGKILL: no goodbye to anyone
            broker.proc.wait(5)
            down_at = time.monotonic()
            time.sleep(3)
            broker.start()
            up_at = time.monotonic()
            rec2 = Recorder(broker.port, PREFIX)
            online = rec2.wait_for("availability", lambda m: m.payload == b"online", timeout=90)
            # The video is red throughout, so the state never changes by itself: a state
            # message now is the agent republishing it after the reconnect.
            state = rec2.wait_for("cam/state", timeout=10)
            assert state.json()["class"] == "red"
            assert {m.payload for m in rec.all("cam/state") + rec2.all("cam/state")} == {state.payload}
            rec2.wait_for("cam/result", timeout=10, after=online.at)
            status = rec2.wait_for("cam/status", lambda m: m.json()["messages_dropped"] > 0, timeout=10)
            assert agent.proc.poll() is None
            # Results from the outage were held in a bounded queue (5), the rest dropped and counted.
            outage = [m for m in rec2.all("cam/result") + rec.all("cam/result")
                      if down_at - time.monotonic() + time.time() <= m.json()["captured_at"]
                      <= up_at - time.monotonic() + time.time()]
            assert len(outage) <= 5 + 2
            assert status.json()["messages_dropped"] >= 5
            assert status.json()["mqtt_disconnects"] >= 1  # the dead broker is counted
            rec2.close()
        finally:
            agent.signal(signal.SIGTERM)
            rc = agent.wait(10)
            agent.close()
            rec.close()
            broker.stop()
    assert rc == 0
    log = agent.log()
    assert log.count("MQTT connection lost") + log.count("MQTT cannot connect") == 1  # once per episode
    assert "MQTT connected again" in log


def test_camera_source_that_appears_later(tmp_path: Path, videos, broker: Broker, recorder: Recorder):
    target = tmp_path / "later.mp4"
    with ThreadedStandin(StandinApi(api_key=KEY)) as api:
        cfg = agent_config(api_url=api.url, broker_port=broker.port, api_key=KEY,
                           cameras=[{"name": "cam", "source": str(target), "fps": 5, "loop": True}])
        agent = AgentProc(tmp_path, cfg)
        try:
            off = recorder.wait_for("cam/status", lambda m: m.json()["camera"] == "offline"
                                    and "not found" in (m.json()["last_error"] or ""), timeout=15)
            # The first status is the outcome of the first open, not a guess made before it.
            assert recorder.all("cam/status")[0].json()["last_error"] == off.json()["last_error"]
            import requests

            health = requests.get(f"http://{cfg['status']['listen']}/healthz", timeout=5).json()
            assert f"camera cam: file {target} not found" in health["reasons"]  # as /api/status says it
            time.sleep(3.5)  # a few retries with backoff (1, 2, ... s)
            assert agent.proc.poll() is None
            shutil.copy(videos["red_long"], target)
            online = recorder.wait_for("cam/status", lambda m: m.json()["camera"] == "online", timeout=20,
                                       after=off.at)
            assert online.json()["camera_failures"] >= 2  # every failed attempt is counted
            assert recorder.wait_for("cam/state", timeout=10).json()["class"] == "red"
        finally:
            agent.signal(signal.SIGTERM)
            assert agent.wait(10) == 0
            agent.close()
    log = agent.log()
    assert log.count("camera offline") == 1, log  # once per episode, however many retries
    assert "camera back online after" in log
