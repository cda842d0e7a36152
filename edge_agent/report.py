"""One-line reports of how the agent is, for the log and for systemd (pure: plain
text built from the agent's state, the clock passed in; no I/O).

``summary_line``: a camera's periodic summary in the log; ``status_line``: the
STATUS= systemd shows in ``systemctl status``; ``wedged``: what keeps the agent
from pinging the systemd watchdog. None of them is the web's: the page and
/api/status are built in ``web/view.py``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .health import assess

if TYPE_CHECKING:
    from .camera import CameraRuntime
    from .readmodel import AgentView


def summary_line(cam: "CameraRuntime", interval: float, counts_before: dict[str, int], ok_before: int,
                 failed_before: int, now: float) -> str:
    """A camera's figures since the last summary (the counts given), for the log."""
    counts = cam.counters()
    lat = cam.figures.latency.summary(now)
    latency = "no replies" if lat["median"] is None else \
        f"API latency median {lat['median']:.0f} ms, p95 {lat['p95']:.0f} ms"
    return (f"{cam.name}: last {interval:g} s: {counts['captured'] - counts_before['captured']} frames in, "
            f"{counts['sent'] - counts_before['sent']} sent, "
            f"{counts['unchanged'] - counts_before.get('unchanged', 0)} unchanged, "
            f"{counts['dropped'] - counts_before['dropped']} dropped; "
            f"requests {cam.figures.requests_ok - ok_before} ok, "
            f"{cam.figures.requests_failed - failed_before} failed; {latency}")


def wedged(agent: "AgentView", now: float) -> list[str]:
    """What keeps the agent from being healthy enough to ping the systemd watchdog."""
    problems = []
    for cam in agent.cameras.values():
        w = cam.worker
        if w is None or cam.health.ended:
            continue
        wedge = assess(w, now).wedge()
        if wedge is not None:
            problems.append(f"camera {cam.name}: {wedge}")
    return problems


def status_line(agent: "AgentView") -> str:
    """One line for systemd's STATUS= (shown by systemctl status)."""
    cams = list(agent.cameras.values())
    online = sum(1 for c in cams if c.health.online)
    paused = sum(1 for c in cams if not c.enabled)
    pub = agent.mqtt()
    mqtt = "connected" if pub and pub.connected else "disconnected"
    classified = sum(c.figures.requests_ok for c in cams)
    extra = f", {paused} paused" if paused else ""
    return (f"{len(cams)} camera(s): {online} online{extra}; API {agent.guard.status}; MQTT {mqtt}; "
            f"{classified} classified")
