"""Sources: H.264 decode modes side by side, MJPEG memory, and the import floor.

    .venv/bin/python bench/bench_sources.py          # ~3 minutes
    .venv/bin/python bench/bench_sources.py --windows 3 --window-seconds 6   # quicker

decode: a camera-like 1920x1080 25 fps H.264 clip (testsrc2's moving content plus
  sensor-like noise, ~3 Mbit/s, libx264 -bf 0 -g 25 -keyint_min 25 -sc_threshold 0:
  no B-frames, as IP cameras and the Pi's encoder send; a keyframe every second, 20 s, looping, played in real time), fps 1, the change
  gate off (every look is a call, so classifications/s compare). Three agents
  run AT THE SAME TIME, one per mode: `decode: all` (the baseline: every frame
  decoded), `decode: keyframes` (FFmpeg's avdiscard=nonkey) and `decode: auto`,
  with one broker and one stand-in API (180 ms), sampled over the very same
  windows: CPU (% of one core, all threads, from each thread's schedstat runtime),
  classifications/s (results on MQTT per camera), frame age (a result's
  captured_at against its arrival on MQTT, median: capture-to-MQTT, about the
  same in every mode; with keyframes only the frame taken is the next keyframe,
  so what it shows is at most one keyframe interval, here 1 s, older than the
  moment the look was due), memory from /proc/PID/smaps_rollup: Anonymous (the
  heap: everything the process allocated, thread stacks included), USS
  (Private_Clean + Private_Dirty) and RSS; and which mode `auto` picked (the
  `decode` field of the camera's status topic).
mjpeg: a 640x480 HTTP MJPEG camera on loopback (tests/streams.py's MjpegCamera,
  serving camera-like JPEGs at 15 fps) at 2 classifications/s: the same memory
  figures.
floor: a process that only imports the agent's dependencies (cv2, numpy, aiohttp,
  paho.mqtt.client, yaml, edge_agent.agent; prometheus_client is imported on the first
  scrape) with the agent's
  environment, and sleeps: its RSS and Anonymous, printed beside the agents'.
Targets (the issue): keyframes <= 0.2x the CPU of `all`; `auto` picks keyframes
  here; Anonymous <= 50 MB for a 1080p H.264 camera in keyframe mode; Anonymous
  <= 40 MB for a 640x480 MJPEG camera at 2/s.
take path: the capture thread's CPU per taken 1080p keyframe after its decode
  (retrieve, the API's JPEG, the preview), fresh arrays for everything against the
  kept buffers (sources/opencv.py, encode.Scratch) and the shared first halving,
  interleaved frame by frame in one process with the agent's malloc settings.
levers: what each memory lever is worth, side by side: the agent as shipped, the
  same agent with glibc's malloc defaults (EDGE_AGENT_MALLOC=glibc turns memory.py's
  tuning off), the same agent on a clip with x264's default 3 B-frames (a decoder
  holds more frames for those; and `decode: all` on it, for the CPU ratio there),
  and a bare OpenCV reader of the same source (the agent's imports, no agent):
  with glibc's defaults, and with the agent's malloc settings (the least a reader
  built on OpenCV holds for this source).
The agent's modules are compiled to bytecode first (`compileall`), as `pip install`
  does: run from source with PYTHONDONTWRITEBYTECODE set, each agent would compile
  them at every start, and the compiler's leftovers add ~2 MB to its heap.

Everything runs on 127.0.0.1: mosquitto, the stand-in API (tools/standin_api.py,
not a model), the MJPEG camera, the agents as subprocesses. Figures vary with the
machine; compare the ratios and the differences to the floor.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from aiohttp import web  # noqa: E402

from bench.bench_agent import Sampled, sample_together  # noqa: E402
from tests.helpers import AgentProc, Broker, Recorder, agent_config, wait_until  # noqa: E402
from tests.streams import MjpegCamera  # noqa: E402
from tools.standin_api import StandinApi, ThreadedStandin  # noqa: E402

KEY = "bench-key"
PREFIX = "edge_agent/test"
MODES = ("all", "keyframes", "auto")
CPU_RATIO_MAX = 0.2
ANON_H264_MAX = 50.0
ANON_MJPEG_MAX = 40.0

# The scripts import this checkout's edge_agent, as the agents (python -m, cwd=ROOT) do,
# whatever checkout the venv's editable install points at.
THIS_TREE = {"PYTHONPATH": str(ROOT)}
# What `edge-agent run` sets before it imports anything (cli.py): the floor gets the same.
AGENT_ENV = {"OPENCV_FFMPEG_CAPTURE_OPTIONS": "rtsp_transport;tcp", "OPENCV_FFMPEG_LOGLEVEL": "-8",
             "OPENCV_LOG_LEVEL": "ERROR", "OPENCV_FFMPEG_THREADS": str(min(4, os.cpu_count() or 1)),
             "OPENBLAS_NUM_THREADS": "1"}

IMPORT_FLOOR = textwrap.dedent("""
    # The import floor: the agent's dependencies imported, nothing done, asleep.
    # Prints what each import adds to Anonymous, then "imported".
    import os, time
    def anon():
        with open(f"/proc/{os.getpid()}/smaps_rollup") as f:
            return next(int(ln.split()[1]) for ln in f if ln.startswith("Anonymous:")) / 1024
    prev = anon()
    parts = [f"python {prev:.1f}"]
    for name in ("numpy", "cv2", "yaml", "paho.mqtt.client", "aiohttp", "edge_agent.agent"):
        __import__(name)
        now = anon()
        parts.append(f"{name} {now - prev:+.1f}")
        prev = now
    print("; ".join(parts), flush=True)
    print("imported", flush=True)
    time.sleep(3600)
""")

BARE_CAPTURE = textwrap.dedent("""
    # What any OpenCV-based reader pays: open the source as the agent does (FFmpeg,
    # the given capture options, demux-only for MJPEG), play it at its pace, and
    # retrieve (decode) one frame per look interval. No HTTP, no MQTT, no agent; the
    # agent's imports, so that it minus the import floor is what the capture holds.
    # BARE_TUNE=1: with the agent's malloc settings (memory.tune(), release() after an
    # open), the least any reader of this kind holds.
    import os, sys, time
    tuned = bool(os.environ.get("BARE_TUNE"))
    if tuned:
        import edge_agent.memory as memory
        memory.tune()
    import cv2, numpy as np
    import aiohttp, paho.mqtt.client, yaml, edge_agent.agent
    source, options, look = sys.argv[1], sys.argv[2], float(sys.argv[3])
    def open_():
        os.environ["OPENCV_FFMPEG_CAPTURE_OPTIONS"] = options
        cap = cv2.VideoCapture(source, cv2.CAP_FFMPEG)
        raw = int(cap.get(cv2.CAP_PROP_FOURCC)) == int.from_bytes(b"MJPG", "little") and cap.set(cv2.CAP_PROP_FORMAT, -1)
        if tuned:
            memory.release()
        return cap, raw
    cap, raw = open_()
    start, first, next_look = time.monotonic(), None, 0.0
    while True:
        if not cap.grab():
            cap.release(); cap, raw = open_(); start, first = time.monotonic(), None; continue
        pos = cap.get(cv2.CAP_PROP_POS_MSEC) / 1000
        if source.startswith("/"):
            first = pos if first is None else first
            wait = start + pos - first - time.monotonic()
            if wait > 0:
                time.sleep(wait)
        now = time.monotonic()
        if now >= next_look:
            next_look = now + look
            ok, data = cap.retrieve()
            if raw and ok:
                data = cv2.imdecode(np.frombuffer(data.tobytes(), np.uint8), cv2.IMREAD_COLOR)
""")


TAKE_PATH = textwrap.dedent("""
    # The capture thread's work on a taken 1080p keyframe, after the decode: retrieve
    # (FFmpeg's YUV -> OpenCV's BGR -> our array), the API's JPEG and the preview. With
    # the agent's malloc settings, two ways, interleaved frame by frame: fresh arrays
    # for everything (how it was), and the kept buffers (OpenCVSource.retrieve into the
    # last frame's array, encode.Scratch, the shared first halving). CPU of this thread.
    import os, sys, time, statistics
    import edge_agent.memory as memory
    memory.tune()
    from edge_agent.config import CameraConfig, DecodeMode
    from edge_agent.encode import Scratch, prepare, prepare_with_preview, resize_for_api
    from edge_agent.sources import SourceKind, SourceSpec
    from edge_agent.sources.opencv import OpenCVSource
    clip = sys.argv[1]
    src = OpenCVSource(SourceSpec(SourceKind.FILE, clip), CameraConfig(name="cam", source=clip,
                       decode=DecodeMode.KEYFRAMES), open_timeout=5, look_interval=lambda: 1.0)
    scratch, fresh, kept = Scratch(), [], []
    for _ in range(3):
        src.open()
        while src.grab():
            t = time.thread_time()
            if len(fresh) <= len(kept):
                ok, image = src._cap.retrieve()
                prepare(image, 416, 80), resize_for_api(image, 640)
                fresh.append(time.thread_time() - t)
            else:
                image = src.retrieve()
                prepare_with_preview(image, 416, 80, None, 640, scratch, src.holds(image))
                kept.append(time.thread_time() - t)
            del image
        src.close()
    print(f"{statistics.median(fresh) * 1000:.2f} {statistics.median(kept) * 1000:.2f} {len(fresh) + len(kept)}")
""")


def bench_take_path(work: Path, clip: Path) -> None:
    script = work / "take_path.py"
    script.write_text(TAKE_PATH)
    out = subprocess.run([sys.executable, str(script), str(clip)], cwd=ROOT, capture_output=True, text=True,
                         env={**os.environ, **AGENT_ENV, **THIS_TREE, "OPENCV_FFMPEG_THREADS": "1"},
                         timeout=300, check=True).stdout.split()
    fresh, kept, n = float(out[0]), float(out[1]), int(out[2])
    print(f"\n== take path: a 1080p keyframe after its decode (retrieve, API JPEG, preview), capture thread CPU, "
          f"median of {n} frames, interleaved")
    print(f"  fresh arrays each frame {fresh:.2f} ms; kept buffers and one shared halving {kept:.2f} ms "
          f"({fresh / kept:.2f}x less)")


def camera_like_1080p(path: Path, seconds: int = 20, bframes: int = 0) -> Path:
    """1920x1080 25 fps H.264 with moving content and sensor-like noise, ~3 Mbit/s,
    a keyframe every second exactly (no scene-cut keyframes). No B-frames by default,
    as IP cameras and the Pi's encoder send (they add latency); ``bframes=3`` is
    x264's default, for the comparison row: the decoder then holds more frames."""
    subprocess.run(["ffmpeg", "-nostdin", "-y", "-loglevel", "error", "-f", "lavfi",
                    "-i", f"testsrc2=s=1920x1080:r=25:d={seconds}", "-vf", "noise=alls=10:allf=t",
                    "-c:v", "libx264", "-pix_fmt", "yuv420p", "-preset", "veryfast", "-bf", str(bframes),
                    "-b:v", "3000k", "-maxrate", "3000k", "-bufsize", "6000k", "-g", "25", "-keyint_min", "25",
                    "-sc_threshold", "0", str(path)], check=True, timeout=300)
    return path


def camera_like_jpegs(work: Path, seconds: int = 2, fps: int = 15) -> list[bytes]:
    """640x480 camera-like JPEGs (moving content, noise, quality 5), as an MJPEG camera sends."""
    out = work / "mjpeg-frames"
    out.mkdir(exist_ok=True)
    subprocess.run(["ffmpeg", "-nostdin", "-y", "-loglevel", "error", "-f", "lavfi",
                    "-i", f"testsrc2=s=640x480:r={fps}:d={seconds}", "-vf", "noise=alls=12:allf=t",
                    "-c:v", "mjpeg", "-q:v", "5", "-pix_fmt", "yuvj420p", str(out / "%04d.jpg")],
                   check=True, timeout=120)
    return [p.read_bytes() for p in sorted(out.glob("*.jpg"))]


class CameraLikeMjpeg(MjpegCamera):
    """tests/streams.py's HTTP MJPEG camera, serving a loop of camera-like frames."""

    def __init__(self, frames: list[bytes], fps: float):
        super().__init__(fps=fps, size=(640, 480))
        self.frames = frames

    async def _stream(self, request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "multipart/x-mixed-replace; boundary=frame"})
        await resp.prepare(request)
        self.clients += 1
        i = 0
        while True:
            jpeg = self.frames[i % len(self.frames)]
            i += 1
            try:
                await resp.write(b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: "
                                 + str(len(jpeg)).encode() + b"\r\n\r\n" + jpeg + b"\r\n")
            except ConnectionError:
                return resp
            await asyncio.sleep(1 / self.fps)


def smaps(pid: int) -> dict[str, float]:
    """MB from /proc/PID/smaps_rollup: Rss, Anonymous, USS (private clean + dirty); and threads."""
    kb: dict[str, int] = {}
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 2 and parts[1].isdigit():
                kb[parts[0].rstrip(":")] = int(parts[1])
    with open(f"/proc/{pid}/status") as f:
        threads = next(int(ln.split()[1]) for ln in f if ln.startswith("Threads:"))
    return {"rss": kb["Rss"] / 1024, "anon": kb["Anonymous"] / 1024,
            "uss": (kb["Private_Clean"] + kb["Private_Dirty"]) / 1024, "threads": float(threads)}


class Watched(Sampled):
    """CPU per window (bench_agent's Sampled) plus memory at the end of each window."""

    def __init__(self, name: str, pid: int):
        super().__init__(name, pid)
        self.mem: list[dict[str, float]] = []

    def restart(self) -> None:
        super().restart()
        self.mem = []

    def sample(self, dt: float) -> None:
        super().sample(dt)
        self.mem.append(smaps(self.pid))

    def median(self, key: str) -> float:
        return statistics.median(m[key] for m in self.mem)


def start_floor(work: Path) -> tuple[subprocess.Popen, str]:
    """The import floor process, and what each import added to its Anonymous (MB)."""
    script = work / "import_floor.py"
    script.write_text(IMPORT_FLOOR)
    proc = subprocess.Popen([sys.executable, str(script)], cwd=ROOT, env={**os.environ, **AGENT_ENV, **THIS_TREE},
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    breakdown = proc.stdout.readline().strip()
    proc.stdout.readline()  # "imported"
    return proc, breakdown


def start_bare(work: Path, source: str, options: str, look: float, env: dict[str, str]) -> subprocess.Popen:
    script = work / "bare_capture.py"
    script.write_text(BARE_CAPTURE)
    return subprocess.Popen([sys.executable, str(script), source, options, str(look)], cwd=ROOT,
                            env={**os.environ, **AGENT_ENV, **THIS_TREE, **env})


def start_agent(work: Path, api: Any, broker: Broker, name: str, camera: dict[str, Any],
                env: dict[str, str] | None = None) -> AgentProc:
    d = work / name
    d.mkdir()
    cfg = agent_config(api_url=api.url, broker_port=broker.port, api_key=KEY, timeout=5, prefix=PREFIX,
                       cameras=[{"name": name, **camera}])
    cfg["status_interval"] = 2  # `decode` is read from the status topic
    cfg["device_id"] = f"bench-{name}"  # several agents on one broker: their own client ids
    cfg["mqtt"]["client_id"] = f"edge-agent-bench-{name}"
    return AgentProc(d, cfg, env=env, log_level="info")


def stop(agents: list[AgentProc]) -> None:
    for a in agents:
        if a.proc.poll() is None:
            a.signal(signal.SIGTERM)
    for a in agents:
        try:
            a.wait(10)
        except subprocess.TimeoutExpired:
            pass
        a.close()


def results_in(rec: Recorder, camera: str, span: tuple[float, float]) -> tuple[float, float]:
    """Classifications/s on MQTT and the median frame age (s) over the span."""
    msgs = [m for m in rec.all(f"{camera}/result") if span[0] <= m.at < span[1]]
    rate = len(msgs) / (span[1] - span[0])
    ages = [m.wall - m.json()["captured_at"] for m in msgs]
    return rate, (statistics.median(ages) if ages else float("nan"))


def decode_of(rec: Recorder, camera: str) -> str:
    m = rec.last(f"{camera}/status")
    return str(m.json().get("decode")) if m else "(no status)"


def row(name: str, p: Watched | None, rate: float | None, age: float | None, mem: dict[str, float]) -> str:
    cpu = f"{statistics.median(p.cpu):7.2f}" if p else f"{'-':>7}"
    r = f"{rate:7.2f}" if rate is not None else f"{'-':>7}"
    a = f"{age * 1000:7.0f}" if age is not None else f"{'-':>7}"
    return (f"  {name:16}{cpu}{r}{a}{mem['anon']:9.1f}{mem['uss']:8.1f}{mem['rss']:8.1f}"
            f"{mem['threads']:8.0f}")


HEADER = (f"  {'':16}{'CPU %':>7}{'cls/s':>7}{'age ms':>7}{'anon MB':>9}{'USS MB':>8}{'RSS MB':>8}"
          f"{'threads':>8}")


def medians(p: Watched) -> dict[str, float]:
    return {k: p.median(k) for k in ("anon", "uss", "rss", "threads")}


def bench_decode(work: Path, clip: Path, windows: int,
                 window_s: float) -> tuple[bool, bool, dict[str, float]]:
    """(every target met, the memory target met, the import floor's memory)"""
    print(f"\n== decode modes: 1920x1080 25 fps H.264 camera-like, keyframe every 1 s, fps 1, gate off; "
          f"three agents at once, {windows} windows of {window_s:g} s")
    broker = Broker(work).start()
    rec = Recorder(broker.port, PREFIX)
    agents: list[AgentProc] = []
    floor: subprocess.Popen | None = None
    try:
        with ThreadedStandin(StandinApi(api_key=KEY, latency=0.18)) as api:
            for mode in MODES:
                agents.append(start_agent(work, api, broker, f"cam_{mode}",
                                          {"source": str(clip), "fps": 1, "loop": True, "decode": mode}))
            floor, breakdown = start_floor(work)
            # warm-up: every camera classifying, and auto's choice made
            wait_until(lambda: all(rec.all(f"cam_{m}/result") for m in MODES), 30, what="results from all three")
            # (auto decodes a file's whole first pass, 20 s, before it may choose keyframes only)
            wait_until(lambda: "learning" not in decode_of(rec, "cam_auto")
                       and decode_of(rec, "cam_auto") != "(no status)", 45, what="auto to decide")
            time.sleep(3)
            procs = [Watched(m, a.proc.pid) for m, a in zip(MODES, agents)]
            fl = Watched("floor", floor.pid)
            span = sample_together(procs + [fl], windows, window_s)
            picked = {m: decode_of(rec, f"cam_{m}") for m in MODES}
            for m, a in zip(MODES, agents):
                if a.proc.poll() is not None:
                    raise RuntimeError(f"agent {m} exited:\n{a.log()[-2000:]}")
    finally:
        stop(agents)
        if floor is not None:
            floor.kill()
            floor.wait()
        rec.close()
        broker.stop()
    print(HEADER)
    figures = {}
    for p in procs:
        rate, age = results_in(rec, f"cam_{p.name}", span)
        figures[p.name] = (statistics.median(p.cpu), rate, age, medians(p))
        print(row(f"decode: {p.name}", p, rate, age, medians(p)))
    floor_mem = medians(fl)
    print(row("import floor", None, None, None, floor_mem))
    print(f"  the floor's Anonymous by import, MB: {breakdown}")
    for m in MODES:
        print(f"  status `decode` of {m:9}: {picked[m]}")
    cpu_all, cpu_key, cpu_auto = (figures[m][0] for m in MODES)
    print("  CPU windows: " + "; ".join(f"{p.name} " + ", ".join(f"{x:.1f}" for x in p.cpu) for p in procs))
    print(f"  ratio: keyframes/all {cpu_key / cpu_all:.3f}x, auto/all {cpu_auto / cpu_all:.3f}x; heap over "
          f"the import floor: " + ", ".join(f"{m} {figures[m][3]['anon'] - floor_mem['anon']:+.1f} MB"
                                            for m in MODES))
    print("  (age: capture -> MQTT; with keyframes only the frame taken is the next keyframe, so it shows a "
          "moment at most one keyframe interval, 1 s here, before the look's due time)")
    cpu_ok = cpu_key <= CPU_RATIO_MAX * cpu_all
    auto_ok = picked["auto"].startswith("keyframes only")
    anon_key = figures["keyframes"][3]["anon"]
    mem_ok = anon_key <= ANON_H264_MAX
    print(f"  target keyframes CPU <= {CPU_RATIO_MAX}x all: {'met' if cpu_ok else 'NOT met'} "
          f"({cpu_key / cpu_all:.3f}x)")
    print(f"  target auto picks keyframes: {'met' if auto_ok else 'NOT met'} ({picked['auto']})")
    print(f"  target keyframes Anonymous <= {ANON_H264_MAX:g} MB: {'met' if mem_ok else 'NOT met'} "
          f"({anon_key:.1f} MB; floor {floor_mem['anon']:.1f} MB)")
    return cpu_ok and auto_ok and mem_ok, mem_ok, floor_mem


def bench_mjpeg(work: Path, frames: list[bytes], windows: int, window_s: float,
                floor_mem: dict[str, float]) -> bool:
    print(f"\n== MJPEG memory: 640x480 HTTP MJPEG camera (15 fps, camera-like), 2 classifications/s, gate off; "
          f"{windows} windows of {window_s:g} s")
    broker = Broker(work).start()
    rec = Recorder(broker.port, PREFIX)
    agents: list[AgentProc] = []
    try:
        with ThreadedStandin(StandinApi(api_key=KEY, latency=0.18)) as api, CameraLikeMjpeg(frames, 15) as cam:
            agents.append(start_agent(work, api, broker, "cam_mjpeg", {"source": cam.url, "fps": 2}))
            wait_until(lambda: rec.all("cam_mjpeg/result"), 30, what="MJPEG results")
            time.sleep(3)
            p = Watched("mjpeg", agents[0].proc.pid)
            span = sample_together([p], windows, window_s)
            picked = decode_of(rec, "cam_mjpeg")
    finally:
        stop(agents)
        rec.close()
        broker.stop()
    rate, age = results_in(rec, "cam_mjpeg", span)
    print(HEADER)
    print(row("MJPEG 640x480", p, rate, age, medians(p)))
    print(row("import floor", None, None, None, floor_mem))
    anon = p.median("anon")
    print(f"  status `decode`: {picked}; heap over the import floor {anon - floor_mem['anon']:+.1f} MB")
    ok = anon <= ANON_MJPEG_MAX
    print(f"  target MJPEG Anonymous <= {ANON_MJPEG_MAX:g} MB: {'met' if ok else 'NOT met'} ({anon:.1f} MB)")
    return ok


def bench_levers(work: Path, clip: Path, bclip: Path, frames: list[bytes], windows: int, window_s: float,
                 floor_mem: dict[str, float]) -> None:
    """What each lever is worth, all at once over the same windows: the agent as shipped;
    the same agent with glibc's malloc defaults (EDGE_AGENT_MALLOC=glibc: memory.py's
    tuning off); the same agent on a clip with B-frames; and a bare OpenCV reader of the
    same source (no agent at all: with glibc's defaults, and with the agent's malloc
    settings, the least an OpenCV reader of it holds)."""
    h264 = {"source": str(clip), "fps": 1, "loop": True, "decode": "keyframes"}
    kinds = [("1080p H.264 keyframes", [("agent, as shipped", h264, {}),
                                        ("agent, glibc malloc defaults", h264, {"EDGE_AGENT_MALLOC": "glibc"}),
                                        ("agent, clip with 3 B-frames", {**h264, "source": str(bclip)}, {}),
                                        ("agent, clip with 3 B-frames, decode: all",
                                         {**h264, "source": str(bclip), "decode": "all"}, {})],
              (str(clip), "avdiscard;nonkey", 1.0, {"OPENCV_FFMPEG_THREADS": "1"})),  # as the agent opens it
             ("MJPEG 640x480 2/s", [("agent, as shipped", None, {}),
                                    ("agent, glibc malloc defaults", None, {"EDGE_AGENT_MALLOC": "glibc"})],
              (None, "", 0.5, {}))]
    bare_kinds = [("bare OpenCV reader", {}), ("bare OpenCV reader, the agent's malloc settings", {"BARE_TUNE": "1"})]
    print(f"\n== levers: the agent as shipped, without memory.py's malloc tuning, on a B-frame clip, and bare "
          f"OpenCV readers; all at once, {windows} windows of {window_s:g} s")
    broker = Broker(work).start()
    rec = Recorder(broker.port, PREFIX)
    agents: list[AgentProc] = []
    bare: list[subprocess.Popen] = []
    rows: list[tuple[str, str, int]] = []  # (kind, label, pid)
    names: list[str] = []
    try:
        with ThreadedStandin(StandinApi(api_key=KEY, latency=0.18)) as api, CameraLikeMjpeg(frames, 15) as cam:
            for k, (kind, variants, (bare_source, options, look, bare_env)) in enumerate(kinds):
                for i, (label, camera, env) in enumerate(variants):
                    name = f"lever_{k}_{i}"
                    agents.append(start_agent(work, api, broker, name, camera or {"source": cam.url, "fps": 2},
                                              env=env))
                    rows.append((kind, label, agents[-1].proc.pid))
                    names.append(name)
                for label, env in bare_kinds:
                    bare.append(start_bare(work, bare_source or cam.url, options, look, {**bare_env, **env}))
                    rows.append((kind, label, bare[-1].pid))
            wait_until(lambda: all(rec.all(f"{n}/result") for n in names), 40, what="results from all")
            time.sleep(3)
            procs = [Watched(label, pid) for _, label, pid in rows]
            sample_together(procs, windows, window_s)
    finally:
        stop(agents)
        for b in bare:
            b.kill()
            b.wait()
        rec.close()
        broker.stop()
    w = 72
    print(f"  {'':{w}}{'CPU %':>7}{'anon MB':>9}{'USS MB':>8}{'RSS MB':>8}{'threads':>8}")
    cpu: dict[tuple[str, str], float] = {}
    for (kind, label, _), p in zip(rows, procs):
        m = medians(p)
        cpu[kind, label] = statistics.median(p.cpu)
        print(f"  {kind + ', ' + label:{w}}{statistics.median(p.cpu):7.2f}{m['anon']:9.1f}{m['uss']:8.1f}"
              f"{m['rss']:8.1f}{m['threads']:8.0f}")
    print(f"  {'import floor (section 1)':{w}}{'-':>7}{floor_mem['anon']:9.1f}{floor_mem['uss']:8.1f}"
          f"{floor_mem['rss']:8.1f}{floor_mem['threads']:8.0f}")
    h264_kind = kinds[0][0]
    key_b = cpu[h264_kind, "agent, clip with 3 B-frames"]
    all_b = cpu[h264_kind, "agent, clip with 3 B-frames, decode: all"]
    print(f"  on the B-frame clip: keyframes/all CPU {key_b / all_b:.3f}x (target {CPU_RATIO_MAX}x: "
          f"{'met' if key_b <= CPU_RATIO_MAX * all_b else 'NOT met'})")


def main() -> int:
    ap = argparse.ArgumentParser(description="edge-agent sources benchmark")
    ap.add_argument("--windows", type=int, default=5, help="sampling windows (medians are reported)")
    ap.add_argument("--window-seconds", type=float, default=8.0)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="edge-agent-sources-") as tmp:
        work = Path(tmp)
        print(f"machine: {os.cpu_count()} cores, python {sys.version.split()[0]}, kernel {os.uname().release}")
        subprocess.run([sys.executable, "-m", "compileall", "-q", str(ROOT / "edge_agent")], check=True, timeout=120)
        clip = camera_like_1080p(work / "camera-like-1080p.mp4")
        print(f"clip: 1920x1080 25 fps H.264, {clip.stat().st_size * 8 / 20 / 1e6:.1f} Mbit/s, keyframe every 1 s, "
              f"no B-frames, 20 s")
        frames = camera_like_jpegs(work)
        bench_take_path(work, clip)
        decode_ok, _, floor_mem = bench_decode(work, clip, args.windows, args.window_seconds)
        mjpeg_ok = bench_mjpeg(work, frames, max(3, args.windows - 2), args.window_seconds * 0.75, floor_mem)
        bclip = camera_like_1080p(work / "camera-like-1080p-bframes.mp4", bframes=3)
        bench_levers(work, clip, bclip, frames, 3, args.window_seconds * 0.75, floor_mem)
    return 0 if decode_ok and mjpeg_ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
