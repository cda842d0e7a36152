"""exec: and rpicam sources end to end: the agent as a subprocess runs the
command, reads its MJPEG, treats its death as an outage, and leaves no child."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest

from tests.fake_rpicam_vid import install
from tests.helpers import AgentProc, Broker, Recorder, agent_config, wait_until
from tools.standin_api import StandinApi, ThreadedStandin

KEY = "rf_exec_SECRET_2"


def children_running(marker: str) -> list[int]:
    """Processes (not zombies) whose command line contains ``marker``."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if marker in cmd and state != "Z" and int(entry.name) != os.getpid():
            pids.append(int(entry.name))
    return pids


@pytest.mark.timeout(90)
def test_exec_ffmpeg_mjpeg_gives_the_right_states(tmp_path: Path, videos, broker: Broker, recorder: Recorder):
    cmd = (f"exec:ffmpeg -nostdin -loglevel error -re -i {videos['rgb']} -f mjpeg -q:v 5 -")
    with ThreadedStandin(StandinApi(api_key=KEY)) as api:
        cfg = agent_config(api_url=api.url, broker_port=broker.port, api_key=KEY,
                           cameras=[{"name": "cam", "source": cmd, "fps": 4}])
        agent = AgentProc(tmp_path, cfg)
        try:
            wait_until(lambda: [m.json()["class"] for m in recorder.all("cam/state")][:3] == ["red", "blue", "green"],
                       30, what="red, blue, green")
            # ffmpeg exits at the end of the file: an outage like any other, then it runs again.
            recorder.wait_for("cam/status", lambda m: "exited with status 0" in (m.json()["last_error"] or ""),
                              timeout=20)
            status = recorder.last("cam/status").json()
            assert status["decode"] == "MJPEG, decoded only when taken" or status["camera"] == "offline"
        finally:
            agent.signal(signal.SIGTERM)
            assert agent.wait(10) == 0
            agent.close()
    assert children_running(str(videos["rgb"])) == []


@pytest.mark.timeout(120)
def test_rpicam_with_a_stand_in_rpicam_vid(tmp_path: Path, broker: Broker, recorder: Recorder):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = install(bin_dir)
    args_file = tmp_path / "rpicam-args.json"
    env = {"PATH": f"{bin_dir}:{os.environ['PATH']}", "FAKE_RPICAM_ARGS": str(args_file),
           "FAKE_RPICAM_COLOR": "blue"}
    with ThreadedStandin(StandinApi(api_key=KEY)) as api:
        cfg = agent_config(api_url=api.url, broker_port=broker.port, api_key=KEY,
                           cameras=[{"name": "pi", "source": "rpicam", "fps": 2, "resolution": [640, 360],
                                     "options": ["--hflip"], "stall_timeout": 3}])
        agent = AgentProc(tmp_path, cfg, env=env)
        try:
            recorder.wait_for("pi/state", lambda m: m.json()["class"] == "blue", timeout=30)
            argv = json.loads(args_file.read_text())
            assert argv[:2] == ["--camera", "0"] and argv[-2:] == ["-o", "-"]
            assert argv[argv.index("--codec") + 1] == "mjpeg" and "--nopreview" in argv and "--hflip" in argv
            assert (argv[argv.index("--width") + 1], argv[argv.index("--height") + 1]) == ("640", "360")
            # The child dies: offline, restarted with backoff, results resume.
            [child] = children_running(str(fake))
            killed_at = time.monotonic()
            os.kill(child, signal.SIGKILL)
            recorder.wait_for("pi/status", lambda m: m.json()["camera"] == "offline", after=killed_at, timeout=10)
            recorder.wait_for("pi/status", lambda m: m.json()["camera"] == "online", after=killed_at, timeout=20)
            back = time.monotonic()
            recorder.wait_for("pi/result", after=back, timeout=10)
            assert children_running(str(fake)) and child not in children_running(str(fake))
        finally:
            agent.signal(signal.SIGTERM)
            assert agent.wait(10) == 0
            agent.close()
    wait_until(lambda: children_running(str(fake)) == [], 5, what="no rpicam-vid left after the agent stopped")
    assert "was killed by signal 9" in agent.log() or "killed" in agent.log()


def test_rpicam_without_the_tools_names_the_package(tmp_path: Path, broker: Broker, recorder: Recorder):
    with ThreadedStandin(StandinApi(api_key=KEY)) as api:
        cfg = agent_config(api_url=api.url, broker_port=broker.port, api_key=KEY,
                           cameras=[{"name": "pi", "source": "rpicam:1", "fps": 2}])
        agent = AgentProc(tmp_path, cfg, env={"PATH": "/usr/bin:/bin"})
        try:
            st = recorder.wait_for("pi/status", lambda m: m.json()["last_error"] is not None, timeout=15)
            assert "sudo apt install rpicam-apps" in st.json()["last_error"] and st.json()["camera"] == "offline"
        finally:
            agent.signal(signal.SIGTERM)
            assert agent.wait(10) == 0
            agent.close()
