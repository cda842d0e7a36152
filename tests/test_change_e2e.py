"""The change gate end to end, on by default: a real agent subprocess playing a
generated camera-like MJPEG scene (still but for noise, a blinking LED, a ticking
clock, two class changes, a passer-by and a lighting fade), real mosquitto and
the stand-in API over real HTTP, with its billing header."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import pytest

from tests.helpers import AgentProc, Broker, Recorder, agent_config, wait_until
from tools.scenes import Scene
from tools.standin_api import StandinApi, ThreadedStandin

KEY = "rf_gate_SECRET_key_0007"
PREFIX = "edge_agent/test"

SCENE = Scene(width=320, height=240, fps=10, seconds=30,
              classes=[(0, "red"), (10, "green"), (20, "blue")], passer=(13.0, 15.0), fade=(24.0, 29.0, 0.55))


@pytest.mark.timeout(120)
def test_every_change_is_published_with_a_fraction_of_the_calls(tmp_path: Path, broker: Broker,
                                                                   recorder: Recorder, capsys):
    video = SCENE.write(tmp_path / "scene.avi")
    with ThreadedStandin(StandinApi(api_key=KEY)) as api:
        cfg = agent_config(api_url=api.url, broker_port=broker.port, api_key=KEY, gate=True,
                           cameras=[{"name": "cam", "source": str(video), "fps": 2}])
        cfg["decide"]["min_confidence"] = 0.4  # the stand-in's confidence is the colour's share
        agent = AgentProc(tmp_path, cfg)
        try:
            recorder.wait_for("cam/state", lambda m: m.json()["class"] == "red", timeout=20)
            # Still picture now: "classify now" goes past the gate.
            before = len(api.requests())
            recorder.client.publish(f"{PREFIX}/cam/classify", b"PRESS", qos=1)
            wait_until(lambda: len(api.requests()) > before, 5, what="the on-demand call")
            metrics = urllib.request.urlopen(f"http://{cfg['status']['listen']}/metrics", timeout=5).read().decode()
            assert 'edge_agent_api_calls_total{camera="cam",reason="on_demand"} 1.0' in metrics
            rc = agent.wait(60)  # the file ends: the agent exits 0
        finally:
            agent.close()
        requests = api.requests()
    assert rc == 0, agent.log()
    states = [m.json()["class"] for m in recorder.all("cam/state")]
    assert states == ["red", "green", "blue"], agent.log()
    ceiling = SCENE.seconds * 2
    with capsys.disabled():
        print(f"\n  change gate, 30-s scene at fps 2: {len(requests)} calls of the {ceiling:.0f} the ceiling allows")
    # A 30-s scene with two changes and a passer-by is far busier than a real day (the bench's
    # 100-s scene is the measure); each change costs 4 calls to be decided (4 of 5 results).
    assert len(requests) <= 0.35 * ceiling
    status = recorder.last("cam/status").json()
    assert status["frames_unchanged"] > 30 and status["calls"] == len(requests)
    budget = status["budget"]
    assert budget["calls_today"] == len(requests)
    assert 0.0002 * len(requests) - 1e-6 <= budget["credits_today"] < 0.0003 * len(requests)  # >= 0.1 s billed a call
    assert json.loads(Path(cfg.get("state_dir", tmp_path / "state"), "budget.json").read_text())["calls_claimed"] \
        >= len(requests)
