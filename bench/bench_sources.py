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
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.bench_agent import sample_together  # noqa: E402
from bench.sources_rig import (AGENT_ENV, HEADER, KEY, PREFIX, TAKE_PATH, THIS_TREE, CameraLikeMjpeg,  # noqa: E402
                               Watched, camera_like_1080p, camera_like_jpegs, decode_of, medians, results_in, row,
                               start_agent, start_bare, start_floor, stop)
from tests.helpers import AgentProc, Broker, Recorder, wait_until  # noqa: E402
from tools.standin_api import StandinApi, ThreadedStandin  # noqa: E402

MODES = ("all", "keyframes", "auto")
CPU_RATIO_MAX = 0.2
ANON_H264_MAX = 50.0
ANON_MJPEG_MAX = 40.0


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
