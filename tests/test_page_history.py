"""The page's history (issue #12): per camera a 24-hour timeline strip, the recent events
with their thumbnails and a confidence plot of the recent results, looked at in real
headless Chromium against an agent whose event database was seeded with a day of events."""

from __future__ import annotations

import os
import shutil
import signal
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import requests

from edge_agent.storage.eventstore import EventStore
from tests import webdriver
from tests.helpers import ROOT, AgentProc, Broker, Recorder, agent_config, free_port, wait_until
from tools.standin_api import StandinApi, ThreadedStandin

KEY = "rf_history_key_1"
PREFIX = "edge_agent/test"
ARTIFACTS = ROOT / "test-artifacts"
CLASSES = ["blue", "green", "red"]
BGR = {"red": (40, 40, 220), "green": (60, 170, 60), "blue": (200, 90, 30)}
STEP = 1800  # s between seeded events
SEEDED = 30  # per camera in the 24 h window (15 hours of them); plus 2 older ones, outside it


def thumbnail(cls: str, k: int) -> bytes:
    img = np.full((180, 240, 3), BGR[cls], np.uint8)
    cv2.putText(img, f"{cls} #{k}", (12, 100), cv2.FONT_HERSHEY_SIMPLEX, 0.9, (255, 255, 255), 2)
    ok, jpeg = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 70])
    assert ok
    return jpeg.tobytes()


def seed(state_dir: Path, cameras: list[str], now: float) -> dict[str, list[float]]:
    """Events every half hour, classes cycling, the newest an hour ago; returns their times."""
    state_dir.mkdir(parents=True, exist_ok=True)
    store = EventStore(state_dir / "events.db")
    store.open()
    times: dict[str, list[float]] = {}
    try:
        for n, cam in enumerate(cameras):
            times[cam] = []
            ats = [now - 26 * 3600, now - 25 * 3600] + [now - 3600 - (k - 1) * STEP for k in range(SEEDED, 0, -1)]
            for k, at in zip(range(len(ats), 0, -1), ats):  # oldest first: each one's `previous` is the one before
                at -= n * 600
                cls = CLASSES[(k + n) % len(CLASSES)]
                store.add(cam, cls, 0.7 + 0.01 * (k % 25), at, thumbnail(cls, k) if k % 7 else None)
                times[cam].append(at)
    finally:
        store.close()
    return times


@pytest.fixture(scope="module")
def browser_needed():
    if not webdriver.available():
        if os.environ.get("CI"):
            pytest.fail("chromium and chromium-driver must be installed in CI (scripts/setup.sh does)")
        pytest.skip("chromium / chromedriver not installed")


def page_state(browser: webdriver.Browser) -> list[dict]:
    return browser.js("""return [...document.querySelectorAll('.card')].map(c => ({
        name: c.dataset.camera,
        ticks: [...c.querySelectorAll('.timeline .tick')].map(t => ({id: +t.dataset.id, at: +t.dataset.at,
                                                                  cls: t.dataset.class})),
        bands: [...c.querySelectorAll('.timeline .band')].map(b => b.dataset.class),
        hours: [...c.querySelectorAll('.hours span')].map(s => s.textContent),
        events: [...c.querySelectorAll('.events li.event')].map(li => ({id: +li.dataset.id,
            src: li.querySelector('img') ? li.querySelector('img').getAttribute('src') : null,
            loaded: li.querySelector('img') ? li.querySelector('img').naturalWidth : null,
            text: li.textContent})),
        points: c.querySelectorAll('.plot .pt').length,
        polyline: !!c.querySelector('.plot polyline')}))""")


def hover_tick(browser: webdriver.Browser, camera: str, event_id: int, kind: str) -> dict:
    """A pointer event at the tick's place, as a mouse or a finger would make it."""
    return browser.js("""
        const [camera, id, kind] = arguments;
        const card = document.querySelector(`.card[data-camera="${camera}"]`);
        const tick = card.querySelector(`.timeline .tick[data-id="${id}"]`);
        tick.scrollIntoView({block: 'center'});
        const r = tick.getBoundingClientRect();
        // a finger lands a little beside the line: the hit area is wider than the tick
        const x = r.left + r.width / 2 + (kind === 'touch' ? 5 : 0), y = r.top + r.height / 2;
        tick.dispatchEvent(new PointerEvent(kind === 'touch' ? 'pointerdown' : 'pointermove',
            {bubbles: true, clientX: x, clientY: y, pointerType: kind, isPrimary: true}));
        const tip = card.querySelector('.timeline .tip');
        const img = tip.querySelector('img');
        return {hidden: tip.hidden, event: tip.dataset.event, text: tip.textContent,
                src: img ? img.getAttribute('src') : null};""", camera, event_id, kind)


def test_history_on_the_page(tmp_path, videos, browser_needed):
    started = time.time()
    cams = ["door", "porch"]
    now = time.time()
    seeded = seed(tmp_path / "state", cams, now)
    broker = Broker(tmp_path).start()
    rec = Recorder(broker.port, PREFIX)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    browser = None
    with ThreadedStandin(StandinApi(api_key=KEY)) as api:
        cfg = agent_config(api_url=api.url, broker_port=broker.port, api_key=KEY, prefix=PREFIX, cameras=[
            {"name": cam, "source": str(videos["red_long"]), "fps": 4, "loop": True} for cam in cams])
        cfg["status"] = {"listen": f"127.0.0.1:{port}"}
        agent = AgentProc(tmp_path, cfg)
        try:
            for cam in cams:
                rec.wait_for(f"{cam}/state", timeout=30)
            status = requests.get(f"{url}/api/status", timeout=5).json()
            assert all(isinstance(c["recent"], list) for c in status["cameras"])
            browser = webdriver.Browser()
            browser.get(url + "/")
            # Every card: its bands and ticks, as many ticks as the agent has events in the last 24 h
            # (the seeded ones plus the one each camera decided itself on starting, newer than all).
            def complete() -> list[dict] | None:
                want = {cam: requests.get(f"{url}/api/events", params={"camera": cam, "since": time.time() - 86400,
                                                                       "limit": 1000}, timeout=5).json()["events"]
                        for cam in cams}
                cards = page_state(browser)
                ok = len(cards) == 2 and all(
                    c["bands"] and sorted(t["id"] for t in c["ticks"]) == sorted(e["id"] for e in want[c["name"]])
                    and c["points"] > 0 for c in cards)
                return [dict(c, want=want[c["name"]]) for c in cards] if ok else None

            cards = wait_until(complete, 20, interval=0.5, what="every card's timeline, events and plot")
            for c in cards:
                in_window = [t for t in seeded[c["name"]] if t >= now - 86400]
                assert len(in_window) == SEEDED
                own = [e for e in c["want"] if e["at"] >= started - 1]  # what the agent decided itself
                assert len(c["ticks"]) == SEEDED + len(own) and len(own) <= 2
                assert set(c["bands"]) == set(CLASSES), c["bands"]
                assert c["hours"][0] == "−24 h" and c["hours"][-1] == "now" and len(c["hours"]) >= 5
                assert c["polyline"] and c["points"] > 0
                # the recent events: the newest 5, newest first, their thumbnails load (lazy: scroll to them)
                assert [e["id"] for e in c["events"]] == [e["id"] for e in c["want"][:5]]
            browser.js("document.querySelectorAll('.events').forEach(l => l.scrollIntoView())")
            browser.wait_js("""return [...document.querySelectorAll('.events img')].length >= 8 &&
                [...document.querySelectorAll('.events img')].every(i => i.complete && i.naturalWidth > 0)""",
                            10, "the recent events' thumbnails to load")

            # hover (mouse) and tap (finger beside the tick) show the tooltip: time, class, thumbnail
            door = next(c for c in cards if c["name"] == "door")
            with_pic = next(e for e in door["want"] if e["thumbnail"] and e["at"] < started - 1)
            without = next(e for e in door["want"] if e["thumbnail"] is None)
            for kind in ("mouse", "touch"):
                tip = hover_tick(browser, "door", with_pic["id"], kind)
                assert not tip["hidden"] and tip["event"] == str(with_pic["id"]), tip
                assert with_pic["class"] in tip["text"] and f"{with_pic['previous']} → {with_pic['class']}" in tip["text"]
                assert tip["src"] == with_pic["thumbnail"] == f"/api/events/{with_pic['id']}.jpg"
                browser.wait_js("const i = document.querySelector('.card[data-camera=door] .tip img');"
                                "return i && i.complete && i.naturalWidth > 0", 5, "the tooltip's thumbnail")
            tip = hover_tick(browser, "door", without["id"], "mouse")
            assert not tip["hidden"] and tip["src"] is None and "no picture" in tip["text"]
            tip = hover_tick(browser, "door", with_pic["id"], "mouse")  # for the screenshot
            # the same class has the same colour on every card
            fills = browser.js("""const f = {};
                for (const b of document.querySelectorAll('.timeline .band'))
                  (f[b.dataset.class] = f[b.dataset.class] || new Set()).add(b.getAttribute('fill'));
                return Object.fromEntries(Object.entries(f).map(([k, v]) => [k, v.size]))""")
            assert fills == {cls: 1 for cls in CLASSES}

            # a few results on the plot for the picture (the agent's "recent", or those the page saw)
            browser.wait_js("return document.querySelectorAll('.card[data-camera=door] .plot .pt').length >= 4", 15,
                            "a few points on the confidence plot")
            browser.js("window.scrollTo(0, 0)")
            requests.post(f"{browser.session}/window/rect", json={"width": 1280, "height": 1300},
                          timeout=10).raise_for_status()
            time.sleep(0.6)
            hover_tick(browser, "door", with_pic["id"], "mouse")
            browser.js("window.scrollTo(0, 0)")
            shot = browser.screenshot(ARTIFACTS / "status-page-history.png")
            assert shot.stat().st_size > 20_000
            if os.environ.get("EDGE_AGENT_UPDATE_DOCS"):  # refresh the README's picture on purpose only
                shutil.copyfile(shot, ROOT / "docs" / "status-page-history.png")

            # a phone, 360 px wide: nothing wider than the screen, the strip still usable
            requests.post(f"{browser.session}/window/rect", json={"width": 360, "height": 780},
                          timeout=10).raise_for_status()
            wait_until(lambda: browser.js("return window.innerWidth") <= 360, 5, what="the narrow window")
            time.sleep(2.5)  # one refresh: the strips are redrawn at the new width
            fit = browser.js("""return {scroll: document.documentElement.scrollWidth, inner: window.innerWidth,
                strip: document.querySelector('.timeline svg').getBoundingClientRect().width,
                viewBox: document.querySelector('.timeline svg').viewBox.baseVal.width,
                wide: [...document.querySelectorAll('body *')].filter(e => e.getBoundingClientRect().right >
                       window.innerWidth + 1 && !e.closest('[hidden]')).map(e => e.className.baseVal ?? e.className)}""")
            assert fit["scroll"] <= fit["inner"] + 1, fit
            assert fit["strip"] > 250 and abs(fit["viewBox"] - fit["strip"]) <= 2, fit
            tip = hover_tick(browser, "door", with_pic["id"], "touch")
            assert not tip["hidden"]
            inside = browser.js("""const t = document.querySelector('.card[data-camera=door] .tip').getBoundingClientRect();
                return t.left >= 0 && t.right <= window.innerWidth""")
            assert inside
            browser.screenshot(ARTIFACTS / "status-page-history-phone.png")
        finally:
            if browser is not None:
                browser.close()
            agent.signal(signal.SIGTERM)
            try:
                agent.wait(10)
            finally:
                agent.close()
                rec.close()
                broker.stop()
    assert time.time() - started < 40
