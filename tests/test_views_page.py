"""A camera with views on the status page, /api/status, /metrics and /healthz (issue #21),
as a person and a client see them.

* A running agent (a real process, a real broker, the stand-in API over real HTTP):
  ``garage``, one H.264 file red on the left and blue on the right, with two views (each
  its own region, ``right`` its own model), and ``door``, a camera without views. The
  page, in headless Chromium: one card for garage, its views side by side, each view's
  region outlined on the camera's picture in the view's colour with its name, the
  camera's health once; door's card as before.
* A real agent built but not running (its status server over real HTTP): the camera's
  trouble shown once, a view's own trouble in its own column, the camera's picture
  the newest of its views' frames.
"""

from __future__ import annotations

import os
import re
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import cv2
import numpy as np
import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from edge_agent.agent import Agent
from edge_agent.camera import Latest
from edge_agent.config import parse_config
from edge_agent.decide import State
from edge_agent.report import by_camera, status_line
from edge_agent.reply import Classification, Prediction
from tests import webdriver
from tests.helpers import ROOT, AgentProc, Broker, Recorder, agent_config, free_port, wait_until
from tests.test_dataset_shown import Served
from tools.standin_api import StandinApi, ThreadedStandin

KEY = "rf_views_page_SECRET_3"
PREFIX = "edge_agent/test"
ARTIFACTS = ROOT / "test-artifacts"
LEFT = [0.05, 0.1, 0.45, 0.9]  # inside the red half
RIGHT = [0.55, 0.2, 0.95, 0.8]  # inside the blue half
COLOURS = {"left": (0xf5, 0xa5, 0x24), "right": (0x22, 0xd3, 0xee)}  # the page's first two view colours (RGB)
PLAIN_ROWS = ["latest result", "frames in / out", "API latency (1 min)", "dropped frames", "requests ok / failed",
              "API calls / unchanged", "last change seen", "decoding", "fps limit"]  # a card as before #21


@pytest.fixture(scope="module")
def browser_needed():
    if not webdriver.available():
        if os.environ.get("CI"):
            pytest.fail("chromium and chromium-driver must be installed in CI (scripts/setup.sh does)")
        pytest.skip("chromium / chromedriver not installed")


def metric_samples(body: str) -> dict[tuple[str, tuple], float]:
    return {(x.name, tuple(sorted(x.labels.items()))): x.value
            for fam in text_string_to_metric_families(body) for x in fam.samples}


def rgb(img: np.ndarray, x: float, y: float) -> tuple[int, int, int]:
    b, g, r = img[int(y), int(x)]
    return int(r), int(g), int(b)


def near(got: tuple[int, int, int], want: tuple[int, int, int], tol: int = 40) -> bool:
    return all(abs(a - b) <= tol for a, b in zip(got, want))


# -- a running agent -------------------------------------------------------------------------

@dataclass
class Running:
    agent: AgentProc
    url: str


@pytest.fixture(scope="module")
def running(tmp_path_factory, videos) -> Iterator[Running]:
    d = tmp_path_factory.mktemp("views-page")
    broker = Broker(d).start()
    rec = Recorder(broker.port, PREFIX)
    port = free_port()
    with ThreadedStandin(StandinApi(api_key=KEY)) as api:
        cfg = agent_config(api_url=api.url, broker_port=broker.port, api_key=KEY, cameras=[
            {"name": "garage", "source": str(videos["red_blue_split"]), "fps": 4, "loop": True,
             "views": [{"name": "left", "region": LEFT}, {"name": "right", "region": RIGHT, "model": "bins/7"}]},
            {"name": "door", "source": str(videos["rgb"]), "fps": 4, "loop": True}])
        cfg["status"] = {"listen": f"127.0.0.1:{port}"}
        agent = AgentProc(d, cfg)
        try:
            for target in ("garage-left", "garage-right", "door"):
                rec.wait_for(f"{target}/state", timeout=40)
            yield Running(agent, f"http://127.0.0.1:{port}")
        finally:
            agent.signal(signal.SIGTERM)
            agent.wait(10)
            agent.close()
            rec.close()
            broker.stop()
    assert "Traceback" not in agent.log() and KEY not in agent.log()


def test_api_status_lists_each_view_with_its_camera_view_and_model(running: Running):
    s = requests.get(f"{running.url}/api/status", timeout=5).json()
    cams = {c["name"]: c for c in s["cameras"]}
    assert list(cams) == ["garage-left", "garage-right", "door"]  # the config's order, a view as <camera>-<view>
    shape = {n: (c["view_of"], c["view"], c["model"], c["region"]) for n, c in cams.items()}
    assert shape == {"garage-left": ("garage", "left", "colours/1", LEFT),
                     "garage-right": ("garage", "right", "bins/7", RIGHT),
                     "door": (None, None, "colours/1", None)}
    left, right = cams["garage-left"], cams["garage-right"]
    assert left["state"]["class"] == "red" and right["state"]["class"] == "blue"  # each its own crop
    assert left["latest"]["image"].startswith("/cameras/garage-left/latest.jpg")
    # one camera: one source, one decode mode, the same health in each view
    assert left["source"] == right["source"] and left["decode"] == right["decode"] is not None
    assert left["online"] and right["online"]
    assert set(cams["door"]) == set(left)  # every entry has the same keys


def test_the_camera_picture_is_its_whole_frame_not_drawn_on(running: Running):
    r = requests.get(f"{running.url}/cameras/garage/latest.jpg", timeout=5)
    assert r.status_code == 200 and r.headers["Content-Type"] == "image/jpeg"
    img = cv2.imdecode(np.frombuffer(r.content, np.uint8), cv2.IMREAD_COLOR)
    assert img.shape[:2] == (240, 320)  # the whole frame, not a view's crop
    assert near(rgb(img, 4, 4), (255, 0, 0), 60)  # no label bar: the page draws the regions itself
    assert near(rgb(img, 80, 120), (255, 0, 0), 60) and near(rgb(img, 240, 120), (0, 0, 255), 60)
    view = cv2.imdecode(np.frombuffer(requests.get(f"{running.url}/cameras/garage-left/latest.jpg",
                                                   timeout=5).content, np.uint8), cv2.IMREAD_COLOR)
    assert view[4:14, 4:30].mean() < 90  # a view's own picture is annotated as a camera's (its label bar)
    assert requests.get(f"{running.url}/cameras/garage-middle/latest.jpg", timeout=5).status_code == 404
    page = requests.get(running.url + "/", timeout=5).text  # without JavaScript: the camera and its views' links
    for name in ("garage", "garage-left", "garage-right", "door"):
        assert f'href="/cameras/{name}/latest.jpg"' in page


def test_metrics_keep_target_names_and_say_what_each_is(running: Running):
    got = metric_samples(requests.get(f"{running.url}/metrics", timeout=5).text)
    info = {dict(k[1])["camera"]: dict(k[1]) for k, v in got.items() if k[0] == "edge_agent_camera_info" and v == 1}
    assert info == {
        "garage-left": {"camera": "garage-left", "source_camera": "garage", "view": "left", "model": "colours/1"},
        "garage-right": {"camera": "garage-right", "source_camera": "garage", "view": "right", "model": "bins/7"},
        "door": {"camera": "door", "source_camera": "door", "view": "", "model": "colours/1"}}
    captured = {dict(k[1])["camera"] for k in got if k[0] == "edge_agent_frames_captured_total"}
    assert captured == {"garage-left", "garage-right", "door"}  # per target, as every per-camera series
    assert got[("edge_agent_requests_total", (("camera", "garage-right"), ("outcome", "ok")))] > 0
    assert not [k for k in got if ("camera", "garage") in k[1]]  # the camera itself is no series


def test_healthz_names_a_camera_once(running: Running):
    r = requests.get(f"{running.url}/healthz", timeout=5)
    assert r.status_code == 200 and r.json() == {"ok": True, "reasons": []}


def page_cards(browser: webdriver.Browser) -> list[dict[str, Any]]:
    return browser.js("""
        const box = e => { const r = e.getBoundingClientRect();
                           return {x: r.left, y: r.top, w: r.width, h: r.height}; };
        return [...document.querySelectorAll('#cameras > .card')].map(c => ({
          camera: c.dataset.camera, multi: c.classList.contains('multi'), loaded: !!c.dataset.imageLoaded,
          card: box(c), healthBadges: [...c.querySelectorAll('.health')].map(b => b.textContent),
          decodes: [...c.querySelectorAll('.decode')].map(d => d.textContent),
          rows: [...c.querySelectorAll(':scope > table td:first-child')].map(td => td.textContent),
          img: c.querySelector('img') && box(c.querySelector('img')),
          regions: [...c.querySelectorAll('.region')].map(r => ({view: r.dataset.view, box: box(r),
              name: r.textContent, colour: getComputedStyle(r).borderTopColor})),
          views: [...c.querySelectorAll('.view')].map(v => ({view: v.dataset.view, target: v.dataset.target,
              box: box(v), state: v.dataset.state, cls: v.querySelector('.cls').textContent,
              since: v.querySelector('.since').textContent, calls: v.querySelector('.calls').textContent,
              model: v.querySelector('.model').textContent, error: v.querySelector('.error').textContent,
              stripe: getComputedStyle(v).borderTopColor,
              ticks: v.querySelectorAll('.timeline .tick').length,
              events: v.querySelectorAll('.events li.event').length,
              points: v.querySelectorAll('.plot .pt').length})),
          error: (c.querySelector('.camera-error') || c.querySelector('.error')).textContent}))""")


def test_the_page_shows_one_card_per_camera_with_its_views_side_by_side(running: Running, browser_needed):
    browser = webdriver.Browser()
    try:
        browser.get(running.url + "/")

        def ready() -> list[dict] | None:
            cards = page_cards(browser)
            ok = len(cards) == 2 and all(c["loaded"] for c in cards) and all(
                v["state"] and v["ticks"] and v["events"] and v["points"] for v in cards[0]["views"])
            return cards if ok else None

        garage, door = wait_until(ready, 30, interval=0.5, what="both cards, the views' states and histories")
        assert garage["camera"] == "garage" and garage["multi"] and door["camera"] == "door" and not door["multi"]
        # the camera's health once, for both views
        assert garage["healthBadges"] == ["online"] and len(garage["decodes"]) == 1 and garage["decodes"][0] != "–"
        # each view: its state, since, calls and model, side by side
        left, right = garage["views"]
        assert (left["view"], left["target"], right["view"], right["target"]) == \
            ("left", "garage-left", "right", "garage-right")
        assert left["state"] == "red" and left["cls"].startswith("red ") and right["state"] == "blue"
        assert left["since"].startswith("since ") and right["since"].startswith("since ")
        assert all(re.fullmatch(r"\d+ / \d+", v["calls"]) for v in (left, right))
        assert (left["model"], right["model"]) == ("colours/1", "bins/7")
        assert left["error"] == right["error"] == "" and garage["error"] == ""
        assert abs(left["box"]["y"] - right["box"]["y"]) < 1
        assert right["box"]["x"] >= left["box"]["x"] + left["box"]["w"] - 1
        # each region outlined where it is on the picture, in its view's colour, with its name
        img = garage["img"]
        for r, want in zip(garage["regions"], (LEFT, RIGHT)):
            b = r["box"]
            got = [(b["x"] - img["x"]) / img["w"], (b["y"] - img["y"]) / img["h"],
                   (b["x"] + b["w"] - img["x"]) / img["w"], (b["y"] + b["h"] - img["y"]) / img["h"]]
            assert all(abs(g - w) < 2 / img["w"] + 0.005 for g, w in zip(got, want)), (r, got, want)
            assert r["name"] == r["view"] and r["colour"] == "rgb(%d, %d, %d)" % COLOURS[r["view"]]
        assert [r["view"] for r in garage["regions"]] == ["left", "right"]
        assert [v["stripe"] for v in (left, right)] == ["rgb(%d, %d, %d)" % COLOURS[v] for v in ("left", "right")]
        # a camera without views: its card as before
        assert door["rows"] == PLAIN_ROWS and door["regions"] == [] and door["views"] == []
        assert door["healthBadges"] == ["online"] and len(door["decodes"]) == 1

        requests.post(f"{browser.session}/window/rect", json={"width": 1280, "height": 1400},
                      timeout=10).raise_for_status()
        browser.js("window.scrollTo(0, 0)")
        time.sleep(0.6)
        garage = page_cards(browser)[0]
        ratio = browser.js("return window.devicePixelRatio")
        shot = browser.screenshot(ARTIFACTS / "status-page-views.png")
        # as a person sees it: each outline in its colour around its own half of the picture
        png = cv2.imread(str(shot), cv2.IMREAD_COLOR)
        for r in garage["regions"]:
            b = r["box"]
            edge = rgb(png, (b["x"] + 1.5) * ratio, (b["y"] + b["h"] / 2) * ratio)
            inside = rgb(png, (b["x"] + b["w"] / 2) * ratio, (b["y"] + b["h"] / 2) * ratio)
            assert near(edge, COLOURS[r["view"]]), (r["view"], edge)
            assert near(inside, (255, 0, 0) if r["view"] == "left" else (0, 0, 255), 70), (r["view"], inside)
        label = garage["regions"][1]["box"]
        assert near(rgb(png, (label["x"] + 4) * ratio, (label["y"] + 4) * ratio), COLOURS["right"])  # its name's tab

        # a phone: nothing wider than the screen, the views one under the other
        requests.post(f"{browser.session}/window/rect", json={"width": 360, "height": 780},
                      timeout=10).raise_for_status()
        wait_until(lambda: browser.js("return window.innerWidth") <= 360, 5, what="the narrow window")
        time.sleep(2.5)  # one refresh: the strips are redrawn at the new width
        fit = browser.js("return {scroll: document.documentElement.scrollWidth, inner: window.innerWidth}")
        assert fit["scroll"] <= fit["inner"] + 1, fit
        left, right = page_cards(browser)[0]["views"]
        assert right["box"]["y"] >= left["box"]["y"] + left["box"]["h"] - 1
        browser.screenshot(ARTIFACTS / "status-page-views-phone.png")
    finally:
        browser.close()


# -- an agent built but not running ------------------------------------------------------------

def config(tmp: Path) -> Any:
    return parse_config({
        "device_id": "t", "api": {"url": "http://127.0.0.1:9", "model": "colours/1", "api_key": KEY},
        "mqtt": {"topic_prefix": "edge_agent/t"}, "homeassistant": {"discovery": False},
        "status": {"listen": f"127.0.0.1:{free_port()}"}, "state_dir": str(tmp / "state"),
        "log_summary_interval": 0,
        "cameras": [{"name": "garage", "source": "rtsp://cam/garage",
                     "views": [{"name": "left", "region": LEFT},
                               {"name": "right", "region": RIGHT, "model": "bins/7"}]},
                    {"name": "door", "source": "rtsp://cam/door"}]}, {})


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    s = Served(Agent(config(tmp_path)))
    try:
        yield s
    finally:
        s.close()


def latest(colour: tuple[int, int, int], seq: int, at: float, top: str) -> Latest:
    frame = np.zeros((240, 320, 3), np.uint8)
    frame[:] = colour[::-1]
    return Latest(seq, frame, Classification(top, 0.9, (Prediction(top, 0.9),)), at, 120.0)


def test_the_camera_picture_is_the_newest_of_its_views(served: Served):
    agent, url = served.agent, served.url
    assert requests.get(f"{url}/cameras/garage/latest.jpg", timeout=5).status_code == 404  # no frame yet
    left, right = agent.cameras["garage-left"], agent.cameras["garage-right"]
    now = time.time()
    left.results.latest = latest((0, 200, 0), 7, now - 1, "green")
    right.results.latest = latest((0, 0, 200), 5, now - 3, "blue")

    def picture() -> tuple[int, int, int]:
        r = requests.get(f"{url}/cameras/garage/latest.jpg", timeout=5)
        assert r.status_code == 200
        return rgb(cv2.imdecode(np.frombuffer(r.content, np.uint8), cv2.IMREAD_COLOR), 160, 120)

    assert near(picture(), (0, 200, 0), 20)  # left's, the newer
    right.results.latest = latest((0, 0, 200), 9, now, "blue")
    assert near(picture(), (0, 0, 200), 20)  # now right's
    assert requests.get(f"{url}/cameras/door/latest.jpg", timeout=5).status_code == 404  # as before


def test_a_camera_in_trouble_is_named_once(served: Served, tmp_path: Path):
    agent = served.agent
    for cam in agent.cameras.values():
        cam.health.opened = True
    for name in ("garage-left", "garage-right"):  # the camera's health is each view's
        agent.cameras[name].health.last_error = "camera: rtsp://cam/garage: cannot open"
    r = requests.get(f"{served.url}/healthz", timeout=5)
    assert r.status_code == 503
    assert r.json()["reasons"] == ["camera garage: rtsp://cam/garage: cannot open", "camera door: no frame yet",
                                   "mqtt: not connected"]
    assert status_line(agent).startswith("2 camera(s) (2 views): 0 online; ")
    assert [(c, [v.name for v in vs]) for c, vs in by_camera(agent.cameras.values()).items()] == \
        [("garage", ["garage-left", "garage-right"]), ("door", ["door"])]


def test_the_page_shows_the_cameras_trouble_once_and_a_views_own_in_its_column(served: Served, browser_needed):
    agent = served.agent
    left, right, door = (agent.cameras[n] for n in ("garage-left", "garage-right", "door"))
    for cam in (left, right):
        cam.health.last_error = "camera: rtsp://cam/garage: cannot open"
    door.health.online = True
    left.debouncer.state = State("closed", 0.93, time.time() - 600)
    left.admission.pause()
    browser = webdriver.Browser()
    try:
        browser.get(served.url + "/")
        def shown() -> list[dict] | None:
            cards = page_cards(browser)
            return cards if len(cards) == 2 and cards[0]["views"] and cards[0]["views"][0]["state"] else None

        garage, plain = wait_until(shown, 15, interval=0.3, what="the cards")
        assert garage["healthBadges"] == ["offline"] and plain["healthBadges"] == ["online"]
        assert garage["error"] == "last error: camera: rtsp://cam/garage: cannot open"  # once, for the camera
        assert [v["error"] for v in garage["views"]] == ["", ""]
        assert garage["views"][0]["cls"] == "closed 93.0%" and garage["views"][1]["cls"] == "no state yet"
        paused = browser.js("return [...document.querySelectorAll('.view')]"
                            ".map(v => !v.querySelector('.paused').hidden)")
        assert paused == [True, False]  # a view paused alone
        assert not garage["loaded"] and browser.js(
            "return document.querySelector('.card.multi .placeholder').textContent") == "no classified frame yet"

        right.health.last_error = "api: HTTP 500 from the API"  # a view's own trouble: in its column
        after = wait_until(lambda: (lambda c: c if c[0]["views"][1]["error"] else None)(page_cards(browser)), 10,
                           interval=0.3, what="the view's error")[0]
        assert [v["error"] for v in after["views"]] == ["", "last error: api: HTTP 500 from the API"]
        assert after["error"] == "last error: camera: rtsp://cam/garage: cannot open"
        browser.screenshot(ARTIFACTS / "status-page-views-trouble.png")
    finally:
        browser.close()
