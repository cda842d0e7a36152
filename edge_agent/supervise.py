"""Telling systemd how the agent is: READY=1, STATUS=, WATCHDOG=1 (see sdnotify.py)."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING

from .report import status_line, wedged

if TYPE_CHECKING:
    from .readmodel import AgentView

log = logging.getLogger(__name__)

READY_GRACE = 60.0  # READY=1 after this long even if the broker is still unreachable


async def supervise(agent: "AgentView") -> None:
    """READY=1 once every camera has a first frame or is marked offline and the
    broker is connected (or READY_GRACE passed: a dead broker must not fail the
    start); then WATCHDOG=1 while the loop runs (this coroutine is on it) and no
    capture thread is wedged, and STATUS= whenever the one-line summary changes."""
    n = agent.notifier
    if not n.enabled:
        return
    started = time.monotonic()
    while True:
        settled = all(c.health.online or c.health.episode.active or c.health.ended for c in agent.cameras.values())
        mqtt = agent.mqtt()
        if settled and ((mqtt is not None and mqtt.connected) or time.monotonic() - started > READY_GRACE):
            break
        await asyncio.sleep(0.1)
    status = status_line(agent)
    n.ready(status)
    log.info("ready (systemd notified)%s", "" if n.watchdog_interval is None else
             f"; watchdog ping every {n.watchdog_interval:g} s")
    period = min(n.watchdog_interval or 5.0, 5.0)
    reported: list[str] = []
    while True:
        await asyncio.sleep(period)
        problems = wedged(agent, time.monotonic())
        if not problems:
            n.watchdog()
        elif problems != reported:
            log.error("not pinging the systemd watchdog (it will restart the agent): %s", "; ".join(problems))
        reported = problems
        line = status_line(agent) if not problems else "unhealthy: " + "; ".join(problems)
        if line != status:
            status = line
            n.status(line)
