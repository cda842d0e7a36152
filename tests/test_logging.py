"""Log lines as an operator reads them: journald-friendly, levels, camera names."""

from __future__ import annotations

import re
from pathlib import Path

from tests.helpers import AgentProc, Broker, agent_config
from tools.standin_api import StandinApi, ThreadedStandin

STAMP = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d")


def run_once(tmp_path: Path, broker: Broker, video: Path, **kw) -> str:
    with ThreadedStandin(StandinApi(api_key="k" * 12)) as api:
        cfg = agent_config(api_url=api.url, broker_port=broker.port, api_key="k" * 12,
                           cameras=[{"name": "porch", "source": str(video), "fps": 4}])
        agent = AgentProc(tmp_path, cfg, **kw)
        try:
            assert agent.wait(60) == 0
        finally:
            agent.close()
    return agent.log()


def test_under_journald_lines_carry_no_timestamp(tmp_path: Path, broker: Broker, videos):
    log = run_once(tmp_path, broker, videos["red_long"], env={"JOURNAL_STREAM": "8:12345"}, log_level="info")
    lines = [ln for ln in log.splitlines() if ln.strip()]
    assert lines and not any(STAMP.match(ln) for ln in lines)
    assert "INFO porch: state -> red (confidence 1.00, 4 of 4 results)" in lines
    camera_lines = [ln for ln in lines if any(k in ln for k in ("state ->", "camera online", "video file"))]
    assert camera_lines and all("porch:" in ln for ln in camera_lines)


def test_log_level_and_timestamps_outside_journald(tmp_path: Path, broker: Broker, videos):
    log = run_once(tmp_path, broker, videos["red_long"], env={"JOURNAL_STREAM": ""}, log_level="warning")
    assert "state ->" not in log and "INFO" not in log  # info lines are filtered out
    log = run_once(tmp_path, broker, videos["red_long"], env={"JOURNAL_STREAM": ""}, log_level="info")
    assert all(STAMP.match(ln) for ln in log.splitlines() if ln.strip())


def test_nothing_bypasses_the_log_format_when_a_camera_sends_garbage(tmp_path: Path, broker: Broker):
    """FFmpeg and libjpeg print their own complaints to stderr, past our format and
    the redactor (a stream URL with its password): quiet by default. Every line the
    agent writes, through a camera sending broken frames and a killed stream, is ours."""
    import signal
    import time

    from tests.helpers import wait_until
    from tests.streams import MjpegCamera

    with ThreadedStandin(StandinApi(api_key="k" * 12)) as api, MjpegCamera("red", fps=15) as cam:
        url = cam.url.replace("http://", "http://viewer:SeCrEt-pw-77@")
        cfg = agent_config(api_url=api.url, broker_port=broker.port, api_key="k" * 12,
                           cameras=[{"name": "porch", "source": url, "fps": 4, "stall_timeout": 2}])
        agent = AgentProc(tmp_path, cfg, env={"JOURNAL_STREAM": ""}, log_level="debug")
        try:
            wait_until(lambda: "state -> red" in agent.log(), 30, what="a first state")
            cam.garbage.set()
            time.sleep(3)
            cam.garbage.clear()
            cam.cut_mid_frame.set()
            wait_until(lambda: "camera offline" in agent.log(), 20, what="the stream going offline")
            agent.signal(signal.SIGTERM)
            assert agent.wait(10) == 0
        finally:
            agent.close()
    lines = [ln for ln in agent.log().splitlines() if ln.strip()]
    strays = [ln for ln in lines if not re.match(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ (DEBUG|INFO|WARNING|ERROR|CRITICAL) ", ln)]
    assert strays == [], strays[:5]
    assert "SeCrEt-pw-77" not in agent.log()
