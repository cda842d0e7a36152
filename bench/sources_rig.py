"""What bench_sources.py runs its agents and baselines on: camera-like clips and
an MJPEG camera, the agents and bare readers as processes, the import floor, and
memory and CPU sampled per window (/proc). Nothing here measures on its own."""

from __future__ import annotations

import asyncio
import os
import signal
import statistics
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from aiohttp import web  # noqa: E402

from bench.bench_agent import Sampled  # noqa: E402
from tests.helpers import AgentProc, Broker, Recorder, agent_config  # noqa: E402
from tests.streams import MjpegCamera  # noqa: E402

KEY = "bench-key"
PREFIX = "edge_agent/test"

# The scripts import this checkout's edge_agent, as the agents (python -m, cwd=ROOT) do,
# whatever checkout the venv's editable install points at.
THIS_TREE = {"PYTHONPATH": str(ROOT)}
# What `edge-agent run` sets before it imports anything (cli.py): the floor gets the same.
AGENT_ENV = {"OPENCV_FFMPEG_CAPTURE_OPTIONS": "rtsp_transport;tcp", "OPENCV_FFMPEG_LOGLEVEL": "-8",
             "OPENCV_LOG_LEVEL": "ERROR", "OPENCV_FFMPEG_THREADS": str(min(4, os.cpu_count() or 1)),
             "OPENBLAS_NUM_THREADS": "1", "OPENCV_FOR_THREADS_NUM": "1"}

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
