"""Several views of one camera (#21) against the workaround, several cameras on one source.

    .venv/bin/python bench/bench_views.py             # ~3 minutes
    .venv/bin/python bench/bench_views.py --windows 3 --no-gate-row   # quicker
    .venv/bin/python bench/bench_views.py --together  # every agent at once (a machine of 4+ cores)

clip: a camera-like 1920x1080 30 fps H.264 clip (bench_agent.camera_like_clip: testsrc2's
  moving content plus sensor-like noise, ~1.5 Mbit/s, a keyframe every 2 s), 6 s,
  looping, played in real time; a sampling window is one loop of it, so every window
  decodes the same frames. fps 2 and the change gate off: every look is a call, the
  worst case for the work each view does on its own (crop, JPEG, request, result).
  With a keyframe every 2 s and a look every 0.5 s, `decode: auto` decodes every frame.
pairs: (a) one agent whose one camera has N views against (b) one agent with N cameras
  on the same file, each with one of the same regions (the workaround of #21), for
  N = 2 (halves: [0,0,0.5,1] and [0.5,0,1,1]), 3 (thirds, side by side) and 4
  (quarters), beside them 4 views with api.max_in_flight 4 (the default, 2, lets only
  two views call on one frame); and N = 2 with the gate on (the defaults: a call only
  when a view's own crop changed). The agents of a group run AT THE SAME TIME and are
  sampled over the very same windows, with the floor beside the first group: one agent
  with one camera of one view (the left half). On a 2-core machine the groups run in
  turn (all the agents at once ask ~2.3 cores, printed: they would share out the CPU
  unevenly); `--together` runs every agent at once.
figures: per agent, over the windows: CPU (% of one core, user+system, all threads, from
  each thread's schedstat runtime; median), split into FFmpeg's decoder threads
  (av:h264:*, frame threading), the loop (the main thread: requests, results, MQTT)
  and the rest (the capture thread: demux, the colour conversion of a frame taken,
  each call's crop, resize and JPEG; paho's network thread); heap (Anonymous of
  /proc/PID/smaps_rollup, median) and RSS; calls/s per view (results on MQTT per view
  or camera); the decode mode its status reports; the machine's busy share of all
  cores over the same windows (/proc/stat; the machine may be shared). Ratios N views
  / N cameras for CPU and heap. Frames taken per second: the distinct capture times
  among an agent's results (views calling on one frame share it, and its retrieve).
  The import floor (sources_rig.start_floor: the agent's imports, asleep) runs beside
  the first group: the heap any agent holds before it opens anything.
why: from the floor and the pair of 2, what the process, a camera (its decode, its
  decoder's buffers) and a view (its own crop, JPEG, request and result) each cost
  (Costs), checked against the pairs of 3 and 4; the ratio at best (a view free), what
  a view or a camera would have to cost to meet the target, and the lever: a view's
  call in the capture thread timed in a process of its own (CALL_PATH), its crop's JPEG
  against the whole frame's preview, which every view makes again for the same frame.
Targets (#21): 2 views <= 0.55x the CPU and <= 0.6x the heap of 2 cameras.

Everything runs on 127.0.0.1: mosquitto, the stand-in API (tools/standin_api.py, 180 ms,
not a model; it runs in this process and its CPU is not the agents'), the agents as
subprocesses. Figures vary with the machine; compare the ratios.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.bench_agent import camera_like_clip, sample_together  # noqa: E402
from bench.sources_rig import (AGENT_ENV, KEY, PREFIX, THIS_TREE, Watched, decode_of, results_in,  # noqa: E402
                               start_floor, stop)
from tests.helpers import AgentProc, Broker, Recorder, agent_config, wait_until  # noqa: E402
from tools.standin_api import StandinApi, ThreadedStandin  # noqa: E402

CALL_PATH = textwrap.dedent("""
    # A view's call in the capture thread, on decoded 1080p frames of the clip, with the
    # agent's malloc settings and one Scratch, as capture._take does it: now (its crop's
    # JPEG and a preview of the whole frame, encode.prepare_with_preview), and its parts:
    # the crop's JPEG alone, the whole frame's preview alone; and the frame's retrieve
    # (OpenCVSource.retrieve: YUV to BGR into the kept array), paid once per frame taken.
    # Interleaved, medians of the process's CPU (OpenCV's own threads included), ms.
    import sys, time, statistics
    import edge_agent.memory as memory
    memory.tune()
    from edge_agent.capture import PREVIEW_SIZE
    from edge_agent.config import CameraConfig, DecodeMode
    from edge_agent.encode import Scratch, crop, encode_jpeg, prepare_with_preview, resize_for_api, shrink, target_size
    from edge_agent.sources import SourceKind, SourceSpec
    from edge_agent.sources.opencv import OpenCVSource
    clip, region = sys.argv[1], tuple(float(x) for x in sys.argv[2].split(","))
    src = OpenCVSource(SourceSpec(SourceKind.FILE, clip), CameraConfig(name="cam", source=clip,
                       decode=DecodeMode.ALL), open_timeout=5, look_interval=lambda: 0.5)
    scratch = Scratch()
    times = {k: [] for k in ("now", "jpeg", "preview", "retrieve")}
    def timed(key, fn):
        t = time.process_time()
        out = fn()
        times[key].append(time.process_time() - t)
        return out
    for _ in range(2):
        src.open()
        n = 0
        while src.grab():
            n += 1
            if n % 3:
                continue
            frame = timed("retrieve", src.retrieve)
            size = target_size(frame.shape[1], frame.shape[0], PREVIEW_SIZE)
            for _ in range(3):
                timed("now", lambda: prepare_with_preview(frame, 416, 80, region, PREVIEW_SIZE, scratch,
                                                          src.holds(frame)))
                timed("jpeg", lambda: encode_jpeg(resize_for_api(crop(frame, region), 416, scratch.resize), 80))
                timed("preview", lambda: shrink(frame, size, scratch.resize).copy())
        src.close()
    print(" ".join(f"{statistics.median(times[k]) * 1000:.3f}" for k in times))
""")
DEFAULT_IN_FLIGHT = 2  # api.max_in_flight's default
CPU_RATIO_MAX = 0.55
HEAP_RATIO_MAX = 0.6
FPS = 2
CLIP_SECONDS = 6  # a window is one loop of it: every window decodes the same frames
KEYFRAME_S = 2  # camera_like_clip: -g 60 at 30 fps
Region = tuple[float, float, float, float]

REGIONS: dict[int, list[Region]] = {
    1: [(0, 0, 0.5, 1)],
    2: [(0, 0, 0.5, 1), (0.5, 0, 1, 1)],
    3: [(0, 0, 1 / 3, 1), (1 / 3, 0, 2 / 3, 1), (2 / 3, 0, 1, 1)],
    4: [(0, 0, 0.5, 0.5), (0.5, 0, 1, 0.5), (0, 0.5, 0.5, 1), (0.5, 0.5, 1, 1)],
}
REGION_NAMES = {1: "left half", 2: "halves", 3: "thirds", 4: "quarters"}


@dataclass(frozen=True)
class Arm:
    """One agent of the bench: one camera with ``n`` views, or ``n`` cameras on one source."""

    key: str  # its folder, device id and the prefix of its camera names: [a-z0-9_]
    label: str
    views: bool  # True: one camera with n views; False: n cameras, one region each
    n: int  # views or cameras, 1..4 (REGIONS)
    gate: bool = False
    in_flight: int = DEFAULT_IN_FLIGHT  # api.max_in_flight: calls at once, shared by every view and camera

    def cameras(self, clip: Path) -> list[dict[str, Any]]:
        source = {"source": str(clip), "fps": FPS, "loop": True}
        regions = [list(r) for r in REGIONS[self.n]]
        if self.views:
            return [{"name": self.key, **source, "views": [{"name": f"p{i}", "region": r}
                                                             for i, r in enumerate(regions)]}]
        return [{"name": f"{self.key}_p{i}", **source, "region": r} for i, r in enumerate(regions)]

    def targets(self) -> list[str]:
        """What publishes: a view as <camera>-<view>, a camera as itself."""
        return [f"{self.key}-p{i}" if self.views else f"{self.key}_p{i}" for i in range(self.n)]


FLOOR = Arm("floor1", "floor: 1 camera, 1 view", True, 1)


def pair(n: int, gate: bool = False) -> tuple[Arm, Arm]:
    g = "g" if gate else ""
    return (Arm(f"views{n}{g}", f"{n} views{', gate on' if gate else ''}", True, n, gate),
            Arm(f"cams{n}{g}", f"{n} cameras{', gate on' if gate else ''}", False, n, gate))


@dataclass(frozen=True)
class Group:
    """Agents run at the same time, over the same windows: each ``views`` arm against ``cams``."""

    views: tuple[Arm, ...]
    cams: Arm
    floor: bool = False  # the floor (FLOOR) and the import floor beside them

    def arms(self) -> list[Arm]:
        return [*self.views, self.cams] + ([FLOOR] if self.floor else [])


def groups(gate_row: bool) -> list[Group]:
    (v2, c2), (v3, c3), (v4, c4) = pair(2), pair(3), pair(4)
    # More views than calls at once (api.max_in_flight, 2): the same 4 views with 4.
    v4f = Arm("views4f", "4 views, max_in_flight 4", True, 4, in_flight=4)
    out = [Group((v2,), c2, floor=True), Group((v3,), c3), Group((v4, v4f), c4)]
    if gate_row:
        v2g, c2g = pair(2, gate=True)
        out.append(Group((v2g,), c2g))
    return out


def start(work: Path, api: Any, broker: Broker, arm: Arm, clip: Path) -> AgentProc:
    d = work / arm.key
    d.mkdir()
    cfg = agent_config(api_url=api.url, broker_port=broker.port, api_key=KEY, timeout=5, prefix=PREFIX,
                       gate=arm.gate, cameras=arm.cameras(clip), max_in_flight=arm.in_flight)
    cfg["status_interval"] = 2  # `decode` is read from the status topic
    cfg["device_id"] = f"bench-{arm.key}"  # several agents on one broker: their own client ids
    cfg["mqtt"]["client_id"] = f"edge-agent-bench-{arm.key}"
    return AgentProc(d, cfg, log_level="info")


def split_runtimes(pid: int) -> tuple[int, int]:
    """CPU time (ns) so far of the process's FFmpeg decoder threads (named av:<codec>:df<i>
    by FFmpeg's frame threading) and of its main thread (the event loop: requests,
    results, MQTT), from their schedstat."""
    decode = loop = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/comm") as f:
                comm = f.read()
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                ns = int(f.read().split()[0])
        except (FileNotFoundError, ProcessLookupError, ValueError, IndexError):
            continue  # the thread just ended (a reopen at the file's loop)
        if comm.startswith("av:"):
            decode += ns
        elif int(tid) == pid:
            loop += ns
    return decode, loop


class Split(Watched):
    """Watched (CPU per window, memory at each window's end) plus, per window, the CPU
    of the decoder threads and of the loop; the rest is the capture thread (demux, the
    frame's colour conversion, each call's crop, resize and JPEG) and paho's network
    thread. A decoder thread that ended in a window (the file's loop reopens it) loses
    only its part of that window; the medians shrug that off."""

    def __init__(self, name: str, pid: int):
        super().__init__(name, pid)
        self.decode: list[float] = []
        self.loop: list[float] = []
        self._last = split_runtimes(pid)

    def restart(self) -> None:
        super().restart()
        self.decode, self.loop = [], []
        self._last = split_runtimes(self.pid)

    def sample(self, dt: float) -> None:
        super().sample(dt)
        now = split_runtimes(self.pid)
        self.decode.append(max(0, now[0] - self._last[0]) / 1e9 / dt * 100)
        self.loop.append(max(0, now[1] - self._last[1]) / 1e9 / dt * 100)
        self._last = now


@dataclass(frozen=True)
class CallPath:
    """A view's call in the capture thread, ms of CPU (CALL_PATH)."""

    now: float  # its crop's JPEG and the whole frame's preview, as each view's call does today
    jpeg: float  # the crop's JPEG alone: a view's own
    preview: float  # the whole frame's preview alone: the same picture for every view of the camera
    retrieve: float  # a frame taken: its retrieve (YUV to BGR), once however many views call on it


def call_path(work: Path, clip: Path) -> CallPath:
    script = work / "call_path.py"
    script.write_text(CALL_PATH)
    out = subprocess.run([sys.executable, str(script), str(clip), ",".join(str(x) for x in REGIONS[2][0])],
                         cwd=ROOT, capture_output=True, text=True, timeout=300, check=True,
                         env={**os.environ, **AGENT_ENV, **THIS_TREE}).stdout.split()
    return CallPath(*(float(x) for x in out))


def machine_busy() -> tuple[int, int]:
    """(busy, total) jiffies of all CPUs so far (/proc/stat)."""
    with open("/proc/stat") as f:
        vals = [int(v) for v in f.readline().split()[1:]]
    idle = vals[3] + vals[4]  # idle + iowait
    return sum(vals) - idle, sum(vals)


@dataclass
class Figures:
    """One agent's figures over the windows (CPU in % of one core, memory in MB; medians)."""

    arm: Arm
    cpu: float
    decode: float  # of it, FFmpeg's decoder threads
    loop: float  # of it, the main thread (the event loop)
    heap: float  # Anonymous
    rss: float
    rates: list[float]  # calls/s per view
    taken: float  # frames taken (retrieved, converted) per second: distinct capture times among its results
    mode: str

    @property
    def capture(self) -> float:
        """The rest: the capture thread (and paho's network thread)."""
        return self.cpu - self.decode - self.loop


def measure(work: Path, clip: Path, arms: list[Arm], windows: int, window_s: float,
            floor_proc: bool = False) -> tuple[list[Figures], float, float | None]:
    """Start the arms' agents at once, warm up, sample them over the same windows.
    Returns their figures, the machine's busy share (% of all cores) and, if asked,
    the import floor's heap (MB)."""
    broker = Broker(work).start()
    rec = Recorder(broker.port, PREFIX)
    agents: list[AgentProc] = []
    floor: subprocess.Popen | None = None
    floor_heap: float | None = None
    try:
        with ThreadedStandin(StandinApi(api_key=KEY, latency=0.18)) as api:
            agents = [start(work, api, broker, arm, clip) for arm in arms]
            if floor_proc:
                floor, _ = start_floor(work)
            every = [t for arm in arms for t in arm.targets()]
            wait_until(lambda: all(rec.all(f"{t}/status") for t in every), 30, what="every view's status")
            wait_until(lambda: all(rec.all(f"{t}/result") for arm in arms if not arm.gate for t in arm.targets()),
                       30, what="results from every view")
            time.sleep(CLIP_SECONDS)  # auto's first pass of the file decided; the heap settled after a loop
            procs = [Split(arm.key, a.proc.pid) for arm, a in zip(arms, agents)]
            fl = Watched("import floor", floor.pid) if floor is not None else None
            b0 = machine_busy()
            span = sample_together(procs + ([fl] if fl else []), windows, window_s)
            b1 = machine_busy()
            for arm, a in zip(arms, agents):
                if a.proc.poll() is not None:
                    raise RuntimeError(f"agent {arm.key} exited:\n{a.log()[-2000:]}")
                if "Traceback" in a.log():
                    raise RuntimeError(f"agent {arm.key} logged a traceback:\n{a.log()[-3000:]}")
            modes = [decode_of(rec, arm.targets()[0]) for arm in arms]
            floor_heap = fl.median("anon") if fl else None
    finally:
        stop(agents)
        if floor is not None:
            floor.kill()
            floor.wait()
        rec.close()
        broker.stop()
    figs = [Figures(arm, statistics.median(p.cpu), statistics.median(p.decode), statistics.median(p.loop),
                    p.median("anon"), p.median("rss"),
                    [results_in(rec, t, span)[0] for t in arm.targets()], taken(rec, arm, span), mode)
            for arm, p, mode in zip(arms, procs, modes)]
    busy = (b1[0] - b0[0]) / max(1, b1[1] - b0[1]) * 100
    return figs, busy, floor_heap


def taken(rec: Recorder, arm: Arm, span: tuple[float, float]) -> float:
    """Frames an agent took per second over the span: the distinct capture times among
    its results. A frame taken for several views is retrieved once and its results
    carry the same captured_at; views whose schedules drift apart take different
    frames, each retrieved (YUV to BGR, 6 MB at 1080p) on its own."""
    times = {m.json()["captured_at"] for t in arm.targets() for m in rec.all(f"{t}/result")
             if span[0] <= m.at < span[1]}
    return len(times) / (span[1] - span[0])


HEADER = (f"  {'':26}{'CPU %':>7}{'decode':>8}{'capture':>8}{'loop':>6}{'heap MB':>9}{'RSS MB':>8}"
          f"{'taken/s':>8}  {'calls/s per view':<24}decode mode")


def row(f: Figures) -> str:
    rates = " ".join(f"{r:.2f}" for r in f.rates)
    return (f"  {f.arm.label:26}{f.cpu:7.2f}{f.decode:8.2f}{f.capture:8.2f}{f.loop:6.2f}{f.heap:9.1f}"
            f"{f.rss:8.1f}{f.taken:8.2f}  {rates:<24}{f.mode}")


def verdict(ratio: float, limit: float) -> str:
    return f"{ratio:.2f}x (target <= {limit}: {'met' if ratio <= limit else 'NOT met'})"


def print_pair(views: Figures, cams: Figures, import_heap: float | None) -> tuple[float, float]:
    cpu, heap = views.cpu / cams.cpu, views.heap / cams.heap
    over = (f"; heap over the import floor {(views.heap - import_heap) / (cams.heap - import_heap):.2f}x"
            if import_heap else "")
    print(f"  ratio {views.arm.label} / {cams.arm.label}: CPU {verdict(cpu, CPU_RATIO_MAX)}, "
          f"heap {verdict(heap, HEAP_RATIO_MAX)}{over}")
    return cpu, heap


@dataclass(frozen=True)
class Costs:
    """What the sharing saves and what it cannot, from three agents run together: the
    floor (1 camera, 1 view: F), N views (V) and N cameras (C). A view adds its own work
    ``view = (V - F) / (N - 1)``; a camera adds its own part ``camera`` (decode, demux,
    conversion; the decoder's buffers) and a view's; the ``process`` holds the rest
    whatever it runs (F = process + camera + view). So N views cost process + camera +
    N view and N cameras process + N (camera + view) (pure)."""

    process: float
    camera: float
    view: float

    @classmethod
    def of(cls, floor: float, views: float, cams: float, n: int) -> "Costs":
        view = (views - floor) / (n - 1)
        camera = (cams - floor) / (n - 1) - view
        return cls(floor - camera - view, camera, view)

    def ratio(self, n: int, view: float | None = None, process: float | None = None) -> float:
        """N views / N cameras; ``view`` or ``process`` in place of the measured one."""
        v = self.view if view is None else view
        p = self.process if process is None else process
        return (p + self.camera + n * v) / (p + n * (self.camera + v))

    def view_for(self, n: int, target: float) -> float:
        """The largest view cost at which N views meet ``target``."""
        p, c = self.process, self.camera
        return (target * (p + n * c) - p - c) / (n * (1 - target))

    def camera_for(self, n: int, target: float) -> float:
        """The smallest camera cost at which N views meet ``target`` (<= 0: any)."""
        p, v = self.process, self.view
        return (1 - target) * (p + n * v) / (target * n - 1) if target * n > 1 else math.inf

    def process_for(self, n: int, target: float) -> float:
        """The largest process cost at which N views meet ``target``."""
        c, v = self.camera, self.view
        return (target * n * (c + v) - c - n * v) / (1 - target)


def why(floor: Figures, views: Figures, cams: Figures, import_heap: float | None, path: CallPath,
        drifted: list[Figures]) -> None:
    n = views.arm.n
    print(f"\n== why: what one more camera and one more view add, from the floor (1 camera, 1 view) and N = {n}")
    cpu = Costs.of(floor.cpu, views.cpu, cams.cpu, n)
    loop_view = (views.loop - floor.loop) / (n - 1)
    dec_cam = (cams.decode - floor.decode) / (n - 1)
    ms = 1000 / 100 / FPS  # % of a core at FPS calls/s -> ms per call
    process = (f"{cpu.process:.2f}" if cpu.process > 0 else
               f"~0 (the floor twice less {n} cameras, {cpu.process:.2f}: noise, or {n} capture threads' contention)")
    print(f"  CPU, % of one core: the process {process}, a camera's own part {cpu.camera:.2f} (its decoder "
          f"threads {dec_cam:.2f}), a view's own work {cpu.view:.2f} ({cpu.view * ms:.1f} ms per call at {FPS}/s: "
          f"the loop {loop_view * ms:.1f} ms, the capture thread's crop, resize and JPEG the rest)")
    print(f"  the same costs at N = 3 and 4: views {cpu.process + cpu.camera + 3 * cpu.view:.1f} and "
          f"{cpu.process + cpu.camera + 4 * cpu.view:.1f} %, cameras {cpu.process + 3 * (cpu.camera + cpu.view):.1f} "
          f"and {cpu.process + 4 * (cpu.camera + cpu.view):.1f} % (measured above)")
    cpu_best = cpu.ratio(n, view=0.0)
    view_max, camera_min = cpu.view_for(n, CPU_RATIO_MAX), cpu.camera_for(n, CPU_RATIO_MAX)
    print(f"  CPU ratio {n} views / {n} cameras: measured {views.cpu / cams.cpu:.2f}x, at these costs "
          f"{cpu.ratio(n):.2f}x; with a view's work free {cpu_best:.2f}x (the bound: one decode against {n}); "
          f"<= {CPU_RATIO_MAX}x needs a view's work <= "
          + (f"{view_max:.2f} % ({view_max * ms:.1f} ms per call)" if view_max > 0 else "less than nothing")
          + (f", or a camera's own part >= {camera_min:.1f} % (a costlier decode: a higher bitrate or frame rate)"
             if camera_min > 0 else ""))
    # The whole frame's preview (the status page's and snapshots' picture, the same for
    # every view) is made on each view's call: made once per frame taken, it would be
    # the camera's cost instead of each view's.
    pv = max(0.0, path.now - path.jpeg) / ms
    shared = Costs(cpu.process, cpu.camera + pv, max(0.0, cpu.view - pv))
    print(f"  a view's call in the capture thread (1080p, the left half): {path.now:.2f} ms, of which its crop's "
          f"JPEG {path.jpeg:.2f} ms and the rest, {path.now - path.jpeg:.2f} ms, the whole frame's preview "
          f"({path.preview:.2f} ms alone): the same picture for every view, made again on each view's call; "
          f"a frame taken is retrieved (YUV to BGR) once, {path.retrieve:.2f} ms")
    print(f"  lever: the preview made once per frame taken and shared by the views that call: a view's work "
          f"{shared.view:.2f} %, the ratio {shared.ratio(n):.2f}x at {n} views")
    # Views whose schedules drifted apart take different frames, each retrieved on its own.
    extra = max(0.0, views.taken - FPS) * path.retrieve / 10 / (n - 1)
    if extra > 0.05:
        both = Costs(shared.process, shared.camera, max(0.0, shared.view - extra))
        print(f"  lever: the views took {views.taken:.2f} frames/s for {FPS} looks/s: one schedule for a camera's "
              f"views (a look due for one is due for all at the same fps) saves {extra:.2f} % per view; "
              f"with the shared preview, the ratio {both.ratio(n):.2f}x")
    for f in drifted:
        print(f"  lever: {f.arm.label} took {f.taken:.2f} frames/s where {FPS} would do (each view looks {FPS}/s): "
              f"one schedule for a camera's views would save {(f.taken - FPS) * path.retrieve / 10:.2f} % of a core "
              f"in retrieves ({path.retrieve:.2f} ms each), and keep them on one frame")
    heap = Costs.of(floor.heap, views.heap, cams.heap, n)
    print(f"  heap, MB: the process {heap.process:.1f}"
          + (f" (the import floor {import_heap:.1f} of it)" if import_heap else "")
          + f", a camera's own part {heap.camera:.1f} (decoder, frames, buffers), a view {heap.view:.1f}")
    process_max = heap.process_for(n, HEAP_RATIO_MAX)
    print(f"  heap ratio {n} views / {n} cameras: measured {views.heap / cams.heap:.2f}x, with a view free "
          f"{heap.ratio(n, view=0.0):.2f}x; <= {HEAP_RATIO_MAX}x needs the process to hold <= {process_max:.1f} MB "
          f"besides its cameras"
          + (f", less than the import floor alone ({import_heap:.1f} MB): the lever is the process, not the "
             f"views; over the import floor the ratio is {(views.heap - import_heap) / (cams.heap - import_heap):.2f}x"
             if import_heap and process_max < import_heap else ""))


def main() -> int:
    ap = argparse.ArgumentParser(description="edge-agent: several views of one camera against several cameras")
    ap.add_argument("--windows", type=int, default=5, help="sampling windows (medians are reported)")
    ap.add_argument("--window-seconds", type=float, default=float(CLIP_SECONDS),
                    help="a multiple of the clip's length keeps the windows alike")
    ap.add_argument("--together", action="store_true",
                    help="run every agent at the same time (a machine with the cores for ~150 %% of a core)")
    ap.add_argument("--no-gate-row", action="store_true", help="skip the pair with the gate on")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="edge-agent-views-") as tmp:
        work = Path(tmp)
        print(f"machine: {os.cpu_count()} cores, python {sys.version.split()[0]}, kernel {os.uname().release}")
        subprocess.run([sys.executable, "-m", "compileall", "-q", str(ROOT / "edge_agent")], check=True, timeout=120)
        clip = camera_like_clip(work / "camera-like-1080p.mp4", seconds=CLIP_SECONDS, size="1920x1080")
        print(f"clip: 1920x1080 30 fps H.264 camera-like, {clip.stat().st_size * 8 / CLIP_SECONDS / 1e6:.1f} Mbit/s, "
              f"a keyframe every {KEYFRAME_S} s, {CLIP_SECONDS} s looping in real time; fps {FPS}, gate off "
              f"unless said; {args.windows} windows of {args.window_seconds:g} s")
        todo = groups(not args.no_gate_row)
        figs: dict[str, Figures] = {}
        busy: list[tuple[str, float]] = []
        import_heap: float | None = None
        if args.together:
            print("every agent at the same time, over the same windows")
            arms = list(dict.fromkeys(a for g in todo for a in g.arms()))
            got, b, import_heap = measure(work, clip, arms, args.windows, args.window_seconds, floor_proc=True)
            figs.update((f.arm.key, f) for f in got)
            busy.append(("all", b))
        else:
            print("the groups in turn, each group's agents at the same time (the floor beside the first): "
                  "all at once would ask more than this machine's cores give out evenly")
            for g in todo:
                got, b, heap = measure(work, clip, g.arms(), args.windows, args.window_seconds, floor_proc=g.floor)
                figs.update((f.arm.key, f) for f in got)
                busy.append((g.cams.label.replace("cameras", "views/cameras"), b))
                import_heap = import_heap if heap is None else heap
        path = call_path(work, clip)
    ok = True
    for g in todo:
        print(f"\n== {' / '.join(v.label for v in g.views)} against {g.cams.label} on the same source "
              f"({REGION_NAMES[g.cams.n]})")
        print(HEADER)
        for arm in ([FLOOR] if g.floor else []) + [*g.views, g.cams]:
            print(row(figs[arm.key]))
        for v in g.views:
            cpu, heap = print_pair(figs[v.key], figs[g.cams.key], import_heap)
            if v.n == 2 and not v.gate:
                ok = cpu <= CPU_RATIO_MAX and heap <= HEAP_RATIO_MAX
            took = figs[v.key].taken
            if took > FPS * 1.05:
                print(f"  {v.label} took {took:.2f} frames/s for {FPS} looks/s: the views do not all call on "
                      f"the same frame (their schedules are their own, and apart once apart), and each frame taken "
                      f"is retrieved (YUV to BGR) on its own")
        if g.cams.gate:
            passed = statistics.mean(r for a in g.arms() for r in figs[a.key].rates) / FPS
            print(f"  the gate let {passed:.0%} of the looks through: testsrc2's moving content and the noise "
                  f"change every crop; what it adds is its thumbnails' CPU")
    if import_heap is not None:
        print(f"\n  import floor (the agent's imports, asleep): heap {import_heap:.1f} MB")
    print("  machine busy over the windows, % of all cores (other work on the machine included): "
          + "; ".join(f"{k} {b:.0f}" for k, b in busy))
    if not args.together:
        print(f"  every agent at once would ask {sum(f.cpu for f in figs.values()):.0f} % of one core "
              f"(the sum of their medians) of this machine's {os.cpu_count()} cores")
    v2, c2 = pair(2)
    why(figs[FLOOR.key], figs[v2.key], figs[c2.key], import_heap, path,
        [f for f in figs.values() if f.arm.views and f.arm.n > 2 and f.taken > FPS * 1.05])
    print(f"\ntarget (#21): 2 views <= {CPU_RATIO_MAX}x CPU and <= {HEAP_RATIO_MAX}x heap of 2 cameras: "
          f"{'met' if ok else 'NOT met'}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
