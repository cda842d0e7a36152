"""Admission, the change gate and the budget, in the real agent, in-process:
a generated scene on a fake clock, a fake classifier, a recording output
(tests/inprocess.py). No subprocess, no sleeps, the same outcome every run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edge_agent.storage.files import JsonFile
from tests.inprocess import FakeClassifier, config, control, on_loop, play
from tools.scenes import Scene

pytestmark = pytest.mark.timeout(120)


async def test_gate_calls_only_on_news_and_publishes_every_change(tmp_path: Path):
    """The issue's scene: static but for two class changes, a passer-by and a lighting fade."""
    scene = Scene(seconds=100)
    run = await play(config(tmp_path, {"change": {"ignore": [list(Scene.CLOCK_BOX)]}}), scene)
    assert run.out.states() == ["red", "green", "blue"]
    ceiling = scene.seconds * 2  # fps 2
    calls = len(run.api.calls)
    assert calls <= 0.10 * ceiling, f"{calls} calls of the {ceiling:.0f} the ceiling allows"
    status = run.out.last_status()
    assert status["calls"] == calls
    assert status["frames_unchanged"] >= ceiling - calls - 5
    assert status["last_change"] is not None
    reasons = dict(run.agent.cameras["cam"].admission.calls)
    assert reasons.get("confirm", 0) >= 2  # the gate let the confirming calls through
    assert "heartbeat" not in reasons  # 100 s < the default heartbeat of 600 s


async def test_gate_off_calls_at_the_ceiling(tmp_path: Path):
    scene = Scene(seconds=20, classes=[(0, "red"), (10, "green")], passer=None, fade=None)
    run = await play(config(tmp_path, {"change": {"enabled": False}}), scene)
    assert run.out.states() == ["red", "green"]
    assert 39 <= len(run.api.calls) <= 40  # every look at fps 2 is a call


async def test_confirm_is_honoured_on_a_still_picture(tmp_path: Path):
    """A change then stillness: the gate keeps calling until `confirm` results agree."""
    scene = Scene(seconds=20, classes=[(0, "red"), (10, "green")], passer=None, fade=None, led=False, clock=False)
    run = await play(config(tmp_path, {"decide": {"confirm": 4}}), scene)
    assert run.out.states() == ["red", "green"]
    reasons = run.agent.cameras["cam"].admission.calls
    # start: 1 change + 3 confirms; at 10 s: 1 change + 3 confirms; nothing else.
    assert reasons["change"] == 2 and reasons["confirm"] == 6, dict(reasons)


async def test_heartbeat_classifies_a_still_picture_now_and_then(tmp_path: Path):
    scene = Scene(seconds=60, classes=[(0, "red")], passer=None, fade=None)
    run = await play(config(tmp_path, {"change": {"heartbeat": 15, "ignore": [list(Scene.CLOCK_BOX)]}}), scene)
    reasons = run.agent.cameras["cam"].admission.calls
    # The first state is verified once, 30 s (stale_after / 2) after it settled; a heartbeat's
    # result that agrees first verifies it as well: at 15, 30 and 45 s after the last call.
    assert reasons["heartbeat"] == 3 and reasons["confirm"] == 2, dict(reasons)


async def test_classify_now_goes_past_the_gate(tmp_path: Path):
    scene = Scene(seconds=20, classes=[(0, "red")], passer=None, fade=None)

    def hook(agent, i: int) -> None:
        if i in (100, 150):  # 10 s and 15 s into a still scene
            on_loop(agent, control, agent, "edge_agent/t/cam/classify", b"PRESS")

    run = await play(config(tmp_path, {"change": {"ignore": [list(Scene.CLOCK_BOX)]}}), scene, hook=hook)
    assert run.agent.cameras["cam"].admission.calls["on_demand"] == 2


async def test_budget_is_never_exceeded_and_says_so(tmp_path: Path, caplog):
    """7 calls a day: the first look, then on-demand requests (never paced, only
    refused once the day is spent, with a log line)."""
    scene = Scene(seconds=20, classes=[(0, "red")], passer=None, fade=None)

    def hook(agent, i: int) -> None:
        if i % 10 == 5:  # twenty requests, one a second
            on_loop(agent, control, agent, "edge_agent/t/cam/classify", b"")

    cfg = config(tmp_path, {"change": {"ignore": [list(Scene.CLOCK_BOX)]}}, api={
        "url": "http://127.0.0.1:9", "model": "colours/1", "budget": {"calls_per_day": 7}})
    run = await play(cfg, scene, hook=hook)
    assert len(run.api.calls) == 7
    budget = run.out.last_status()["budget"]
    assert budget["calls_today"] == 7 and budget["exhausted"] is True and budget["calls_limit"] == 7
    assert caplog.text.count("classify now' refused") == 1  # once, not once per request
    # A restart the same day: the count is kept, so not one more call.
    again = await play(cfg, Scene(seconds=5, classes=[(0, "red")], passer=None, fade=None))
    assert again.api.calls == []
    assert again.out.last_status()["budget"]["calls_today"] == 7


async def test_credits_are_counted_from_the_replies(tmp_path: Path):
    scene = Scene(seconds=10, classes=[(0, "red")], passer=None, fade=None)
    run = await play(config(tmp_path, {"change": {"enabled": False}}), scene, api=FakeClassifier(credits=0.0003))
    budget = run.out.last_status()["budget"]
    assert budget["credits_today"] == pytest.approx(0.0003 * len(run.api.calls), abs=1e-6)


async def test_settings_made_over_mqtt_survive_a_restart(tmp_path: Path):
    scene = Scene(seconds=3, classes=[(0, "red")], passer=None, fade=None)

    def hook(agent, i: int) -> None:
        if i == 5:
            on_loop(agent, control, agent, "edge_agent/t/cam/set/fps", b"0.5")

    cfg = config(tmp_path)
    await play(cfg, scene, hook=hook)
    kept = JsonFile(Path(cfg.state_dir) / "settings.json").load()
    assert kept["cameras"]["cam"]["fps"] == 0.5
    again = await play(cfg, scene)
    assert again.agent.cameras["cam"].fps == 0.5
    # The config file edited since: the file wins.
    edited = config(tmp_path, {"fps": 3})
    third = await play(edited, scene)
    assert third.agent.cameras["cam"].fps == 3


async def test_stale_when_needed_checks_fail_and_fresh_again(tmp_path: Path):
    """The API fails for longer than stale_after while calls are needed: the retained
    state says stale (with since when); the first good result clears it."""
    import time as _time

    from edge_agent.classify import ApiError

    class Failing(FakeClassifier):
        failing = False

        async def classify(self, jpeg: bytes, model=None):
            if self.failing:
                raise ApiError("http_5xx", "server error (HTTP 503)", status=503)
            return await super().classify(jpeg)

    api = Failing()

    def hook(agent, i: int) -> None:
        if i == 30:
            api.failing = True
        if i == 50:
            _time.sleep(1.6)  # real time for the watchdog: stale_after is 1 s
        if i == 70:
            api.failing = False

    scene = Scene(seconds=10, classes=[(0, "red")], passer=None, fade=None)
    cfg = config(tmp_path, {"change": {"enabled": False}, "decide": {"stale_after": 1}},
                 api={"url": "http://127.0.0.1:9", "model": "colours/1", "retry_initial": 0.1, "retry_max": 0.2})
    run = await play(cfg, scene, api=api, hook=hook)
    states = [json.loads(m.payload) for m in run.out.messages if m.topic.endswith("/cam/state")]
    assert [s["stale"] for s in states] == [False, True, False], states
    assert states[1]["class"] == "red" and states[1]["stale_since"] is not None
    assert states[0]["votes"]["for"] == 4


async def test_a_still_picture_with_no_calls_is_not_stale(tmp_path: Path):
    """With the gate on, an API that would fail is never asked while nothing changes: not stale."""
    import time as _time

    def hook(agent, i: int) -> None:
        if i == 50:
            agent.guard.not_before = _time.monotonic() + 3600  # the API "down": nothing may be sent
            _time.sleep(1.6)

    scene = Scene(seconds=10, classes=[(0, "red")], passer=None, fade=None, led=False, clock=False)
    run = await play(config(tmp_path, {"decide": {"stale_after": 1}}), scene, hook=hook)
    states = [json.loads(m.payload) for m in run.out.messages if m.topic.endswith("/cam/state")]
    assert [s["stale"] for s in states] == [False]
