"""The demo: the agent on a sample clip, against the local stand-in API and a
local mosquitto, printing the MQTT messages as a subscriber sees them.

    scripts/demo.sh [--seconds 30]

Everything runs on 127.0.0.1 and stops by itself after ``--seconds``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

ROOT = Path(__file__).resolve().parent.parent
RUN = ROOT / "demo-run"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"demo: nothing listens on 127.0.0.1:{port}")


def make_clip(path: Path) -> None:
    """A camera-like 640x480 MJPEG clip, 30 s, looping: a textured room with sensor
    noise, a blinking LED and a ticking clock; a door panel that is red, then green,
    then blue (a 'camera' whose answer we know) and a passer-by (tools/scenes.py)."""
    if path.exists():
        return
    from tools.scenes import Scene

    Scene(width=640, height=480, fps=15, seconds=30, classes=[(0, "red"), (10, "green"), (20, "blue")],
          passer=(13.0, 15.0), fade=None).write(path)


def calls_made(status_url: str) -> int | None:
    """API calls the agent made, from its status page's JSON (None if it does not answer)."""
    try:
        with urllib.request.urlopen(status_url, timeout=2) as r:
            return sum(cam["frames_sent"] for cam in json.load(r)["cameras"])
    except (OSError, ValueError, KeyError):
        return None


def describe(payload: bytes) -> str:
    if payload[:2] == b"\xff\xd8":
        return f"<JPEG, {len(payload)} bytes>"
    return payload.decode(errors="replace")


def main() -> int:
    ap = argparse.ArgumentParser(description="edge-agent demo")
    ap.add_argument("--seconds", type=float, default=30, help="how long to run (default 30)")
    args = ap.parse_args()
    RUN.mkdir(exist_ok=True)
    clip = RUN / "sample-scene.avi"
    make_clip(clip)

    mqtt_port, api_port, status_port = free_port(), free_port(), free_port()
    (RUN / "mosquitto.conf").write_text(f"listener {mqtt_port} 127.0.0.1\nallow_anonymous true\npersistence false\n")
    procs: list[subprocess.Popen[bytes]] = []
    mosq = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    procs.append(subprocess.Popen([mosq, "-c", str(RUN / "mosquitto.conf")], stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL))
    procs.append(subprocess.Popen([sys.executable, "-m", "tools.standin_api", "--port", str(api_port),
                                   "--api-key", "demo-key", "--latency", "0.18"], cwd=ROOT,
                                  stdout=subprocess.DEVNULL))
    wait_port(mqtt_port)
    wait_port(api_port)

    prefix = "edge_agent/demo"
    sub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="demo-subscriber")
    sub.on_connect = lambda c, u, f, rc, p: c.subscribe(f"{prefix}/#", qos=1)
    sub.on_message = lambda c, u, m: print(f"  mqtt  {m.topic}  {describe(m.payload)}", flush=True)
    sub.connect("127.0.0.1", mqtt_port)
    sub.loop_start()

    env = {**os.environ, "DEMO_API_URL": f"http://127.0.0.1:{api_port}", "DEMO_MQTT_PORT": str(mqtt_port),
           "DEMO_VIDEO": str(clip), "DEMO_API_KEY": "demo-key", "DEMO_STATUS": f"127.0.0.1:{status_port}",
           "DEMO_STATE_DIR": str(RUN / "state")}
    print(f"demo: mosquitto on 127.0.0.1:{mqtt_port}, stand-in API (180 ms latency) on 127.0.0.1:{api_port}")
    print(f"demo: the status page is at http://127.0.0.1:{status_port}/")
    print(f"demo: agent log lines start with a time; MQTT messages with 'mqtt'. Watch with:\n"
          f"      mosquitto_sub -p {mqtt_port} -v -t '{prefix}/#'\n", flush=True)
    agent = subprocess.Popen([sys.executable, "-m", "edge_agent", "run", "-c", str(ROOT / "config/demo.yaml")],
                             cwd=ROOT, env=env)
    procs.append(agent)
    started = time.monotonic()
    calls = None
    try:
        deadline = time.monotonic() + args.seconds
        while time.monotonic() < deadline and agent.poll() is None:
            time.sleep(0.2)
    except KeyboardInterrupt:
        pass
    finally:
        calls = calls_made(f"http://127.0.0.1:{status_port}/api/status")
        ran = time.monotonic() - started
        if agent.poll() is None:
            agent.send_signal(signal.SIGTERM)
            agent.wait(10)
        time.sleep(0.3)
        sub.loop_stop()
        for p in procs[:-1]:
            p.terminate()
            p.wait(5)
    if calls is not None:
        ceiling = 2 * ran  # the camera's fps: 2, a ceiling, not a rate
        print(f"demo: {calls} API calls in {ran:.0f} s; fps 2 would have allowed {ceiling:.0f}: the change gate "
              f"called only when the picture changed ({calls / max(1, ceiling):.0%})")
    print(f"demo: agent exited with status {agent.returncode}")
    return agent.returncode or 0


if __name__ == "__main__":
    raise SystemExit(main())
