"""Every entity Home Assistant shows reads a retained topic: a subscriber that comes after
the last result (Home Assistant after its own restart, with the change gate on and a still
picture, so no result follows) still gets the confidence, the state and the rest."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import jinja2
import pytest

from tests.helpers import AgentProc, Broker, Recorder, agent_config, wait_until
from tools.standin_api import StandinApi, ThreadedStandin

KEY = "rf_retained_SECRET_6"
PREFIX = "edge_agent/test"


def _ha_render(template: str, payload: bytes) -> str:
    value = payload.decode()
    variables = {"value": value}
    try:
        variables["value_json"] = json.loads(value)
    except ValueError:
        pass
    return jinja2.Environment(undefined=jinja2.StrictUndefined).from_string(template).render(**variables).strip()


@pytest.mark.timeout(90)
def test_a_late_subscriber_gets_the_confidence_from_a_retained_topic(tmp_path: Path, videos, broker: Broker,
                                                                     recorder: Recorder):
    with ThreadedStandin(StandinApi(api_key=KEY)) as api:
        cfg = agent_config(api_url=api.url, broker_port=broker.port, api_key=KEY, gate=True,
                           cameras=[{"name": "cam", "source": str(videos["red_long"]), "fps": 3, "loop": True,
                                     "classes": ["red", "blue"]}])
        cfg["dataset"] = {"enabled": True, "url": api.url}  # and the training-data entities (#20)
        agent = AgentProc(tmp_path, cfg)
        try:
            recorder.wait_for("cam/state", timeout=30)
            # The gate on and a still picture: results stop once the state is decided.
            wait_until(lambda: recorder.last("cam/result") and time.monotonic() - recorder.last("cam/result").at > 3,
                       30, what="the results to stop")
            last = recorder.last("cam/result").json()
            late = Recorder(broker.port, PREFIX)
            ha = Recorder(broker.port, "homeassistant")
            try:
                time.sleep(1.5)
                assert late.all("cam/result") == []  # results are not retained: the late one gets none
                got = late.last("cam/confidence")
                assert got is not None and got.retain
                assert got.json() == {"class": last["state"], "confidence": last["state_confidence"],
                                      "at": last["captured_at"]}
                # Every entity of the camera that shows a value reads a topic the late one has.
                retained = {m.topic: m.payload for m in late.all() if m.retain and m.payload}
                configs = [m.json() for m in ha.all() if m.payload and "_cam_" in m.json().get("unique_id", "")]
                assert len(configs) >= 9
                assert {c["unique_id"].rsplit("_cam_", 1)[1] for c in configs} >= {
                    "save_for_training", "correct_class", "saved_today"}
                for c in configs:
                    if "state_topic" not in c and "image_topic" not in c:
                        continue  # a button shows no value
                    if c["unique_id"].endswith("_change"):
                        continue  # the event entity: events are not retained (HA's event entity is stateless)
                    read = c.get("state_topic") or c.get("image_topic")
                    assert read in retained, (c["unique_id"], read)
                    rendered = _ha_render(c["value_template"], retained[read]) if "value_template" in c else "image"
                    assert rendered not in ("", "None"), (c["unique_id"], rendered)
                    if c["unique_id"].endswith("_confidence"):
                        assert float(rendered) == round(last["state_confidence"] * 100, 1)
            finally:
                late.close()
                ha.close()
        finally:
            agent.signal(signal.SIGTERM)
            assert agent.wait(10) == 0
            agent.close()


@pytest.mark.timeout(90)
def test_a_late_subscriber_gets_every_view_s_values_from_retained_topics(tmp_path: Path, videos, broker: Broker,
                                                                         recorder: Recorder):
    """#21: a camera with two views (the halves of a red|blue picture): each view's entities
    read its own retained topics, which show its own half; the camera itself publishes none."""
    views = {"garage-left-door": "red", "garage-right": "blue"}
    with ThreadedStandin(StandinApi(api_key=KEY)) as api:
        cfg = agent_config(api_url=api.url, broker_port=broker.port, api_key=KEY, gate=True, cameras=[
            {"name": "garage", "source": str(videos["red_blue_split"]), "fps": 3, "loop": True,
             "classes": ["red", "blue"],
             "views": [{"name": "left-door", "region": [0, 0, 0.5, 1]}, {"name": "right", "region": [0.5, 0, 1, 1]}]}])
        agent = AgentProc(tmp_path, cfg)
        try:
            for view in views:
                recorder.wait_for(f"{view}/state", timeout=30)
            wait_until(lambda: all(recorder.last(f"{v}/result") and time.monotonic() - recorder.last(f"{v}/result").at > 3
                                   for v in views), 30, what="the results to stop")
            late = Recorder(broker.port, PREFIX)
            ha = Recorder(broker.port, "homeassistant")
            try:
                time.sleep(1.5)
                retained = {m.topic: m.payload for m in late.all() if m.retain and m.payload}
                assert not any(t.startswith(f"{PREFIX}/garage/") for t in retained)  # the camera: none of its own
                configs = [m.json() for m in ha.all() if m.payload]
                for view, colour in views.items():
                    mine = [c for c in configs if c["unique_id"].startswith(f"edge_agent_test_{view}_")]
                    assert len(mine) == 7, (view, [c["unique_id"] for c in mine])
                    for c in mine:
                        if "state_topic" not in c and "image_topic" not in c or c["unique_id"].endswith("_change"):
                            continue  # a button shows no value; events are not retained
                        read = c.get("state_topic") or c.get("image_topic")
                        assert read.startswith(f"{PREFIX}/{view}/") and read in retained, (c["unique_id"], read)
                        rendered = _ha_render(c["value_template"], retained[read]) if "value_template" in c else "image"
                        assert rendered not in ("", "None"), (c["unique_id"], rendered)
                        if c["unique_id"].endswith("_class"):
                            assert rendered == colour, (view, rendered)  # its own half, no cross-talk
                        for a in c["availability"][1:]:
                            assert _ha_render(a["value_template"], retained[a["topic"]]) == "online"
            finally:
                late.close()
                ha.close()
        finally:
            agent.signal(signal.SIGTERM)
            assert agent.wait(10) == 0
            agent.close()
