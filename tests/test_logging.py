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
    assert "INFO porch: state -> red (confidence 1.00)" in lines
    camera_lines = [ln for ln in lines if any(k in ln for k in ("state ->", "camera online", "video file"))]
    assert camera_lines and all("porch:" in ln for ln in camera_lines)


def test_log_level_and_timestamps_outside_journald(tmp_path: Path, broker: Broker, videos):
    log = run_once(tmp_path, broker, videos["red_long"], env={"JOURNAL_STREAM": ""}, log_level="warning")
    assert "state ->" not in log and "INFO" not in log  # info lines are filtered out
    log = run_once(tmp_path, broker, videos["red_long"], env={"JOURNAL_STREAM": ""}, log_level="info")
    assert all(STAMP.match(ln) for ln in log.splitlines() if ln.strip())
