"""The demo: the agent on a sample clip, against the local stand-in API and a
local mosquitto, printing the MQTT messages as a subscriber sees them.

    scripts/demo.sh [--seconds 30]

Everything runs on 127.0.0.1 and stops by itself after ``--seconds``.

Collection is on (``config/demo.yaml``'s ``dataset:``): the stand-in answers a
share of calls with a confident mistake (``--noise``, seeded so a run repeats
them), the agent saves the frames worth labelling to the stand-in's upload route,
which files them in ``demo-run/dataset/``, and the demo asks once over MQTT
(``P/door/collect``) for the last frame. At the end it says how many frames were
saved and why, read from that folder (each carries its reason in its metadata and
tags). Each run starts afresh: a new state directory and an empty folder.
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

from tools.standin_dataset import StoredImage, by_reason, stored

ROOT = Path(__file__).resolve().parent.parent
RUN = ROOT / "demo-run"
NOISE, SEED = 0.2, 2135  # a confident mistake on 20 % of the calls; this seed never makes two in a row
# in its first 100 calls, so the decided states stay right (two in a row would be a wrong state:
# decide.confirm is 2); the mistakes' frames are the "overruled" ones
WHY = {  # what each reason means (README, "Training data")
    "on_demand": "asked for over MQTT (P/<camera>/collect)",
    "overruled": "a confident result the decision did not follow (the stand-in's mistakes)",
    "change": "the result that decided a new state",
    "uncertain": "a result the model was unsure of (top confidence low, or the top two close)",
    "random": "a random share of the results",
}


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


def waiting_to_upload(status_url: str) -> int | None:
    """Frames the agent still holds in its upload queue, from its status page's JSON
    (``dataset.queued``; None if it does not answer or does not say)."""
    try:
        with urllib.request.urlopen(status_url, timeout=2) as r:
            cameras = json.load(r)["cameras"]
        return max(int(cam["dataset"]["queued"]) for cam in cameras)
    except (OSError, ValueError, KeyError, TypeError):
        return None


def saved_summary(images: list[StoredImage], folder: Path) -> list[str]:
    """The closing lines: how many frames were saved for training, and why."""
    folder = folder.relative_to(ROOT) if folder.is_relative_to(ROOT) else folder
    if not images:
        return [f"demo: no frame was saved for training (the stand-in's folder {folder} is empty)"]
    guessed = sum(1 for i in images if i.prediction)
    person = sum(1 for i in images if i.label is not None and not i.prediction)
    lines = [f"demo: {len(images)} frame(s) saved for training, filed by the stand-in in {folder} "
             f"({guessed} labelled with the model's guess for you to review, {person} by a person):"]
    for reason, count in by_reason(images).items():
        lines.append(f"        {count:3d} {reason:10s} {WHY.get(reason, '')}")
    return lines


def describe(payload: bytes) -> str:
    if not payload:
        return "(empty)"
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
    dataset = RUN / "dataset"  # what the stand-in's upload route receives
    for fresh in (RUN / "state", dataset):  # a new run: no state resumed, no limit used, nothing filed
        shutil.rmtree(fresh, ignore_errors=True)

    mqtt_port, api_port, status_port = free_port(), free_port(), free_port()
    (RUN / "mosquitto.conf").write_text(f"listener {mqtt_port} 127.0.0.1\nallow_anonymous true\npersistence false\n")
    procs: list[subprocess.Popen[bytes]] = []
    mosq = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    procs.append(subprocess.Popen([mosq, "-c", str(RUN / "mosquitto.conf")], stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL))
    procs.append(subprocess.Popen([sys.executable, "-m", "tools.standin_api", "--port", str(api_port),
                                   "--api-key", "demo-key", "--latency", "0.18", "--noise", str(NOISE),
                                   "--seed", str(SEED), "--dataset-dir", str(dataset)], cwd=ROOT,
                                  stdout=subprocess.DEVNULL))
    wait_port(mqtt_port)
    wait_port(api_port)

    prefix = "edge_agent/demo"
    first_state: list[float] = []

    def on_message(c: mqtt.Client, u: object, m: mqtt.MQTTMessage) -> None:
        print(f"  mqtt  {m.topic}  {describe(m.payload)}", flush=True)
        if m.topic == f"{prefix}/door/state" and m.payload and not first_state:
            first_state.append(time.monotonic())

    sub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="demo-subscriber")
    sub.on_connect = lambda c, u, f, rc, p: c.subscribe(f"{prefix}/#", qos=1)
    sub.on_message = on_message
    sub.connect("127.0.0.1", mqtt_port)
    sub.loop_start()

    env = {**os.environ, "DEMO_API_URL": f"http://127.0.0.1:{api_port}", "DEMO_MQTT_PORT": str(mqtt_port),
           "DEMO_VIDEO": str(clip), "DEMO_API_KEY": "demo-key", "DEMO_STATUS": f"127.0.0.1:{status_port}",
           "DEMO_STATE_DIR": str(RUN / "state")}
    print(f"demo: mosquitto on 127.0.0.1:{mqtt_port}, stand-in API (180 ms latency, {NOISE:.0%} confident "
          f"mistakes) on 127.0.0.1:{api_port}")
    print(f"demo: collection is on: frames worth labelling go to the stand-in's upload route, filed in {dataset}")
    print(f"demo: the status page is at http://127.0.0.1:{status_port}/")
    print(f"demo: agent log lines start with a time; MQTT messages with 'mqtt'. Watch with:\n"
          f"      mosquitto_sub -p {mqtt_port} -v -t '{prefix}/#'\n", flush=True)
    agent = subprocess.Popen([sys.executable, "-m", "edge_agent", "run", "-c", str(ROOT / "config/demo.yaml")],
                             cwd=ROOT, env=env)
    procs.append(agent)
    started = time.monotonic()
    calls = queued = None
    asked = False
    status_url = f"http://127.0.0.1:{status_port}/api/status"
    try:
        deadline = time.monotonic() + args.seconds
        while time.monotonic() < deadline and agent.poll() is None:
            if not asked and first_state and time.monotonic() > first_state[0] + 1:
                # On demand: the last classified frame, labelled with the model's guess.
                print(f"demo: asking for the last frame over MQTT: {prefix}/door/collect (empty payload)", flush=True)
                sub.publish(f"{prefix}/door/collect", b"", qos=1)
                asked = True
            time.sleep(0.2)
        settle = time.monotonic() + 3  # the last frames saved are on their way to the stand-in
        while time.monotonic() < settle and agent.poll() is None and waiting_to_upload(status_url):
            time.sleep(0.2)
    except KeyboardInterrupt:
        pass
    finally:
        calls = calls_made(status_url)
        queued = waiting_to_upload(status_url)
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
    for line in saved_summary(stored(dataset), dataset):
        print(line)
    if queued:
        print(f"demo: {queued} more still waiting to upload when the agent stopped (kept in its queue on disk, "
              f"sent at its next start)")
    print(f"demo: agent exited with status {agent.returncode}")
    return agent.returncode or 0


if __name__ == "__main__":
    raise SystemExit(main())
