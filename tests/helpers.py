"""Real parts for the tests: a mosquitto broker, an MQTT recorder, test videos,
and the agent as a subprocess. Every server listens on 127.0.0.1 only."""

from __future__ import annotations

import getpass
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import paho.mqtt.client as mqtt
import yaml
from paho.mqtt.enums import CallbackAPIVersion

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(pred: Callable[[], Any], timeout: float, interval: float = 0.05, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = pred()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


class Broker:
    """A real mosquitto on a free loopback port; ``extra`` lines go into its config
    (TLS and password files, for the security tests)."""

    def __init__(self, workdir: Path, port: int | None = None, extra: str = ""):
        self.port = port or free_port()
        self.workdir = workdir
        self.extra = extra
        self.proc: subprocess.Popen[bytes] | None = None
        exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        if not Path(exe).exists():
            raise RuntimeError("mosquitto is not installed (apt-get install mosquitto)")
        self.exe = exe

    def start(self) -> "Broker":
        conf = self.workdir / f"mosquitto-{self.port}.conf"
        if self.extra:
            # Started as root, mosquitto drops to user "mosquitto", which cannot read the
            # test's private files; stay the user running the tests.
            conf.write_text(f"user {getpass.getuser()}\nper_listener_settings false\npersistence false\n"
                            f"listener {self.port} 127.0.0.1\n" + self.extra)
        else:
            conf.write_text(f"listener {self.port} 127.0.0.1\nallow_anonymous true\npersistence false\n")
        self.log = open(self.workdir / f"mosquitto-{self.port}.log", "ab")
        self.proc = subprocess.Popen([self.exe, "-c", str(conf)], stdout=self.log, stderr=subprocess.STDOUT)
        wait_until(self._accepts, 10, what="mosquitto to listen")
        return self

    def _accepts(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                return True
        except OSError:
            return False

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None


@dataclass
class Msg:
    topic: str
    payload: bytes
    retain: bool
    at: float  # time.monotonic() on arrival
    wall: float = 0.0  # time.time() on arrival

    def json(self) -> Any:
        return json.loads(self.payload)


class Recorder:
    """Subscribes to ``prefix/#`` and keeps every message, reconnecting on its own.
    ``session``: a client id for a persistent session, so a broker that keeps sessions
    queues what is published while the recorder reconnects."""

    def __init__(self, port: int, prefix: str, session: str | None = None):
        self.prefix = prefix
        self.msgs: list[Msg] = []
        self._lock = threading.Lock()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=session or f"recorder-{os.getpid()}-{id(self)}",
                                  clean_session=session is None)
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe(f"{prefix}/#", qos=1)
        self.client.on_message = self._on_message
        self.client.reconnect_delay_set(0.2, 1)
        self.client.connect_async("127.0.0.1", port, keepalive=10)
        self.client.loop_start()
        wait_until(self.client.is_connected, 10, what="recorder to connect")

    def _on_message(self, client: Any, userdata: Any, m: mqtt.MQTTMessage) -> None:
        with self._lock:
            self.msgs.append(Msg(m.topic, m.payload, bool(m.retain), time.monotonic(), time.time()))

    def all(self, suffix: str | None = None) -> list[Msg]:
        with self._lock:
            msgs = list(self.msgs)
        if suffix is None:
            return msgs
        return [m for m in msgs if m.topic == f"{self.prefix}/{suffix}"]

    def last(self, suffix: str) -> Msg | None:
        msgs = self.all(suffix)
        return msgs[-1] if msgs else None

    def wait_for(self, suffix: str, pred: Callable[[Msg], bool] = lambda m: True, timeout: float = 20,
                 after: float = 0.0) -> Msg:
        def find() -> Msg | None:
            for m in self.all(suffix):
                if m.at >= after and pred(m):
                    return m
            return None

        return wait_until(find, timeout, what=f"a message on {self.prefix}/{suffix}")

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def make_video(path: Path, colors: list[tuple[str, float]], *, size: str = "320x240", fps: int = 30,
               codec: str = "libx264") -> Path:
    """A video of solid colours with ffmpeg, e.g. ``[("red", 2), ("blue", 2)]``."""
    cmd = ["ffmpeg", "-nostdin", "-y", "-loglevel", "error"]
    for color, seconds in colors:
        cmd += ["-f", "lavfi", "-i", f"color=c={color}:s={size}:r={fps}:d={seconds}"]
    n = len(colors)
    chain = "".join(f"[{i}:v]" for i in range(n)) + f"concat=n={n}:v=1:a=0[v]"
    cmd += ["-filter_complex", chain, "-map", "[v]", "-c:v", codec]
    if codec == "libx264":
        cmd += ["-pix_fmt", "yuv420p", "-preset", "veryfast", "-g", str(fps)]
    cmd.append(str(path))
    subprocess.run(cmd, check=True, timeout=120)
    return path


def make_certs(d: Path) -> dict[str, Path]:
    """A throwaway CA and a server certificate for 127.0.0.1, with openssl."""
    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=60)

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=edge-agent test CA",
        "-keyout", str(d / "ca.key"), "-out", str(d / "ca.pem"))
    run("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1",
        "-keyout", str(d / "server.key"), "-out", str(d / "server.csr"))
    (d / "ext.cnf").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    run("x509", "-req", "-in", str(d / "server.csr"), "-CA", str(d / "ca.pem"), "-CAkey", str(d / "ca.key"),
        "-CAcreateserial", "-days", "2", "-extfile", str(d / "ext.cnf"), "-out", str(d / "server.pem"))
    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=some other CA",
        "-keyout", str(d / "other.key"), "-out", str(d / "other.pem"))
    return {"ca": d / "ca.pem", "cert": d / "server.pem", "key": d / "server.key", "other_ca": d / "other.pem"}


def make_split_video(path: Path, left: str, right: str, *, seconds: float = 4, size: str = "320x240",
                     fps: int = 30) -> Path:
    """Left half one colour, right half another (for region tests)."""
    w, h = (int(x) for x in size.split("x"))
    cmd = ["ffmpeg", "-nostdin", "-y", "-loglevel", "error",
           "-f", "lavfi", "-i", f"color=c={left}:s={w // 2}x{h}:r={fps}:d={seconds}",
           "-f", "lavfi", "-i", f"color=c={right}:s={w // 2}x{h}:r={fps}:d={seconds}",
           "-filter_complex", "[0:v][1:v]hstack=inputs=2[v]", "-map", "[v]",
           "-c:v", "libx264", "-pix_fmt", "yuv420p", "-preset", "veryfast", str(path)]
    subprocess.run(cmd, check=True, timeout=120)
    return path


def agent_config(*, api_url: str, broker_port: int, cameras: list[dict[str, Any]], api_key: str = "test-key",
                 prefix: str = "edge_agent/test", gate: bool = False, **api_extra: Any) -> dict[str, Any]:
    """A config for the tests. The change gate is off unless ``gate``: most tests want a
    steady stream of results (a camera's own ``change`` wins)."""
    api = {"url": api_url, "model": "colours/1", "api_key": api_key, "timeout": 2,
           "retry_initial": 0.2, "retry_max": 1.0, "unauthorized_retry": 1.0}
    api.update(api_extra)
    cameras = [{"change": {"enabled": gate}, **cam} for cam in cameras]
    return {
        "device_id": "test",
        "api": api,
        "mqtt": {"host": "127.0.0.1", "port": broker_port, "topic_prefix": prefix},
        "decide": {"min_confidence": 0.5, "confirm": 2},
        "cameras": cameras,
        "status_interval": 1,
        "status": {"listen": f"127.0.0.1:{free_port()}"},
    }


class AgentProc:
    """``python -m edge_agent run`` as a real subprocess; stderr kept for inspection."""

    def __init__(self, workdir: Path, config: dict[str, Any], env: dict[str, str] | None = None,
                 log_level: str = "debug", config_mode: int = 0o600):
        self.workdir = workdir
        self.config_path = workdir / "agent.yaml"
        config = {"state_dir": str(workdir / "state"), **config}  # never the user's own state folder
        self.config_path.write_text(yaml.safe_dump(config))
        self.config_path.chmod(config_mode)  # it holds the (test) API key
        self.log_path = workdir / "agent.log"
        self._log = open(self.log_path, "wb")
        full_env = dict(os.environ)
        full_env.update(env or {})
        full_env["PYTHONUNBUFFERED"] = "1"
        self.proc = subprocess.Popen([sys.executable, "-m", "edge_agent", "run", "-c", str(self.config_path),
                                      "--log-level", log_level],
                                     cwd=ROOT, env=full_env, stdout=self._log, stderr=subprocess.STDOUT)

    def signal(self, sig: int = signal.SIGTERM) -> None:
        self.proc.send_signal(sig)

    def wait(self, timeout: float) -> int:
        return self.proc.wait(timeout)

    def log(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)
        self._log.close()
