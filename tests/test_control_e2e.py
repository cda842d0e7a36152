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
            wait_until(lambda: agent.log().count("control message") >= 6, 10, what="the warnings")
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
    assert "fps takes a number" in log and "unknown setting 'colour'" in log
    assert "unknown camera 'nope'" in log
