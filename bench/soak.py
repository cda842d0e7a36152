"""Soak: the agent for a set time at 10 classifications/s with faults on a schedule.

    .venv/bin/python bench/soak.py                  # 10 minutes
    .venv/bin/python bench/soak.py --duration 90 --fault-every 15   # the CI smoke (tests/test_soak.py)

Everything runs on 127.0.0.1: mosquitto, the stand-in API (tools/standin_api.py,
not a model; 50 ms per reply), the agent as a subprocess on a looping
red/green/blue clip. Every --fault-every seconds one fault from the cycle:
  API 500s, API 429 with Retry-After, API hang past the timeout, API garbage,
  broker killed and restarted 3 s later.

Then a hostile phase (--hostile, default on): the reply attacks in turn, a few
seconds apart: a 50 MB body, a gzip bomb (1 MB -> 1 GiB), JSON nested 100,000
deep, a million predictions, a 10 MB class name, a class name with a newline,
an error body quoting the key across an 80-character cut. Each must end as one
counted failed request (a bad reply, or a timeout where the stand-in itself is
slow to make the monster): RSS must not jump (peak - start <= --max-spike MB), the key
must not appear in the log, no forged log line, and results must flow after it.

Printed: RSS, Anonymous (the heap, from /proc/PID/smaps_rollup), open file
descriptors and threads at start and end, with the import floor's RSS and
Anonymous beside them (a process that only imports the agent's dependencies,
measured once; bench/bench_sources.py); RSS growth
per minute over the second half (least squares); requests by outcome (from the
agent's /metrics); and the gap between a frame's capture and its result on MQTT
(largest, p99, median). Exits 1 if RSS keeps growing (> --max-growth MB/min in
the second half) or descriptors or threads grew.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import requests  # noqa: E402
from prometheus_client.parser import text_string_to_metric_families  # noqa: E402

from bench.sources_rig import smaps, start_floor  # noqa: E402
from tests.helpers import AgentProc, Broker, Recorder, agent_config, make_video  # noqa: E402
from tools.standin_api import StandinApi, ThreadedStandin  # noqa: E402

KEY = "soak-key-0123456789"


def proc_figures(pid: int) -> dict[str, float]:
    out = {"fds": float(len(os.listdir(f"/proc/{pid}/fd")))}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                out["rss_mb"] = int(line.split()[1]) / 1024
            elif line.startswith("Threads:"):
                out["threads"] = float(line.split()[1])
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            if line.startswith("Anonymous:"):
                out["anon_mb"] = int(line.split()[1]) / 1024
    return out


def import_floor(work: Path) -> dict[str, float]:
    """RSS and Anonymous (MB) of a process that only imports the agent's dependencies."""
    proc, _ = start_floor(work)
    try:
        time.sleep(1)
        return smaps(proc.pid)
    finally:
        proc.kill()
        proc.wait()


def slope_per_minute(samples: list[tuple[float, float]]) -> float:
    """Least-squares slope of (seconds, value), per minute."""
    if len(samples) < 3:
        return 0.0
    xs, ys = [s[0] for s in samples], [s[1] for s in samples]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    den = sum((x - mx) ** 2 for x in xs)
    return 60 * sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / den if den else 0.0


def outcomes(metrics_url: str) -> dict[str, int]:
    out: dict[str, int] = {}
    for fam in text_string_to_metric_families(requests.get(metrics_url, timeout=5).text):
        for s in fam.samples:
            if s.name == "edge_agent_requests_total":
                out[s.labels["outcome"]] = out.get(s.labels["outcome"], 0) + int(s.value)
    return out


HOSTILE = [
    ("50 MB body", {"big_body": 50 * 1024 * 1024}),
    ("gzip bomb 1 MB -> 1 GiB", {"gzip_bomb": 1024 ** 3}),
    ("JSON nested 100,000 deep", {"nested": 100_000}),
    ("a million predictions", {"predictions": 1_000_000}),
    ("a 10 MB class name", {"class": "A" * (10 * 1024 * 1024)}),
    ("a class name with a newline", {"class": "red\nCRITICAL forged line"}),
    ("the key across the error excerpt's cut", {"echo_key": True}),
]


def hostile_phase(api: StandinApi, agent: AgentProc, rec: Recorder, pid: int) -> dict[str, object]:
    """Play each hostile reply in turn; sample RSS meanwhile."""
    peak = 0.0
    played = []
    for name, fault in HOSTILE:
        api.add_faults(fault)
        played.append(name)
        deadline = time.monotonic() + 2.5
        while time.monotonic() < deadline:
            peak = max(peak, proc_figures(pid)["rss_mb"])
            time.sleep(0.25)
    before = len(rec.all("cam/result"))
    time.sleep(4)
    log = agent.log()
    return {"played": played, "peak_rss_mb": peak, "results_after": len(rec.all("cam/result")) - before,
            "key_leaked": KEY in log, "forged": any(ln.startswith("CRITICAL forged") for ln in log.splitlines())}


def events_phase(api: StandinApi, agent: AgentProc, rec: Recorder, pid: int, seconds: float,
                 cfg: dict) -> dict[str, object]:
    """A state change on every result (the stand-in answers the classes in turn): thousands of
    events on a long run; the database must stay within events.max_mb and the heap flat."""
    status_url = f"http://{cfg['status']['listen']}/api/status"

    def db() -> dict:
        # Connection: close, so the status server holds no connection of ours at the end.
        return requests.get(status_url, timeout=5, headers={"Connection": "close"}).json()["events"]

    before_events = len(rec.all("cam/event"))
    start = proc_figures(pid)
    start_anon = smaps(pid)["anon"]
    start_db = db()["bytes"] / 2**20
    peak = start_db
    api.flip = True
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        time.sleep(2)
        peak = max(peak, db()["bytes"] / 2**20)
    api.flip = False
    time.sleep(3)
    end_db = db()
    return {"events": len(rec.all("cam/event")) - before_events, "db_mb": (start_db, end_db["bytes"] / 2**20),
            "db_peak": peak, "rss": (start["rss_mb"], proc_figures(pid)["rss_mb"]),
            "anon": (start_anon, smaps(pid)["anon"]), "commit_ms": end_db["commit_ms"],
            "undelivered": end_db["undelivered"]}


def main() -> int:
    ap = argparse.ArgumentParser(description="edge-agent soak")
    ap.add_argument("--duration", type=float, default=600, help="seconds (default 600)")
    ap.add_argument("--fps", type=float, default=10)
    ap.add_argument("--fault-every", type=float, default=30, help="seconds between injected faults")
    ap.add_argument("--max-growth", type=float, default=1.0, help="allowed RSS growth, MB/min, second half")
    ap.add_argument("--warmup", type=float, default=15, help="seconds before the start figures are taken")
    ap.add_argument("--no-hostile", dest="hostile", action="store_false", help="skip the hostile-reply phase")
    ap.add_argument("--events-phase", type=float, default=30.0, help="seconds of a state change on every "
                                                                     "result (0: skip)")
    ap.add_argument("--events-mb", type=float, default=0.4, help="events.max_mb for the agent (small: pruning must hold it)")
    ap.add_argument("--max-spike", type=float, default=60.0, help="allowed RSS peak over start in the hostile "
                                                                    "phase, MB (the unit's MemoryMax is 300 MB)")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="edge-agent-soak-") as tmp:
        work = Path(tmp)
        video = make_video(work / "rgb.mp4", [("red", 4), ("green", 4), ("blue", 4)], size="640x480")
        floor = import_floor(work)
        broker = Broker(work).start()
        rec = Recorder(broker.port, "edge_agent/test")
        with ThreadedStandin(StandinApi(api_key=KEY, latency=0.05)) as api:
            cfg = agent_config(api_url=api.url, broker_port=broker.port, api_key=KEY, timeout=1, max_in_flight=4,
                               retry_initial=0.5, retry_max=4,
                               cameras=[{"name": "cam", "source": str(video), "fps": args.fps, "loop": True}])
            cfg["log_summary_interval"] = 60
            cfg["events"] = {"max_mb": args.events_mb}  # the events phase must fill it: pruning holds it flat
            cfg["decide"] = {"confirm": 1, "window": 1, "votes": 1}  # every result may change the state
            agent = AgentProc(work, cfg, log_level="info")
            metrics_url = f"http://{cfg['status']['listen']}/metrics"
            pid = agent.proc.pid
            samples: list[tuple[float, dict[str, float]]] = []
            faults = [
                ("API 500 x3", lambda: api.add_faults(*[{"status": 500}] * 3)),
                ("API 429 Retry-After 2", lambda: api.add_faults({"status": 429, "retry_after": "2"})),
                ("API hang past the timeout", lambda: api.add_faults({"hang": 3})),
                ("API garbage", lambda: api.add_faults({"garbage": True})),
                ("broker restart", None),
            ]
            t0 = time.monotonic()
            start: dict[str, float] = {}
            next_fault, fault_i, injected = t0 + args.warmup + args.fault_every / 2, 0, []
            outages: list[tuple[float, float]] = []  # wall-clock spans the broker was away
            try:
                while (now := time.monotonic()) - t0 < args.duration:
                    if agent.proc.poll() is not None:
                        print("agent exited during the soak:\n" + agent.log()[-3000:])
                        return 1
                    figures = proc_figures(pid)
                    if not start and now - t0 >= args.warmup:
                        start = figures
                    samples.append((now - t0, figures))
                    if now >= next_fault:
                        name, act = faults[fault_i % len(faults)]
                        injected.append(name)
                        if act is None:
                            down = time.time()
                            broker.proc.kill()
                            broker.proc.wait(5)
                            time.sleep(3)
                            broker.start()
                            rec.wait_for("availability", lambda m: m.payload == b"online", timeout=90,
                                         after=time.monotonic())
                            outages.append((down, time.time()))
                        else:
                            act()
                        fault_i += 1
                        next_fault = now + args.fault_every
                    time.sleep(2)
                hostile = hostile_phase(api, agent, rec, pid) if args.hostile else None
                events = events_phase(api, agent, rec, pid, args.events_phase, cfg) if args.events_phase else None
                time.sleep(3)  # let the last fault clear before the end figures
                end = proc_figures(pid)
                by_outcome = outcomes(metrics_url)
            finally:
                agent.signal(signal.SIGTERM)
                rc = agent.wait(15)
                agent.close()
            results = rec.all("cam/result")
        rec.close()
        broker.stop()

    second_half = [(t, f["rss_mb"]) for t, f in samples if t >= args.duration / 2]
    growth = slope_per_minute(second_half)
    wall_offset = time.time() - time.monotonic()  # m.at is monotonic, captured_at is wall time
    pairs = [(m.json()["captured_at"], m.at + wall_offset - m.json()["captured_at"]) for m in results]
    gaps = sorted(g for _, g in pairs)
    calm = sorted(g for c, g in pairs if not any(a <= c <= b for a, b in outages))
    print(f"soak: {args.duration:.0f} s at fps {args.fps:g}, faults every {args.fault_every:g} s: {', '.join(injected)}")
    print(f"{'':10}{'start':>10}{'end':>10}{'import floor':>14}")
    floor_of = {"rss_mb": floor["rss"], "anon_mb": floor["anon"]}
    for key, unit in (("rss_mb", "MB"), ("anon_mb", "MB"), ("fds", ""), ("threads", "")):
        beside = f"{floor_of[key]:>14.1f}" if key in floor_of else f"{'':14}"
        print(f"{key:10}{start.get(key, float('nan')):>10.1f}{end[key]:>10.1f}{beside} {unit}")
    print(f"RSS growth, second half: {growth:+.2f} MB/min (limit {args.max_growth:g})")
    print("requests by outcome: " + ", ".join(f"{k} {v}" for k, v in sorted(by_outcome.items())))
    for label, values in (("all results", gaps), ("outside broker outages", calm)):
        if values:
            p99 = values[min(len(values) - 1, int(0.99 * len(values)))]
            print(f"capture -> result on MQTT, {label}: largest {values[-1]:.2f} s, p99 {p99:.2f} s, "
                  f"median {statistics.median(values) * 1000:.0f} ms over {len(values)}")
    print(f"agent exit status on SIGTERM: {rc}")
    # Descriptors: the API client's pool may hold up to max_in_flight + 2 (= 6) kept-alive
    # connections after a burst; beyond that is a leak.
    ok = (rc == 0 and growth <= args.max_growth and end["fds"] <= start["fds"] + 6
          and end["threads"] <= start["threads"])
    if hostile is not None:
        spike = hostile["peak_rss_mb"] - start["rss_mb"]
        print(f"hostile replies: {', '.join(hostile['played'])}; RSS peak {hostile['peak_rss_mb']:.1f} MB "
              f"({spike:+.1f} over start, limit {args.max_spike:g}); results after it: {hostile['results_after']}; "
              f"key in log: {hostile['key_leaked']}; forged log line: {hostile['forged']}")
        ok = ok and spike <= args.max_spike and hostile["results_after"] > 0 and not hostile["key_leaked"] \
            and not hostile["forged"]
    if events is not None:
        print(f"events phase: {events['events']} events in {args.events_phase:g} s; database "
              f"{events['db_mb'][0]:.2f} -> {events['db_mb'][1]:.2f} MB (max_mb {args.events_mb:g}; peak "
              f"{events['db_peak']:.2f}); RSS {events['rss'][0]:.1f} -> {events['rss'][1]:.1f} MB; heap "
              f"{events['anon'][0]:.1f} -> {events['anon'][1]:.1f} MB; commit (fsync) per event median "
              f"{events['commit_ms']['median']} ms, p95 {events['commit_ms']['p95']} ms; undelivered at the end "
              f"{events['undelivered']}")
        ok = ok and events["events"] >= 100 and events["db_peak"] <= args.events_mb * 1.5 \
            and events["anon"][1] - events["anon"][0] <= 10 and events["undelivered"] <= 5
    print("soak: " + ("passed" if ok else "FAILED"))
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
