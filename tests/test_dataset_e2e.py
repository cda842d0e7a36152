"""Training data end to end: the agent as a process, a real broker, the stand-in's
classification and dataset routes over real HTTP, the queue on disk.

* An upload-API outage with a SIGKILL in the middle: what was queued (read from
  the queue's file after the kill: what the agent had acknowledged) all arrives
  after the restart, in order, exactly once; during the outage the agent backs
  off (a handful of requests, no storm).
* A wrong key: one log line, the status flag, one request, no retry storm, and
  the key nowhere in the log.

The bench (``bench/bench_dataset.py --outage 60``) runs the issue's 60-s outage;
this test runs a shorter one with the same steps.
"""

from __future__ import annotations

import signal
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import AgentProc, Broker, Recorder, agent_config, make_video, wait_until
from tools.standin_api import StandinApi, ThreadedStandin

KEY = "rf_dataset_SECRET_7"
PREFIX = "edge_agent/test"
# 12 pictures that differ (not near-duplicates of each other), 0.5 s each
COLOURS = ["red", "blue", "green", "yellow", "white", "black", "orange", "purple", "cyan", "magenta",
           "gray", "brown"]


def queued(state: Path) -> list[tuple[int, float]]:
    """The queue's items (id, captured_at), in its order, as the file holds them."""
    path = state / "uploads.db"
    if not path.exists():
        return []
    c = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
    try:
        return c.execute("SELECT id, captured_at FROM items ORDER BY id").fetchall()
    except sqlite3.OperationalError:  # not created yet
        return []
    finally:
        c.close()


def config(api: StandinApi, broker: Broker, video: Path, state: Path, **dataset: Any) -> dict[str, Any]:
    c = agent_config(api_url=api.url, broker_port=broker.port, api_key=KEY,
                     cameras=[{"name": "cam", "source": str(video), "fps": 4, "loop": True}])
    c["state_dir"] = str(state)
    c["dataset"] = {"enabled": True, "url": api.url, "per_hour": 100, "per_day": 200,
                    "sampling": {"random": 1.0, "change": False, "overruled": False, "below": 0.0,
                                 "margin": 0.0}, **dataset}
    return c


@pytest.mark.timeout(120)
def test_an_outage_and_a_sigkill_lose_nothing_and_send_each_frame_once_in_order(tmp_path: Path,
                                                                                  broker: Broker) -> None:
    video = make_video(tmp_path / "many.mp4", [(c, 0.5) for c in COLOURS])
    state = tmp_path / "state"
    with ThreadedStandin(StandinApi(api_key=KEY)) as api:
        api.dataset.down = True
        agent = AgentProc(tmp_path, config(api, broker, video, state))
        try:
            wait_until(lambda: len(queued(state)) >= 8, 40, what="8 frames queued during the outage")
            outage_started = time.monotonic()
            time.sleep(4.0)  # the outage goes on with the frames queued
            agent.proc.kill()  # SIGKILL: no stop, no flush
            agent.wait(10)
        finally:
            agent.close()
        waiting = queued(state)
        tries = [r for r in api.dataset.log() if r.route == "upload"]
        assert len(waiting) >= 8
        # backoff from 2 s: at most one try per 1-2 s at first, never one per frame
        assert 1 <= len(tries) <= 8, len(tries)
        assert time.monotonic() - outage_started >= 4.0
        log_text = agent.log()
        assert log_text.count("dataset upload failed") == 1  # once per episode
        assert KEY not in log_text

        # Back: the agent restarted on the same state_dir, sampling nothing new.
        api.dataset.down = False
        again = AgentProc(tmp_path, config(api, broker, video, state, sampling={"enabled": False}))
        try:
            wait_until(lambda: len(api.dataset.uploads()) >= len(waiting), 60, what="every queued frame sent")
            wait_until(lambda: queued(state) == [], 10, what="the queue empty")
            time.sleep(0.5)
        finally:
            again.signal(signal.SIGTERM)
            again.wait(10)
            again.close()
    sent = api.dataset.uploads()
    assert [r.fields["metadata"]["captured_at"] for r in sent] == [round(at, 3) for _, at in waiting]
    assert len({r.image_id for r in sent}) == len(sent)  # each once
    assert all("random" in r.fields["metadata"]["reasons"] for r in sent)


@pytest.mark.timeout(90)
def test_a_wrong_key_pauses_uploads_with_one_line_and_a_status_flag(tmp_path: Path, broker: Broker) -> None:
    video = make_video(tmp_path / "many.mp4", [(c, 0.5) for c in COLOURS[:6]])
    state = tmp_path / "state"
    rec = Recorder(broker.port, PREFIX)
    try:
        with ThreadedStandin(StandinApi(api_key=KEY)) as api:
            agent = AgentProc(tmp_path, config(api, broker, video, state, api_key="rf_WRONG_dataset_key"))
            try:
                status = rec.wait_for("cam/status", lambda m: (m.json().get("dataset") or {}).get("paused")
                                      == "unauthorized", timeout=40)
                wait_until(lambda: len(queued(state)) >= 4, 30, what="frames kept while paused")
                time.sleep(3.0)
                log_text = agent.log()
            finally:
                agent.signal(signal.SIGTERM)
                agent.wait(10)
                agent.close()
            tries = [r for r in api.dataset.log() if r.route == "upload"]
    finally:
        rec.close()
    assert len(tries) == 1 and tries[0].status == 401
    assert log_text.count("dataset uploads paused") == 1
    assert "rf_WRONG_dataset_key" not in log_text and KEY not in log_text
    assert "rf_WRONG_dataset_key" not in status.payload.decode()
    assert len(queued(state)) >= 4  # nothing is lost: the frames wait for a good key
