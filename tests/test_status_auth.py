"""Who may look at the status page (issue #13): with ``status.auth`` every route but
/healthz needs HTTP basic auth, and the password never leaves the agent. One real
agent, listening on loopback (auth applies whenever it is configured)."""

from __future__ import annotations

import base64
import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest
import requests

from tests.helpers import ROOT, AgentProc, Broker, Recorder, agent_config, free_port, wait_until
from tools.standin_api import StandinApi, ThreadedStandin

PREFIX = "edge_agent/test"
USER = "viewer"
PASSWORD = "Status-SECRET-pw-31337"
ENV = {"STATUS_PW": PASSWORD}
CHALLENGE = 'Basic realm="edge-agent"'
PROTECTED = ["/", "/api/status", "/api/events", "/cameras/door/latest.jpg", "/metrics",
             "/api/events/1.jpg", "/no/such/page"]


@dataclass
class Running:
    agent: AgentProc
    url: str
    recorders: list[Recorder]


@pytest.fixture(scope="module")
def running(tmp_path_factory, videos) -> Iterator[Running]:
    d = tmp_path_factory.mktemp("status-auth")
    broker = Broker(d).start()
    rec = Recorder(broker.port, PREFIX)
    ha = Recorder(broker.port, "homeassistant")
    port = free_port()
    with ThreadedStandin(StandinApi(api_key="test-key")) as api:
        cfg = agent_config(api_url=api.url, broker_port=broker.port, cameras=[
            {"name": "door", "source": str(videos["rgb"]), "fps": 4, "loop": True}])
        cfg["homeassistant"] = {"classes": ["red", "blue"]}
        cfg["status"] = {"listen": f"127.0.0.1:{port}", "auth": {"username": USER, "password": "${STATUS_PW}"}}
        agent = AgentProc(d, cfg, env=ENV)
        try:
            rec.wait_for("door/state", timeout=40)
            rec.wait_for("door/event", timeout=40)  # the event history has something in it
            yield Running(agent, f"http://127.0.0.1:{port}", [rec, ha])
        finally:
            agent.signal(signal.SIGTERM)
            agent.wait(10)
            agent.close()
            rec.close()
            ha.close()
            broker.stop()


def get(running: Running, path: str, **kw) -> requests.Response:
    return requests.get(running.url + path, timeout=5, **kw)


@pytest.mark.parametrize("path", PROTECTED)
def test_without_credentials_every_route_but_healthz_is_401(running: Running, path: str):
    r = get(running, path)
    assert r.status_code == 401, r.text
    assert r.headers["WWW-Authenticate"] == CHALLENGE
    assert r.headers["Server"] == "edge-agent" and r.headers["Cache-Control"] == "no-store"
    assert b"\xff\xd8" not in r.content[:2] and "cameras" not in r.text


@pytest.mark.parametrize("header", [
    "Basic " + base64.b64encode(f"{USER}:wrong".encode()).decode(),
    "Basic " + base64.b64encode(f"someone:{PASSWORD}".encode()).decode(),
    "Basic " + base64.b64encode(f"{USER}:{PASSWORD}x".encode()).decode(),
    "Basic " + base64.b64encode(f"{USER}:".encode()).decode(),
    "Basic " + base64.b64encode(USER.encode()).decode(),  # no colon
    "Basic !!!not-base64!!!",
    f"Bearer {PASSWORD}",
    "Basic",
])
def test_wrong_credentials_are_401(running: Running, header: str):
    for path in ("/", "/api/status", "/metrics"):
        r = get(running, path, headers={"Authorization": header})
        assert r.status_code == 401 and r.headers["WWW-Authenticate"] == CHALLENGE, (path, header)


def test_right_credentials_see_everything(running: Running):
    auth = (USER, PASSWORD)
    r = get(running, "/", auth=auth)
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/html")
    s = get(running, "/api/status", auth=auth)
    assert s.status_code == 200 and s.json()["cameras"][0]["name"] == "door"
    r = wait_until(lambda: (lambda r: r if r.status_code == 200 else None)(
        get(running, "/cameras/door/latest.jpg", auth=auth)), 10, what="a classified frame")
    assert r.headers["Content-Type"] == "image/jpeg" and r.content[:2] == b"\xff\xd8"
    r = get(running, "/metrics", auth=auth)
    assert r.status_code == 200 and "edge_agent_frames_captured_total" in r.text
    events = get(running, "/api/events", auth=auth)
    assert events.status_code == 200 and events.json()["events"]
    thumb = next((e["thumbnail"] for e in events.json()["events"] if e["thumbnail"]), None)
    if thumb:
        assert get(running, thumb, auth=auth).status_code == 200
    assert get(running, "/no/such/page", auth=auth).status_code == 404  # past the door, a plain 404


def test_healthz_stays_open_for_probes(running: Running):
    r = wait_until(lambda: (lambda r: r if r.status_code == 200 else None)(get(running, "/healthz")), 10,
                   what="/healthz 200")
    assert r.json()["ok"] is True and "WWW-Authenticate" not in r.headers


def test_the_password_is_nowhere(running: Running):
    auth = (USER, PASSWORD)
    get(running, "/", headers={"Authorization": "Basic " + base64.b64encode(f"{USER}:nope".encode()).decode()})
    status = get(running, "/api/status", auth=auth).text
    events = get(running, "/api/events", auth=auth).text
    metrics = get(running, "/metrics", auth=auth).text
    check = subprocess.run([sys.executable, "-m", "edge_agent", "check", "-c", str(running.agent.config_path)],
                           cwd=ROOT, capture_output=True, text=True, timeout=60,
                           env={**os.environ, **ENV})
    assert check.returncode == 0, check.stderr
    assert "password: '***'" in check.stdout
    log = running.agent.log()
    assert "status page on http://127.0.0.1:" in log and "basic auth" in log
    mqtt = [m for rec in running.recorders for m in rec.all()]
    assert mqtt, "the recorders saw the agent's messages"
    encoded = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    for where, text in [("log", log), ("check", check.stdout + check.stderr), ("/api/status", status),
                        ("/api/events", events), ("/metrics", metrics)]:
        assert PASSWORD not in text and encoded not in text, where
    for m in mqtt:
        assert PASSWORD.encode() not in m.payload and PASSWORD not in m.topic, m.topic


def test_public_without_auth_is_logged_as_a_warning(tmp_path: Path, broker: Broker, videos):
    cfg = agent_config(api_url="http://127.0.0.1:9", broker_port=broker.port,
                       cameras=[{"name": "door", "source": str(videos["red_long"]), "fps": 1, "loop": True}])
    port = free_port()
    cfg["status"] = {"listen": f"127.0.0.1:{port}", "public": True}
    agent = AgentProc(tmp_path, cfg)
    try:
        wait_until(lambda: "status.public: true" in agent.log(), 20, what="the warning")
        assert requests.get(f"http://127.0.0.1:{port}/api/status", timeout=5).status_code == 200  # no auth asked
    finally:
        agent.signal(signal.SIGTERM)
        agent.wait(10)
        agent.close()
    line = next(ln for ln in agent.log().splitlines() if "status.public: true" in ln)
    assert "WARNING" in line and "open to anyone who can reach it" in line
