"""Each camera's health, on the loop: the capture thread's events (online,
offline, a file that ended) and a watchdog independent of that thread, which
notices a source hanging inside OpenCV or frames that stopped coming, marks a
state stale when a needed check has failed for ``stale_after``, samples the
rates and sends the periodic status; and the summary lines. Trouble is logged
once per episode."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Mapping

from .budget import Budget
from .capture import CameraEvent
from .checking import Why
from .health import assess
from .outputs.dispatch import Dispatcher
from .redact import Redactor
from .report import summary_line
from .status_topic import StatusTopic

STALE_WORDS = {Why.BUDGET: "API budget spent or pacing", Why.BUSY: "every request place taken",
               Why.PAUSED: "classification paused", Why.UNSETTLED: "the results do not agree"}

if TYPE_CHECKING:
    from .camera import CameraRuntime

log = logging.getLogger(__name__)

WATCHDOG_PERIOD = 0.5


@dataclass
class CameraWatch:
    cameras: "Mapping[str, CameraRuntime]"
    status: StatusTopic
    outputs: Dispatcher
    budget: Budget
    redact: Redactor
    all_ended: Callable[[], None]  # every camera is a file that ended: the agent stops

    def event(self, cam: "CameraRuntime", kind: CameraEvent, detail: str | None) -> None:
        """From the capture thread (through the loop), or the watchdog's own verdict.
        The views of one camera each take their camera's event; the first says it in
        the log, under the camera's name (one source: one line)."""
        cam.health.opened = True
        w = cam.worker
        speaks = w is None or w.taps[0].cfg.name == cam.name
        name = w.cfg.name if w is not None else cam.name
        if kind is CameraEvent.ONLINE:
            if cam.health.online:  # a looping file starting again: nothing new
                return
            failures = cam.health.episode.ok()
            cam.health.online = True
            if not speaks:
                pass
            elif failures:
                log.info("%s: camera back online after %d failed attempt(s)", name, failures)
            else:
                log.info("%s: camera online (%s)", name, w.spec.describe() if w else "")
        elif kind is CameraEvent.OFFLINE:
            cam.health.online = False
            cam.health.failures += 1
            cam.health.offline_at = time.monotonic()
            text = self.redact(detail or "camera offline")
            cam.health.last_error = f"camera: {text}"
            if cam.health.episode.fail(text) and speaks:
                log.warning("%s: camera offline: %s; reopening with backoff (cap 60 s)", name, text)
        elif kind is CameraEvent.ENDED:
            cam.health.online = False
            cam.health.ended = True
            if speaks:
                log.info("%s: video file ended", name)
            if all(c.health.ended for c in self.cameras.values()):
                self.all_ended()
        self.status.publish(cam)

    async def watchdog(self) -> None:
        """Stall detection independent of the capture thread, rates, periodic status."""
        while True:
            await asyncio.sleep(WATCHDOG_PERIOD)
            now = time.monotonic()
            for cam in self.cameras.values():
                w = cam.worker
                if w is None or cam.health.ended:
                    continue
                counts = cam.counters()
                self.check_stale(cam, now)
                cam.figures.rate_in.sample(now, counts["captured"])
                cam.figures.rate_out.sample(now, counts["sent"])
                last = w.last_frame_mono
                h = assess(w, now)
                if h.blocked and (cam.health.online or not cam.health.episode.active):
                    # Longer than any open or read may take: the source hangs in OpenCV.
                    self.event(cam, CameraEvent.OFFLINE, f"capture blocked for {h.busy_for:.0f} s")
                elif cam.health.online and h.stalled:
                    # The capture thread may still be inside a blocking read: say so now.
                    self.event(cam, CameraEvent.OFFLINE, f"no frame for {cam.cfg.stall_timeout:g} s")
                elif not cam.health.online and last is not None and last > cam.health.offline_at:
                    # Frames flow again without a reopen (a slow source caught up).
                    self.event(cam, CameraEvent.ONLINE, None)
                self.status.publish(cam)

    async def summaries(self, interval: float) -> None:
        """One line per camera every ``interval`` seconds (``log_summary_interval``)."""
        before = {name: (cam.counters(), cam.figures.requests_ok, cam.figures.requests_failed)
                  for name, cam in self.cameras.items()}
        while True:
            await asyncio.sleep(interval)
            now = time.monotonic()
            for name, cam in self.cameras.items():
                counts, ok, failed = before[name]
                log.info("%s", summary_line(cam, interval, counts, ok, failed, now))
                before[name] = (cam.counters(), cam.figures.requests_ok, cam.figures.requests_failed)

    def check_stale(self, cam: "CameraRuntime", now: float) -> None:
        """Honest when stale: a check that was needed has failed for ``stale_after``."""
        since = cam.admission.unchecked_since
        if since is None or cam.stale_since is not None or now - since < cam.cfg.decide.stale_after:
            return
        cam.stale_since = time.time() - (now - since)
        why = cam.admission.unchecked_why
        cam.stale_reason = why
        log.warning("%s: the state could not be checked for %.0f s (%s): marked stale", cam.name, now - since,
                    STALE_WORDS.get(why, "") if why is not Why.API else (cam.health.last_error or "API failing"))
        if cam.debouncer.state is not None:
            self.outputs.state(cam.name, cam.state_message())
