"""MQTT with a username/password and over TLS, against a real mosquitto."""

from __future__ import annotations

import signal
import ssl
import subprocess
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from tests.helpers import AgentProc, Broker, agent_config, make_certs, wait_until
from tools.standin_api import StandinApi, ThreadedStandin

KEY = "rf_tls_SECRET_key_31"
PASSWORD = "mqtt-PASSWORD-s3cret"


@pytest.fixture
def secure_broker(tmp_path: Path):
    certs = make_certs(tmp_path)
    pw = tmp_path / "passwd"
    pw.write_text("")
    subprocess.run(["mosquitto_passwd", "-b", str(pw), "agent", PASSWORD], check=True, timeout=30)
    pw.chmod(0o600)
    broker = Broker(tmp_path, extra=(f"allow_anonymous false\npassword_file {pw}\n"
                                     f"cafile {certs['ca']}\ncertfile {certs['cert']}\nkeyfile {certs['key']}\n"))
    broker.start()
    yield broker, certs
    broker.stop()


def tls_subscriber(port: int, ca: Path, topic: str) -> tuple[mqtt.Client, list[mqtt.MQTTMessage]]:
    got: list[mqtt.MQTTMessage] = []
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="tls-recorder")
    c.username_pw_set("agent", PASSWORD)
    c.tls_set(ca_certs=str(ca), cert_reqs=ssl.CERT_REQUIRED)
    c.on_connect = lambda cl, u, f, rc, p: cl.subscribe(topic, qos=1)
    c.on_message = lambda cl, u, m: got.append(m)
    c.connect("127.0.0.1", port)
    c.loop_start()
    return c, got


def start_agent(tmp_path: Path, api: StandinApi, broker: Broker, videos, password: str = PASSWORD,
                **mqtt_extra) -> AgentProc:
    cfg = agent_config(api_url=api.url, broker_port=broker.port, api_key=KEY,
                       cameras=[{"name": "cam", "source": str(videos["red_long"]), "fps": 5, "loop": True}])
    cfg["mqtt"].update({"username": "agent", "password": "${MQTT_PW}", **mqtt_extra})
    return AgentProc(tmp_path, cfg, env={"MQTT_PW": password})


def stop(agent: AgentProc) -> None:
    agent.signal(signal.SIGTERM)
    assert agent.wait(10) == 0
    agent.close()


def test_tls_with_username_and_password(tmp_path: Path, secure_broker, videos):
    broker, certs = secure_broker
    sub, got = tls_subscriber(broker.port, certs["ca"], "edge_agent/test/#")
    with ThreadedStandin(StandinApi(api_key=KEY)) as api:
        agent = start_agent(tmp_path, api, broker, videos, tls={"ca_certs": str(certs["ca"])})
        try:
            wait_until(lambda: any(m.topic == "edge_agent/test/cam/state" for m in got), 30, what="state over TLS")
        finally:
            stop(agent)
            sub.loop_stop()
    assert any(m.topic == "edge_agent/test/availability" and m.payload == b"offline" for m in got)
    log = agent.log()
    assert PASSWORD not in log and KEY not in log
    assert all(PASSWORD.encode() not in m.payload for m in got)


def test_untrusted_certificate_is_refused_and_reported_once(tmp_path: Path, secure_broker, videos):
    broker, certs = secure_broker
    with ThreadedStandin(StandinApi(api_key=KEY)) as api:
        agent = start_agent(tmp_path, api, broker, videos, tls={"ca_certs": str(certs["other_ca"])})
        try:
            wait_until(lambda: "MQTT" in agent.log() and "retrying" in agent.log(), 20, what="the failure logged")
            wait_until(lambda: len(api.requests()) >= 10, 20, what="classifying without a broker")
            assert agent.proc.poll() is None
        finally:
            stop(agent)
    log = agent.log()
    assert log.count("MQTT cannot connect") + log.count("MQTT connection lost") + log.count("refused") == 1, log
    assert "TLS certificate not trusted" in log
    assert PASSWORD not in log


def test_wrong_password_is_refused_not_fatal(tmp_path: Path, secure_broker, videos):
    broker, certs = secure_broker
    with ThreadedStandin(StandinApi(api_key=KEY)) as api:
        agent = start_agent(tmp_path, api, broker, videos, tls={"ca_certs": str(certs["ca"])},
                            password="wrong-password-1")
        try:
            wait_until(lambda: "refused" in agent.log(), 20, what="the refusal logged")
            assert agent.proc.poll() is None
        finally:
            stop(agent)
    log = agent.log()
    assert log.count("refused") == 1, log
    assert "wrong-password-1" not in log


def test_insecure_tls_warns(tmp_path: Path, secure_broker, videos):
    broker, certs = secure_broker
    with ThreadedStandin(StandinApi(api_key=KEY)) as api:
        agent = start_agent(tmp_path, api, broker, videos, tls={"insecure": True})
        try:
            wait_until(lambda: "MQTT connected" in agent.log(), 20, what="a connection without verification")
        finally:
            stop(agent)
    assert "NOT verified" in agent.log()
