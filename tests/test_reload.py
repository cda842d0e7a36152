"""SIGHUP (what `systemctl reload` sends): a valid new config restarts the agent
with it, in the same process; a bad one is logged and the running one kept."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import yaml

from tests.helpers import AgentProc, Broker, Recorder, agent_config, wait_until
from tools.standin_api import StandinApi, ThreadedStandin

KEY = "rf_reload_SECRET_key_3"


def test_sighup_reloads_a_good_config_and_keeps_running_on_a_bad_one(tmp_path: Path, videos, broker: Broker,
                                                                     recorder: Recorder):
    with ThreadedStandin(StandinApi(api_key=KEY)) as api:
        cfg = agent_config(api_url=api.url, broker_port=broker.port, api_key=KEY,
                           cameras=[{"name": "cam", "source": str(videos["red_long"]), "fps": 2, "loop": True}])
        agent = AgentProc(tmp_path, cfg)
        try:
            recorder.wait_for("cam/status", lambda m: m.json()["fps"] == 2.0, timeout=30)
            written = yaml.safe_load(agent.config_path.read_text())
            # A bad config: logged, the running one kept.
            agent.config_path.write_text(yaml.safe_dump({**written, "cameras": [{"name": "cam", "fps": -1}]}))
            agent.signal(signal.SIGHUP)
            wait_until(lambda: "reload: config error" in agent.log(), 10, what="the reload error")
            assert agent.proc.poll() is None
            # A good one, with a new camera: taken up.
            written["cameras"].append({"name": "two", "source": str(videos["rgb"]), "fps": 2, "loop": True,
                                       "change": {"enabled": False}})
            agent.config_path.write_text(yaml.safe_dump(written))
            at = time.monotonic()
            agent.signal(signal.SIGHUP)
            recorder.wait_for("two/state", after=at, timeout=30)
            recorder.wait_for("cam/result", after=at, timeout=30)
            assert agent.proc.poll() is None
            agent.signal(signal.SIGTERM)
            assert agent.wait(10) == 0
        finally:
            agent.close()
    log = agent.log()
    assert "cameras[0].source: is required" in log and "reload:" in log and "restarting with it" in log
    assert "Traceback" not in log and KEY not in log
