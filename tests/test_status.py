"""See it and use it: the status server, metrics, Home Assistant discovery, snapshots,
regions and the summary log line, against one running agent with three cameras:

* door: red -> blue -> green, looping file
* gate: left half red, right half blue, with ``region`` on the right half
* yard: an HTTP MJPEG stream whose URL carries a password
"""

from __future__ import annotations

import json
import os
import re
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np
import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from tests import webdriver
from tests.ha_schema import validate_discovery
from tests.helpers import ROOT, AgentProc, Broker, Recorder, agent_config, free_port, wait_until
from tests.streams import MjpegCamera
from tools.standin_api import StandinApi, ThreadedStandin

KEY = "rf_status_SECRET_key_8"
CAM_PASSWORD = "yard-CAM-pw-1234"
PREFIX = "edge_agent/test"
ARTIFACTS = ROOT / "test-artifacts"


@dataclass
class Running:
    agent: AgentProc
    api: StandinApi
    url: str
    rec: Recorder
    ha: Recorder
    broker: Broker


@pytest.fixture(scope="module")
def running(tmp_path_factory, videos) -> Iterator[Running]:
    d = tmp_path_factory.mktemp("status")
    broker = Broker(d).start()
    rec = Recorder(broker.port, PREFIX)
    ha = Recorder(broker.port, "homeassistant")
    port = free_port()
    with ThreadedStandin(StandinApi(api_key=KEY)) as api, MjpegCamera("green", fps=10) as yard:
        yard_url = yard.url.replace("http://", f"http://viewer:{CAM_PASSWORD}@")
        cfg = agent_config(api_url=api.url, broker_port=broker.port, api_key=KEY, cameras=[
            {"name": "door", "source": str(videos["rgb"]), "fps": 4, "loop": True},
            {"name": "gate", "source": str(videos["red_blue_split"]), "fps": 4, "loop": True,
             "region": [0.5, 0.0, 1.0, 1.0], "classes": ["blue", "red"]},
            {"name": "yard", "source": yard_url, "fps": 2},
        ])
        cfg["status"] = {"listen": f"127.0.0.1:{port}"}
        cfg["log_summary_interval"] = 2
        agent = AgentProc(d, cfg)
        try:
            for cam in ("door", "gate", "yard"):
                rec.wait_for(f"{cam}/state", timeout=40)
            yield Running(agent, api, f"http://127.0.0.1:{port}", rec, ha, broker)
        finally:
            agent.signal(signal.SIGTERM)
            agent.wait(10)
            agent.close()
            rec.close()
            ha.close()
            broker.stop()


def status(running: Running) -> dict:
    return requests.get(f"{running.url}/api/status", timeout=5).json()


def test_api_status_has_every_camera(running: Running):
    # Rates are over the last 5 s, sampled twice a second: wait for a few samples.
    s = wait_until(lambda: (lambda s: s if s["cameras"][0]["frames_in_per_s"] > 20 else None)(status(running)),
                   10, what="frame rates")
    assert s["device_id"] == "test" and s["mqtt"]["connected"] and s["api"]["status"] == "ok"
    cams = {c["name"]: c for c in s["cameras"]}
    assert set(cams) == {"door", "gate", "yard"}
    door = cams["door"]
    assert door["online"] and door["enabled"] and door["state"]["class"] in ("red", "blue", "green")
    assert door["latest"]["image"].startswith("/cameras/door/latest.jpg")
    assert 20 < door["frames_in_per_s"] < 40 and 0 < door["frames_out_per_s"] <= 4 * 1.5
    assert door["latency_ms"]["median"] is not None and door["latency_ms"]["p95"] >= door["latency_ms"]["median"]
    assert door["frames_dropped"] > 0 and door["last_error"] is None
    assert s["api"]["latency_ms"]["count"] > 0
    assert cams["gate"]["region"] == [0.5, 0.0, 1.0, 1.0]
    # what each entry is (#21): cameras without views, each its own, with the model it calls
    assert all((c["view_of"], c["view"], c["model"]) == (None, None, "colours/1") for c in cams.values())


def test_region_sends_only_the_crop(running: Running):
    s = requests.get(f"{running.url}/api/status", timeout=5).json()
    gate = next(c for c in s["cameras"] if c["name"] == "gate")
    assert gate["state"]["class"] == "blue"  # the left half is red; only the right half was sent
    sizes = {(r.width, r.height) for r in running.api.requests()}
    assert (160, 240) in sizes  # the right half of 320x240, under image_size: sent as is


def test_latest_frame_is_annotated_with_region_outlined(running: Running):
    r = requests.get(f"{running.url}/cameras/gate/latest.jpg", timeout=5)
    assert r.status_code == 200 and r.headers["Content-Type"] == "image/jpeg"
    img = cv2.imdecode(np.frombuffer(r.content, np.uint8), cv2.IMREAD_COLOR)
    assert img.shape[:2] == (240, 320)  # the whole frame, not the crop
    assert img[4:14, 4:30].mean() < 90  # the dark label bar
    edge = img[100:200, 159:162].reshape(-1, 3).mean(axis=0)  # the region's left edge, amber
    assert edge[1] > 150 and edge[2] > 200 and edge[0] < 100
    assert requests.get(f"{running.url}/cameras/nope/latest.jpg", timeout=5).status_code == 404


def test_healthz_ok_while_all_is_well(running: Running):
    r = requests.get(f"{running.url}/healthz", timeout=5)
    assert r.status_code == 200 and r.json() == {"ok": True, "reasons": []}


def test_metrics_in_prometheus_text(running: Running):
    r = requests.get(f"{running.url}/metrics", timeout=5)
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/plain")
    samples = {}
    for fam in text_string_to_metric_families(r.text):
        for s in fam.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    assert samples[("edge_agent_frames_captured_total", (("camera", "door"),))] > 0
    assert samples[("edge_agent_frames_dropped_total", (("camera", "door"),))] > 0
    assert samples[("edge_agent_frames_sent_total", (("camera", "gate"),))] > 0
    assert samples[("edge_agent_requests_total", (("camera", "door"), ("outcome", "ok")))] > 0
    assert samples[("edge_agent_requests_total", (("camera", "door"), ("outcome", "http_5xx")))] == 0
    assert samples[("edge_agent_request_latency_seconds_count", (("camera", "yard"),))] > 0
    assert samples[("edge_agent_mqtt_connected", ())] == 1
    assert samples[("edge_agent_camera_online", (("camera", "yard"),))] == 1
    assert ("edge_agent_mqtt_messages_dropped_total", ()) in samples


def test_no_secret_on_page_api_metrics_or_log(running: Running):
    texts = [requests.get(f"{running.url}{p}", timeout=5).text for p in ("/", "/api/status", "/metrics", "/healthz")]
    texts.append(running.agent.log())
    texts += [m.payload.decode(errors="replace") for m in running.rec.all() + running.ha.all()
              if not m.topic.endswith("/snapshot")]
    for text in texts:
        assert KEY not in text and CAM_PASSWORD not in text
    yard = next(c for c in requests.get(f"{running.url}/api/status", timeout=5).json()["cameras"]
                if c["name"] == "yard")
    assert yard["source"].startswith("http://***@127.0.0.1:")


def test_page_in_headless_chromium(running: Running):
    if not webdriver.available():
        if os.environ.get("CI"):
            pytest.fail("chromium and chromium-driver must be installed in CI (scripts/setup.sh does)")
        pytest.skip("chromium / chromedriver not installed")
    browser = webdriver.Browser()
    try:
        browser.get(running.url + "/")
        browser.wait_js("return document.querySelectorAll('.card[data-image-loaded]').length === 3", 30,
                        "every camera's image to load")
        cards = browser.js("""return [...document.querySelectorAll('.card')].map(c => ({
            name: c.dataset.camera, cls: c.querySelector('.cls').textContent, state: c.dataset.state,
            img: c.querySelector('img').naturalWidth, shown: c.querySelector('img').getBoundingClientRect().width,
            health: c.querySelector('.health').textContent, calls: c.querySelector('.calls').textContent}))""")
        budget = browser.js("return document.getElementById('budget').textContent")
        shot = browser.screenshot(ARTIFACTS / "status-page.png")
    finally:
        browser.close()
    by_name = {c["name"]: c for c in cards}
    assert set(by_name) == {"door", "gate", "yard"}
    assert by_name["gate"]["state"] == "blue" and by_name["gate"]["cls"].startswith("blue ")
    assert by_name["yard"]["state"] == "green"
    for c in cards:
        assert c["state"] in ("red", "green", "blue") and c["cls"].startswith(c["state"] + " ")
        assert c["img"] == 320 or c["img"] == 640 or c["img"] > 0  # decoded, not a broken image
        assert c["shown"] > 200 and c["health"] == "online"
    assert shot.stat().st_size > 10_000
    assert re.fullmatch(r"API calls today \d+, ≈ [\d.]+ credits", budget), budget
    assert all(re.fullmatch(r"\d+ / \d+", c["calls"]) for c in cards)  # calls / looked at, unchanged


def test_summary_line_in_the_log(running: Running):
    wait_until(lambda: "door: last 2 s:" in running.agent.log(), 10, what="a summary line")
    line = next(ln for ln in running.agent.log().splitlines() if "door: last 2 s:" in ln)
    assert "frames in" in line and "sent" in line and "unchanged" in line and "requests" in line \
        and "API latency median" in line


def test_home_assistant_discovery_is_published_and_valid(running: Running):
    configs = wait_until(lambda: [m for m in running.ha.all() if m.topic.endswith("/config")] or None, 10,
                         what="discovery messages")
    wait_until(lambda: len({m.topic for m in running.ha.all() if m.topic.endswith("/config")}) >= 11, 10,
               what="all discovery messages")
    latest = {m.topic: m for m in running.ha.all() if m.topic.endswith("/config")}
    components = [validate_discovery(topic, json.loads(m.payload)) for topic, m in latest.items()]
    assert components.count("sensor") == 6 + 2 and components.count("image") == 3
    assert components.count("button") == 3
    assert components.count("binary_sensor") == 2  # gate: blue, red; door, yard: none configured
    assert configs
    late = Recorder(running.broker.port, "homeassistant")  # retained: a restarted HA finds them
    try:
        wait_until(lambda: len({m.topic for m in late.all() if m.retain}) >= 11, 10, what="retained discovery")
    finally:
        late.close()


def test_birth_message_republishes_discovery_and_state(running: Running):
    before = time.monotonic()
    pub = Recorder(running.broker.port, "homeassistant")
    try:
        pub.client.publish("homeassistant/status", "online", qos=1).wait_for_publish(5)
    finally:
        pub.close()
    running.ha.wait_for("sensor/edge_agent_test/door_class/config", after=before, timeout=10)
    running.rec.wait_for("door/state", after=before, timeout=10)
    running.rec.wait_for("gate/snapshot", after=before, timeout=10)


def test_snapshot_on_state_change_is_a_retained_jpeg(running: Running):
    late = Recorder(running.broker.port, PREFIX)
    try:
        snap = late.wait_for("door/snapshot", timeout=10)
    finally:
        late.close()
    assert snap.retain
    img = cv2.imdecode(np.frombuffer(snap.payload, np.uint8), cv2.IMREAD_COLOR)
    assert img is not None and img.shape[:2] == (240, 320)


def test_healthz_503_names_what_is_wrong(tmp_path: Path):
    """No broker and a camera that is not there: 503 with both reasons."""
    with ThreadedStandin(StandinApi(api_key=KEY)) as api:
        cfg = agent_config(api_url=api.url, broker_port=free_port(), api_key=KEY,
                           cameras=[{"name": "cam", "source": str(tmp_path / "missing.mp4"), "fps": 2}])
        agent = AgentProc(tmp_path, cfg)
        url = f"http://{cfg['status']['listen']}/healthz"
        try:
            def answer():
                try:
                    return [requests.get(url, timeout=2)]  # a list: a 503 Response is falsy
                except requests.ConnectionError:
                    return None
            (r,) = wait_until(answer, 15, what="the status server")
            assert r.status_code == 503
            missing = f"camera cam: file {tmp_path / 'missing.mp4'} not found"  # the reason /api/status gives

            def reasons():
                got = answer()
                return got and "not found" in " ".join(got[0].json()["reasons"]) and got[0].json()

            assert wait_until(reasons, 10, what="the camera's reason") == \
                {"ok": False, "reasons": [missing, "mqtt: not connected"]}
        finally:
            agent.signal(signal.SIGTERM)
            assert agent.wait(10) == 0
            agent.close()


def test_status_port_in_use_is_a_config_error(tmp_path: Path, videos):
    """Exit 2 (a config problem: systemd's RestartPreventExitStatus=2 does not loop on it)."""
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        cfg = agent_config(api_url="http://127.0.0.1:9", broker_port=free_port(), api_key=KEY,
                           cameras=[{"name": "cam", "source": str(videos["red_long"]), "fps": 2}])
        cfg["status"] = {"listen": f"127.0.0.1:{port}"}
        agent = AgentProc(tmp_path, cfg)
        try:
            assert agent.wait(20) == 2
        finally:
            agent.close()
    assert f"status.listen: 127.0.0.1:{port} is in use; choose another port or set status.enabled: false" \
        in agent.log()
    assert "Traceback" not in agent.log() and "Unclosed client session" not in agent.log()


def test_entities_of_a_removed_camera_are_cleared(tmp_path: Path, videos, broker: Broker):
    """Its discovery configs, and its retained state, status and snapshot."""
    stale = "homeassistant/sensor/edge_agent_test/porch_class/config"
    pub = Recorder(broker.port, "homeassistant")
    try:
        pub.client.publish(stale, '{"state_topic": "x"}', qos=1, retain=True).wait_for_publish(5)
        for kind, body in (("state", b'{"class": "red"}'), ("status", b'{"camera": "online", "device": "test"}'),
                           ("snapshot", b"\xff\xd8jpeg")):
            pub.client.publish(f"{PREFIX}/porch/{kind}", body, qos=1, retain=True).wait_for_publish(5)
    finally:
        pub.close()
    with ThreadedStandin(StandinApi(api_key=KEY)) as api:
        cfg = agent_config(api_url=api.url, broker_port=broker.port, api_key=KEY,
                           cameras=[{"name": "door", "source": str(videos["red_long"]), "fps": 2, "loop": True}])
        agent = AgentProc(tmp_path, cfg)
        try:
            wait_until(lambda: "removing the Home Assistant entity" in agent.log(), 15, what="the stale config cleared")
        finally:
            agent.signal(signal.SIGTERM)
            assert agent.wait(10) == 0
            agent.close()
    late = Recorder(broker.port, "homeassistant")
    try:
        wait_until(lambda: any(m.topic.endswith("door_class/config") for m in late.all()), 10, what="current configs")
        time.sleep(0.5)
        assert not any(m.topic == stale for m in late.all())  # gone from the broker
    finally:
        late.close()
    ours = Recorder(broker.port, PREFIX)
    try:
        wait_until(lambda: ours.last("door/status") is not None, 10, what="the kept camera's status")
        time.sleep(0.5)
        assert [m.topic for m in ours.all() if "/porch/" in m.topic] == []  # state, status, snapshot cleared
    finally:
        ours.close()


def test_without_javascript_the_page_names_the_cameras_and_links(running: Running):
    html = requests.get(running.url + "/", timeout=5).text
    assert "<noscript>" in html and 'href="/api/status"' in html
    for cam in ("door", "gate", "yard"):
        assert f'href="/cameras/{cam}/latest.jpg"' in html


def test_while_the_api_fails_the_page_still_shows_the_camera(tmp_path: Path, videos, broker: Broker):
    with ThreadedStandin(StandinApi(api_key="not-the-key")) as api:  # every call: 401
        cfg = agent_config(api_url=api.url, broker_port=broker.port, api_key=KEY,
                           cameras=[{"name": "cam", "source": str(videos["red_long"]), "fps": 2, "loop": True}])
        agent = AgentProc(tmp_path, cfg)
        try:
            url = f"http://{cfg['status']['listen']}"

            def picture() -> str | None:
                try:
                    return requests.get(f"{url}/api/status", timeout=5).json()["cameras"][0]["unclassified_image"]
                except requests.ConnectionError:
                    return None  # not listening yet

            cam = wait_until(picture, 20, what="an unclassified picture")
            pic = requests.get(url + cam, timeout=5)
            assert pic.status_code == 200 and pic.content[:2] == b"\xff\xd8"
            img = cv2.imdecode(np.frombuffer(pic.content, np.uint8), cv2.IMREAD_COLOR)
            assert img[img.shape[0] // 2, img.shape[1] // 2, 2] > 200  # the red frame itself
        finally:
            agent.signal(signal.SIGTERM)
            assert agent.wait(10) == 0
            agent.close()
