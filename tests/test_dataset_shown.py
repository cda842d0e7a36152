"""Training data shown outside the core (issue #20, item 7): the status topic's ``dataset``,
/api/status, /api/events' "saved for training", /metrics, and the page as a person sees it
in headless Chromium.

The agent is real (its cameras, status topic, event store on disk, status server over
real HTTP, metrics), but not running: what it shows of the collection comes from a small
:class:`FixedCollection` with fixed figures. The real Collection is tested with the
uploader in test_dataset_collect.py."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import threading
import time
from pathlib import Path
from typing import Any, Iterator, Mapping

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from edge_agent.agent import Agent
from edge_agent.config import parse_config
from edge_agent.collection_view import DatasetStatus, Paused
from edge_agent.messages import StatusMessage
from edge_agent.outputs.dispatch import Dispatcher
from edge_agent.status_topic import StatusTopic
from edge_agent.storage.eventstore import EventStore
from edge_agent.web.server import StatusServer
from tests import webdriver
from tests.helpers import ROOT, free_port, wait_until
from tests.inprocess import RecordingOutput

ARTIFACTS = ROOT / "test-artifacts"
SECRET = "rf_dataset_SECRET_key_5"
UPLOADING = DatasetStatus(saved_today=7, saved_hour=2, queued=3, queued_mb=1.234, sent_today=11, dropped=1,
                          paused=None, last_error=None)
PAUSED = DatasetStatus(saved_today=7, saved_hour=2, queued=4, queued_mb=1.5, sent_today=11, dropped=1,
                       paused=Paused.UNAUTHORIZED, last_error=f"HTTP 401 for ...?api_key={SECRET}")


class FixedCollection:
    """A :class:`~edge_agent.collection_view.CollectionView` with fixed figures: ``door``
    collects, ``yard`` does not (its sampling is off)."""

    def __init__(self, status: DatasetStatus = UPLOADING, saved: Mapping[str, set[float]] | None = None):
        self.now = status
        self.saved_at = dict(saved or {})

    def enabled_for(self, camera: str) -> bool:
        return camera == "door"

    def status(self, camera: str) -> DatasetStatus:
        assert camera == "door", "only a collecting camera's status is asked for"
        return self.now

    def counts(self) -> Mapping[tuple[str, str], int]:
        return {("overruled", "uploaded"): 5, ("change", "queued"): 3, ("uncertain", "limited"): 2}

    def queue_length(self) -> int:
        return self.now.queued

    def queue_bytes(self) -> int:
        return int(self.now.queued_mb * 1024 * 1024)

    def saved(self, camera: str, at: float) -> bool:
        return any(abs(t - at) < 1e-3 for t in self.saved_at.get(camera, ()))


def config(tmp: Path, port: int = 0) -> Any:
    return parse_config({
        "device_id": "t", "api": {"url": "http://127.0.0.1:9", "model": "colours/1", "api_key": SECRET},
        "mqtt": {"topic_prefix": "edge_agent/t"}, "homeassistant": {"discovery": False},
        "status": {"listen": f"127.0.0.1:{port or free_port()}"}, "state_dir": str(tmp / "state"),
        "log_summary_interval": 0,
        "cameras": [{"name": "door", "source": "rtsp://cam/door", "classes": ["red", "green", "blue"]},
                    {"name": "yard", "source": "rtsp://cam/yard", "sampling": {"enabled": False}}]}, {})


# -- the status topic -----------------------------------------------------------------------

def status_topic(tmp: Path, collection: FixedCollection | None) -> tuple[Agent, StatusTopic, RecordingOutput]:
    agent = Agent(config(tmp))
    out = RecordingOutput(prefix="edge_agent/t")
    outputs = Dispatcher()
    outputs.attach([out])
    topic = StatusTopic(agent.cfg, agent.cameras, agent.endpoints, agent.budget, outputs, collection=collection)
    for cam in agent.cameras.values():
        cam.health.opened = cam.health.online = True
    return agent, topic, out


def test_the_status_carries_the_collection_of_a_collecting_camera(tmp_path: Path):
    agent, topic, out = status_topic(tmp_path, FixedCollection())
    door = topic.message(agent.cameras["door"])
    assert door.dataset == {"saved_today": 7, "saved_hour": 2, "queued": 3, "queued_mb": 1.23, "sent_today": 11,
                            "dropped": 1, "paused": None, "last_error": None}
    assert json.loads(door.payload())["dataset"] == door.dataset
    assert topic.message(agent.cameras["yard"]).dataset is None  # its sampling is off
    _, plain, _ = status_topic(tmp_path / "off", None)  # dataset.enabled off: no collection
    assert all(plain.message(cam).dataset is None for cam in plain.cameras.values())
    assert json.loads(plain.message(plain.cameras["door"]).payload())["dataset"] is None


def test_uploads_paused_is_published_at_once(tmp_path: Path):
    collection = FixedCollection()
    agent, topic, out = status_topic(tmp_path, collection)
    door = agent.cameras["door"]
    topic.publish(door)
    assert len([m for m in out.messages if m.topic.endswith("/door/status")]) == 1
    collection.now = dataclasses.replace(UPLOADING, saved_today=8)
    topic.publish(door)  # a figure moved: not before status_interval
    assert len([m for m in out.messages if m.topic.endswith("/door/status")]) == 1
    collection.now = PAUSED
    topic.publish(door)  # a pause is a change of health: at once
    sent = [m for m in out.messages if m.topic.endswith("/door/status")]
    assert len(sent) == 2 and sent[-1].retain
    assert json.loads(sent[-1].payload)["dataset"]["paused"] == "unauthorized"


# -- /api/status, /api/events, /metrics and the page, over real HTTP -------------------------

class Served:
    """The agent's status server on a loop of its own (the test's thread speaks HTTP to it)."""

    def __init__(self, agent: Agent):
        self.agent = agent
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="served", daemon=True)
        self.thread.start()
        assert self.call(agent.events.open())
        self.server = StatusServer(agent)
        self.call(self.server.start())
        self.url = f"http://127.0.0.1:{agent.cfg.status.port}"

    def call(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(15)

    def close(self) -> None:
        try:
            self.call(self.server.stop())
            self.call(self.agent.events.close())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(10)
            self.loop.close()


def seed(state_dir: Path, now: float) -> dict[str, list[float]]:
    """Four state changes per camera in the last hour and a half, newest first."""
    state_dir.mkdir(parents=True, exist_ok=True)
    store = EventStore(state_dir / "events.db")
    store.open()
    times: dict[str, list[float]] = {}
    try:
        for cam in ("door", "yard"):
            times[cam] = []
            for k, cls in enumerate(("red", "green", "blue", "red")):
                at = round(now - 5400 + k * 1200 + 0.25, 3)
                store.add(cam, cls, 0.9, at, None)
                times[cam].insert(0, at)
    finally:
        store.close()
    return times


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Served, dict[str, list[float]]]]:
    now = time.time()
    times = seed(tmp_path / "state", now)
    agent = Agent(config(tmp_path))
    agent.started_at = now - 3 * 3600  # the events are this start's (saved() knows only those)
    # door's newest and third-newest were saved for training; yard collects nothing
    agent.collection = FixedCollection(PAUSED, {"door": {times["door"][0], times["door"][2]}})
    s = Served(agent)
    try:
        yield s, times
    finally:
        s.close()


def test_api_status_and_events_show_the_training_data(served):
    s, times = served
    status = requests.get(f"{s.url}/api/status", timeout=5).json()
    cams = {c["name"]: c for c in status["cameras"]}
    door = cams["door"]["dataset"]
    assert door["saved_today"] == 7 and door["queued"] == 4 and door["queued_mb"] == 1.5
    assert door["sent_today"] == 11 and door["paused"] == "unauthorized"
    assert door["last_error"] == "HTTP 401 for ...?api_key=***"  # redacted, whatever the collection says
    assert cams["yard"]["dataset"] is None  # not collected
    assert SECRET not in json.dumps(status)
    events = requests.get(f"{s.url}/api/events", timeout=5).json()["events"]
    marked = {(e["camera"], e["at"]) for e in events if e["saved_for_training"]}
    assert marked == {("door", times["door"][0]), ("door", times["door"][2])}
    assert all(isinstance(e["saved_for_training"], bool) for e in events) and len(events) == 8
    s.agent.collection = None  # dataset.enabled off: nothing is marked
    events = requests.get(f"{s.url}/api/events", timeout=5).json()["events"]
    assert [e["saved_for_training"] for e in events] == [False] * 8


def test_events_before_this_start_are_not_marked(served):
    s, times = served
    s.agent.started_at = times["door"][0] - 1  # only door's newest is from this start
    events = requests.get(f"{s.url}/api/events", params={"camera": "door"}, timeout=5).json()["events"]
    assert [e["saved_for_training"] for e in events] == [True, False, False, False]


def metric_samples(body: str) -> dict[tuple[str, tuple], float]:
    return {(x.name, tuple(sorted(x.labels.items()))): x.value
            for fam in text_string_to_metric_families(body) for x in fam.samples}


def test_metrics_show_the_uploads_and_the_queue(served):
    s, _ = served
    got = metric_samples(requests.get(f"{s.url}/metrics", timeout=5).text)
    up = "edge_agent_dataset_uploads_total"
    assert got[(up, (("outcome", "uploaded"), ("reason", "overruled")))] == 5
    assert got[(up, (("outcome", "queued"), ("reason", "change")))] == 3
    assert got[(up, (("outcome", "failed"), ("reason", "on_demand")))] == 0  # every series, from the start
    assert got[("edge_agent_dataset_queue_length", ())] == 4
    assert got[("edge_agent_dataset_queue_bytes", ())] == int(1.5 * 1024 * 1024)
    s.agent.collection = None  # dataset.enabled off: no series at all
    got = metric_samples(requests.get(f"{s.url}/metrics", timeout=5).text)
    assert not [k for k in got if k[0].startswith("edge_agent_dataset")]
    assert got[("edge_agent_frames_captured_total", (("camera", "door"),))] == 0  # the rest as before


@pytest.fixture(scope="module")
def browser_needed():
    if not webdriver.available():
        if os.environ.get("CI"):
            pytest.fail("chromium and chromium-driver must be installed in CI (scripts/setup.sh does)")
        pytest.skip("chromium / chromedriver not installed")


def cards(browser: webdriver.Browser) -> dict[str, dict]:
    return {c["name"]: c for c in browser.js("""return [...document.querySelectorAll('.card')].map(c => {
        const t = c.querySelector('.training');
        const shown = e => !!e && !e.closest('[hidden]') && e.getBoundingClientRect().height > 0;
        return {name: c.dataset.camera, training: shown(t), text: shown(t) ? t.innerText : '',
                paused: shown(c.querySelector('.uploads-paused')) ? c.querySelector('.uploads-paused').innerText : null,
                events: [...c.querySelectorAll('.events li.event')].map(li => ({id: +li.dataset.id,
                    saved: li.classList.contains('saved'), text: li.innerText,
                    mark: shown(li.querySelector('.ev-saved'))}))};
    })""")}


def test_the_page_shows_the_training_data_and_marks_saved_events(served, browser_needed):
    s, times = served
    want = {e["id"]: e for e in requests.get(f"{s.url}/api/events", timeout=5).json()["events"]}
    browser = webdriver.Browser()
    try:
        browser.get(s.url + "/")
        shown = wait_until(lambda: (lambda c: c if len(c) == 2 and all(len(x["events"]) == 4 for x in c.values())
                                    and c["door"]["training"] else None)(cards(browser)),
                           15, interval=0.3, what="both cards with their events and door's training data")
        door, yard = shown["door"], shown["yard"]
        # as a person reads it: the figures, and why uploads stopped
        for text in ("saved for training today", "7 (2 in the last hour)", "waiting to upload", "4 (1.50 MB), 1 dropped",
                     "sent today", "11", "last upload error", "HTTP 401"):
            assert text in door["text"], (text, door["text"])
        assert door["paused"] and door["paused"].startswith("uploads paused: the upload key was refused"), door
        assert SECRET not in door["text"]
        assert not yard["training"] and yard["paused"] is None  # yard's frames are not collected
        # the recent events: the saved ones carry the mark, the others none
        for card in (door, yard):
            for ev in card["events"]:
                saved = want[ev["id"]]["saved_for_training"]
                assert ev["saved"] == ev["mark"] == saved, (card["name"], ev)
                assert ("saved for training" in ev["text"]) == saved
        assert [ev["saved"] for ev in door["events"]] == [True, False, True, False]
        assert not any(ev["saved"] for ev in yard["events"])
        assert browser.js("return [...document.querySelectorAll('.card h2 .uploads')].map(b => !b.hidden)") == \
            [True, False]  # and a badge beside the camera's name
        requests.post(f"{browser.session}/window/rect", json={"width": 1280, "height": 1500},
                      timeout=10).raise_for_status()
        browser.js("window.scrollTo(0, 0)")
        time.sleep(0.3)
        browser.screenshot(ARTIFACTS / "status-page-training.png")

        # uploading again: the flag goes, the figures follow (the page refreshes every 2 s)
        s.agent.collection.now = UPLOADING
        after = wait_until(lambda: (lambda c: c if c["door"]["paused"] is None else None)(cards(browser)), 10,
                           interval=0.3, what="the paused flag to go")
        assert "3 (1.23 MB), 1 dropped" in after["door"]["text"] and "none" in after["door"]["text"]
        assert browser.js("return document.querySelector('.card[data-camera=door] h2 .uploads').hidden")

        # a phone: nothing wider than the screen with the marks and the training box
        requests.post(f"{browser.session}/window/rect", json={"width": 360, "height": 780},
                      timeout=10).raise_for_status()
        wait_until(lambda: browser.js("return window.innerWidth") <= 360, 5, what="the narrow window")
        time.sleep(0.5)
        fit = browser.js("return {scroll: document.documentElement.scrollWidth, inner: window.innerWidth}")
        assert fit["scroll"] <= fit["inner"] + 1, fit
        browser.screenshot(ARTIFACTS / "status-page-training-phone.png")
    finally:
        browser.close()


def test_a_status_message_without_dataset_is_as_before():
    """An agent without collection publishes ``"dataset": null``; nothing else moves."""
    msg = StatusMessage(camera="online", api="ok", frames_captured=1, frames_dropped=0, frames_sent=1,
                        requests_ok=1, requests_failed=0, messages_dropped=0, last_error=None)
    assert json.loads(msg.payload())["dataset"] is None and msg.health()[-2] is None


# -- a running agent, with the real collection and the stand-in's upload routes ----------------

@pytest.mark.timeout(90)
def test_a_running_agent_shows_what_it_collected(tmp_path: Path, videos, broker, recorder):
    """Everything outside the core, against the real thing: the discovery configs Home Assistant
    would get, /api/status, /api/events and /metrics of an agent uploading to the stand-in."""
    from tests.ha_schema import validate_discovery
    from tests.helpers import AgentProc, Recorder, agent_config
    from tools.standin_api import StandinApi, ThreadedStandin

    ha = Recorder(broker.port, "homeassistant")
    with ThreadedStandin(StandinApi(api_key=SECRET, dataset_dir=tmp_path / "uploaded")) as api:
        cfg = agent_config(api_url=api.url, broker_port=broker.port, api_key=SECRET, cameras=[
            {"name": "door", "source": str(videos["rgb"]), "fps": 4, "loop": True, "classes": ["red", "green", "blue"]},
            {"name": "yard", "source": str(videos["red_long"]), "fps": 2, "loop": True,
             "sampling": {"enabled": False}}])
        cfg["dataset"] = {"enabled": True, "url": api.url, "per_hour": 50, "per_day": 100}
        url = "http://" + cfg["status"]["listen"]
        agent = AgentProc(tmp_path, cfg)
        try:
            def uploaded() -> dict | None:
                try:
                    cams = {c["name"]: c for c in requests.get(f"{url}/api/status", timeout=5).json()["cameras"]}
                except requests.RequestException:
                    return None
                ds = cams["door"]["dataset"]
                return cams if ds and ds["sent_today"] >= 2 and ds["saved_today"] >= 2 else None

            cams = wait_until(uploaded, 40, interval=0.5, what="door's changes uploaded")
            door = cams["door"]["dataset"]
            assert door["paused"] is None and door["last_error"] is None and door["queued_mb"] >= 0
            assert cams["yard"]["dataset"] is None  # yard's sampling is off
            # the status topic carries the same figures (Home Assistant's sensors read them there)
            status = recorder.wait_for("door/status", lambda m: (m.json()["dataset"] or {}).get("sent_today", 0) >= 2,
                                       timeout=10).json()["dataset"]
            assert set(status) == set(door) and status["paused"] is None
            assert recorder.last("yard/status").json()["dataset"] is None

            events = requests.get(f"{url}/api/events", params={"camera": "door"}, timeout=5).json()["events"]
            assert any(e["saved_for_training"] for e in events), events  # the frames that decided a change
            yard = requests.get(f"{url}/api/events", params={"camera": "yard"}, timeout=5).json()["events"]
            assert yard and not any(e["saved_for_training"] for e in yard)

            got = metric_samples(requests.get(f"{url}/metrics", timeout=5).text)
            assert got[("edge_agent_dataset_uploads_total", (("outcome", "uploaded"), ("reason", "change")))] >= 2
            assert ("edge_agent_dataset_queue_length", ()) in got and ("edge_agent_dataset_queue_bytes", ()) in got

            # Home Assistant's view: the training-data entities of door (not yard), valid for HA
            configs = {m.topic: m.json() for m in ha.all() if m.payload}
            ours = {t.split("/")[-2]: (t, p) for t, p in configs.items()
                    if any(k in t for k in ("save_for_training", "correct_class", "saved_today", "dataset_queued"))}
            assert set(ours) == {"door_save_for_training", "door_correct_class", "door_saved_today", "dataset_queued"}
            for topic, payload in ours.values():
                validate_discovery(topic, payload)
            # the button's press, as Home Assistant sends it: one more frame saved, on demand
            before = door["saved_today"]
            press = ours["door_save_for_training"][1]
            recorder.client.publish(press["command_topic"], press["payload_press"], qos=1).wait_for_publish(5)
            wait_until(lambda: metric_samples(requests.get(f"{url}/metrics", timeout=5).text).get(
                ("edge_agent_dataset_uploads_total", (("outcome", "queued"), ("reason", "on_demand"))), 0) >= 1,
                15, what="the on-demand frame queued")
            assert wait_until(lambda: requests.get(f"{url}/api/status", timeout=5).json()["cameras"][0]["dataset"][
                "saved_today"] > before, 10, what="saved today to count it")
        finally:
            agent.signal()
            assert agent.wait(15) == 0
            agent.close()
            ha.close()
    log = agent.log()
    assert "Traceback" not in log and SECRET not in log
