"""One-line reports of how the agent is, for the log and for systemd (pure: plain
text built from the agent's state, the clock passed in; no I/O).

``summary_line``: a camera's periodic summary in the log; ``status_line``: the
STATUS= systemd shows in ``systemctl status``; ``wedged``: what keeps the agent
from pinging the systemd watchdog. None of them is the web's: the page and
/api/status are built in ``web/view.py``.

``agent.cameras`` holds one runtime per target: a view of a camera is a target named
``<camera>-<view>`` (``cfg.view_of`` its camera), and the views of one camera share its
capture thread and health. What is about the camera (a wedged thread, online) is told
once per camera (``camera.by_camera``); what is about a view (its summary line) per target."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .camera import by_camera
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
    for camera, views in by_camera(agent.cameras.values()).items():
        cam = views[0]  # its views share the capture thread and its health
        w = cam.worker
        if w is None or cam.health.ended:
            continue
        wedge = assess(w, now).wedge()
        if wedge is not None:
            problems.append(f"camera {camera}: {wedge}")
    return problems


def status_line(agent: "AgentView") -> str:
    """One line for systemd's STATUS= (shown by systemctl status): cameras online once
    each, paused targets (a view may be paused alone) and, with views, how many."""
    cams = list(agent.cameras.values())
    grouped = by_camera(cams)
    online = sum(1 for views in grouped.values() if views[0].health.online)
    views = sum(1 for c in cams if c.cfg.view_of is not None)
    paused = sum(1 for c in cams if not c.enabled)
    pub = agent.mqtt()
    mqtt = "connected" if pub and pub.connected else "disconnected"
    classified = sum(c.figures.requests_ok for c in cams)
    extra = f", {paused} paused" if paused else ""
    with_views = f" ({views} views)" if views else ""
    on_fallback = " (fallback)" if agent.endpoints.takes_all() else ""
    return (f"{len(grouped)} camera(s){with_views}: {online} online{extra}; API {agent.guard.status}{on_fallback}; "
            f"MQTT {mqtt}; {classified} classified")
