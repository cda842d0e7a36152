"""End-to-end check of edge-agent's Home Assistant MQTT discovery against a REAL
Home Assistant: mosquitto + HA (minimal config, MQTT config entry, long-lived
token) + the project's stand-in API + `edge-agent run`, then the entities are
read back over HA's REST API.

Run with the agent venv's python (needs cv2, numpy, paho-mqtt 2):
    agentvenv/bin/python ha_check.py --ha-venv havenv --out run-2024.3.3

Every process it starts is tracked by PID (OUT/pids.txt) and stopped by PID.
Prints a check list and 'N passed, N failed'; exit 1 if anything failed.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import cv2
import numpy as np
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

HERE = Path(__file__).resolve().parent
AGENT_BIN = Path(sys.executable).parent / "edge-agent"
DEV = "hacheck"
NODE = f"edge_agent_{DEV}"
PREFIX = f"edge_agent/{DEV}"

ap = argparse.ArgumentParser()
ap.add_argument("--ha-venv", required=True, type=Path)
ap.add_argument("--out", required=True, type=Path)
ap.add_argument("--agent-src", default=HERE / "agent-src", type=Path)
ap.add_argument("--mqtt-port", type=int, default=18830)
ap.add_argument("--http-port", type=int, default=18123)
ap.add_argument("--api-port", type=int, default=19001)
ap.add_argument("--status-port", type=int, default=18080)
ap.add_argument("--no-dataset", action="store_true", help="the agent's config without dataset.enabled (#20)")
ap.add_argument("--expect-dataset-status", action="store_true",
                help="the agent's status carries dataset (StatusTopic wired to the collection): check the sensors")
ap.add_argument("--fallback", action="store_true",
                help="#22: a second stand-in as api.fallback; the 'API endpoint' sensor follows the primary's outage "
                     "(its stand-in stopped, then started again) and goes when the fallback leaves the config")
ap.add_argument("--fallback-port", type=int, default=19002, help="the fallback stand-in's port (with --fallback)")
args = ap.parse_args()

OUT: Path = args.out.resolve()
if OUT.exists():
    shutil.rmtree(OUT)
OUT.mkdir(parents=True)
HA_URL = f"http://127.0.0.1:{args.http_port}"
T0 = time.monotonic()

# ----------------------------------------------------------------------------- bookkeeping

procs: dict[str, subprocess.Popen] = {}
results: list[tuple[str, bool, str]] = []
notes: list[str] = []


def log(msg: str) -> None:
    line = f"[{time.monotonic() - T0:7.1f}s] {msg}"
    print(line, flush=True)
    with open(OUT / "check.log", "a") as f:
        f.write(line + "\n")


def check(name: str, ok: bool, detail: str = "") -> bool:
    results.append((name, bool(ok), detail))
    log(f"{'PASS' if ok else 'FAIL'}  {name}" + (f"  -- {detail}" if detail else ""))
    return bool(ok)


def start(name: str, cmd: list[str], logname: str, **kw) -> subprocess.Popen:
    f = open(OUT / logname, "a")
    p = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, **kw)
    procs[name] = p
    with open(OUT / "pids.txt", "a") as pf:
        pf.write(f"{p.pid} {name} {' '.join(map(str, cmd))}\n")
    log(f"started {name} pid {p.pid}")
    return p


def stop(name: str, sig: int = signal.SIGTERM, timeout: float = 30) -> int | None:
    p = procs.pop(name, None)
    if p is None:
        return None
    if p.poll() is None:
        os.kill(p.pid, sig)
        try:
            p.wait(timeout)
        except subprocess.TimeoutExpired:
            log(f"{name} pid {p.pid} ignored signal {sig} for {timeout}s: SIGKILL")
            os.kill(p.pid, signal.SIGKILL)
            p.wait(10)
    log(f"stopped {name} pid {p.pid} with signal {sig}: exit {p.returncode}")
    return p.returncode


def wait_port(port: int, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 0.3).close()
            return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"nothing listens on 127.0.0.1:{port}")


def wait_for(pred, timeout: float, step: float = 0.5):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = pred()
        except Exception as e:  # HA restarting etc.
            last = None
            err = e
        if last:
            return last
        time.sleep(step)
    return last


# ----------------------------------------------------------------------------- HA REST

TOKEN = ""


def ha(path: str, data=None, raw: bool = False, timeout: float = 10):
    req = urllib.request.Request(HA_URL + path, headers={"Authorization": f"Bearer {TOKEN}",
                                                          "Content-Type": "application/json"},
                                 data=json.dumps(data).encode() if data is not None else None)
    with urllib.request.urlopen(req, timeout=timeout) as r:
        body = r.read()
        return (r.headers.get("Content-Type"), body) if raw else json.loads(body)


def states() -> dict[str, dict]:
    return {s["entity_id"]: s for s in ha("/api/states") if NODE in s["entity_id"]}


def template(tpl: str) -> str:
    return ha("/api/template", {"template": tpl}, raw=True)[1].decode()


def ha_up() -> bool:
    try:
        return ha("/api/", timeout=3).get("message") == "API running."
    except Exception:
        return False


def wait_states(cond, timeout: float, step: float = 0.5):
    """HA's states of our entities once cond(states) holds, else None."""
    def probe():
        s = states()
        return s if cond(s) else None
    return wait_for(probe, timeout, step)


def ent(cam: str) -> str:
    """The start of a camera's (or a view's, ``<camera>-<view>``) entity ids after the domain."""
    return f"{NODE}_{cam.replace('-', '_')}"


def entities_for(cams: dict[str, list[str]]) -> set[str]:
    out = set()
    for cam, classes in cams.items():
        out |= {f"sensor.{ent(cam)}_class", f"sensor.{ent(cam)}_confidence", f"image.{ent(cam)}_snapshot"}
        out |= {f"binary_sensor.{ent(cam)}_is_{c}" for c in classes}
    return out


def extra_entities_for(cams: dict[str, list[str]]) -> set[str]:
    """Asked for later (#8 classify-now button and budget sensors, #12 event entity)."""
    out = {f"sensor.{NODE}_api_calls_today", f"sensor.{NODE}_api_credits_today"}
    for cam in cams:
        out |= {f"button.{ent(cam)}_classify", f"event.{ent(cam)}_change"}
    return out


DATASET = not args.no_dataset
FALLBACK = args.fallback
ENDPOINT_SENSOR = f"sensor.{NODE}_api_endpoint"  # #22, only while api.fallback is configured


def dataset_entities_for(cams: dict[str, list[str]]) -> set[str]:
    """#20, while dataset.enabled: per camera a "save for training" button, a "correct class"
    select (a camera with classes) and "saved for training today"; one "Waiting to upload"."""
    if not DATASET:
        return set()
    out = {f"sensor.{NODE}_dataset_queued"}
    for cam, classes in cams.items():
        out |= {f"button.{ent(cam)}_save_for_training", f"sensor.{ent(cam)}_saved_today"}
        if classes:
            out.add(f"select.{ent(cam)}_correct_class")
    return out


def dump_states(tag: str) -> dict[str, dict]:
    st = states()
    with open(OUT / "states.log", "a") as f:
        f.write(f"### {tag} (t={time.monotonic() - T0:.1f}s)\n")
        for eid in sorted(st):
            s = st[eid]
            a = {k: v for k, v in s["attributes"].items() if k not in ("access_token", "entity_picture")}
            f.write(f"{eid:52} {s['state']!s:34} {json.dumps(a, sort_keys=True)}\n")
    return st


# ----------------------------------------------------------------------------- MQTT trace

trace_lock = threading.Lock()
last_state: dict[str, dict] = {}  # camera -> last payload on P/<camera>/state
trace_events: list[tuple[float, str, bytes]] = []
collect_msgs: list[tuple[float, str, bytes, bool]] = []  # what arrived on P/<camera>/collect


def on_message(c, u, m):
    now = time.monotonic() - T0
    with trace_lock:
        trace_events.append((now, m.topic, m.payload))
        mm = re.fullmatch(re.escape(PREFIX) + r"/([^/]+)/state", m.topic)
        if mm and m.payload:
            last_state[mm.group(1)] = json.loads(m.payload)
        if re.fullmatch(re.escape(PREFIX) + r"/[^/]+/collect", m.topic):
            collect_msgs.append((now, m.topic, bytes(m.payload), bool(m.retain)))
    shown = f"<JPEG {len(m.payload)} bytes>" if m.payload[:2] == b"\xff\xd8" else m.payload.decode(errors="replace")
    with open(OUT / "mqtt_trace.log", "a") as f:
        f.write(f"{now:7.2f} r={int(m.retain)} {m.topic} {shown}\n")


# ----------------------------------------------------------------------------- the run

LEFT_VIEW, RIGHT_VIEW = "garage-left-door", "garage-right-door"  # the views' targets: <camera>-<view>
VIEW_POINT = {LEFT_VIEW: (0.25, 2 / 3), RIGHT_VIEW: (0.75, 2 / 3)}  # inside each view's half, away from the label
LEFT = "    - name: left-door\n      region: [0, 0, 0.5, 1]\n"
RIGHT = "    - name: right-door\n      region: [0.5, 0, 1, 1]\n      classes: [blue, red]\n"


def agent_config(path: Path, with_gone: bool, dataset: bool = DATASET, right_view: bool = True,
                 yard_views: bool = False, fallback: bool = FALLBACK) -> None:
    """door, yard (with views a and b: the halves of its picture, when ``yard_views``), gone
    (``with_gone``) and garage, a camera with views left-door and right-door (``right_view``),
    the halves of one split clip, each classified on its own (#21)."""
    gone = (f"  - name: gone\n    source: {OUT}/gone.mp4\n    fps: 1\n    classes: [red]\n") if with_gone else ""
    yard = ("    views:\n      - name: a\n        region: [0, 0, 0.5, 1]\n      - name: b\n"
            "        region: [0.5, 0, 1, 1]\n") if yard_views else ""
    garage = (f"  - name: garage\n    source: {OUT}/clip_split.mp4\n    fps: 2\n    loop: true\n    views:\n"
              + LEFT + (RIGHT if right_view else ""))
    collect = (f"dataset:\n  enabled: true\n  url: http://127.0.0.1:{args.api_port}\n") if dataset else ""
    # #22: switch after 1 s of silence, probe the primary every 1 s (2 s at most): a bounded check
    second = (f"  fallback:\n    url: http://127.0.0.1:{args.fallback_port}\n    switch_after: 1\n    probe: 1\n"
              "    probe_max: 2\n") if fallback else ""
    path.write_text(f"""device_id: {DEV}
api:
  url: http://127.0.0.1:{args.api_port}
  model: colours/1
  api_key: demo-key
  timeout: 5
  max_in_flight: 2
{second}mqtt:
  host: 127.0.0.1
  port: {args.mqtt_port}
status:
  listen: 127.0.0.1:{args.status_port}
decide:
  min_confidence: 0.6
  confirm: 2
status_interval: 10
homeassistant:
  discovery: true
  prefix: homeassistant
  classes: [red, green, blue]
cameras:
  - name: door
    source: {OUT}/clip.mp4
    fps: 2
    loop: true
  - name: yard
    source: {OUT}/clip_green.mp4
    fps: 1
    loop: true
    classes: [green]
{yard}{gone}{garage}{collect}""")
    path.chmod(0o600)


def make_clips() -> None:
    ff = ["ffmpeg", "-nostdin", "-y", "-loglevel", "error"]
    cmd = list(ff)
    for c in ("red", "green", "blue"):
        cmd += ["-f", "lavfi", "-i", f"color=c={c}:s=320x240:r=10:d=4"]
    cmd += ["-filter_complex", "[0:v][1:v][2:v]concat=n=3:v=1:a=0[v]", "-map", "[v]", "-c:v", "libx264",
            "-pix_fmt", "yuv420p", "-preset", "veryfast", str(OUT / "clip.mp4")]
    subprocess.run(cmd, check=True)
    subprocess.run(ff + ["-f", "lavfi", "-i", "color=c=green:s=320x240:r=10:d=5", "-c:v", "libx264",
                         "-pix_fmt", "yuv420p", "-preset", "veryfast", str(OUT / "clip_green.mp4")], check=True)
    # #21: the left half red 6 s then green 6 s, the right half blue throughout (the two views of garage)
    subprocess.run(ff + ["-f", "lavfi", "-i", "color=c=red:s=160x240:r=10:d=6",
                         "-f", "lavfi", "-i", "color=c=green:s=160x240:r=10:d=6",
                         "-f", "lavfi", "-i", "color=c=blue:s=160x240:r=10:d=12",
                         "-filter_complex", "[0:v][1:v]concat=n=2:v=1:a=0[l];[l][2:v]hstack=inputs=2[v]",
                         "-map", "[v]", "-c:v", "libx264", "-pix_fmt", "yuv420p", "-preset", "veryfast",
                         str(OUT / "clip_split.mp4")], check=True)


def image_colour(entity_id: str, at: tuple[float, float] = (2 / 3, 2 / 3)) -> str:
    """The colour of the image entity's picture at ``at`` (fractions of its width and height)."""
    try:
        ctype, body = ha(f"/api/image_proxy/{entity_id}", raw=True)
    except urllib.error.HTTPError as e:  # HA answers 500 while the image entity has no picture yet
        return f"no image ({e.code})"
    img = cv2.imdecode(np.frombuffer(body, np.uint8), cv2.IMREAD_COLOR)
    b, g, r = img[int(img.shape[0] * at[1]), int(img.shape[1] * at[0])].tolist()  # away from the label
    return max((("red", r), ("green", g), ("blue", b)), key=lambda x: x[1])[0]


def consistent(st: dict, cam: str, classes: list[str]) -> tuple[bool, str]:
    """The class sensor, the confidence sensor and the binary sensors of one camera agree."""
    cls = st[f"sensor.{ent(cam)}_class"]
    conf = st[f"sensor.{ent(cam)}_confidence"]["state"]
    if cls["state"] == "unknown" and conf == "unknown" and all(
            st[f"binary_sensor.{ent(cam)}_is_{c}"]["state"] == "unknown" for c in classes):
        return True, "unknown"  # no class decided yet (the first `confirm` results), all agree on that
    problems = []
    a = cls["attributes"]
    if cls["state"] != a.get("class"):
        problems.append(f"class state {cls['state']} != attribute class {a.get('class')}")
    try:  # since #13 the confidence sensor follows every result (the decided class's confidence in it)
        if not 0 <= float(conf) <= 100:
            problems.append(f"confidence sensor {conf} outside 0..100")
    except (TypeError, ValueError):
        problems.append(f"confidence sensor {conf!r} is not a number")
    for c in classes:
        want = "on" if cls["state"] == c else "off"
        got = st[f"binary_sensor.{ent(cam)}_is_{c}"]["state"]
        if got != want:
            problems.append(f"is_{c}={got} with class {cls['state']}")
    return not problems, "; ".join(problems)


def all_state(st: dict, ids: set[str], want: str | None = None, not_: str | None = None) -> bool:
    if not ids <= st.keys():
        return False
    return all((want is None or st[e]["state"] == want) and (not_ is None or st[e]["state"] != not_) for e in ids)


def call_service(domain: str, service: str, data: dict) -> None:
    ha(f"/api/services/{domain}/{service}", data)


def collected_since(n: int) -> list[tuple[float, str, bytes, bool]]:
    with trace_lock:
        return collect_msgs[n:]


def check_collect_controls(cams: dict[str, list[str]]) -> None:
    """#20: the button and the select publish on P/<camera>/collect; the select shows the
    decided class (read from the retained state) and stays there after a choice."""
    st = states()
    check("dataset: the training-data entities exist while the agent runs",
          dataset_entities_for(cams) <= st.keys(), f"missing {sorted(dataset_entities_for(cams) - st.keys())}")
    sel, cls = f"select.{NODE}_door_correct_class", f"sensor.{NODE}_door_class"
    opts = st[sel]["attributes"].get("options")
    check("select: options are the camera's classes", opts == cams["door"], f"{opts}")
    agree, differ = 0, []
    for _ in range(8):
        s = states()
        if s[sel]["state"] == s[cls]["state"]:
            agree += 1
        else:
            differ.append((s[sel]["state"], s[cls]["state"]))
        time.sleep(0.5)
    check("select: shows the decided class (the retained state)", agree >= 7, f"{agree}/8 agree; differ {differ}")
    sa = st[f"sensor.{NODE}_door_saved_today"]["attributes"]
    qa = st[f"sensor.{NODE}_dataset_queued"]["attributes"]
    check("sensors: saved today total_increasing, waiting to upload measurement, unit frames",
          sa.get("state_class") == "total_increasing" and qa.get("state_class") == "measurement"
          and sa.get("unit_of_measurement") == qa.get("unit_of_measurement") == "frames", f"{sa} {qa}")
    notes.append("training-data sensors while this agent runs: "
                 + str({e: st[e]["state"] for e in (f"sensor.{NODE}_door_saved_today", f"sensor.{NODE}_dataset_queued")}))

    n = len(collect_msgs)
    call_service("button", "press", {"entity_id": f"button.{NODE}_door_save_for_training"})
    got = wait_for(lambda: collected_since(n), 10, 0.2)
    check("button: pressing 'save for training' publishes an empty payload on P/door/collect, not retained",
          bool(got) and got[0][1] == f"{PREFIX}/door/collect" and got[0][2] == b"" and not got[0][3],
          f"{[(t, p, r) for _, t, p, r in got or []]}")
    current = states()[sel]["state"]
    other = next(c for c in cams["door"] if c != current)
    n = len(collect_msgs)
    call_service("select", "select_option", {"entity_id": sel, "option": other})
    got = wait_for(lambda: collected_since(n), 10, 0.2)
    check(f"select: choosing '{other}' publishes it on P/door/collect, not retained",
          bool(got) and got[0][1] == f"{PREFIX}/door/collect" and got[0][2] == other.encode() and not got[0][3],
          f"{[(t, p, r) for _, t, p, r in got or []]}")
    time.sleep(1.5)
    s = states()
    check("select: not optimistic: it still shows the decided class after the choice",
          s[sel]["state"] == s[cls]["state"], f"select {s[sel]['state']}, class {s[cls]['state']}")
    n = len(collect_msgs)
    call_service("select", "select_option", {"entity_id": f"select.{NODE}_yard_correct_class", "option": "green"})
    got = wait_for(lambda: collected_since(n), 10, 0.2)
    check("select: yard's choice goes to P/yard/collect", bool(got) and got[0][1] == f"{PREFIX}/yard/collect"
          and got[0][2] == b"green", f"{[(t, p) for _, t, p, _ in got or []]}")
    if args.expect_dataset_status:
        saved, queued = f"sensor.{NODE}_door_saved_today", f"sensor.{NODE}_dataset_queued"
        st = wait_states(lambda s: s[saved]["state"].isdigit() and int(s[saved]["state"]) >= 1
                         and s[queued]["state"].isdigit(), 30)
        check("sensors: show the running agent's figures (saved today >= 1, waiting a number)", bool(st),
              str({e: (st or states())[e]["state"] for e in (saved, queued)})
              + f", attributes {json.dumps((st or states())[queued]['attributes'])}")


def check_dataset_sensors_follow_the_status() -> None:
    """#20, with the agent stopped: this check plays the agent on its retained topics (availability
    online, a status carrying ``dataset``) and reads the sensors back; then puts things back."""
    pub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="ha-check-dataset")
    pub.connect("127.0.0.1", args.mqtt_port)
    pub.loop_start()

    def send(topic: str, payload: dict | str) -> None:
        body = payload if isinstance(payload, str) else json.dumps(payload)
        pub.publish(topic, body, qos=1, retain=True).wait_for_publish(5)

    def status(saved: int, queued: int, paused: str | None, cam: str = "door") -> dict:
        return {"camera": "online", "device": DEV, "api": "ok", "budget": {"calls_today": 5, "credits_today": 0.001},
                "dataset": {"saved_today": saved, "saved_hour": saved, "queued": queued, "queued_mb": 0.75,
                            "sent_today": 12, "dropped": 0, "paused": paused,
                            "last_error": "HTTP 401" if paused else None}}

    saved, queued = f"sensor.{NODE}_door_saved_today", f"sensor.{NODE}_dataset_queued"
    try:
        send(f"{PREFIX}/availability", "online")
        send(f"{PREFIX}/yard/status", status(1, 3, None, "yard"))
        send(f"{PREFIX}/door/status", status(4, 3, None))
        st = wait_states(lambda s: s.get(saved, {}).get("state") == "4" and s.get(queued, {}).get("state") == "3", 15)
        check("sensors: 'saved for training today' and 'waiting to upload' follow the status's dataset",
              bool(st), str({e: states().get(e, {}).get("state") for e in (saved, queued)}))
        if st:
            a = st[queued]["attributes"]
            check("sensors: waiting to upload carries queued_mb, sent_today, paused, last_error",
                  a.get("queued_mb") == 0.75 and a.get("sent_today") == 12 and a.get("paused") is None, json.dumps(a))
        send(f"{PREFIX}/door/status", status(7, 0, "unauthorized"))
        st = wait_states(lambda s: s.get(saved, {}).get("state") == "7" and s.get(queued, {}).get("state") == "0", 15)
        check("sensors: follow the next status (paused shown as an attribute)",
              bool(st) and st[queued]["attributes"].get("paused") == "unauthorized"
              and st[queued]["attributes"].get("last_error") == "HTTP 401",
              json.dumps(st[queued]["attributes"]) if st else "no update")
        send(f"{PREFIX}/door/status", status(0, 0, None))  # a new day
        st = wait_states(lambda s: s.get(saved, {}).get("state") == "0", 15)
        check("sensors: the daily count restarts at 0 (a new day)", bool(st))
        send(f"{PREFIX}/door/status", {"camera": "online", "device": DEV, "dataset": None})  # nothing collected
        time.sleep(2)
        check("sensors: a status without dataset leaves the value as it was (ignored, no log line)",
              states()[saved]["state"] == "0", states()[saved]["state"])
    finally:
        send(f"{PREFIX}/availability", "offline")
        pub.loop_stop()
        pub.disconnect()
    wait_states(lambda s: s.get(saved, {}).get("state") == "unavailable", 10)


class ViewsSeen:
    """What HA showed of the views (#21) while sampled: each view's states, its sensors
    agreeing, the class sensor being the agent's state on P/<camera>-<view>/state, and
    each view's snapshot the camera's picture with the view's own half in the colour of its class
    (a snapshot is the whole picture with the region outlined, as for a camera with a region)."""

    def __init__(self, views: dict[str, list[str]]):
        self.views = views
        self.seen: dict[str, set[str]] = {v: set() for v in views}
        self.bad: list[str] = []
        self.behind: list[str] = []
        self.samples = 0
        self.img: dict[str, list[str]] = {v: [] for v in views}

    def sample(self, st: dict) -> None:
        self.samples += 1
        for view, classes in self.views.items():
            ok, why = consistent(st, view, classes)
            state = st[f"sensor.{ent(view)}_class"]["state"]
            if why == "unknown":
                continue
            self.seen[view].add(state)
            if not ok:
                self.bad.append(f"{view}: {why}")
            with trace_lock:
                published = last_state.get(view, {}).get("class")
            if published != state:
                self.behind.append(f"{view}: HA {state}, agent {published}")
            if self.samples % 3 == 0:
                col = image_colour(f"image.{ent(view)}_snapshot", VIEW_POINT[view])
                if states()[f"sensor.{ent(view)}_class"]["state"] == state:
                    self.img[view].append("ok" if col == state else f"{col} vs {state}")

    def report(self, phase: str, want: dict[str, set[str]]) -> None:
        check(f"views ({phase}): each view follows its own half: "
              + ", ".join(f"{v} {sorted(w)}" for v, w in want.items()),
              all(self.seen[v] == w for v, w in want.items()), f"seen {({v: sorted(s) for v, s in self.seen.items()})}")
        # a sample may straddle an update (sensors update one after the other; HA a moment after the agent)
        check(f"views ({phase}): each view's class, confidence and binary sensors agree, and show the agent's state",
              len(self.bad) <= 1 and len(self.behind) <= 2 and self.samples >= 5,
              f"{self.samples} samples; disagreeing {self.bad[:3]}; behind the agent {self.behind[:3]}")
        got = {v: sum(x == "ok" for x in xs) for v, xs in self.img.items()}
        check(f"views ({phase}): each view's snapshot shows its own half in the colour of its class",
              all(n >= 1 for v, n in got.items() if v in want)
              and all(len(xs) - got[v] <= 1 for v, xs in self.img.items()), json.dumps(self.img))


def check_fallback(restart_primary, cams: dict[str, list[str]]) -> None:
    """#22: the primary stand-in stopped (connection refused): the 'API endpoint' sensor says
    fallback with its reason, the cameras' states go on (the fallback classifies); started
    again: primary, within a probe or two."""
    st = wait_states(lambda s: s.get(ENDPOINT_SENSOR, {}).get("state") == "primary", 20)
    a = (st or {}).get(ENDPOINT_SENSOR, {}).get("attributes", {})
    check("fallback: the 'API endpoint' sensor says primary, with the fallback's figures as attributes",
          bool(st) and {"reason", "since", "calls", "failed"} <= a.keys() and a.get("reason") is None
          and a.get("friendly_name") == f"edge-agent {DEV} API endpoint", json.dumps(a))
    t = time.monotonic()
    stop("standin", signal.SIGTERM)
    st = wait_states(lambda s: s.get(ENDPOINT_SENSOR, {}).get("state") == "fallback", 20, 0.25)
    a = (st or {}).get(ENDPOINT_SENSOR, {}).get("attributes", {})
    check("fallback: the primary stopped, the sensor says fallback with reason unreachable and since",
          bool(st) and a.get("reason") == "unreachable" and isinstance(a.get("since"), (int, float)),
          f"after {time.monotonic() - t:.1f}s; {json.dumps(a)}")
    with trace_lock:
        before = {cam: len([1 for _, tp, _ in trace_events if tp == f"{PREFIX}/{cam}/result"]) for cam in cams}
    time.sleep(4)
    st = states()
    with trace_lock:
        after = {cam: len([1 for _, tp, _ in trace_events if tp == f"{PREFIX}/{cam}/result"]) for cam in cams}
        last = [json.loads(p) for _, tp, p in trace_events if tp == f"{PREFIX}/door/result"][-1:]
    check("fallback: results go on from the fallback and every camera's entities stay available",
          all(after[c] > before[c] for c in cams) and last and last[0].get("endpoint") == "fallback"
          and all_state(st, entities_for(cams), not_="unavailable"),
          f"results {before} -> {after}; door's last endpoint {last and last[0].get('endpoint')}")
    t = time.monotonic()
    restart_primary()
    st = wait_states(lambda s: s.get(ENDPOINT_SENSOR, {}).get("state") == "primary", 20, 0.25)
    check("fallback: the primary back, the sensor says primary again", bool(st),
          f"after {time.monotonic() - t:.1f}s")


def main() -> None:
    global TOKEN
    py_ha = str(args.ha_venv / "bin" / "python")
    ha_version = subprocess.run([py_ha, "-c", "import homeassistant.const as c; print(c.__version__)"],
                                capture_output=True, text=True, check=True).stdout.strip()
    log(f"Home Assistant {ha_version} from {args.ha_venv}; agent {AGENT_BIN}")
    schemas = subprocess.run([py_ha, "-c", "import homeassistant, pathlib; print(any('default_entity_id' in p.read_text() "
                              "for p in (pathlib.Path(homeassistant.__file__).parent / 'components/mqtt').glob('*.py')))"],
                             capture_output=True, text=True)
    notes.append(f"this HA's MQTT schema knows 'default_entity_id' (object_id's successor): {schemas.stdout.strip()}")
    for port in (args.mqtt_port, args.http_port, args.api_port, args.status_port):
        with socket.socket() as so:
            if so.connect_ex(("127.0.0.1", port)) == 0:
                raise SystemExit(f"127.0.0.1:{port} is already in use: stop what listens there or pick other ports")
    make_clips()

    # mosquitto
    (OUT / "mosquitto.conf").write_text(f"listener {args.mqtt_port} 127.0.0.1\nallow_anonymous true\n"
                                        "persistence false\nlog_dest stdout\nconnection_messages true\n")
    start("mosquitto", [shutil.which("mosquitto") or "/usr/sbin/mosquitto", "-c", str(OUT / "mosquitto.conf")],
          "mosquitto.log")
    wait_port(args.mqtt_port)
    sub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="ha-check-trace")
    sub.on_connect = lambda c, u, f, rc, p: c.subscribe([("homeassistant/#", 1), (f"{PREFIX}/#", 1)])
    sub.on_message = on_message
    sub.connect("127.0.0.1", args.mqtt_port)
    sub.loop_start()

    # Home Assistant
    subprocess.run([py_ha, str(HERE / "make_ha_config.py"), str(OUT / "config"), str(args.http_port),
                    str(args.mqtt_port), str(OUT / "token")], check=True, stdout=subprocess.DEVNULL)
    TOKEN = (OUT / "token").read_text().strip()
    hass = [str(args.ha_venv / "bin" / "hass"), "-c", str(OUT / "config"), "--skip-pip"]
    start("hass", hass, "hass.out")
    t = time.monotonic()
    if not check("HA: REST API answers with the long-lived token", wait_for(ha_up, 240, 1),
                 f"after {time.monotonic() - t:.0f}s"):
        raise SystemExit("Home Assistant did not come up; see config/home-assistant.log")
    cfg = ha("/api/config")
    check("HA: not in recovery mode, mqtt loaded", not cfg.get("recovery_mode") and "mqtt" in cfg["components"],
          f"version {cfg.get('version')}, state {cfg.get('state')}")
    wait_for(lambda: ha("/api/config").get("state") == "RUNNING", 60, 1)

    # stand-in API (and, with --fallback, a second one as api.fallback)
    def standin(name: str, port: int) -> None:
        start(name, [sys.executable, str(args.agent_src / "tools" / "standin_api.py"), "--port", str(port),
                     "--api-key", "demo-key", "--latency", "0.05"], f"{name}.log",
              cwd=args.agent_src, env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"})
        wait_port(port)

    standin("standin", args.api_port)
    if FALLBACK:
        standin("standin-fallback", args.fallback_port)

    views = {LEFT_VIEW: ["red", "green", "blue"], RIGHT_VIEW: ["blue", "red"]}  # garage's two views (#21)
    cams_a = {"door": ["red", "green", "blue"], "yard": ["green"], "gone": ["red"], **views}
    cams_b = {k: v for k, v in cams_a.items() if k not in ("gone", RIGHT_VIEW)}
    ids_a, ids_b = entities_for(cams_a), entities_for(cams_b)
    gone_ids, right_ids = entities_for({"gone": cams_a["gone"]}), entities_for({RIGHT_VIEW: views[RIGHT_VIEW]})
    endpoint = {ENDPOINT_SENSOR} if FALLBACK else set()  # the agent's one "API endpoint" sensor (#22)
    more_a = extra_entities_for(cams_a) | dataset_entities_for(cams_a) | endpoint
    more_b = extra_entities_for(cams_b) | dataset_entities_for(cams_b) | endpoint
    gone_more = (extra_entities_for({"gone": []}) | dataset_entities_for({"gone": cams_a["gone"]})) - more_b
    right_more = (extra_entities_for({RIGHT_VIEW: []}) | dataset_entities_for({RIGHT_VIEW: views[RIGHT_VIEW]})) - more_b
    agent_config(OUT / "agent-a.yaml", with_gone=True)
    agent_config(OUT / "agent-b.yaml", with_gone=False, right_view=False)
    agent_config(OUT / "agent-c.yaml", with_gone=False, dataset=False, right_view=False)
    agent_config(OUT / "agent-d.yaml", with_gone=False, dataset=False, right_view=False, yard_views=True,
                 fallback=False)  # with --fallback: the fallback taken out of the config in phase D

    # ---- phase A: four cameras (one with two views), one of them without a source yet
    start("agent", [str(AGENT_BIN), "run", "-c", str(OUT / "agent-a.yaml")], "agent.log")
    t = time.monotonic()
    st = wait_states(lambda s: all_state(s, ids_a - gone_ids, not_="unavailable") and gone_ids <= s.keys(),
                  45)
    check("discovery: every expected entity exists, with the expected entity_id",
          st and (ids_a | more_a) <= st.keys(), f"{len(st or {})} entities after {time.monotonic() - t:.1f}s; "
          f"missing {sorted((ids_a | more_a) - (st or {}).keys())}; extra {sorted((st or {}).keys() - ids_a - more_a)}")
    st = dump_states("phase A: agent up, camera 'gone' has no file")
    check("availability: entities of a camera whose source is missing are unavailable",
          all_state(st, gone_ids, want="unavailable"), str({e: st.get(e, {}).get("state") for e in gone_ids}))
    check("availability: the other cameras' (and views') entities are available",
          all_state(st, ids_a - gone_ids, not_="unavailable"))
    shutil.copy(OUT / "clip.mp4", OUT / "gone.mp4")  # the camera appears
    t_created = time.monotonic() - T0
    log("gone.mp4 created")

    dev = json.loads(template(
        "{% set d = device_id('sensor." + NODE + "_door_class') %}"
        "{{ {'name': device_attr(d,'name'), 'manufacturer': device_attr(d,'manufacturer'),"
        " 'model': device_attr(d,'model'), 'sw_version': device_attr(d,'sw_version'),"
        " 'identifiers': device_attr(d,'identifiers')|map('list')|list,"
        " 'entities': device_entities(d)|sort} | tojson }}"))
    (OUT / "device.json").write_text(json.dumps(dev, indent=1))
    check("device: one device 'edge-agent hacheck' (manufacturer, model, sw_version) holds every entity",
          dev["name"] == f"edge-agent {DEV}" and dev["manufacturer"] == "edge-agent" and dev["sw_version"]
          and set(dev["entities"]) == ids_a | more_a,
          f"{ {k: v for k, v in dev.items() if k != 'entities'} }, {len(dev['entities'])} entities")
    names = {e: st[e]["attributes"].get("friendly_name") for e in sorted(ids_a | more_a) if e in st}
    (OUT / "names.json").write_text(json.dumps(names, indent=1))
    check("names: friendly names are '<device name> <camera> <what>'",
          names[f"sensor.{NODE}_door_class"] == f"edge-agent {DEV} door class"
          and names[f"binary_sensor.{NODE}_door_is_red"] == f"edge-agent {DEV} door red",
          json.dumps(names))
    check("views: names are '<device name> <camera> <view's words> <what>', never the target's name",
          names[f"sensor.{ent(LEFT_VIEW)}_class"] == f"edge-agent {DEV} garage left door class"
          and names[f"binary_sensor.{ent(RIGHT_VIEW)}_is_blue"] == f"edge-agent {DEV} garage right door blue"
          and not any("-door" in (n or "") for n in names.values()),
          json.dumps({e: n for e, n in names.items() if "garage" in e}))
    # the first state needs the decision's votes (4 of 5 since #11): wait for it
    st = wait_states(lambda s: s.get(f"sensor.{NODE}_door_class", {}).get("state") not in (None, "unknown", "unavailable"), 20) or st
    a = st[f"sensor.{NODE}_door_class"]["attributes"]
    check("class sensor: attributes confidence, since, predictions",
          {"confidence", "since", "predictions"} <= a.keys(), json.dumps(sorted(a)))
    ca = st[f"sensor.{NODE}_door_confidence"]["attributes"]
    check("confidence sensor: unit %, state_class measurement",
          ca.get("unit_of_measurement") == "%" and ca.get("state_class") == "measurement", json.dumps(ca))

    # states follow the stand-in's classes (clip: 4 s red, 4 s green, 4 s blue, looping)
    seen, bad, img_ok, img_bad, unknown_samples = set(), [], 0, [], 0
    gone_timeline: list[tuple[float, str]] = []  # (t, state of gone's class sensor)
    views_seen = ViewsSeen(views)
    deadline = time.monotonic() + 16
    while time.monotonic() < deadline:
        st = states()
        views_seen.sample(st)
        gone_timeline.append((time.monotonic() - T0, st[f"sensor.{NODE}_gone_class"]["state"]))
        ok, why = consistent(st, "door", cams_a["door"])
        seen.add(st[f"sensor.{NODE}_door_class"]["state"])
        if why == "unknown":
            unknown_samples += 1
        elif not ok:
            bad.append(why)
        ok_y, why_y = consistent(st, "yard", cams_a["yard"])
        if why_y == "unknown":
            unknown_samples += 1
        elif not ok_y or st[f"sensor.{NODE}_yard_class"]["state"] != "green":
            bad.append("yard: " + (why_y or st[f"sensor.{NODE}_yard_class"]["state"]))
        col = image_colour(f"image.{NODE}_door_snapshot")
        st2 = states()
        if st2[f"sensor.{NODE}_door_class"]["state"] == st[f"sensor.{NODE}_door_class"]["state"]:
            if col == st[f"sensor.{NODE}_door_class"]["state"]:
                img_ok += 1
            else:
                img_bad.append(f"{col} vs {st[f'sensor.{NODE}_door_class']['state']}")
        time.sleep(0.7)
    check("states: door class sensor went through red, green and blue", {"red", "green", "blue"} <= seen,
          f"seen {sorted(seen)}")
    # a sample may straddle an update (class and binary sensors update one after the other)
    check("states: class, confidence and binary sensors agree", len(bad) <= 1,
          f"{len(bad)} disagreeing: {bad[:3]}; {unknown_samples} samples before the first decision (all 'unknown')")
    check("image: the snapshot HA serves is a JPEG of the decided class's colour", img_ok >= 5 and len(img_bad) <= 1,
          f"{img_ok} matching, mismatches {img_bad}")
    views_seen.report("phase A", {LEFT_VIEW: {"red", "green"}, RIGHT_VIEW: {"blue"}})

    if DATASET:
        check_collect_controls(cams_a)

    # the late camera: available once its file exists, unavailable once it ends (loop: false)
    was_up = any(state != "unavailable" for _, state in gone_timeline)
    if not was_up:
        st = wait_states(lambda s: all_state(s, gone_ids, not_="unavailable"), 90)
        was_up = bool(st)
        if st:
            gone_timeline.append((time.monotonic() - T0, st[f"sensor.{NODE}_gone_class"]["state"]))
    up_at = next((t for t, state in gone_timeline if state != "unavailable"), None)
    check("availability: camera 'gone' becomes available once its source appears", was_up,
          f"{up_at - t_created:.1f}s after the file appeared" if up_at else "never")
    # the file plays once (loop: false), 12 s, then the camera is offline until reopened
    st = wait_states(lambda s: all_state(s, gone_ids, want="unavailable"), 30)
    check("availability: camera 'gone' unavailable again when its file ends", bool(st))

    # SIGTERM: clean stop publishes offline
    dump_states("phase A before SIGTERM")
    t = time.monotonic()
    rc = stop("agent", signal.SIGTERM)
    st = wait_states(lambda s: all_state(s, ids_a, want="unavailable"), 10, 0.2)
    check("SIGTERM: agent exits 0 and every entity turns unavailable", rc == 0 and bool(st),
          f"exit {rc}, {time.monotonic() - t:.1f}s")
    dump_states("after SIGTERM")
    if DATASET:
        check_dataset_sensors_follow_the_status()

    # ---- phase B: the camera 'gone' and garage's view 'right-door' removed from the config
    start("agent", [str(AGENT_BIN), "run", "-c", str(OUT / "agent-b.yaml")], "agent.log")
    t = time.monotonic()
    st = wait_states(lambda s: not ((gone_ids | gone_more) & s.keys()) and all_state(s, ids_b, not_="unavailable"), 30)
    check("stale configs: a removed camera's entities disappear from HA; the rest come back",
          bool(st), f"after {time.monotonic() - t:.1f}s")
    reg = template("{{ integration_entities('mqtt') | select('search', '" + NODE + "_gone') | list }}")
    check("stale configs: and from HA's entity registry", reg.strip() in ("[]", ""), reg)
    st = wait_states(lambda s: not ((right_ids | right_more) & s.keys()), 30)
    check("views: a removed view's entities disappear from HA; the camera's other view stays available",
          bool(st) and all_state(st, entities_for({LEFT_VIEW: views[LEFT_VIEW]}), not_="unavailable"),
          f"after {time.monotonic() - t:.1f}s; left {sorted((right_ids | right_more) & states().keys())}")
    reg = template("{{ integration_entities('mqtt') | select('search', '" + ent(RIGHT_VIEW) + "') | list }}")
    check("views: and from HA's entity registry", reg.strip() in ("[]", ""), reg)
    dev_b = json.loads(template("{{ device_entities(device_id('sensor." + NODE + "_door_class')) | sort | tojson }}"))
    check("views: the device now holds exactly the remaining cameras' and view's entities",
          set(dev_b) == ids_b | more_b, f"extra {sorted(set(dev_b) - ids_b - more_b)}, "
          f"missing {sorted((ids_b | more_b) - set(dev_b))}")
    dump_states("phase B: agent-b up")
    left_seen = ViewsSeen({LEFT_VIEW: views[LEFT_VIEW]})
    deadline = time.monotonic() + 14
    while time.monotonic() < deadline:
        left_seen.sample(states())
        time.sleep(0.7)
    left_seen.report("phase B, right-door removed", {LEFT_VIEW: {"red", "green"}})
    if FALLBACK:
        check_fallback(lambda: standin("standin", args.api_port), cams_b)

    # ---- HA restart while the agent runs
    time.sleep(3)
    rc = stop("hass", signal.SIGTERM, timeout=60)
    shutil.copy(OUT / "config" / "home-assistant.log", OUT / "home-assistant.run1.log")
    agent_lines_before = (OUT / "agent.log").read_text().count("Home Assistant came online")
    start("hass", hass, "hass.out")
    t = time.monotonic()
    wait_for(ha_up, 240, 0.5)
    t_api = time.monotonic() - t

    def back():
        s = states()
        if not all_state(s, ids_b, not_="unavailable"):
            return None
        with trace_lock:
            want = {cam: last_state.get(cam, {}).get("class") for cam in cams_b}
        ok = all(s[f"sensor.{ent(cam)}_class"]["state"] == want[cam] and consistent(s, cam, cams_b[cam])[0]
                 for cam in cams_b)
        return s if ok else None

    st = wait_for(back, 60, 0.5)
    check("HA restart: entities come back available with the agent's current state", bool(st),
          f"API up {t_api:.1f}s after start, entities {time.monotonic() - t:.1f}s after start")
    came = wait_for(lambda: (OUT / "agent.log").read_text().count("Home Assistant came online") > agent_lines_before,
                    30)
    check("HA restart: the agent saw HA's birth message and republished discovery and state", bool(came))
    if FALLBACK:
        check("fallback: after HA's restart the 'API endpoint' sensor says primary (read from the retained status)",
              st and st.get(ENDPOINT_SENSOR, {}).get("state") == "primary",
              str(st and st.get(ENDPOINT_SENSOR, {}).get("state")))
    dump_states("after HA restart")

    # ---- SIGKILL: the broker publishes the last will
    time.sleep(2)
    t = time.monotonic()
    stop("agent", signal.SIGKILL)
    st = wait_states(lambda s: all_state(s, ids_b, want="unavailable"), 10, 0.2)
    check("SIGKILL: last will makes every entity unavailable", bool(st), f"{time.monotonic() - t:.1f}s")
    dump_states("after SIGKILL")

    start("agent", [str(AGENT_BIN), "run", "-c", str(OUT / "agent-b.yaml")], "agent.log")
    t = time.monotonic()
    st = wait_for(back, 30, 0.5)
    check("restart after SIGKILL: entities available again with current state", bool(st),
          f"{time.monotonic() - t:.1f}s")
    time.sleep(2)
    t = time.monotonic()
    rc = stop("agent", signal.SIGTERM)
    st = wait_states(lambda s: all_state(s, ids_b, want="unavailable"), 10, 0.2)
    check("final SIGTERM: unavailable again", rc == 0 and bool(st), f"exit {rc}, {time.monotonic() - t:.1f}s")

    if DATASET:  # ---- phase C: dataset.enabled turned off: its entities go, the rest stay
        gone_ds = dataset_entities_for(cams_b)
        start("agent", [str(AGENT_BIN), "run", "-c", str(OUT / "agent-c.yaml")], "agent.log")
        t = time.monotonic()
        st = wait_states(lambda s: not (gone_ds & s.keys()) and all_state(s, ids_b, not_="unavailable"), 30)
        check("dataset off: the training-data entities disappear from HA; the rest stay available",
              bool(st), f"after {time.monotonic() - t:.1f}s; left {sorted(gone_ds & states().keys())}")
        reg = template("{{ integration_entities('mqtt') | select('search', 'save_for_training|correct_class|"
                       "saved_today|dataset_queued') | list }}")
        check("dataset off: and from HA's entity registry", reg.strip() in ("[]", ""), reg)
        dump_states("phase C: dataset off")
        time.sleep(2)
        rc = stop("agent", signal.SIGTERM)
        check("phase C: agent exits 0", rc == 0, f"exit {rc}")

    # ---- phase D (#21): camera 'yard' gains two views: its own entities go, its views' come
    yard_own = entities_for({"yard": cams_b["yard"]}) | {f"button.{ent('yard')}_classify", f"event.{ent('yard')}_change"}
    yard_views = {"yard-a": cams_b["yard"], "yard-b": cams_b["yard"]}
    yard_new = entities_for(yard_views) | extra_entities_for(yard_views)
    kept = entities_for({k: v for k, v in cams_b.items() if k != "yard"})
    start("agent", [str(AGENT_BIN), "run", "-c", str(OUT / "agent-d.yaml")], "agent.log")
    t = time.monotonic()
    st = wait_states(lambda s: not (yard_own & s.keys()) and all_state(s, yard_new | kept, not_="unavailable"), 45)
    check("views: a camera that gains views loses its own entities; its views' come, available; the rest stay",
          bool(st), f"after {time.monotonic() - t:.1f}s; left {sorted(yard_own & states().keys())}, "
          f"missing {sorted(yard_new - states().keys())}")
    st = wait_states(lambda s: all(s[f"sensor.{ent(v)}_class"]["state"] == "green" for v in yard_views), 20)
    check("views: the new views show their state (green)", bool(st),
          str({v: states().get(f"sensor.{ent(v)}_class", {}).get("state") for v in yard_views}))
    reg = json.loads(template("{{ integration_entities('mqtt') | list | tojson }}"))
    check("views: the camera's own entities are gone from HA's entity registry too",
          not (yard_own & set(reg)), f"{sorted(yard_own & set(reg))}")
    if FALLBACK:  # agent-d has no api.fallback: its sensor is cleared as any stale config of the agent's
        st = wait_states(lambda s: ENDPOINT_SENSOR not in s, 20)
        reg = json.loads(template("{{ integration_entities('mqtt') | list | tojson }}"))
        check("fallback: taken out of the config, the 'API endpoint' sensor disappears from HA and its registry",
              st is not None and ENDPOINT_SENSOR not in reg, f"registry has it: {ENDPOINT_SENSOR in reg}")
    dump_states("phase D: yard has views a and b")
    time.sleep(2)
    rc = stop("agent", signal.SIGTERM)
    check("phase D: agent exits 0", rc == 0, f"exit {rc}")

    # ---- what HA logged
    time.sleep(1)
    logs = (OUT / "home-assistant.run1.log").read_text() + (OUT / "config" / "home-assistant.log").read_text()
    bad = [ln for ln in logs.splitlines() if re.search(r" (WARNING|ERROR|CRITICAL) ", ln)]
    # the venv/host, not the agent: --skip-pip, an old Python, optional speed-ups this host lacks
    benign = re.compile(r"Skipping pip installation|Support for the running Python version|"
                        r"zlib_ng and isal are not available|Error loading libturbojpeg")
    about = [ln for ln in bad if not benign.search(ln)]
    (OUT / "ha_warnings.txt").write_text("\n".join(bad) + "\n")
    mqtt_lines = [ln for ln in logs.splitlines() if "homeassistant.components.mqtt" in ln
                  and re.search(r"\b(invalid|error|deprecat|not valid|Unable|failed)", ln, re.I)
                  and "Received" not in ln and "Rendering incoming payload" not in ln
                  # HA's echo of a discovery payload: any word of ours (the "failed" attribute of #22's sensor)
                  and not re.search(r"Process (component )?discovery payload|Got update for entity with hash", ln)]
    (OUT / "ha_mqtt_problems.txt").write_text("\n".join(mqtt_lines) + "\n")
    check("HA log: no warning or error other than the venv's own (python version, --skip-pip)", not about,
          f"{len(about)} lines, e.g. {about[:3]}")
    check("HA log: no MQTT line about an invalid/deprecated discovery payload", not mqtt_lines,
          f"{len(mqtt_lines)} lines, e.g. {mqtt_lines[:3]}")
    found = len(re.findall(r"Found new component: \w+ " + NODE, logs))
    notes.append(f"HA logged 'Found new component' {found} times for {NODE}")
    # retained topics the removed camera, the removed view and the camera that gained views left
    # behind on the broker (not HA's concern; the agent's)
    left: list[str] = []
    probe = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="ha-check-retained")
    probe.on_connect = lambda c, u, f, rc, p: c.subscribe([(f"{PREFIX}/{n}/#", 0) for n in ("gone", RIGHT_VIEW, "yard")])
    probe.on_message = lambda c, u, m: left.append(m.topic) if m.retain and m.payload else None
    probe.connect("127.0.0.1", args.mqtt_port)
    probe.loop_start()
    time.sleep(1.5)
    probe.loop_stop()
    probe.disconnect()
    check("retained: nothing of the removed camera, the removed view or the camera that gained views is left "
          "on the broker", not left, f"{sorted(left)}")


try:
    main()
except SystemExit as e:
    if e.code not in (None, 0):
        check("run completed", False, str(e.code))
except Exception as e:  # report, then clean up
    import traceback
    traceback.print_exc()
    check("run completed", False, repr(e))
finally:
    for name in reversed(list(procs)):
        try:
            stop(name, signal.SIGTERM, timeout=60 if name == "hass" else 15)
        except Exception as e:
            log(f"stopping {name}: {e}")
    passed = sum(ok for _, ok, _ in results)
    failed = len(results) - passed
    with open(OUT / "report.txt", "w") as f:
        for name, ok, detail in results:
            f.write(f"{'PASS' if ok else 'FAIL'}  {name}" + (f"  -- {detail}" if detail else "") + "\n")
        for n in notes:
            f.write(f"NOTE  {n}\n")
        f.write(f"{passed} passed, {failed} failed\n")
    for n in notes:
        print(f"NOTE  {n}")
    print(f"{passed} passed, {failed} failed")
    sys.exit(1 if failed else 0)
