"""An event is a change: a restart that decides the state it had before publishes no
event, adds no row to the history and keeps the state's ``since``; a restart that decides
another state publishes exactly one event, with the right ``previous``.

In-process first (no sockets: the real agent and event store, a scene on a fake clock),
then end to end: the agent as a process, a real broker, stopped and started again on the
same state_dir."""

from __future__ import annotations

import signal
import sqlite3
import time
from pathlib import Path

import pytest

from tests.helpers import AgentProc, Broker, Recorder, agent_config, make_video, wait_until
from tests.inprocess import config, play
from tools.scenes import Scene
from tools.standin_api import StandinApi, ThreadedStandin

KEY = "rf_restart_SECRET_3"
PREFIX = "edge_agent/test"


def _scene(colour: str) -> Scene:
    return Scene(seconds=6, classes=[(0, colour)], passer=None, fade=None, led=False, clock=False)


async def test_in_process_the_same_state_after_a_restart_is_no_event(tmp_path: Path):
    cfg = config(tmp_path, {"change": {"enabled": False}})
    first = await play(cfg, _scene("red"))
    assert [e["class"] for e in first.out.events()] == ["red"]
    since = first.agent.cameras["cam"].debouncer.state.since
    again = await play(cfg, _scene("red"))  # the same state_dir: a restart
    assert again.out.events() == []
    assert again.out.states() == ["red"]  # the state is published (retained) all the same...
    assert again.agent.cameras["cam"].debouncer.state.since == since  # ...with the since from before


async def test_in_process_another_state_after_a_restart_is_one_event_with_its_previous(tmp_path: Path):
    cfg = config(tmp_path, {"change": {"enabled": False}})
    await play(cfg, _scene("red"))
    again = await play(cfg, _scene("blue"))
    assert [(e["class"], e["previous"]) for e in again.out.events()] == [("blue", "red")]


def _history(state: Path) -> list[tuple]:
    c = sqlite3.connect(state / "events.db")
    try:
        return c.execute("SELECT id, class, previous FROM events ORDER BY id").fetchall()
    finally:
        c.close()


def _run_until_state(tmp_path: Path, cfg: dict, rec: Recorder, colour: str) -> AgentProc:
    agent = AgentProc(tmp_path, cfg)
    try:
        wait_until(lambda: "state -> " + colour in agent.log(), 40, what=f"the state {colour}")
        time.sleep(1.5)  # the event (if any) committed and published
    finally:
        agent.signal(signal.SIGTERM)
        assert agent.wait(10) == 0
        agent.close()
    return agent


@pytest.mark.timeout(150)
def test_a_restart_with_the_same_picture_publishes_no_event(tmp_path: Path, broker: Broker):
    red = make_video(tmp_path / "red.mp4", [("red", 4)])
    blue = make_video(tmp_path / "blue.mp4", [("blue", 4)])
    rec = Recorder(broker.port, PREFIX)
    try:
        with ThreadedStandin(StandinApi(api_key=KEY)) as api:
            def cfg(video: Path) -> dict:
                c = agent_config(api_url=api.url, broker_port=broker.port, api_key=KEY, gate=True,
                                 cameras=[{"name": "cam", "source": str(video), "fps": 3, "loop": True}])
                c["state_dir"] = str(tmp_path / "state")
                return c

            _run_until_state(tmp_path, cfg(red), rec, "red")
            first = [m.json() for m in rec.all("cam/event")]
            assert [(e["class"], e["previous"]) for e in first] == [("red", None)]
            since = rec.last("cam/state").json()["since"]
            rows = _history(tmp_path / "state")
            assert len(rows) == 1

            before = time.monotonic()
            agent = _run_until_state(tmp_path, cfg(red), rec, "red")  # the same picture
            assert [m.json() for m in rec.all("cam/event")] == first  # no new event
            assert _history(tmp_path / "state") == rows  # no new row
            states = [m for m in rec.all("cam/state") if m.at >= before]
            assert states and all(m.json()["class"] == "red" and m.json()["since"] == since for m in states)
            assert "as before the restart" in agent.log() and "no event" in agent.log()

            before = time.monotonic()
            _run_until_state(tmp_path, cfg(blue), rec, "blue")  # another picture: one event
            new = [m.json() for m in rec.all("cam/event") if m.at >= before]
            assert [(e["class"], e["previous"]) for e in new] == [("blue", "red")]
            assert [r[1:] for r in _history(tmp_path / "state")] == [("red", None), ("blue", "red")]
            assert rec.last("cam/state").json()["since"] > since
    finally:
        rec.close()


@pytest.mark.timeout(120)
def test_without_a_state_dir_the_retained_state_on_the_broker_says_what_was_before(tmp_path: Path, broker: Broker):
    """No event store (state_dir unusable): the agent reads its own retained state back from
    the broker at start, so a restart with the same picture is still no event."""
    red = make_video(tmp_path / "red.mp4", [("red", 4)])
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")
    rec = Recorder(broker.port, PREFIX)
    try:
        with ThreadedStandin(StandinApi(api_key=KEY)) as api:
            cfg = agent_config(api_url=api.url, broker_port=broker.port, api_key=KEY, gate=True,
                               cameras=[{"name": "cam", "source": str(red), "fps": 3, "loop": True}])
            cfg["state_dir"] = str(blocker / "state")  # cannot be made: the agent runs without one
            _run_until_state(tmp_path, cfg, rec, "red")
            assert [e["class"] for e in (m.json() for m in rec.all("cam/event"))] == ["red"]
            since = rec.last("cam/state").json()["since"]
            before = time.monotonic()
            agent = _run_until_state(tmp_path, cfg, rec, "red")
            assert len(rec.all("cam/event")) == 1, [m.json() for m in rec.all("cam/event")]
            assert all(m.json()["since"] == since for m in rec.all("cam/state") if m.at >= before)
            assert "state_dir" in agent.log() and "as before the restart" in agent.log()
    finally:
        rec.close()
