"""Training data (issue #20): what collecting costs, and an upload outage, each
against a baseline in the same run.

    .venv/bin/python bench/bench_dataset.py                 # all three, about 4-5 minutes
    .venv/bin/python bench/bench_dataset.py cpu             # sampling on but nothing sampled vs off (~2 min)
    .venv/bin/python bench/bench_dataset.py cpu1080         # the same at 1080p H.264, gate off (~1 min)
    .venv/bin/python bench/bench_dataset.py upload          # CPU per upload, uploads/s (~1 min)
    .venv/bin/python bench/bench_dataset.py outage          # the 60-s outage with a SIGKILL (~1.5-2 min)
    .venv/bin/python bench/bench_dataset.py outage --outage 20   # a shorter outage
    .venv/bin/python bench/bench_dataset.py cpu --windows 9 --window-seconds 8   # steadier figures

cpu: one camera, a camera-like 640x480 30 fps clip played in real time (testsrc2's
  moving content and sensor-like noise, as bench_agent.py's, tinted green so that the
  stand-in classifies it confidently: "green" at ~0.6, a clean scene), H.264
  (1.5 Mbit/s, an IP camera) and MJPEG (a USB or HTTP camera), fps 2. Six agents
  run AT THE SAME TIME on the same clip and are sampled over the very same windows:
  the change gate off (every look is a call, so every frame sent keeps its
  Original: the worst case) and on (the defaults; on this moving clip it still
  passes nearly every look), each as three agents: the dataset off, twice (the
  baseline is their mean; their own ratio shows how far two alike agents differ,
  the comparison's resolution), and the dataset on with sampling that samples
  nothing (change false, overruled true on this clean scene, below 0, margin 0,
  random 0). CPU (% of one core, all threads, schedstat), memory
  (/proc/PID/smaps_rollup: Anonymous is the heap, USS, RSS), calls/s; the ratio
  on/off of the CPU medians, and the median (and range) of the per-window ratios.
  That nothing was sampled is checked, not assumed: the stand-in's dataset routes
  got no request, the queue's file never held an item (its AUTOINCREMENT
  counter), the metric edge_agent_dataset_uploads_total and the status topic's
  dataset object (when this build exposes them) count nothing.
  Target: on/off <= 1.05 (CPU within 5 %).
cpu1080: the same at 1920x1080 H.264, gate off, three agents: a frame over 1 MiB
  is decoded into a buffer the source reuses, so each frame sent is copied (into
  one of the capture thread's kept buffers, captured.Buffers): the copy's cost.
upload: two agents at the same time on a clip of many different pictures (random
  colour blocks, a new picture every 0.1 s, 60 s: no near-duplicates), fps 4, gate
  off: one samples everything (random 1.0, limits 600/h), the other is the same
  agent sampling nothing. The extra CPU (its difference in the same windows) per
  upload that arrived at the stand-in (each is two requests: the upload and the
  model's guess as its label), and the uploads/s.
outage: the issue's "a 60-s upload-API outage with a SIGKILL in the middle": the
  stand-in's dataset routes answer 503 from the start; an agent sampling
  everything (fps 2, gate off, pictures that differ) is SIGKILLed at half the
  outage and started again on the same state_dir (on a second clip of other
  pictures: it samples on); the routes come back at the outage's end. Printed: the
  frames queued (read from the queue's file after the kill, and when the API
  comes back), the upload requests made during the outage (backoff, against one
  per frame: a storm), what arrived, in order or not, duplicates, lost frames, and
  the seconds from the API's return to the last frame queued before it arriving
  (the uploader's backoff sleep is not cut short by the API's return, so this is
  mostly that sleep). Exit 1 if anything was lost, sent twice or out of order.

The exit status is 1 if a target is not met or a check fails. Everything runs on
127.0.0.1: mosquitto, the stand-in API (tools/standin_api.py, not a model; its
dataset routes, tools/standin_dataset.py), the agents as subprocesses. Figures
vary with the machine; compare the ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.bench_agent import camera_like_clip, encoding, sample_together  # noqa: E402
from bench.sources_rig import KEY, Watched, medians, results_in, stop  # noqa: E402
from tests.helpers import AgentProc, Broker, Recorder, agent_config, wait_until  # noqa: E402
from tools.standin_api import StandinApi, ThreadedStandin  # noqa: E402

PREFIX = "edge_agent/bench"
QUEUE_FILE = "uploads.db"  # in state_dir (edge_agent/dataset/collect.py)
CPU_RATIO_MAX = 1.05
# Samples nothing on a clean scene: no change frames, no uncertain ones, no random share;
# overruled stays on (a confident result the decision did not follow: none here).
NOTHING = {"change": False, "overruled": True, "below": 0.0, "margin": 0.0, "random": 0.0}
# Every result, once, for one reason: random.
EVERYTHING = {"random": 1.0, "change": False, "overruled": False, "below": 0.0, "margin": 0.0}
HIGH_LIMITS = {"per_hour": 600, "per_day": 100_000}  # per_hour's bound is 600


# -- clips ------------------------------------------------------------------------------------

def clean_clip(path: Path, seconds: int = 20, codec: str = "h264", size: str = "640x480") -> Path:
    """bench_agent's camera-like clip (testsrc2, sensor-like noise) tinted green: the
    stand-in (the dominant colour's share) says "green" at 0.56-0.65 on every frame,
    above decide.min_confidence (0.5): a clean scene, one state, no mistakes."""
    return camera_like_clip(path, seconds, codec, tint="colorchannelmixer=rr=0.3:gg=1:bb=0.3", size=size)


def pictures_clip(path: Path, seconds: int = 60, seed: int = 1) -> Path:
    """640x480 30 fps H.264 (camera-like encoding and noise) of a new picture every
    0.1 s: a 4x3 grid of random colours, so no two pictures are near-duplicates
    (edge_agent/dataset/limits.py's Fingerprint: > 2 % of the cells differ)."""
    rng = np.random.default_rng(seed)
    proc = subprocess.Popen(["ffmpeg", "-nostdin", "-y", "-loglevel", "error", "-f", "rawvideo",
                             "-pix_fmt", "bgr24", "-s", "640x480", "-framerate", "10", "-i", "-",
                             "-vf", "noise=alls=12:allf=t", "-r", "30", *encoding("h264"), str(path)],
                            stdin=subprocess.PIPE)
    assert proc.stdin is not None
    for _ in range(seconds * 10):
        grid = rng.integers(0, 256, (3, 4, 3), dtype=np.uint8)
        proc.stdin.write(np.repeat(np.repeat(grid, 160, axis=0), 160, axis=1).tobytes())
    proc.stdin.close()
    if proc.wait(300) != 0:
        raise RuntimeError("ffmpeg could not make the pictures clip")
    return path


# -- agents -------------------------------------------------------------------------------------

@dataclass
class Agent:
    name: str  # also its camera's name: topics P/<name>/...
    proc: AgentProc
    state: Path
    listen: str  # its status server (host:port): /metrics


def start(work: Path, api: StandinApi, broker: Broker, name: str, camera: dict[str, Any],
          dataset: dict[str, Any] | None, state: Path | None = None, folder: str | None = None) -> Agent:
    """An agent as a process, one camera named ``name``; ``dataset``: its
    ``dataset.sampling`` (None: dataset off) and limits."""
    d = work / (folder or name)
    d.mkdir()
    cfg = agent_config(api_url=api.url, broker_port=broker.port, api_key=KEY, timeout=5, prefix=PREFIX,
                       cameras=[{"name": name, **camera}])
    cfg["status_interval"] = 5
    cfg["device_id"] = f"bench-{name}"  # several agents on one broker: their own client ids
    cfg["mqtt"]["client_id"] = f"edge-agent-bench-{folder or name}"
    state = state or d / "state"
    cfg["state_dir"] = str(state)
    if dataset is not None:
        cfg["dataset"] = {"enabled": True, "url": api.url, **dataset}
    return Agent(name, AgentProc(d, cfg, log_level="info"), state, cfg["status"]["listen"])


def queue_file(state: Path) -> tuple[list[tuple[int, float]], int]:
    """The queue's items (id, captured_at) in its order, and how many items it ever
    held (AUTOINCREMENT's counter), read from the file as the agent left it."""
    path = state / QUEUE_FILE
    if not path.exists():
        return [], 0
    c = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
    try:
        try:
            items = c.execute("SELECT id, captured_at FROM items ORDER BY id").fetchall()
        except sqlite3.OperationalError:  # not created yet
            return [], 0
        try:
            row = c.execute("SELECT seq FROM sqlite_sequence WHERE name = 'items'").fetchone()
        except sqlite3.OperationalError:  # no AUTOINCREMENT insert yet
            row = None
        return items, int(row[0]) if row else 0
    finally:
        c.close()


METRIC = re.compile(r'^edge_agent_dataset_uploads_total\{([^}]*)\}\s+(\S+)')


def dataset_metric(listen: str) -> dict[tuple[str, str], float] | None:
    """edge_agent_dataset_uploads_total by (reason, outcome); None if this build does
    not expose it. Scraped after the measuring (the first scrape imports prometheus_client)."""
    with urllib.request.urlopen(f"http://{listen}/metrics", timeout=10) as r:
        text = r.read().decode()
    if "edge_agent_dataset_uploads_total" not in text:
        return None
    out: dict[tuple[str, str], float] = {}
    for line in text.splitlines():
        m = METRIC.match(line)
        if m:
            labels = dict(re.findall(r'(\w+)="([^"]*)"', m.group(1)))
            out[(labels.get("reason", "?"), labels.get("outcome", "?"))] = float(m.group(2))
    return out


def dataset_status(rec: Recorder, name: str) -> dict[str, Any] | None:
    """The status topic's dataset object (None: not in this build's status, or no status yet)."""
    m = rec.last(f"{name}/status")
    return (m.json().get("dataset") or None) if m else None


def nothing_sampled(agent: Agent, rec: Recorder) -> tuple[bool, str]:
    """Whether the agent sampled nothing, from everything that would tell, and what each said."""
    _, ever = queue_file(agent.state)
    metric = dataset_metric(agent.listen)
    status = dataset_status(rec, agent.name)
    ok = ever == 0 and (metric is None or sum(metric.values()) == 0) and \
        (status is None or (status.get("saved_today", 0) == 0 and status.get("queued", 0) == 0))
    said = [f"queue file: {ever} item(s) ever queued",
            "edge_agent_dataset_uploads_total: " + ("not exposed by this build" if metric is None else
                                                    (", ".join(f"{r}/{o} {v:.0f}" for (r, o), v in metric.items())
                                                     or "no samples")),
            "status topic dataset: " + ("not in this build's status" if status is None else
                                        f"saved_today {status.get('saved_today')}, queued {status.get('queued')}")]
    return ok, "; ".join(said)


def uploads_in(api: StandinApi, span: tuple[float, float]) -> int:
    return sum(1 for r in api.dataset.uploads() if span[0] <= r.at < span[1])


def mem(m: dict[str, float]) -> str:
    return f"{m['anon']:5.1f} MB heap (Anonymous), USS {m['uss']:5.1f} MB, RSS {m['rss']:5.1f} MB"


def windows_of(xs: list[float]) -> str:
    return ", ".join(f"{x:.2f}" for x in xs)


# -- cpu ----------------------------------------------------------------------------------------

def bench_cpu(work: Path, clip: Path, label: str, windows: int, window_s: float,
              gates: tuple[bool, ...] = (False, True), size: str = "640x480") -> bool:
    print(f"\n== cpu: one camera, {size} 30 fps {label} in real time, fps 2; {3 * len(gates)} agents at once, "
          f"same clip, same windows")
    broker = Broker(work).start()
    rec = Recorder(broker.port, PREFIX)
    kind = label.split(",")[0].lower().replace(".", "")
    rows = ("off", "off2", "on")  # dataset off, twice (the baseline, and how far two alike agents differ), on
    agents: dict[tuple[bool, str], Agent] = {}
    try:
        with ThreadedStandin(StandinApi(api_key=KEY, latency=0.18)) as api:
            for gate in gates:
                for row in rows:
                    name = f"{kind}-{size}-gate{'on' if gate else 'off'}-ds{row}"
                    camera = {"source": str(clip), "fps": 2, "loop": True, "change": {"enabled": gate}}
                    agents[gate, row] = start(work, api, broker, name, camera,
                                              {"sampling": NOTHING} if row == "on" else None)
            try:
                time.sleep(6)  # warm-up: imports, first open, the first state decided
                watched = {k: Watched(a.name, a.proc.proc.pid) for k, a in agents.items()}
                span = sample_together(list(watched.values()), windows, window_s)
                mems = {k: medians(w) for k, w in watched.items()}
                rates = {k: results_in(rec, a.name, span)[0] for k, a in agents.items()}
                states = {k: rec.last(f"{a.name}/state") for k, a in agents.items()}
                checks = {gate: nothing_sampled(agents[gate, "on"], rec) for gate in gates}
                routes = api.dataset.log()
            finally:
                stop([a.proc for a in agents.values()])
    finally:
        rec.close()
        broker.stop()

    def state(k: tuple[bool, str]) -> str:
        m = states[k]
        return "(none)" if m is None else str(m.json().get("class"))

    ok = True
    for gate in gates:
        print("gate " + ("on (the defaults)" if gate else "off (every look is a call: the worst case)") + ":")
        for row, what in zip(rows, ("dataset off", "dataset off, again", "dataset on, nothing sampled")):
            w = watched[gate, row]
            print(f"  {what:28}: CPU median {statistics.median(w.cpu):5.2f} % of one core "
                  f"(windows: {windows_of(w.cpu)}); {rates[gate, row]:.2f} calls/s, state {state((gate, row))}; "
                  f"{mem(mems[gate, row])}")
        off, off2, on = (watched[gate, r].cpu for r in rows)
        base = [(a + b) / 2 for a, b in zip(off, off2)]  # the baseline: the two agents without the dataset
        ratio = statistics.median(on) / statistics.median(base)
        per_window = [b / a for a, b in zip(base, on) if a > 0]
        heap = mems[gate, "on"]["anon"] - (mems[gate, "off"]["anon"] + mems[gate, "off2"]["anon"]) / 2
        good = ratio <= CPU_RATIO_MAX
        print(f"  ratio on/off: {ratio:.3f} (median of on / median of the two offs' mean); per window median "
              f"{statistics.median(per_window):.3f} [{min(per_window):.3f} .. {max(per_window):.3f}]; "
              f"on minus off {statistics.median(on) - statistics.median(base):+.2f} % of one core; "
              f"heap on minus off {heap:+.1f} MB")
        print(f"  two alike agents without the dataset (off, again / off): "
              f"{statistics.median(off2) / statistics.median(off):.3f}: the resolution of this comparison")
        print(f"  target: on/off <= {CPU_RATIO_MAX}: {'met' if good else 'NOT met'}")
        fine, said = checks[gate]
        print(f"  nothing sampled: {'yes' if fine else 'NO'} ({said})")
        ok = ok and good and fine
    print(f"stand-in dataset routes: {len(routes)} request(s)")
    return ok and not routes


# -- upload -------------------------------------------------------------------------------------

def bench_upload(work: Path, clip: Path, windows: int, window_s: float) -> bool:
    print("\n== upload: pictures that all differ, fps 4, gate off; sampling everything vs the same agent "
          "sampling nothing, at once")
    broker = Broker(work).start()
    rec = Recorder(broker.port, PREFIX)
    try:
        with ThreadedStandin(StandinApi(api_key=KEY, latency=0.18)) as api:
            camera = {"source": str(clip), "fps": 4, "loop": True, "change": {"enabled": False}}
            every = start(work, api, broker, "sample-all", camera, {"sampling": EVERYTHING, **HIGH_LIMITS})
            none = start(work, api, broker, "sample-none", camera, {"sampling": NOTHING, **HIGH_LIMITS})
            try:
                time.sleep(6)
                a, n = Watched("all", every.proc.proc.pid), Watched("none", none.proc.proc.pid)
                span = sample_together([a, n], windows, window_s)
                arrived = uploads_in(api, span)
                labels = sum(1 for r in api.dataset.log() if r.route == "annotate" and span[0] <= r.at < span[1])
                calls = results_in(rec, every.name, span)[0]
                ma, mn = medians(a), medians(n)
                metric = dataset_metric(every.listen)
                fine, said = nothing_sampled(none, rec)
                other = [r for r in api.dataset.uploads()
                         if (r.fields.get("metadata") or {}).get("camera") == none.name]
            finally:
                stop([every.proc, none.proc])
    finally:
        rec.close()
        broker.stop()
    seconds = span[1] - span[0]
    diffs = [x - y for x, y in zip(a.cpu, n.cpu)]
    rate = arrived / seconds
    extra_s = sum(diffs) / 100 * seconds / windows
    print(f"sampling everything: CPU median {statistics.median(a.cpu):5.2f} % of one core "
          f"(windows: {windows_of(a.cpu)}); {calls:.2f} calls/s; {mem(ma)}")
    print(f"sampling nothing   : CPU median {statistics.median(n.cpu):5.2f} % (windows: {windows_of(n.cpu)}); "
          f"{mem(mn)}")
    print(f"uploads: {arrived} arrived at the stand-in in {seconds:.1f} s = {rate:.2f} uploads/s "
          f"(+ {labels} labels); the extra CPU, same windows: median {statistics.median(diffs):+.2f} % of one core "
          f"(windows: {windows_of(diffs)})")
    if arrived:
        print(f"CPU per upload: {statistics.median(diffs) * 10 / rate:.1f} ms (median extra / uploads/s); "
              f"{extra_s * 1000 / arrived:.1f} ms (all extra CPU seconds / uploads arrived); "
              f"heap {ma['anon'] - mn['anon']:+.1f} MB")
    if metric is not None:
        print("edge_agent_dataset_uploads_total (sampling everything): "
              + ", ".join(f"{r}/{o} {v:.0f}" for (r, o), v in sorted(metric.items())))
    print(f"the agent sampling nothing sampled nothing: {'yes' if fine and not other else 'NO'} ({said})")
    return arrived > 0 and fine and not other


# -- outage -------------------------------------------------------------------------------------

def bench_outage(work: Path, first_clip: Path, second_clip: Path, outage: float) -> bool:
    print(f"\n== outage: the dataset routes down for {outage:.0f} s, a SIGKILL at {outage / 2:.0f} s, the agent "
          f"started again on the same state_dir, the routes back at {outage:.0f} s")
    broker = Broker(work).start()
    state = work / "outage-state"
    dataset = {"sampling": EVERYTHING, **HIGH_LIMITS}
    camera = {"fps": 2, "loop": True, "change": {"enabled": False}}
    try:
        with ThreadedStandin(StandinApi(api_key=KEY)) as api:
            api.dataset.down = True
            t0 = time.monotonic()
            first = start(work, api, broker, "outage", {"source": str(first_clip), **camera}, dataset, state,
                          folder="outage-1")
            try:
                time.sleep(max(0.0, t0 + outage / 2 - time.monotonic()))
                first.proc.proc.kill()  # SIGKILL: no stop, no flush
                first.proc.wait(10)
            finally:
                first.proc.close()
            killed_at = time.monotonic() - t0
            at_kill, _ = queue_file(state)
            tries_first = sum(1 for r in api.dataset.log() if r.route == "upload")
            second = start(work, api, broker, "outage", {"source": str(second_clip), **camera}, dataset, state,
                           folder="outage-2")
            try:
                time.sleep(max(0.0, t0 + outage - time.monotonic()))
                at_back, _ = queue_file(state)  # nothing is sent while down: every frame queued so far
                during = [r for r in api.dataset.log() if r.route == "upload"]
                api.dataset.down = False
                back = time.monotonic()
                wanted = {i for i, _ in at_back}

                def arrived_ids() -> set[int]:
                    return {int(r.fields["name"].split("-")[0]) for r in api.dataset.uploads()}

                try:
                    wait_until(lambda: wanted <= arrived_ids(), 360, interval=0.1,
                               what="every frame queued during the outage to arrive")
                except AssertionError as exc:
                    print(f"  {exc}")
                drained = [r.at for r in api.dataset.uploads() if int(r.fields["name"].split("-")[0]) in wanted]
                first_ok = min((r.at for r in api.dataset.log() if r.route == "upload" and r.status == 200
                                and r.at >= back), default=None)
                time.sleep(2)
            finally:
                stop([second.proc])
            logs = first.proc.log(), second.proc.log()
            remaining, ever = queue_file(state)
            log = api.dataset.log()
    finally:
        broker.stop()
    sent = [r for r in log if r.route == "upload" and r.status == 200]
    stored = [r for r in sent if not r.fields.get("duplicate")]
    ids = [int(r.fields["name"].split("-")[0]) for r in stored]
    captured = {int(r.fields["name"].split("-")[0]): r.fields["metadata"]["captured_at"] for r in stored}
    queued_before = dict(at_kill) | dict(at_back)
    missing = sorted(set(queued_before) - set(ids))
    wrong_time = [i for i, at in queued_before.items() if i in captured and captured[i] != round(at, 3)]
    lost = sorted(set(range(1, ever + 1)) - set(ids) - {i for i, _ in remaining})
    twice = len(ids) - len(set(ids))
    resent = len(sent) - len(stored)
    in_order = ids == sorted(ids)
    failures = [ln for text in logs for ln in text.splitlines() if "dataset upload failed" in ln]
    print(f"queued at the SIGKILL ({killed_at:.1f} s; read from the queue's file after the kill): {len(at_kill)} "
          f"frame(s)")
    print(f"queued when the API came back ({outage:.0f} s; the restarted agent sampled on): {len(at_back)} frame(s)")
    print(f"upload requests during the outage: {len(during)} ({tries_first} before the kill, "
          f"{len(during) - tries_first} after the restart), {sum(r.status == 503 for r in during)} answered 503; "
          f"a request per frame would be {len(at_back)}; "
          f"'dataset upload failed' logged {len(failures)} time(s) (once per run)")
    if drained and len(drained) == len(wanted):
        print(f"drained: the {len(wanted)} frame(s) queued during the outage arrived {max(drained) - back:.1f} s "
              f"after the API came back (the first upload after it at "
              f"{(first_ok - back) if first_ok is not None else float('nan'):.1f} s: the rest of the "
              f"restarted agent's backoff sleep)")
    print(f"arrived: {len(stored)} frame(s) in all ({len(set(ids) & wanted)} of the {len(wanted)} queued during "
          f"the outage); still queued at the end: {len(remaining)}; ever queued: {ever}")
    print(f"in order: {'yes' if in_order else 'NO'}; duplicates: {twice} stored twice, {resent} re-sent "
          f"(answered 'duplicate'); captured_at as queued: {'yes' if not wrong_time else f'NO ({len(wrong_time)})'}")
    print(f"lost: {len(missing)} of the frames queued during the outage, {len(lost)} of all ever queued")
    ok = not missing and not lost and not twice and in_order and not wrong_time and bool(wanted)
    print(f"target: everything sampled arrives, in order, exactly once: {'met' if ok else 'NOT met'}")
    return ok


def main() -> int:
    ap = argparse.ArgumentParser(description="edge-agent training data benchmarks (issue #20)")
    ap.add_argument("which", nargs="*", help="cpu, cpu1080, upload and/or outage (default: all)")
    ap.add_argument("--windows", type=int, default=7, help="CPU sampling windows (medians are reported)")
    ap.add_argument("--window-seconds", type=float, default=6.0)
    ap.add_argument("--outage", type=float, default=60.0, help="seconds the upload API is down")
    args = ap.parse_args()
    parts = ("cpu", "cpu1080", "upload", "outage")
    args.which = args.which or list(parts)
    if set(args.which) - set(parts):
        ap.error("choose from: " + ", ".join(parts))
    with tempfile.TemporaryDirectory(prefix="edge-agent-bench-dataset-") as tmp:
        work = Path(tmp)
        print(f"machine: {os.cpu_count()} cores, python {sys.version.split()[0]}, kernel {os.uname().release}, "
              f"load {os.getloadavg()[0]:.2f}")
        subprocess.run([sys.executable, "-m", "compileall", "-q", str(ROOT / "edge_agent")], check=True, timeout=120)
        results = []
        if "cpu" in args.which:
            results.append(bench_cpu(work, clean_clip(work / "clean.mp4"), "H.264, camera-like, clean",
                                     args.windows, args.window_seconds))
            results.append(bench_cpu(work, clean_clip(work / "clean.avi", codec="mjpeg"), "MJPEG, camera-like, clean",
                                     args.windows, args.window_seconds))
        if "cpu1080" in args.which:  # a frame over 1 MiB: the source reuses its buffer, each sent frame is copied
            results.append(bench_cpu(work, clean_clip(work / "clean1080.mp4", size="1920x1080"),
                                     "H.264, camera-like, clean", args.windows, args.window_seconds,
                                     gates=(False,), size="1920x1080"))
        pictures = pictures_clip(work / "pictures.mp4") if {"upload", "outage"} & set(args.which) else None
        if "upload" in args.which:
            assert pictures is not None
            results.append(bench_upload(work, pictures, max(3, args.windows - 2), args.window_seconds))
        if "outage" in args.which:
            assert pictures is not None
            results.append(bench_outage(work, pictures, pictures_clip(work / "pictures-2.mp4", seed=2),
                                        args.outage))
    return 0 if all(results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
