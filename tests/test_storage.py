"""storage/: the settings kept across restarts (told names and figures, no camera),
and the one read interface the outputs and the web side see of the event log."""

from __future__ import annotations

import inspect
import json
import logging
from pathlib import Path

import pytest

from edge_agent.config import EventsConfig
from edge_agent.storage.eventlog import EventLog
from edge_agent.storage.files import JsonFile
from edge_agent.storage.reader import EventReader
from edge_agent.storage.settings import Restored, Settings

JPEG = b"\xff\xd8" + b"\x00" * 100


def kept(path: Path, cameras: dict) -> JsonFile:
    path.write_text(json.dumps({"cameras": cameras}))
    return JsonFile(path)


def test_settings_restore_while_the_config_says_what_it_said(tmp_path: Path, caplog: pytest.LogCaptureFixture):
    caplog.set_level(logging.INFO, logger="edge_agent.storage.settings")
    file = kept(tmp_path / "settings.json", {"door": {"enabled": False, "fps": 0.5, "config_fps": 2.0}})
    s = Settings(file, max_fps=60.0)
    assert s.restore("door", 2.0) == Restored(fps=0.5, paused=True)
    assert [r.getMessage() for r in caplog.records] == [
        f"door: fps 0.5, paused, as set over MQTT before the restart (kept in {file.path})"]
    caplog.clear()
    assert s.restore("door", 3.0) == Restored(fps=None, paused=True)  # the config's fps was edited: it wins
    assert s.restore("gate", 2.0) == Restored()
    assert [r.getMessage() for r in caplog.records] == [
        f"door: paused, as set over MQTT before the restart (kept in {file.path})"]


@pytest.mark.parametrize("fps", [0, -1, 61, float("inf"), True, "1", None, 2.0])
def test_settings_restore_no_fps_that_is_out_of_bounds_or_the_configs_own(tmp_path: Path, fps):
    file = kept(tmp_path / "settings.json", {"door": {"enabled": True, "fps": fps, "config_fps": 2.0}})
    assert Settings(file, max_fps=60.0).restore("door", 2.0) == Restored()


def test_settings_record_keeps_the_same_document(tmp_path: Path):
    path = tmp_path / "settings.json"
    s = Settings(JsonFile(path), max_fps=60.0)
    s.record("door", enabled=False, fps=1 / 3, config_fps=2.0)
    assert json.loads(path.read_text()) == {
        "cameras": {"door": {"enabled": False, "fps": 0.333333, "config_fps": 2.0}}}
    again = Settings(JsonFile(path), max_fps=60.0)
    assert again.restore("door", 2.0) == Restored(fps=0.333333, paused=True)
    memory = Settings(None, max_fps=60.0)  # no state_dir: kept for this run only
    memory.record("door", enabled=True, fps=0.5, config_fps=2.0)
    assert memory.restore("door", 2.0) == Restored(fps=0.5)


def test_event_log_has_the_readers_signatures():
    """EventLog is what the agent hands the readers as an EventReader: same calls, same shapes."""
    members = [n for n in vars(EventReader) if not n.startswith("_")]
    assert sorted(members) == ["add_seconds", "delivered", "history", "stats", "thumbnail", "undelivered"]
    for name in members:
        want = vars(EventReader)[name]
        if isinstance(want, property):
            continue  # add_seconds: an attribute of the log, checked below
        have = vars(EventLog)[name]
        assert inspect.signature(have) == inspect.signature(want), name
        assert inspect.iscoroutinefunction(have) == inspect.iscoroutinefunction(want), name
    log = EventLog(None, EventsConfig())
    assert list(log.add_seconds) == []


async def test_event_log_without_a_store_reads_empty(tmp_path: Path):
    log = EventLog(None, EventsConfig())
    assert not await log.open()
    assert await log.history(camera="door") == []
    assert await log.thumbnail(1) is None
    assert await log.undelivered(0, 10) == []
    assert await log.decided_before("door") is None
    log.delivered([1])
    assert log.stats() == {"events": 0, "undelivered": 0, "dropped": 0, "bytes": 0}
    await log.close()


async def test_event_log_reads_through_its_store(tmp_path: Path):
    log = EventLog(tmp_path / "events.db", EventsConfig())
    assert await log.open()
    first = await log.add("door", "open", 0.9, 100.0, JPEG)
    second = await log.add("gate", "closed", 0.8, 200.0, None, since=150.0)
    assert first is not None and second is not None
    assert [e.id for e in await log.history()] == [second.id, first.id]
    assert [e.id for e in await log.history(camera="door")] == [first.id]
    assert [e.id for e in await log.history(since=150.0, until=300.0, limit=5)] == [second.id]
    assert await log.thumbnail(first.id) == JPEG
    assert [e.id for e in await log.undelivered(first.id, 10)] == [second.id]
    assert await log.decided_before("gate") == ("closed", 150.0)
    log.delivered([first.id, second.id])
    assert await log.undelivered(0, 10) == []
    assert log.stats()["events"] == 2 and log.stats()["undelivered"] == 0
    assert len(log.add_seconds) == 2
    await log.close()
