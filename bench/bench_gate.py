"""The change gate: calls, lag and CPU, gate on against gate off in the same run.

    .venv/bin/python bench/bench_gate.py              # ~2 minutes
    .venv/bin/python bench/bench_gate.py --seconds 60 # a shorter scene

scenes: generated camera-like 640x480 clips, 10 fps, 100 s (tools/scenes.py), each
  a textured room with sensor noise, a blinking LED and a ticking clock overlay:
  * scene (MJPEG): the door panel changes colour twice (red -> green at 30 s,
    green -> blue at 70 s: the two real class changes), a passer-by walks across
    (45-48 s) and the light fades to 55 % (80-95 s). Still for >= 90 % of the time.
  * panel (H.264, a keyframe a second): an indicator panel of 41 % of the picture
    turns from red (255, 0, 0) to green (0, 128, 0) at 30 s and back at 70 s: the
    same brightness (luma 76 and 75), another class.
  * lights (H.264, a keyframe a second): the room at 35 % light, the lights switched
    on at 30 s and off at 70 s; the class (the red panel) stays.
agents: two real agents play the same clips at the same time, fps 2 (the ceiling:
  200 calls per camera in 100 s), against one stand-in API (tools/standin_api.py,
  180 ms, not a model) and one mosquitto: one with the defaults (gate on), one
  with `change.enabled: false` (what every agent did before the gate).
figures: calls made (against the ceiling), the lag from each event in a clip to
  its state on MQTT (a class change) or to the first classified frame after it (a
  light step: the class stays), and the gate's own CPU per frame (thumbnails +
  compare, median, on a 640x480 frame, on a 1/8 JPEG decode, and on a decoded
  1080p frame), against the luma-only gate (the gate before colour was compared)
  in the same run, beside what decoding and encoding a frame cost. The same frame
  is looked at again and again: warm caches, as a frame the decoder just wrote.
Targets (issues #8 and #18): gate on <= 10 % of the calls the ceiling allows;
  every change published within 1.5 s at fps 2 (a light step: a frame classified
  within 1.5 s); the gate <= 0.3 ms per frame (640x480; no target at 1080p, where
  the BGR halvings cost about twice the old greyscale ones).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from edge_agent.change import ChangeDetector, thumbnails  # noqa: E402
from edge_agent.encode import Scratch, decode_jpeg, decode_jpeg_colour_8, decode_jpeg_grey, prepare  # noqa: E402
from tests.helpers import AgentProc, Broker, Recorder, agent_config  # noqa: E402
from tools.scenes import Scene  # noqa: E402
from tools.standin_api import StandinApi, ThreadedStandin  # noqa: E402


def median_ms(fn, n: int = 2000) -> float:
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1000


def medians_ms(fns: dict[str, object], n: int, rounds: int = 5) -> dict[str, float]:
    """Each function's median ms over ``n`` calls, measured in alternating rounds so
    that a busy moment of the machine weighs on all of them alike."""
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            for _ in range(n // rounds):
                t0 = time.perf_counter()
                fn()  # type: ignore[operator]
                times[name].append(time.perf_counter() - t0)
    return {name: statistics.median(ts) * 1000 for name, ts in times.items()}


class Looker:
    """A detector looking at one frame after another on a clock of 0.5-s steps."""

    def __init__(self, reference) -> None:
        self.det = ChangeDetector(0.01)
        self.det.set_reference(reference, 0.0)
        self.now = 0.0

    def look(self, thumb) -> bool:
        self.now += 0.5
        return self.det.look(thumb, self.now).changed


def bench_cpu(scene: Scene) -> bool:
    print("\n== the gate's CPU per frame (medians of 2000, alternating rounds; 640x480 unless said)")
    frame_a, frame_b = scene.frame(0), scene.frame(1)
    grey_a = cv2.cvtColor(frame_a, cv2.COLOR_BGR2GRAY)
    jpeg = cv2.imencode(".jpg", frame_b, [cv2.IMWRITE_JPEG_QUALITY, 85])[1]
    big = cv2.resize(frame_b, (1920, 1080), interpolation=cv2.INTER_LINEAR)
    jpeg_1080 = cv2.imencode(".jpg", big, [cv2.IMWRITE_JPEG_QUALITY, 85])[1]
    colour, luma = Looker(thumbnails(frame_a)), Looker(thumbnails(grey_a))
    colour_j, luma_j = Looker(thumbnails(frame_a)), Looker(thumbnails(grey_a))
    # A decoded 1080p frame (H.264, or MJPEG with decode: all), as the capture thread
    # hands it to the gate, with its kept buffers (a Scratch each, as each camera has).
    big_a = cv2.resize(frame_a, (1920, 1080), interpolation=cv2.INTER_LINEAR)
    colour_hd, luma_hd = Looker(thumbnails(big_a)), Looker(thumbnails(cv2.cvtColor(big_a, cv2.COLOR_BGR2GRAY)))
    scratch_c, scratch_l = Scratch(), Scratch()
    gate = medians_ms({
        "colour": lambda: colour.look(thumbnails(frame_b)),
        # The gate before colour: a greyscale conversion, the luma thumbnail, the luma compare.
        "luma": lambda: luma.look(thumbnails(cv2.cvtColor(frame_b, cv2.COLOR_BGR2GRAY))),
        "colour_jpeg": lambda: colour_j.look(thumbnails(decode_jpeg_colour_8(jpeg))),
        "luma_jpeg": lambda: luma_j.look(thumbnails(decode_jpeg_grey(jpeg))),
        "colour_1080": lambda: colour_hd.look(thumbnails(big, None, scratch_c)),
        # The gate before colour on a decoded frame: the full-size greyscale copy (kept
        # buffer), its halvings, the luma compare.
        "luma_1080": lambda: luma_hd.look(thumbnails(scratch_l.grey(big), None, scratch_l)),
    }, 2000)
    decodes = medians_ms({
        "grey8": lambda: decode_jpeg_grey(jpeg), "colour8": lambda: decode_jpeg_colour_8(jpeg),
        "full": lambda: decode_jpeg(jpeg),
        "grey8_1080": lambda: decode_jpeg_grey(jpeg_1080), "colour8_1080": lambda: decode_jpeg_colour_8(jpeg_1080),
        "full_1080": lambda: decode_jpeg(jpeg_1080),
    }, 500)
    encode = median_ms(lambda: prepare(frame_b, 416, 80), 500)
    print(f"  gate on decoded pixels (thumbnails + compare)        {gate['colour']:6.3f} ms "
          f"(luma only, the gate before colour: {gate['luma']:.3f} ms)")
    print(f"  gate on an MJPEG frame (1/8 colour decode + gate)     {gate['colour_jpeg']:6.3f} ms "
          f"(1/8 greyscale decode + luma only: {gate['luma_jpeg']:.3f} ms)")
    print(f"  gate on a decoded 1080p frame (thumbnails + compare)  {gate['colour_1080']:6.3f} ms "
          f"(luma only, the gate before colour: {gate['luma_1080']:.3f} ms)")
    print(f"  1/8 decode alone, 640x480: colour {decodes['colour8']:.3f} ms, greyscale {decodes['grey8']:.3f} ms; "
          f"full decode {decodes['full']:.3f} ms")
    print(f"  1/8 decode alone, 1080p:   colour {decodes['colour8_1080']:.3f} ms, "
          f"greyscale {decodes['grey8_1080']:.3f} ms; full decode {decodes['full_1080']:.3f} ms")
    print(f"  baseline: resize + encode for the API                 {encode:6.3f} ms")
    print(f"  target <= 0.3 ms per frame: {'met' if gate['colour'] <= 0.3 else 'NOT met'}")
    return gate["colour"] <= 0.3


@dataclass
class Clip:
    """One camera's clip and what happens in it: (time, the new class) or, for a
    step of the light that keeps the class, (time, None)."""

    name: str
    scene: Scene
    h264: bool
    events: list[tuple[float, str | None]]


def lags(clip: Clip, rec: Recorder, camera: str) -> list[float | None]:
    """Seconds from each event in the clip to its state on MQTT, or (a light step) to
    the first frame classified after it (None: never)."""
    results = rec.all(f"{camera}/result")
    if not results:
        return [None for _ in clip.events]
    start = min(m.json()["captured_at"] for m in results)  # the first frame is always classified
    states = [(m.wall, m.json()["class"]) for m in rec.all(f"{camera}/state")]
    taken = sorted(m.json()["captured_at"] for m in results)
    out: list[float | None] = []
    for t, cls in clip.events:
        event = start + t
        hits = ([wall for wall, c in states if c == cls and wall >= event] if cls is not None
                else [at for at in taken if at >= event])
        out.append(round(hits[0] - event, 2) if hits else None)
    return out


def bench_calls(work: Path, clips: list[Clip], seconds: float) -> bool:
    print(f"\n== calls and lag: {seconds:.0f}-s clips, 640x480 10 fps, fps 2 (ceiling {seconds * 2:.0f} calls a camera)")
    videos = {c.name: c.scene.write_h264(work / f"{c.name}.mp4") if c.h264 else c.scene.write(work / f"{c.name}.avi")
              for c in clips}
    broker = Broker(work).start()
    rec = Recorder(broker.port, "edge_agent/test")
    try:
        with ThreadedStandin(StandinApi(api_key="bench-key", latency=0.18)) as api:
            agents = []
            for name, gate in (("on", True), ("off", False)):
                d = work / name
                d.mkdir()
                cameras = [{"name": f"{c.name}_{name}", "source": str(videos[c.name]), "fps": 2} for c in clips]
                cfg = agent_config(api_url=api.url, broker_port=broker.port, api_key="bench-key", timeout=5,
                                   gate=gate, cameras=cameras)
                cfg["decide"]["min_confidence"] = 0.4
                cfg["device_id"] = f"bench-{name}"  # two agents on one broker: their own client ids
                cfg["mqtt"]["client_id"] = f"edge-agent-bench-{name}"
                agents.append(AgentProc(d, cfg, log_level="info"))
            try:
                for a in agents:
                    a.wait(seconds + 60)
            finally:
                for a in agents:
                    a.close()
        ceiling = seconds * 2
        ok = True
        for clip in clips:
            for name in ("on", "off"):
                cam = f"{clip.name}_{name}"
                calls = len(rec.all(f"{cam}/result"))
                lag = lags(clip, rec, cam)
                states = [m.json()["class"] for m in rec.all(f"{cam}/state")]
                states = [c for i, c in enumerate(states) if i == 0 or c != states[i - 1]]
                print(f"  {clip.name:6s} gate {name:3s}: {calls:4d} calls ({calls / ceiling:5.1%} of the ceiling); "
                      f"states {states}; lag per event {lag} s")
                if name == "on":
                    ok = ok and calls <= 0.10 * ceiling and all(x is not None and x <= 1.5 for x in lag)
        print(f"  targets (gate on: <= 10 % of the calls, every event within 1.5 s): {'met' if ok else 'NOT met'}")
        return ok
    finally:
        rec.close()
        broker.stop()


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=100)
    args = ap.parse_args()
    scale = args.seconds / 100
    seconds = args.seconds
    scene = Scene(width=640, height=480, fps=10, seconds=seconds,
                  classes=[(0, "red"), (30 * scale, "green"), (70 * scale, "blue")],
                  passer=(45 * scale, 45 * scale + 3), fade=(80 * scale, 95 * scale, 0.55))
    panel = Scene(width=640, height=480, fps=10, seconds=seconds,
                  classes=[(0, "red"), (30 * scale, "green"), (70 * scale, "red")],
                  colours={"red": (0, 0, 255), "green": (0, 128, 0)}, panel=(0.2, 0.15, 0.8, 0.8333),
                  passer=None, fade=None)
    dim, lit = (0.35, 0.35, 0.35), (1.0, 1.0, 1.0)
    lights = Scene(width=640, height=480, fps=10, seconds=seconds, classes=[(0, "red")], passer=None, fade=None,
                   light=[(0, dim), (30 * scale, lit), (70 * scale, dim)])
    clips = [Clip("scene", scene, False, [(t, c) for t, c in scene.changes()]),
             Clip("panel", panel, True, [(t, c) for t, c in panel.changes()]),
             Clip("lights", lights, True, [(30 * scale, None), (70 * scale, None)])]
    with tempfile.TemporaryDirectory(prefix="edge-agent-gate-") as tmp:
        cpu_ok = bench_cpu(scene)
        calls_ok = bench_calls(Path(tmp), clips, seconds)
    return 0 if cpu_ok and calls_ok else 1


if __name__ == "__main__":
    sys.exit(main())
