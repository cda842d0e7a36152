"""Control topics against a running agent: pause/resume, fps, snapshot on request,
and bad payloads that must be logged and ignored."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import cv2
import numpy as np

from tests.helpers import AgentProc, Broker, Recorder, agent_config, wait_until
from tools.standin_api import StandinApi, ThreadedStandin

KEY = "rf_control_SECRET_6"
PREFIX = "edge_agent/test"


def send(rec: Recorder, suffix: str, payload: str | bytes) -> float:
    at = time.monotonic()
    rec.client.publish(f"{PREFIX}/{suffix}", payload, qos=1).wait_for_publish(5)
    return at


def test_control_topics(tmp_path: Path, videos, broker: Broker, recorder: Recorder):
    with ThreadedStandin(StandinApi(api_key=KEY)) as api:
        cfg = agent_config(api_url=api.url, broker_port=broker.port, api_key=KEY,
                           cameras=[{"name": "cam", "source": str(videos["red_long"]), "fps": 5, "loop": True}])
        agent = AgentProc(tmp_path, cfg)
        try:
            recorder.wait_for("cam/state", timeout=30)
            first_snap = recorder.wait_for("cam/snapshot", timeout=10)

            # Pause: confirmed on status; no requests while paused; capture stays open.
            at = send(recorder, "cam/set/enabled", "OFF")
            recorder.wait_for("cam/status", lambda m: m.json()["enabled"] is False, after=at, timeout=10)
            time.sleep(0.5)  # requests already in flight may finish
            n = len(api.requests())
            paused = recorder.last("cam/status").json()
            time.sleep(2)
            assert len(api.requests()) == n
            status_url = f"http://{cfg['status']['listen']}/api/status"
            import requests

            cam = requests.get(status_url, timeout=5).json()["cameras"][0]
            assert cam["online"] and not cam["enabled"] and cam["frames_in_per_s"] > 20  # still capturing
            assert cam["frames_dropped"] == paused["frames_dropped"]  # pausing is not dropping

            # Resume.
            at = send(recorder, "cam/set/enabled", "ON")
            recorder.wait_for("cam/status", lambda m: m.json()["enabled"] is True, after=at, timeout=10)
            wait_until(lambda: len(api.requests()) > n + 3, 10, what="requests after resuming")

            # fps: confirmed on status, and the request rate follows.
            at = send(recorder, "cam/set/fps", "1")
            recorder.wait_for("cam/status", lambda m: m.json()["fps"] == 1.0, after=at, timeout=10)
            time.sleep(0.5)
            n = len(api.requests())
            time.sleep(3)
            assert len(api.requests()) - n <= 4

            # Snapshot on request: a fresh retained JPEG.
            at = send(recorder, "cam/snapshot/request", "")
            snap = recorder.wait_for("cam/snapshot", after=at, timeout=10)
            img = cv2.imdecode(np.frombuffer(snap.payload, np.uint8), cv2.IMREAD_COLOR)
            assert img is not None and img.shape[:2] == (240, 320)
            assert snap.at > first_snap.at

            # Bad payloads: logged, ignored, nothing breaks.
            before = recorder.last("cam/status").json()
            for suffix, payload in [("cam/set/fps", "fast"), ("cam/set/fps", "-3"), ("cam/set/enabled", "maybe"),
                                    ("cam/set/colour", "red"), ("nope/set/fps", "2"), ("cam/set/fps", b"\xff\xfe")]:
                send(recorder, suffix, payload)
            wait_until(lambda: agent.log().count("control message") >= 1, 10, what="the warning")
            time.sleep(1)
            assert agent.log().count("control message") == 1  # one line a minute, not one a message
            assert agent.proc.poll() is None
            time.sleep(0.5)
            after = recorder.last("cam/status").json()
            assert (after["fps"], after["enabled"]) == (before["fps"], before["enabled"]) == (1.0, True)
        finally:
            agent.signal(signal.SIGTERM)
            assert agent.wait(10) == 0
            agent.close()
    log = agent.log()
    assert "cam: classification paused" in log and "cam: classification resumed" in log
    assert "fps takes a number" in log and "at most one such line a minute" in log


def test_hostile_control_traffic(tmp_path: Path, videos, broker: Broker, recorder: Recorder):
    """What anyone on an open home broker can send: a retained command waiting at
    start, floods of bad commands and of Home Assistant births, a 60 kB topic."""
    ha = Recorder(broker.port, "homeassistant")
    # A retained "pause" left on the broker: obeyed at every start, it would pause the camera for good.
    recorder.client.publish(f"{PREFIX}/cam/set/enabled", b"OFF", qos=1, retain=True).wait_for_publish(5)
    try:
        with ThreadedStandin(StandinApi(api_key=KEY)) as api:
            cfg = agent_config(api_url=api.url, broker_port=broker.port, api_key=KEY,
                               cameras=[{"name": "cam", "source": str(videos["red_long"]), "fps": 5, "loop": True}])
            agent = AgentProc(tmp_path, cfg)
            try:
                recorder.wait_for("cam/state", timeout=30)
                assert recorder.last("cam/status").json()["enabled"] is True
                wait_until(lambda: "retained control message" in agent.log(), 10, what="the retained command")
                # set/fps 1e-300 is refused; 0.5 then 5 takes effect at once.
                send(recorder, "cam/set/fps", "1e-300")
                at = send(recorder, "cam/set/fps", "0.5")
                recorder.wait_for("cam/status", lambda m: m.json()["fps"] == 0.5, after=at, timeout=10)
                at = send(recorder, "cam/set/fps", "5")
                recorder.wait_for("cam/status", lambda m: m.json()["fps"] == 5.0, after=at, timeout=10)
                n = len(api.requests())
                wait_until(lambda: len(api.requests()) >= n + 5, 5, what="requests at the new rate")
                # Floods: 300 bad commands, a 60 kB topic level, 300 Home Assistant births.
                lines_before = len(agent.log().splitlines())
                for i in range(300):
                    recorder.client.publish(f"{PREFIX}/cam/set/fps", b"fast", qos=0)
                recorder.client.publish(f"{PREFIX}/{'A' * 60000}/set/fps", b"1", qos=1).wait_for_publish(5)
                configs_before = len([m for m in ha.all() if m.topic.endswith("/config")])
                for i in range(300):
                    recorder.client.publish("homeassistant/status", b"online", qos=0)
                time.sleep(REPUBLISH_WAIT)
                configs = len([m for m in ha.all() if m.topic.endswith("/config")]) - configs_before
                discovery = len(cfg["cameras"]) * 4 + 2  # class, confidence, snapshot, button; calls/credits today
                assert configs == discovery, f"{configs} discovery messages for 300 births"
                new_lines = agent.log().splitlines()[lines_before:]
                assert len(new_lines) < 10, new_lines
                assert all(len(line) < 2000 for line in new_lines)
                assert agent.proc.poll() is None
                wait_until(lambda: len(api.requests()) >= n + 20, 10, what="results still flowing")
            finally:
                agent.signal(signal.SIGTERM)
                assert agent.wait(10) == 0
                agent.close()
    finally:
        recorder.client.publish(f"{PREFIX}/cam/set/enabled", b"", qos=1, retain=True).wait_for_publish(5)
        ha.close()


REPUBLISH_WAIT = 2.0  # births coalesce within half a second; wait well past it
