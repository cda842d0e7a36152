"""Several views of one camera (#21), end to end: one H.264 file with two panels
(left and right halves) changing colour independently, one camera with two views,
each with its own model; the agent as a process, a real broker, the stand-in API
over real HTTP. Each view's state sequence is its own panel's, with no cross-talk;
with the gate on each view calls only when its own panel changes; each view's
requests go to its own model's route; the frames are decoded once (one capture
thread for the camera)."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

import pytest

from tests.helpers import AgentProc, Broker, Recorder, agent_config, make_video
from tools.standin_api import StandinApi, ThreadedStandin

KEY = "rf_views_SECRET_2"
PREFIX = "edge_agent/test"
FPS = 5
SECONDS = 24


def split(path: Path, left: list[tuple[str, float]], right: list[tuple[str, float]]) -> Path:
    a = make_video(path.with_suffix(".left.mp4"), left)
    b = make_video(path.with_suffix(".right.mp4"), right)
    subprocess.run(["ffmpeg", "-nostdin", "-y", "-loglevel", "error", "-i", str(a), "-i", str(b),
                    "-filter_complex", "[0:v][1:v]hstack=inputs=2[v]", "-map", "[v]", "-c:v", "libx264",
                    "-pix_fmt", "yuv420p", "-preset", "veryfast", "-g", "30", str(path)], check=True, timeout=120)
    return path


@pytest.mark.timeout(120)
def test_two_views_follow_their_own_panels_with_their_own_models_and_gates(tmp_path: Path, broker: Broker):
    video = split(tmp_path / "two.mp4", [("red", 8), ("blue", 8), ("red", 8)], [("green", 12), ("blue", 12)])
    rec = Recorder(broker.port, PREFIX)
    try:
        with ThreadedStandin(StandinApi(api_key=KEY)) as api:
            cfg = agent_config(api_url=api.url, broker_port=broker.port, api_key=KEY, gate=True, cameras=[{
                "name": "garage", "source": str(video), "fps": FPS,
                "views": [{"name": "left", "region": [0, 0, 0.5, 1]},
                          {"name": "right", "region": [0.5, 0, 1, 1], "model": "bins/7"}]}])
            agent = AgentProc(tmp_path, cfg)
            try:
                assert agent.wait(SECONDS + 40) == 0  # a file that ends: the agent stops on its own
            finally:
                if agent.proc.poll() is None:
                    agent.signal(signal.SIGTERM)
                agent.close()
            seen = api.requests()
            log = agent.log()
    finally:
        rec.close()
    left = [m.json()["class"] for m in rec.all("garage-left/state") if m.payload]
    right = [m.json()["class"] for m in rec.all("garage-right/state") if m.payload]
    assert _changes(left) == ["red", "blue", "red"], left
    assert _changes(right) == ["green", "blue"], right
    calls = {path: sum(1 for s in seen if s.path == path) for path in {s.path for s in seen}}
    assert set(calls) == {"/colours/1", "/bins/7"}  # each view's own model
    allowed = FPS * SECONDS
    assert calls["/colours/1"] <= 0.1 * allowed and calls["/bins/7"] <= 0.1 * allowed, calls
    assert calls["/bins/7"] < calls["/colours/1"]  # the right panel changes once, the left twice
    assert all((s.width, s.height) == (320, 240) for s in seen)  # each a half (640x240 in all): its own crop
    last = {v: [m.json() for m in rec.all(f"garage-{v}/status") if m.payload][-1] for v in ("left", "right")}
    # one capture thread, one decode: the frames captured are the camera's, the same in both views' status
    assert last["left"]["frames_captured"] == last["right"]["frames_captured"] > FPS * SECONDS
    assert last["left"]["frames_sent"] == calls["/colours/1"] and last["right"]["frames_sent"] == calls["/bins/7"]
    assert last["left"]["camera"] == last["right"]["camera"] == "offline"  # the camera's health, in each
    assert "Traceback" not in log
    assert rec.all("garage/state") == []  # a camera with views publishes as its views only


def _changes(states: list[str]) -> list[str]:
    out: list[str] = []
    for s in states:
        if not out or out[-1] != s:
            out.append(s)
    return out
