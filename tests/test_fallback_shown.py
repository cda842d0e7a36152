"""Which endpoint classifies, as people and clients see it (issue #22, "Shown"): Home
Assistant's "API endpoint" sensor, /api/status's ``api.endpoint`` and ``api.fallback``,
the page's header and ``edge_agent_endpoint_active``.

* Discovery (pure): the sensor exists only with ``api.fallback``, passes HA's schema,
  reads a retained topic, and is cleared when the fallback is taken out of the config.
* A real agent built but not running: its own status message and /api/status (real HTTP)
  before and after a switch made through ``Endpoints`` as the loop makes it.
* A running agent (a real process, a real broker, two stand-ins over real HTTP, headless
  Chromium): the primary goes down, the header says "API: fallback (primary unreachable
  since HH:MM)", marked; the retained status, the HA sensor's template, /metrics and the
  results agree; the primary comes back and the header says "API: primary" again.
"""

from __future__ import annotations

import json
import os
import re
import signal
import time
from pathlib import Path
from typing import Any, Iterator

import pytest
import requests

from edge_agent.agent import Agent
from edge_agent.config import parse_config
from edge_agent.failover import Endpoint, Reason
from edge_agent.outputs.homeassistant import ENDPOINT, ENDPOINT_ATTRIBUTES, discovery_messages, is_stale
from edge_agent.outputs.topics import Topics
from tests import webdriver
from tests.ha_schema import validate_discovery
from tests.helpers import ROOT, AgentProc, Broker, Recorder, agent_config, free_port, wait_until
from tests.test_dataset_shown import Served, metric_samples
from tests.test_homeassistant import render
from tools.standin_api import StandinApi, ThreadedStandin

KEY = "rf_fallback_shown_SECRET_7"
FB_PASSWORD = "lan-box-SECRET-pw"
PREFIX = "edge_agent/test"
TOPICS = Topics(PREFIX)
ARTIFACTS = ROOT / "test-artifacts"
SENSOR = "homeassistant/sensor/edge_agent_garage-pi/api_endpoint/config"


def config(tmp: Path | None = None, fallback: dict[str, Any] | None = None) -> Any:
    raw: dict[str, Any] = {
        "device_id": "garage-pi",
        "api": {"url": "http://127.0.0.1:9", "model": "garage-door/3", "api_key": KEY},
        "mqtt": {"topic_prefix": PREFIX},
        "cameras": [{"name": "door", "source": "rtsp://cam/door"}, {"name": "gate", "source": "rtsp://cam/gate"}]}
    if fallback is not None:
        raw["api"]["fallback"] = fallback
    if tmp is not None:
        raw.update(state_dir=str(tmp / "state"), log_summary_interval=0,
                   status={"listen": f"127.0.0.1:{free_port()}"})
    return parse_config(raw, {})


FALLBACK = {"url": f"http://lan:{FB_PASSWORD}@192.168.1.20:9001", "model": "garage-door-local/1"}


def switch_to_fallback(agent: Agent) -> None:
    """As the loop switches: a request to the primary unanswered for longer than
    ``switch_after``, then the once-a-second tick (call it on the agent's loop)."""
    endpoints = agent.endpoints
    endpoints.sent(endpoints.token(), time.monotonic() - 60, probe=False)
    switch = endpoints.tick(lambda: False, lambda: None)
    assert switch is not None and switch.to is Endpoint.FALLBACK and switch.reason is Reason.UNREACHABLE


# -- Home Assistant discovery (pure) ---------------------------------------------------------

def test_the_api_endpoint_sensor_exists_only_with_a_fallback():
    assert not [t for t, _ in discovery_messages(config(), TOPICS) if "api_endpoint" in t]
    msgs = dict(discovery_messages(config(fallback=FALLBACK), TOPICS))
    sensor = msgs[SENSOR]
    assert validate_discovery(SENSOR, sensor) == "sensor"
    assert sensor["name"] == "API endpoint" and sensor["icon"].startswith("mdi:")
    assert sensor["default_entity_id"] == "sensor.edge_agent_garage_pi_api_endpoint"
    # one for the agent (calls of every camera go to the same endpoint), in its one device
    assert sensor["availability"] == [{"topic": TOPICS.availability}]
    assert sensor["device"] == msgs["homeassistant/sensor/edge_agent_garage-pi/door_class/config"]["device"]
    # read from the first camera's status, which is retained (MqttOutput.status: _retain)
    assert sensor["state_topic"] == sensor["json_attributes_topic"] == TOPICS.status("door")
    assert sensor["entity_category"] == "diagnostic"
    assert "unit_of_measurement" not in sensor and "state_class" not in sensor  # a word, not a number
    assert FB_PASSWORD not in json.dumps(msgs) and KEY not in json.dumps(msgs)
    # the rest is as without a fallback
    assert set(msgs) - {SENSOR} == {t for t, _ in discovery_messages(config(), TOPICS)}


def test_the_sensor_is_cleared_when_the_fallback_is_taken_out():
    """The agent clears a retained config of its own that the config no longer makes, as it
    does the training-data entities' (Home Assistant then drops the entity)."""
    before = dict(discovery_messages(config(fallback=FALLBACK), TOPICS))
    plain = config()
    now = {t for t, _ in discovery_messages(plain, TOPICS)}
    assert is_stale(plain, now, SENSOR, json.dumps(before[SENSOR]).encode())
    assert [t for t in before if is_stale(plain, now, t, b"{}")] == [SENSOR]  # nothing else
    still = {t for t, _ in discovery_messages(config(fallback=FALLBACK), TOPICS)}
    assert not is_stale(config(fallback=FALLBACK), still, SENSOR, b"{}")


@pytest.mark.parametrize("payload", ["", "  ", "42", "null", '"text"', '{"camera": "online"}',
                                     '{"camera": "online", "endpoint": "primary", "fallback": null}'])
def test_the_templates_tolerate_an_empty_or_older_status(payload: str):
    """A cleared status, one of an agent before #22, one of an agent without a fallback."""
    assert render(ENDPOINT, payload) == ("primary" if "endpoint" in payload else "")
    assert render(ENDPOINT_ATTRIBUTES, payload) == "{}"  # HA logs "Erroneous JSON" for anything but an object


def test_the_sensor_reads_the_agents_own_status(tmp_path: Path):
    agent = Agent(config(tmp_path, FALLBACK))
    door = agent.cameras["door"]
    door.health.online = door.health.opened = True
    sensor = dict(discovery_messages(agent.cfg, TOPICS))[SENSOR]

    def shown() -> tuple[str, dict]:
        status = agent.status.message(door).payload().decode()
        return render(sensor["value_template"], status), json.loads(render(sensor["json_attributes_template"], status))

    assert shown() == ("primary", {"reason": None, "since": None, "calls": 0, "failed": 0})
    on_primary = agent.status.message(door)
    before = time.time()
    switch_to_fallback(agent)
    agent.endpoints.fallback.ok, agent.endpoints.fallback.failed = 5, 1  # type: ignore[union-attr]
    state, attrs = shown()
    assert state == "fallback" and attrs["reason"] == "unreachable" and (attrs["calls"], attrs["failed"]) == (6, 1)
    assert before - 1 <= attrs["since"] <= time.time() + 1  # epoch s of the switch
    # a switch is a change of health: the status goes at once, not at the next status_interval
    assert agent.status.message(door).health() != on_primary.health()


# -- /api/status over real HTTP ------------------------------------------------------------

@pytest.fixture
def served(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Served]:
    s = Served(Agent(config(tmp_path, request.param)))
    try:
        yield s
    finally:
        s.close()


@pytest.mark.parametrize("served", [None], indirect=True, ids=["no fallback"])
def test_api_status_without_a_fallback(served: Served):
    api = requests.get(f"{served.url}/api/status", timeout=5).json()["api"]
    assert api["endpoint"] == "primary" and api["fallback"] is None
    assert api["url"] == "http://127.0.0.1:9" and api["model"] == "garage-door/3"


@pytest.mark.parametrize("served", [FALLBACK], indirect=True, ids=["fallback"])
def test_api_status_names_the_endpoint_in_use_and_the_fallback(served: Served):
    def api() -> dict:
        r = requests.get(f"{served.url}/api/status", timeout=5)
        assert KEY not in r.text and FB_PASSWORD not in r.text  # no key, no URL credentials
        return r.json()["api"]

    got = api()
    assert got["endpoint"] == "primary" and got["url"] == "http://127.0.0.1:9"  # url, model: the primary's
    assert got["fallback"] == {"url": "http://***@192.168.1.20:9001", "model": "garage-door-local/1",
                               "active": "primary", "reason": None, "since": None, "calls": 0, "failed": 0}

    async def switch() -> None:  # on the agent's loop, as the tick runs
        switch_to_fallback(served.agent)

    served.call(switch())
    got = api()
    assert got["endpoint"] == "fallback" and got["fallback"]["active"] == "fallback"
    assert got["fallback"]["reason"] == "unreachable" and abs(got["fallback"]["since"] - time.time()) < 30
    got = metric_samples(requests.get(f"{served.url}/metrics", timeout=5).text)
    assert got[("edge_agent_endpoint_active", (("endpoint", "fallback"),))] == 1
    assert got[("edge_agent_endpoint_active", (("endpoint", "primary"),))] == 0


# -- a running agent, two stand-ins, the page in Chromium -----------------------------------

def header(browser: webdriver.Browser) -> dict[str, Any]:
    return browser.js("""
        const e = document.getElementById('endpoint');
        return {hidden: e.hidden, text: e.textContent, endpoint: e.dataset.endpoint,
                marked: e.classList.contains('fallback'), background: getComputedStyle(e).backgroundColor,
                title: e.title, api: document.getElementById('api').textContent};""")


@pytest.mark.timeout(150)
def test_the_header_follows_a_switch_to_the_fallback_and_back(tmp_path: Path, videos, broker: Broker):
    if not webdriver.available():
        if os.environ.get("CI"):
            pytest.fail("chromium and chromium-driver must be installed in CI (scripts/setup.sh does)")
        pytest.skip("chromium / chromedriver not installed")
    port = free_port()
    with ThreadedStandin(StandinApi(api_key=KEY)) as primary, ThreadedStandin(StandinApi(api_key=KEY)) as fallback:
        cfg = agent_config(api_url=primary.url, broker_port=broker.port, api_key=KEY, prefix=PREFIX,
                           fallback={"url": fallback.url, "switch_after": 1, "probe": 1, "probe_max": 2},
                           cameras=[{"name": "door", "source": str(videos["rgb"]), "fps": 4, "loop": True}])
        cfg["status"] = {"listen": f"127.0.0.1:{port}"}
        url = f"http://127.0.0.1:{port}"
        rec = Recorder(broker.port, PREFIX)
        agent = AgentProc(tmp_path, cfg)
        browser = webdriver.Browser()
        try:
            rec.wait_for("door/state", timeout=40)
            browser.get(url + "/")
            on_primary = browser.wait_js("const e = document.getElementById('endpoint');"
                                         "return !e.hidden && e.textContent === 'API: primary'", 15,
                                         what="the header to say API: primary")
            assert on_primary and not header(browser)["marked"]

            primary.down = True  # every request 503: an outage
            down_at = time.time()
            wait_until(lambda: header(browser)["endpoint"] == "fallback", 20, interval=0.25,
                       what="the header to say the fallback")
            h = header(browser)
            assert re.fullmatch(r"API: fallback \(primary unreachable since \d\d:\d\d\)", h["text"]), h
            assert h["marked"] and h["background"] == "rgb(181, 71, 8)", h  # marked in the warning colour
            assert fallback.url.split("//")[1] in h["title"] and KEY not in h["title"]
            assert h["api"] == "ok"  # the endpoint in use answers
            browser.screenshot(ARTIFACTS / "status-page-fallback.png")

            s = requests.get(f"{url}/api/status", timeout=5).json()["api"]
            assert s["endpoint"] == "fallback" and s["fallback"]["reason"] == "unreachable"
            assert down_at - 2 <= s["fallback"]["since"] <= time.time()
            wait_until(lambda: requests.get(f"{url}/api/status", timeout=5).json()["api"]["fallback"]["calls"] > 0,
                       10, what="calls to the fallback")
            m = metric_samples(requests.get(f"{url}/metrics", timeout=5).text)
            assert m[("edge_agent_endpoint_active", (("endpoint", "fallback"),))] == 1
            assert m[("edge_agent_endpoint_active", (("endpoint", "primary"),))] == 0
            assert m[("edge_agent_endpoint_requests_total", (("endpoint", "primary"), ("outcome", "http_5xx")))] > 0

            # results carry the endpoint; the status is retained: a late subscriber (Home Assistant
            # after its own restart) reads "fallback" through the sensor's own template
            rec.wait_for("door/result", lambda r: r.json()["endpoint"] == "fallback", timeout=10)
            late, ha = Recorder(broker.port, PREFIX), Recorder(broker.port, "homeassistant")
            try:
                status = wait_until(lambda: late.last("door/status"), 10, what="the retained status")
                sensor = wait_until(lambda: next((m.json() for m in ha.all() if m.topic.endswith("/api_endpoint/config")
                                                  and m.payload), None), 10, what="the sensor's config")
            finally:
                late.close()
                ha.close()
            assert status.retain and status.json()["endpoint"] == "fallback"
            assert sensor["state_topic"] == status.topic
            assert render(sensor["value_template"], status.payload.decode()) == "fallback"
            assert json.loads(render(sensor["json_attributes_template"], status.payload.decode()))["reason"] == \
                "unreachable"

            primary.down = False  # back: a probe (every 1 s) succeeds
            wait_until(lambda: header(browser)["text"] == "API: primary", 20, interval=0.25,
                       what="the header to say the primary again")
            assert not header(browser)["marked"]
            m = metric_samples(requests.get(f"{url}/metrics", timeout=5).text)
            assert m[("edge_agent_endpoint_active", (("endpoint", "primary"),))] == 1
            rec.wait_for("door/status", lambda r: r.json()["endpoint"] == "primary" and r.json()["fallback"]["reason"]
                         is None, timeout=10)
        finally:
            browser.close()
            agent.signal(signal.SIGTERM)
            agent.wait(10)
            agent.close()
            rec.close()
    log = agent.log()
    assert "Traceback" not in log and KEY not in log
    assert "switching to the fallback endpoint" in log and "back on the primary endpoint" in log
