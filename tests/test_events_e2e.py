"""Events end to end: durable across a broker outage and an agent SIGKILL, a corrupt
database at start, the history API, and two agents on one broker."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest
import requests

from tests.helpers import AgentProc, Broker, Recorder, agent_config, wait_until
from tools.standin_api import StandinApi, ThreadedStandin

KEY = "rf_events_SECRET_5"
PREFIX = "edge_agent/test"


def persistent_broker(d: Path, port: int | None = None) -> Broker:
    """A broker that keeps sessions across its restarts, so a subscriber with a
    persistent session misses nothing published while it reconnects."""
    (d / "mq").mkdir(exist_ok=True)
    return Broker(d, port=port, extra=f"allow_anonymous true\npersistence true\npersistence_location {d / 'mq'}/\n")


def persistent_recorder(port: int) -> Recorder:
    return Recorder(port, PREFIX, session="events-recorder")


@pytest.mark.timeout(150)
def test_no_event_is_lost_across_a_broker_outage_and_a_sigkill(tmp_path: Path, videos):
    broker = persistent_broker(tmp_path).start()
    rec = persistent_recorder(broker.port)
    try:
        with ThreadedStandin(StandinApi(api_key=KEY)) as api:
            cfg = agent_config(api_url=api.url, broker_port=broker.port, api_key=KEY,
                               cameras=[{"name": "cam", "source": str(videos["rgb"]), "fps": 4, "loop": True}])
            cfg["state_dir"] = str(tmp_path / "state")
            agent = AgentProc(tmp_path, cfg)
            try:
                rec.wait_for("cam/event", timeout=30)
                broker.stop()  # the class keeps changing: red, blue, green every 3 s
                time.sleep(5)
                agent.signal(signal.SIGKILL)  # during the outage, with events not yet delivered
                agent.wait(5)
                agent.close()
                agent = AgentProc(tmp_path, cfg)  # the same state_dir: the chain continues
                time.sleep(6)
                broker.start()
                wait_until(lambda: "sent" in agent.log() and "held while the broker was away" in agent.log(), 90,
                           what="the held events to be sent")
                time.sleep(1)
            finally:
                agent.signal(signal.SIGTERM)
                agent.wait(10)
                agent.close()
        events = {}
        for m in rec.all("cam/event"):
            e = m.json()
            events.setdefault(e["id"], e)  # at least once: a resend after a reconnect is the same id
    finally:
        rec.close()
        broker.stop()
    ordered = [events[i] for i in sorted(events)]
    ids = [e["id"] for e in ordered]
    assert ids == list(range(ids[0], ids[0] + len(ids))), ids  # none missing
    assert len(ordered) >= 4  # changes while the broker was down, before and after the SIGKILL
    for before, after in zip(ordered, ordered[1:]):
        assert after["previous"] == before["class"], (before, after)  # the chain, restart included
        assert after["at"] >= before["at"]
    assert set(ordered[0]) == {"id", "camera", "class", "previous", "confidence", "at"}


@pytest.mark.timeout(60)
def test_a_corrupt_database_is_moved_aside_and_the_history_is_served(tmp_path: Path, videos, broker: Broker,
                                                                     recorder: Recorder):
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    (state / "events.db").write_bytes(b"this is not a database" * 100)
    with ThreadedStandin(StandinApi(api_key=KEY)) as api:
        cfg = agent_config(api_url=api.url, broker_port=broker.port, api_key=KEY,
                           cameras=[{"name": "cam", "source": str(videos["rgb"]), "fps": 4, "loop": True}])
        cfg["state_dir"] = str(state)
        agent = AgentProc(tmp_path, cfg)
        try:
            wait_until(lambda: len(recorder.all("cam/event")) >= 2, 30, what="two events")
            url = f"http://{cfg['status']['listen']}"
            body = requests.get(f"{url}/api/events?camera=cam&limit=10", timeout=5).json()["events"]
            assert len(body) >= 2 and body[0]["id"] > body[1]["id"]  # newest first
            assert body[0]["previous"] == body[1]["class"]
            pic = requests.get(url + body[0]["thumbnail"], timeout=5)
            assert pic.status_code == 200 and pic.content[:2] == b"\xff\xd8"
            assert requests.get(f"{url}/api/events?camera=nope", timeout=5).status_code == 404
            assert requests.get(f"{url}/api/events?limit=x", timeout=5).status_code == 400
        finally:
            agent.signal(signal.SIGTERM)
            assert agent.wait(10) == 0
            agent.close()
    assert list(state.glob("events.db.corrupt-*"))
    assert agent.log().count("events.db") >= 1 and "Traceback" not in agent.log()


@pytest.mark.timeout(60)
def test_two_agents_with_the_same_camera_names_share_a_broker(tmp_path: Path, videos, broker: Broker):
    ha = Recorder(broker.port, "homeassistant")
    recs = {d: Recorder(broker.port, f"edge_agent/{d}") for d in ("pi-one", "pi-two")}
    agents = []
    try:
        with ThreadedStandin(StandinApi(api_key=KEY)) as api:
            for device in recs:
                d = tmp_path / device
                d.mkdir()
                cfg = agent_config(api_url=api.url, broker_port=broker.port, api_key=KEY, prefix=f"edge_agent/{device}",
                                   cameras=[{"name": "door", "source": str(videos["red_long"]), "fps": 2,
                                             "loop": True, "classes": ["red", "blue"]}])
                cfg["device_id"] = device
                agents.append(AgentProc(d, cfg))
            for device, rec in recs.items():
                rec.wait_for("door/state", timeout=30)
            time.sleep(3)
            for device, rec in recs.items():
                assert rec.last("door/status").json()["mqtt_disconnects"] == 0  # no client id fight
        configs = [m for m in ha.all() if m.topic.endswith("/config") and m.payload]
        by_device: dict[str, set[str]] = {"pi-one": set(), "pi-two": set()}
        for m in configs:
            uid = m.json()["unique_id"]
            by_device["pi-one" if "pi-one" in uid else "pi-two"].add(uid)
        assert by_device["pi-one"] and by_device["pi-two"] and not (by_device["pi-one"] & by_device["pi-two"])
        assert len({m.topic for m in configs}) == len(by_device["pi-one"]) + len(by_device["pi-two"])
    finally:
        for a in agents:
            a.signal(signal.SIGTERM)
            a.wait(10)
            a.close()
        for r in list(recs.values()) + [ha]:
            r.close()


@pytest.mark.timeout(60)
def test_agents_sharing_a_prefix_keep_each_others_topics(tmp_path: Path, videos, broker: Broker):
    """Two devices, one topic prefix, cameras of their own: neither clears the other's
    retained topics as "a camera no longer in the config"."""
    rec = Recorder(broker.port, PREFIX)
    agents = []
    try:
        with ThreadedStandin(StandinApi(api_key=KEY)) as api:
            for device, camera in (("one", "porch"), ("two", "gate")):
                d = tmp_path / device
                d.mkdir()
                cfg = agent_config(api_url=api.url, broker_port=broker.port, api_key=KEY,
                                   cameras=[{"name": camera, "source": str(videos["red_long"]), "fps": 2, "loop": True}])
                cfg["device_id"] = device
                agents.append(AgentProc(d, cfg))
                rec.wait_for(f"{camera}/state", timeout=30)  # the second starts after the first's are retained
            time.sleep(2)
        assert not [m.topic for m in rec.all() if not m.payload]  # nothing cleared
    finally:
        for a in agents:
            a.signal(signal.SIGTERM)
            a.wait(10)
            a.close()
        rec.close()
