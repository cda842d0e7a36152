"""The command line as a user runs it: real subprocesses, real exit codes."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import yaml

from tests.helpers import ROOT
from tools.standin_api import StandinApi, ThreadedStandin

KEY = "rf_cli_SECRET_key_5150"


def cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess[str]:
    import os

    return subprocess.run([sys.executable, "-m", "edge_agent", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=60, env={**os.environ, **(env or {})})


def write(tmp_path: Path, cfg: dict) -> str:
    p = tmp_path / "c.yaml"
    p.write_text(yaml.safe_dump(cfg))
    return str(p)


def base(url: str = "http://127.0.0.1:9", **api) -> dict:
    return {"api": {"url": url, "model": "colours/1", "api_key": "${TEST_KEY}", **api},
            "mqtt": {"host": "127.0.0.1", "password": "mqtt-SECRET-pw", "username": "u"},
            "cameras": [{"name": "door", "source": "rtsp://admin:CAM-SECRET@10.1.2.3/live", "fps": 2}]}


def test_check_prints_effective_config_with_secrets_masked(tmp_path: Path):
    r = cli("check", "-c", write(tmp_path, base()), env={"TEST_KEY": KEY})
    assert r.returncode == 0, r.stderr
    shown = yaml.safe_load(r.stdout)
    assert shown["api"]["api_key"] == "***" and shown["mqtt"]["password"] == "***"
    assert shown["cameras"][0]["source"] == "rtsp://***@10.1.2.3/live"
    assert shown["mqtt"]["topic_prefix"].startswith("edge_agent/")
    assert shown["api"]["timeout"] == 10.0  # defaults are shown too
    for secret in (KEY, "mqtt-SECRET-pw", "CAM-SECRET"):
        assert secret not in r.stdout + r.stderr


def test_bad_config_exits_2_naming_the_key(tmp_path: Path):
    cfg = base()
    cfg["cameras"].append({"name": "gate", "source": "0", "fps": -2})
    for cmd in ("check", "run"):
        r = cli(cmd, "-c", write(tmp_path, cfg), env={"TEST_KEY": KEY})
        assert r.returncode == 2
        assert "cameras[1].fps: must be > 0, got -2" in r.stderr
        assert KEY not in r.stderr + r.stdout


def test_missing_env_var_and_missing_file_exit_2(tmp_path: Path):
    r = cli("check", "-c", write(tmp_path, base()), env={"TEST_KEY": ""})
    assert r.returncode == 2 and "api.api_key: environment variable TEST_KEY is not set" in r.stderr
    r = cli("check", "-c", str(tmp_path / "nope.yaml"))
    assert r.returncode == 2 and "cannot read config file" in r.stderr


def test_usage_errors_exit_2():
    assert cli().returncode == 2
    assert cli("run").returncode == 2
    assert cli("frobnicate", "-c", "x").returncode == 2


def test_classify_one_image_prints_the_api_reply(tmp_path: Path):
    img = np.zeros((600, 800, 3), np.uint8)
    img[..., 1] = 255
    path = tmp_path / "green.png"
    cv2.imwrite(str(path), img)
    with ThreadedStandin(StandinApi(api_key=KEY)) as api:
        conf = write(tmp_path, base(api.url, image_size=200))
        r = cli("classify", "-c", conf, str(path), env={"TEST_KEY": KEY})
        seen = api.requests()
    assert r.returncode == 0, r.stderr
    body = json.loads(r.stdout)
    assert body["top"] == "green" and body["predictions"][0]["class"] == "green"
    assert (seen[0].width, seen[0].height) == (200, 150)  # the same resize path as the daemon


def test_classify_errors(tmp_path: Path):
    with ThreadedStandin(StandinApi(api_key="other-key")) as api:
        conf = write(tmp_path, base(api.url))
        img = tmp_path / "x.png"
        cv2.imwrite(str(img), np.zeros((10, 10, 3), np.uint8))
        r = cli("classify", "-c", conf, str(img), env={"TEST_KEY": KEY})
        assert r.returncode == 1 and "API key rejected (HTTP 401)" in r.stderr
        assert KEY not in r.stderr + r.stdout
        r = cli("classify", "-c", conf, str(tmp_path / "missing.png"), env={"TEST_KEY": KEY})
        assert r.returncode == 2 and "cannot read image" in r.stderr and "no such file" in r.stderr
        assert r.stderr.count("\n") == 1 and "WARN" not in r.stderr  # one line, no OpenCV warning first
    from tests.helpers import free_port

    port = free_port()  # nothing listens there
    conf = write(tmp_path, base(f"http://127.0.0.1:{port}"))
    r = cli("classify", "-c", conf, str(img), env={"TEST_KEY": KEY})
    assert r.returncode == 1 and f"cannot connect to 127.0.0.1:{port}" in r.stderr, r.stderr


def test_check_warns_about_the_skeletons_placeholder_model(tmp_path: Path):
    from edge_agent.install import CONFIG_SKELETON

    conf = tmp_path / "config.yaml"
    conf.write_text(CONFIG_SKELETON)
    (tmp_path / "api_key").write_text("k" * 20)
    r = cli("check", "--service", "-c", str(conf), env={"CREDENTIALS_DIRECTORY": str(tmp_path)})
    assert r.returncode == 0, r.stderr
    assert "placeholder 'your-dataset/1'" in r.stderr


def test_console_script_is_installed():
    exe = Path(sys.executable).with_name("edge-agent")
    r = subprocess.run([str(exe), "--version"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0 and r.stdout.startswith("edge-agent ")


def test_install_service_writes_unit_and_private_config(tmp_path: Path):
    root = tmp_path / "root"
    r = cli("install-service", "--root", str(root), "--exe", "/opt/x/bin/edge-agent")
    assert r.returncode == 0, r.stderr
    unit = root / "etc/systemd/system/edge-agent.service"
    conf = root / "etc/edge-agent/config.yaml"
    assert "ExecStart=/opt/x/bin/edge-agent run -c %d/config.yaml" in unit.read_text()
    assert oct(conf.stat().st_mode & 0o777) == "0o640"
    assert oct(conf.parent.stat().st_mode & 0o777) == "0o750"
    assert "api_key_file: ${CREDENTIALS_DIRECTORY}/api_key" in conf.read_text()
    steps = [ln for ln in r.stdout.splitlines() if ln.lstrip().startswith(("1. ", "2. "))]
    assert len(steps) == 2 and "systemctl enable --now edge-agent" in steps[1]
    # The skeleton is a valid config once the key is where systemd puts it.
    (root / "etc/edge-agent/api_key").write_text("k" * 20)
    r = cli("check", "-c", str(conf), env={"CREDENTIALS_DIRECTORY": str(root / "etc/edge-agent")})
    assert r.returncode == 0, r.stderr
    conf.write_text("# mine\n")
    r = cli("install-service", "--root", str(root), "--exe", "/opt/x/bin/edge-agent")
    assert "kept" in r.stdout and conf.read_text() == "# mine\n"  # never overwrites a config


def test_world_readable_config_with_a_key_warns_at_start(tmp_path: Path):
    from tests.helpers import AgentProc, agent_config, free_port, wait_until

    cfg = agent_config(api_url="http://127.0.0.1:9", broker_port=free_port(), api_key="literal-KEY-in-file-99",
                       cameras=[{"name": "cam", "source": str(tmp_path / "none.mp4"), "fps": 1}])
    agent = AgentProc(tmp_path, cfg, config_mode=0o644)
    try:
        wait_until(lambda: "readable by every user" in agent.log(), 15, what="the warning")
    finally:
        agent.signal(signal.SIGTERM)
        agent.wait(10)
        agent.close()
    assert "literal-KEY-in-file-99" not in agent.log()


def test_literal_secrets_detection():
    from edge_agent.config import literal_secrets

    assert literal_secrets("api: {api_key: abc123}")
    assert not literal_secrets("api: {api_key: '${ROBOFLOW_API_KEY}'}")
    assert literal_secrets("mqtt: {password: hunter2}")
    assert literal_secrets("cameras: [{source: 'rtsp://u:p@cam/1'}]")
    assert not literal_secrets("cameras: [{source: 'rtsp://${CAM_USER}:${CAM_PW}@cam/1'}]")
    assert not literal_secrets("api: {api_key_file: /run/credentials/x/api_key}")


def cli_bounded(*args: str, timeout: float = 5) -> tuple[subprocess.CompletedProcess[str], float]:
    """``cli`` with 1 GiB of address space, so a regression dies (exit 1) instead of
    eating the machine, and killed after ``timeout`` seconds."""
    import os
    import resource
    import time

    def cap() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (2**30, resource.getrlimit(resource.RLIMIT_AS)[1]))

    start = time.monotonic()
    r = subprocess.run([sys.executable, "-m", "edge_agent", *args], cwd=ROOT, capture_output=True, text=True,
                       timeout=timeout, env={**os.environ, "TEST_KEY": KEY}, preexec_fn=cap)
    return r, time.monotonic() - start


def test_hostile_config_files_exit_2_quickly_naming_the_key(tmp_path: Path):
    import os

    bomb = tmp_path / "bomb.yaml"
    levels = "abcdefghi"
    lines = ["lol:", '  a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    lines += [f"  {b}: &{b} [{', '.join(['*' + a] * 9)}]" for a, b in zip(levels, levels[1:])]
    bomb.write_text(yaml.safe_dump(base()) + "\n".join(lines) + "\n")  # "billion laughs": 9**9 strings
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    key_zero = write(tmp_path, {**base(), "api": {**base()["api"], "api_key": None, "api_key_file": "/dev/zero"}})
    cases = [
        (str(bomb), "lol.", "more than 10000 values once YAML aliases (*name) are expanded"),
        ("/dev/zero", "config file '/dev/zero'", "is a character device, not a regular file"),
        (str(fifo), f"config file {str(fifo)!r}", "is a FIFO, not a regular file"),
        (key_zero, "api.api_key_file: '/dev/zero'", "is a character device, not a regular file"),
    ]
    for path, key, problem in cases:
        r, took = cli_bounded("check", "-c", path)
        assert r.returncode == 2, (path, r.stderr[-2000:])
        assert r.stderr.startswith(f"edge-agent: config error: {key}") and problem in r.stderr, r.stderr[-2000:]
        assert "Traceback" not in r.stderr and took < 5


def test_a_busy_status_port_is_a_config_error_without_a_traceback(tmp_path):
    import socket

    from tests.helpers import free_port

    port = free_port()
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))
        s.listen(1)
        p = tmp_path / "c.yaml"
        p.write_text(yaml.safe_dump({
            "api": {"url": "http://127.0.0.1:9", "model": "a/1"}, "state_dir": str(tmp_path / "state"),
            "mqtt": {"host": "127.0.0.1", "port": free_port()}, "status": {"listen": f"127.0.0.1:{port}"},
            "cameras": [{"name": "cam", "source": str(tmp_path / "none.mp4")}]}))
        r = subprocess.run([sys.executable, "-m", "edge_agent", "run", "-c", str(p)], cwd=ROOT, capture_output=True,
                           text=True, timeout=30)
    assert r.returncode == 2, r.stderr
    assert f"status.listen: 127.0.0.1:{port} is in use; choose another port or set status.enabled: false" in r.stderr
    assert "Traceback" not in r.stderr and "Unclosed client session" not in r.stderr


def test_a_status_address_not_ours_is_a_config_error_naming_why(tmp_path):
    from tests.helpers import free_port

    p = tmp_path / "c.yaml"
    p.write_text(yaml.safe_dump({
        "api": {"url": "http://127.0.0.1:9", "model": "a/1"}, "state_dir": str(tmp_path / "state"),
        "mqtt": {"host": "127.0.0.1", "port": free_port()},
        "status": {"listen": "192.0.2.1:8080", "public": True},  # TEST-NET-1: no interface here has it
        "cameras": [{"name": "cam", "source": str(tmp_path / "none.mp4")}]}))
    r = subprocess.run([sys.executable, "-m", "edge_agent", "run", "-c", str(p)], cwd=ROOT, capture_output=True,
                       text=True, timeout=30)
    assert r.returncode == 2, r.stderr
    assert "status.listen: cannot listen on 192.0.2.1:8080: Cannot assign requested address" in r.stderr
    assert "Traceback" not in r.stderr and "Unclosed client session" not in r.stderr


def test_bare_dollar_api_key_exits_2_showing_the_braces(tmp_path: Path):
    cfg = base("https://classify.roboflow.com")
    cfg["api"]["api_key"] = "$ROBOFLOW_API_KEY"
    conf = tmp_path / "c.yaml"
    conf.write_text(yaml.safe_dump(cfg).replace("'$ROBOFLOW_API_KEY'", "$ROBOFLOW_API_KEY"))
    assert "api_key: $ROBOFLOW_API_KEY\n" in conf.read_text()  # as a user writes it, unquoted
    r = cli("check", "-c", str(conf), env={"ROBOFLOW_API_KEY": KEY})
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr == ("edge-agent: config error: api.api_key: looks like an environment variable; "
                        "write ${ROBOFLOW_API_KEY} to use one\n")


def test_top_level_typo_exits_2_with_did_you_mean(tmp_path: Path):
    cfg = base()
    cfg["camera"] = cfg.pop("cameras")
    r = cli("check", "-c", write(tmp_path, cfg), env={"TEST_KEY": KEY})
    assert r.returncode == 2
    assert "edge-agent: config error: camera: unknown key (did you mean 'cameras'?)" in r.stderr


def test_what_check_prints_passes_check_unchanged(tmp_path: Path):
    cfg = base()
    cfg["mqtt"]["tls"] = None  # TLS with the system's CAs
    cfg["status"] = {"listen": "0.0.0.0:8081", "auth": {"username": "viewer", "password": "${STATUS_PW}"}}
    env = {"TEST_KEY": KEY, "STATUS_PW": "status-SECRET-pw"}
    first = cli("check", "-c", write(tmp_path, cfg), env=env)
    assert first.returncode == 0, first.stderr
    shown = yaml.safe_load(first.stdout)
    assert shown["mqtt"]["tls"] == {"insecure": False} and shown["mqtt"]["port"] == 8883
    assert shown["status"] == {"enabled": True, "listen": "0.0.0.0:8081",
                               "auth": {"username": "viewer", "password": "***"}, "public": False}
    printed = tmp_path / "printed.yaml"
    printed.write_text(first.stdout)
    second = cli("check", "-c", str(printed))
    assert second.returncode == 0, second.stderr
    assert second.stdout == first.stdout
    assert "status-SECRET-pw" not in first.stdout + first.stderr
