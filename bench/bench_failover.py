"""The seconds without results during a primary outage, with and without a fallback (#22).

    .venv/bin/python bench/bench_failover.py               # three outages of 30 s, about 4-5 minutes
    .venv/bin/python bench/bench_failover.py --quick       # one hang of 15 s, probe 10 s: under a minute
    .venv/bin/python bench/bench_failover.py --probe 20    # a shorter probe period: a quicker return
    .venv/bin/python bench/bench_failover.py --kinds 5xx --outage 60 --repeats 3   # medians of 3

agents: two real agents AT THE SAME TIME, against the same primary stand-in API
  (tools/standin_api.py, not a model) and one mosquitto, each on its own topic
  prefix: one with `api.fallback` (a second stand-in, no billing header, as a
  self-hosted inference server), one without (the baseline: the primary alone).
  Both play the same camera-like clip (640x480 30 fps H.264, 20 s, testsrc2's
  moving content with sensor-like noise, tinted green as bench_dataset.py's: the
  stand-in says "green" at ~0.6, so a state is decided) looping in real time,
  fps 2, the change gate off: a result every 0.5 s while an endpoint answers.
  The agent's defaults for what is measured: `switch_after` 10 s, `probe` 60 s
  (`probe_max` 600 s), timeouts 10 s, the retry backoff 1-8 s (--switch-after,
  --probe and --timeout change them; the values used are printed). `decide.stale_after` is 20 s (`--stale-after`;
  the agent's default is 60 s) so that an outage of 30 s shows the stale state
  the fallback avoids. Each agent asks its own model slug of the primary, so the
  stand-in's log tells their requests apart.
outages: for each kind in turn, `--outage` seconds (30) once both agents'
  results flow from the primary:
  * refused: the primary's port is closed (ThreadedStandin.refuse/accept): a host
    that is gone. The stand-in sees nothing; the attempts are the agent's own
    count (its /metrics, edge_agent_endpoint_requests by endpoint, every 0.2 s).
  * 5xx: every request answered 503 (StandinApi.down).
  * hang: every request accepted and never answered in time (StandinApi.stall,
    600 s: longer than the timeout; a request given up is cancelled).
figures, per agent and outage: the longest gap between two results (arrival on
  MQTT), from the last result before the outage until results are steady again
  (3 s after the first result after the primary's return); the seconds from the
  outage's start to the first result of a frame captured after it, and the
  longest gap after that first result (on the fallback, and across the return);
  the results published during the outage; the requests each stand-in got from
  the agent during the outage and the most in any 1 s (a burst); whether the
  state went stale (and when); after the primary is back, the seconds until a
  result is the primary's again, and for the agent with a fallback the probes of
  the primary that failed (each doubles the wait for the next, up to probe_max).
Targets (#22), exit 1 if one is not met: with the fallback, results resume within
  `switch_after` + 2 s and then keep flowing (no gap over 2 s until the return is
  behind them: a probe of a hung primary must not hold them back), its state
  never goes stale (when that is under `stale_after`), no burst (at most fps + 2
  requests in any 1 s on either endpoint) and results are the primary's again
  within one probe period (the one in effect: `probe` doubled per failed probe,
  up to `probe_max`) + the timeout + a frame. Without a fallback the gap is the
  whole outage: that is the baseline shown, not a target. With `--repeats` the
  figures are medians (stale: in how many runs) and the targets are checked on
  the medians.

Everything runs on 127.0.0.1: mosquitto, the two stand-ins (threads of this
process), the agents as subprocesses. Every wait is bounded: a primary that is
never returned to is reported (and exit 1), not waited on.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import re
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.bench_agent import camera_like_clip  # noqa: E402
from edge_agent.config.model import ApiConfig, FallbackConfig  # noqa: E402
from tests.helpers import AgentProc, Broker, Msg, Recorder, agent_config, wait_until  # noqa: E402
from tools.standin_api import StandinApi, ThreadedStandin  # noqa: E402

KEY = "bench-key"
FPS = 2.0
CLIP_SECONDS = 20
STALL = 600.0  # s a request hangs in a hang: longer than any timeout, and than the run
RESUME_SLACK = 2.0  # results resume within switch_after + this
LATER_GAP_MAX = 2.0  # s: once resumed, results keep flowing (4 frames at fps 2)
SETTLE = 3.0  # s of results after the return: "steady again"
POLL = 0.2  # s between two reads of an agent's /metrics
GREEN = "colorchannelmixer=rr=0.3:gg=1:bb=0.3"  # the stand-in says "green" at ~0.6: a state is decided
THIS_TREE = {"PYTHONPATH": str(ROOT)}  # the agents import this checkout's edge_agent


def default(cls: type, name: str) -> Any:
    """A config field's default, read from the agent's own dataclass (it cannot drift)."""
    return next(f.default for f in dataclasses.fields(cls) if f.name == name)


class Kind(Enum):
    REFUSED = "refused"
    HTTP_5XX = "5xx"
    HANG = "hang"


WHAT = {Kind.REFUSED: "the primary's port closed (connections refused)",
        Kind.HTTP_5XX: "the primary answers every request 503",
        Kind.HANG: f"the primary accepts every request and answers none (a {STALL:.0f}-s stall)"}


@dataclass(frozen=True)
class Arm:
    """One of the two agents."""

    key: str  # its folder, device id, topic prefix and model slug: [a-z]
    label: str
    fallback: bool

    @property
    def prefix(self) -> str:
        return f"bench/failover/{self.key}"

    @property
    def path(self) -> str:
        """The route it asks of the primary (and the fallback): tells its requests apart."""
        return f"/bench-{self.key}/1"


WITH = Arm("fallback", "with fallback", True)
ALONE = Arm("alone", "primary alone", False)
ARMS = (WITH, ALONE)


@dataclass(frozen=True)
class Settings:
    kinds: tuple[Kind, ...]
    outage: float
    repeats: int
    switch_after: float
    probe: float
    probe_max: float
    timeout: float
    retry_max: float
    stale_after: float
    given: dict[str, str]  # the keys set by a flag, and the flag (the others are the agent's defaults)

    def said(self, name: str) -> str:
        return f"{name} {getattr(self, name):g} s ({self.given.get(name, 'the default')})"


class Endpoints(threading.Thread):
    """An agent's request counters by endpoint (its /metrics), read every POLL seconds:
    the attempts a closed port never sees, and the probes that failed."""

    LINE = re.compile(r'^edge_agent_endpoint_requests_total\{([^}]*)\}\s+([0-9.eE+-]+)$', re.M)

    def __init__(self, url: str):
        super().__init__(name="metrics-poll", daemon=True)
        self.url = url
        self.samples: list[tuple[float, dict[str, tuple[float, float]]]] = []  # (monotonic, {endpoint: (all, failed)})
        self._done = threading.Event()
        self._lock = threading.Lock()

    def run(self) -> None:
        while not self._done.wait(POLL):
            try:
                with urllib.request.urlopen(self.url, timeout=1) as r:
                    text = r.read().decode()
            except OSError:
                continue  # the agent is starting
            counts: dict[str, tuple[float, float]] = {}
            for labels, value in self.LINE.findall(text):
                lab = dict(re.findall(r'(\w+)="([^"]*)"', labels))
                total, failed = counts.get(lab["endpoint"], (0.0, 0.0))
                n = float(value)
                counts[lab["endpoint"]] = (total + n, failed + (n if lab["outcome"] != "ok" else 0.0))
            with self._lock:
                self.samples.append((time.monotonic(), counts))

    def stop(self) -> None:
        self._done.set()
        self.join(2)

    def at(self, t: float, endpoint: str, failed: bool = False) -> float:
        """The count at ``t`` (the last read at or before it)."""
        with self._lock:
            before = [c for at, c in self.samples if at <= t]
        if not before:
            return 0.0
        total, fails = before[-1].get(endpoint, (0.0, 0.0))
        return fails if failed else total

    def burst(self, endpoint: str, start: float, end: float) -> int:
        """The most requests counted within any 1 s of [start, end] (to a read's POLL)."""
        with self._lock:
            reads = [(at, c.get(endpoint, (0.0, 0.0))[0]) for at, c in self.samples if start - POLL <= at <= end]
        return int(max((self.at(t + 1.0, endpoint) - n for t, n in reads), default=0))


@dataclass
class Running:
    arm: Arm
    proc: AgentProc
    rec: Recorder
    endpoints: Endpoints

    def results(self, after: float = 0.0, until: float = math.inf) -> list[Msg]:
        return [m for m in self.rec.all("cam/result") if after <= m.at <= until]


@dataclass
class Figures:
    """One agent in one outage (s from the outage's start or the primary's return)."""

    gap: float  # the longest s between two results, from the last before the outage until steady again
    later_gap: float  # the longest of them after the first result of the outage (on the fallback, the return)
    later_at: float  # when that gap began
    first: float | None  # to the first result of a frame captured after the outage began
    results: int  # published during the outage
    primary: int  # requests the primary stand-in got from this agent during the outage
    primary_burst: int  # the most of them in any 1 s
    attempts: int  # requests to the primary the agent counted during the outage (its /metrics)
    fallback: int | None  # requests the fallback stand-in got during the outage (None: no fallback)
    fallback_burst: int | None
    stale: float | None  # when the state went stale (None: it did not)
    back: float | None  # from the primary's return to its first result (None: not within the wait)
    probes_failed: int | None = None  # probes of the primary that failed (the agent with a fallback)
    bound: float | None = None  # the target for ``back``: the probe period in effect + timeout + a frame


def burst(times: list[float], window: float = 1.0) -> int:
    """The most requests within any ``window`` seconds."""
    times = sorted(times)
    return max((sum(1 for u in times[i:] if u - t < window) for i, t in enumerate(times)), default=0)


def start_agent(work: Path, arm: Arm, s: Settings, broker: Broker, primary: StandinApi, fallback: StandinApi,
                clip: Path) -> Running:
    d = work / arm.key
    d.mkdir()
    cfg = agent_config(api_url=primary.url, broker_port=broker.port, api_key=KEY, prefix=arm.prefix,
                       cameras=[{"name": "cam", "source": str(clip), "fps": FPS, "loop": True}],
                       timeout=s.timeout)
    cfg["api"]["model"] = arm.path.strip("/")
    for name in ("retry_initial", "retry_max", "unauthorized_retry"):  # the tests' short ones: the agent's own
        del cfg["api"][name]
    if arm.fallback:
        cfg["api"]["fallback"] = {"url": fallback.url, **{k: getattr(s, k) for k in sorted(s.given)}}
    cfg["decide"]["stale_after"] = s.stale_after
    cfg["device_id"] = f"bench-{arm.key}"
    cfg["mqtt"]["client_id"] = f"edge-agent-bench-{arm.key}"
    rec = Recorder(broker.port, arm.prefix)
    proc = AgentProc(d, cfg, env=THIS_TREE, log_level="info")
    endpoints = Endpoints(f"http://{cfg['status']['listen']}/metrics")
    endpoints.start()
    return Running(arm, proc, rec, endpoints)


def steady(agents: dict[Arm, Running], bound: float) -> None:
    """Both agents' results flow from the primary (two in the last 1.5 s, the last the primary's)
    and their state is decided and fresh (so that a stale one is published)."""
    def ok(r: Running) -> bool:
        recent = r.results(time.monotonic() - 1.5)
        state = r.rec.last("cam/state")
        return (len(recent) >= 2 and recent[-1].json()["endpoint"] == "primary" and state is not None
                and not state.json()["stale"])
    wait_until(lambda: all(ok(r) for r in agents.values()), bound, interval=0.1,
               what="both agents' results from the primary, their state decided and fresh")


def primary_fails(kind: Kind, on: bool, host: ThreadedStandin, primary: StandinApi) -> None:
    """Start (``on``) or end an outage of ``kind`` at the primary stand-in."""
    if kind is Kind.REFUSED:
        (host.refuse if on else host.accept)()
    elif kind is Kind.HTTP_5XX:
        primary.down = on
    else:
        primary.stall = STALL if on else 0.0


def outage(kind: Kind, s: Settings, agents: dict[Arm, Running], host: ThreadedStandin, primary: StandinApi,
           fallback: StandinApi, steady_bound: float) -> dict[Arm, Figures]:
    """One outage of the primary of ``kind`` for ``s.outage`` seconds, and the return."""
    steady(agents, steady_bound)
    down_at, down_wall = time.monotonic(), time.time()
    primary_fails(kind, True, host, primary)
    time.sleep(s.outage)
    up_at = time.monotonic()
    primary_fails(kind, False, host, primary)

    # Back: each agent's first result from the primary after its return, bounded. The
    # wait allows every probe during the outage to have failed (each doubles the next).
    worst_probe = min(s.probe_max, s.probe * 2 ** (int(s.outage / (s.probe / 2)) + 1))
    bounds = {WITH: worst_probe + s.timeout + 10.0, ALONE: s.retry_max + s.timeout + 10.0}

    def back(r: Running) -> float | None:
        return next((m.at for m in r.results(up_at) if m.json()["endpoint"] == "primary"), None)
    deadline = {a: up_at + bounds[a] for a in agents}
    while not all(back(r) is not None or time.monotonic() > deadline[a] for a, r in agents.items()):
        time.sleep(0.1)
    returned = {a: back(r) for a, r in agents.items()}
    # Steady again: SETTLE s of results after the return; the counters read past a probe
    # in flight at the return (it fails within the timeout).
    settled = max((t if t is not None else deadline[a]) for a, t in returned.items()) + SETTLE
    time.sleep(max(0.0, max(settled, up_at + s.timeout + 1.0 + POLL) - time.monotonic()))

    out: dict[Arm, Figures] = {}
    for arm, r in agents.items():
        ret = returned[arm]
        until = (ret if ret is not None else deadline[arm]) + SETTLE
        before = r.results(0.0, down_at)
        times = ([before[-1].at] if before else [down_at]) + [m.at for m in r.results(down_at, until)]
        if ret is None:
            times.append(until)
        first = next((m.at - down_at for m in r.results(down_at) if m.json()["captured_at"] >= down_wall), None)
        later = [t for t in times if first is not None and t >= down_at + first]
        later_gap, later_at = max(((b - a, a - down_at) for a, b in zip(later, later[1:])), default=(0.0, 0.0))
        seen = [q.at for q in primary.requests() if q.path == arm.path and down_at <= q.at <= up_at]
        attempts = int(r.endpoints.at(up_at, "primary") - r.endpoints.at(down_at, "primary"))
        stale = next((m.at - down_at for m in r.rec.all("cam/state")
                      if down_at <= m.at <= until and m.json().get("stale")), None)
        fig = Figures(
            gap=max(b - a for a, b in zip(times, times[1:])), later_gap=later_gap, later_at=later_at, first=first,
            results=len(r.results(down_at, up_at)), primary=len(seen),
            # A closed port: the stand-in sees nothing; the agent's own count of its attempts.
            primary_burst=r.endpoints.burst("primary", down_at, up_at) if kind is Kind.REFUSED else burst(seen),
            attempts=attempts, fallback=None, fallback_burst=None, stale=stale,
            back=None if ret is None else ret - up_at)
        if arm.fallback:
            on_fb = [q.at for q in fallback.requests() if q.path == arm.path and down_at <= q.at <= up_at]
            fig.fallback, fig.fallback_burst = len(on_fb), burst(on_fb)
            # Probes: the primary's failures counted after the switch (the first request at the
            # fallback) and until a probe in flight at the return has failed or not.
            switched = min(on_fb, default=up_at)
            failed = r.endpoints.at(up_at + s.timeout + 1.0, "primary", failed=True) \
                - r.endpoints.at(switched + 1.0, "primary", failed=True)
            fig.probes_failed = int(failed)
            fig.bound = min(s.probe_max, s.probe * 2 ** fig.probes_failed) + s.timeout + 1 / FPS
        out[arm] = fig
    return out


# -- printing ----------------------------------------------------------------------------

def secs(v: float | None) -> str:
    return "-" if v is None else f"{v:.1f} s"


def median_of(figs: list[Figures]) -> tuple[Figures, int]:
    """The median of each figure over the repeats (None where any run had none), and in
    how many runs the state went stale."""
    def med(name: str) -> Any:
        vals = [getattr(f, name) for f in figs]
        if any(v is None for v in vals):
            return None
        m = statistics.median(vals)
        return round(m) if isinstance(vals[0], int) else m
    stale = [f.stale for f in figs if f.stale is not None]
    fig = Figures(**{f.name: med(f.name) for f in dataclasses.fields(Figures) if f.name != "stale"},
                  stale=statistics.median(stale) if stale else None)
    return fig, len(stale)


HEADER = (f"{'outage':<8} {'agent':<14} {'longest gap':>11} {'first result':>12} {'then gaps':>9} {'results':>7}  "
          f"{'primary req (max/1 s)':<24} {'fallback req (max/1 s)':<22} {'stale':<13} back on primary")


def row(kind: Kind, arm: Arm, f: Figures, stale_runs: int, repeats: int) -> str:
    primary = f"{f.primary} ({f.primary_burst})"
    if kind is Kind.REFUSED:
        primary = f"0, {f.attempts} refused ({f.primary_burst})"
    fb = "-" if f.fallback is None else f"{f.fallback} ({f.fallback_burst})"
    stale = "no" if f.stale is None else f"yes, at {f.stale:.0f} s"
    if repeats > 1:
        stale = f"{stale_runs}/{repeats} runs" + ("" if f.stale is None else f", {f.stale:.0f} s")
    back = secs(f.back)
    if f.bound is not None:
        back += f" (<= {f.bound:.1f} s; {f.probes_failed} probe{'s' if f.probes_failed != 1 else ''} failed)"
    return (f"{kind.value:<8} {arm.label:<14} {secs(f.gap):>11} {secs(f.first):>12} {secs(f.later_gap):>9} "
            f"{f.results:>7}  "
            f"{primary:<24} {fb:<22} {stale:<13} {back}")


def check(kind: Kind, f: Figures, stale_runs: int, s: Settings) -> list[str]:
    """The targets the agent with a fallback missed in this outage."""
    missed = []
    if f.first is None or f.first > s.switch_after + RESUME_SLACK:
        missed.append(f"{kind.value}: results resumed after {secs(f.first)} (target <= "
                      f"{s.switch_after + RESUME_SLACK:g} s)")
    if f.later_gap > LATER_GAP_MAX:
        why = (": results are applied in capture order (pipeline/call.py), so a probe of the hung primary holds "
               "back the fallback's results behind it until its timeout" if kind is Kind.HANG else "")
        missed.append(f"{kind.value}: once resumed, results stopped for {f.later_gap:.1f} s at {f.later_at:.0f} s "
                      f"(target <= {LATER_GAP_MAX:g} s){why}")
    if stale_runs and s.switch_after + RESUME_SLACK < s.stale_after:
        missed.append(f"{kind.value}: the state went stale (stale_after {s.stale_after:g} s)")
    for name, n in (("primary", f.primary_burst), ("fallback", f.fallback_burst)):
        if n is not None and n > FPS + 2:
            missed.append(f"{kind.value}: a burst of {n} requests in 1 s on the {name}")
    if f.back is None or f.bound is None or f.back > f.bound:
        missed.append(f"{kind.value}: back on the primary after {secs(f.back)} (target <= {secs(f.bound)})")
    return missed


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--outage", type=float, default=None, help="s each outage lasts (30; --quick 15)")
    ap.add_argument("--kinds", nargs="+", choices=[k.value for k in Kind], default=None,
                    help="which outages (all three; --quick hang)")
    ap.add_argument("--repeats", type=int, default=1, help="each outage this many times; figures are medians")
    ap.add_argument("--switch-after", type=float, default=None, help="api.fallback.switch_after (the default: 10)")
    ap.add_argument("--probe", type=float, default=None, help="api.fallback.probe (the default: 60; --quick 10)")
    ap.add_argument("--timeout", type=float, default=None, help="api.timeout and the fallback's (the default: 10)")
    ap.add_argument("--stale-after", type=float, default=20.0, help="decide.stale_after (20, under the outage)")
    ap.add_argument("--quick", action="store_true", help="a smoke run: one hang of 15 s, probe 10 s")
    args = ap.parse_args()
    given = {k: "--" + k.replace("_", "-") for k in ("switch_after", "probe", "timeout")
             if getattr(args, k) is not None}
    probe = args.probe
    if args.quick and probe is None:
        probe, given["probe"] = 10.0, "--quick"
    timeout = args.timeout if args.timeout is not None else default(ApiConfig, "timeout")
    s = Settings(kinds=tuple(Kind(k) for k in (args.kinds or (["hang"] if args.quick else [k.value for k in Kind]))),
                 outage=args.outage if args.outage is not None else (15.0 if args.quick else 30.0),
                 repeats=args.repeats,
                 switch_after=args.switch_after if args.switch_after is not None
                 else default(FallbackConfig, "switch_after"),
                 probe=probe if probe is not None else default(FallbackConfig, "probe"),
                 probe_max=default(FallbackConfig, "probe_max"), timeout=timeout,
                 retry_max=default(ApiConfig, "retry_max"), stale_after=args.stale_after, given=given)
    t0 = time.monotonic()
    print(f"two agents at once, fps {FPS:g}, gate off, a camera-like 640x480 H.264 clip looping; "
          f"{len(s.kinds)} outage{'s' if len(s.kinds) > 1 else ''} of {s.outage:g} s x {s.repeats}; "
          f"{s.said('switch_after')}, {s.said('probe')} (probe_max {s.probe_max:g} s), {s.said('timeout')}, "
          f"retry backoff up to {s.retry_max:g} s, stale_after {s.stale_after:g} s", flush=True)
    runs: dict[tuple[Kind, Arm], list[Figures]] = {(k, a): [] for k in s.kinds for a in ARMS}
    failed_run = ""
    with tempfile.TemporaryDirectory(prefix="bench-failover-") as tmp:
        work = Path(tmp)
        clip = camera_like_clip(work / "clip.mp4", seconds=CLIP_SECONDS, tint=GREEN)
        broker = Broker(work).start()
        host = ThreadedStandin(StandinApi(api_key=KEY))
        agents: dict[Arm, Running] = {}
        try:
            with host as primary, ThreadedStandin(StandinApi(api_key=KEY, billing=False)) as fallback:
                agents = {a: start_agent(work, a, s, broker, primary, fallback, clip) for a in ARMS}
                steady_bound = 60.0  # the first: the agents start
                for rep in range(s.repeats):
                    for kind in s.kinds:
                        print(f"[{time.monotonic() - t0:5.0f} s] run {rep + 1}/{s.repeats}: {kind.value}, "
                              f"{WHAT[kind]}, for {s.outage:g} s", flush=True)
                        got = outage(kind, s, agents, host, primary, fallback, steady_bound)
                        steady_bound = 30.0
                        for arm, fig in got.items():
                            runs[kind, arm].append(fig)
                        w, a = got[WITH], got[ALONE]
                        print(f"         with fallback: first result {secs(w.first)}, back on the primary "
                              f"{secs(w.back)}; primary alone: first result {secs(a.first)}", flush=True)
                switches = agents[WITH].proc.log().count("switching to the fallback endpoint")
        except AssertionError as exc:  # a bounded wait ran out: what was measured is still printed
            failed_run = str(exc)
            switches = agents[WITH].proc.log().count("switching to the fallback endpoint") if WITH in agents else 0
        finally:
            for r in agents.values():  # the processes first: nothing else may leave them running
                r.proc.close()
            for r in agents.values():
                r.endpoints.stop()
                r.rec.close()
            broker.stop()

    missed = [failed_run] if failed_run else []
    print(f"\n== {s.outage:g}-s outages of the primary; {s.said('switch_after')}, {s.said('probe')}, "
          f"{s.said('timeout')}, fps {FPS:g}" + (f"; medians of {s.repeats} runs" if s.repeats > 1 else ""))
    print("   longest gap: between two results, from the last before the outage until 3 s after the return; "
          "first result: from the outage's start, of a frame captured after it; then gaps: the longest gap "
          "after that first result; results, requests: during the outage; back: from the primary's return to "
          "a result of the primary's")
    print(HEADER)
    for kind in s.kinds:
        for arm in ARMS:
            if not runs[kind, arm]:
                continue
            fig, stale_runs = median_of(runs[kind, arm])
            print(row(kind, arm, fig, stale_runs, s.repeats))
            if arm.fallback:
                missed += check(kind, fig, stale_runs, s)
    alone = [median_of(runs[k, ALONE])[0] for k in s.kinds if runs[k, ALONE]]
    withf = [median_of(runs[k, WITH])[0] for k in s.kinds if runs[k, WITH]]
    if alone and withf:
        print(f"\n  baseline (no fallback): {', '.join(secs(f.gap) for f in alone)} without results for an outage "
              f"of {s.outage:g} s; with the fallback: {', '.join(secs(f.gap) for f in withf)}")
    n = len(s.kinds) * s.repeats
    print(f"  the agent with a fallback logged {switches} switch{'es' if switches != 1 else ''} to it "
          f"({n} outage{'s' if n != 1 else ''}); {time.monotonic() - t0:.0f} s in all")
    print(f"\ntargets (#22): with the fallback, results within switch_after + {RESUME_SLACK:g} s = "
          f"{s.switch_after + RESUME_SLACK:g} s and then no gap over {LATER_GAP_MAX:g} s, never stale, no burst "
          f"(<= {FPS + 2:g} requests in any 1 s), back on the primary within the probe period in effect + timeout "
          f"+ a frame: "
          + ("met" if not missed else "NOT met"))
    for m in missed:
        print(f"  NOT met: {m}")
    return 0 if not missed else 1


if __name__ == "__main__":
    raise SystemExit(main())
