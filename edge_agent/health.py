"""Is this camera healthy? One rule, read by the agent's watchdog (offline and
online events), /healthz and the systemd watchdog (pure: the caller passes the clock)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .capture import CaptureWorker


@dataclass(frozen=True)
class CameraHealth:
    frame_age: float | None  # s since the last frame; None: none yet
    busy_for: float  # s inside one blocking call of the source (open, read)
    stall_timeout: float
    open_timeout: float
    wedge_after: float
    alive: bool  # the capture thread runs

    @property
    def blocked(self) -> bool:
        """Longer inside one call than any open or read may take: the source hangs."""
        return self.busy_for > self.open_timeout + self.stall_timeout

    @property
    def stalled(self) -> bool:
        """No frame for stall_timeout (or a read already waiting that long)."""
        return (self.frame_age is not None and self.frame_age > self.stall_timeout) or \
            self.busy_for > self.stall_timeout

    @property
    def wedged(self) -> bool:
        """Beyond recovery by the thread itself: systemd should restart the agent."""
        return not self.alive or self.busy_for > self.wedge_after

    def problem(self) -> str | None:
        """Why the camera is not delivering, for /healthz (None: it is)."""
        if self.frame_age is None:
            return "no frame yet"
        if self.frame_age > self.stall_timeout:
            return f"no frame for {self.frame_age:.0f} s"
        return None

    def wedge(self) -> str | None:
        """Why the thread counts as wedged, for the systemd watchdog (None: it does not)."""
        if not self.alive:
            return "capture thread died"
        if self.busy_for > self.wedge_after:
            return f"capture thread stuck in OpenCV for {self.busy_for:.0f} s"
        return None


def assess(worker: "CaptureWorker", now: float) -> CameraHealth:
    last, busy = worker.last_frame_mono, worker.busy_since
    return CameraHealth(
        frame_age=None if last is None else now - last,
        busy_for=0.0 if busy is None else now - busy,
        stall_timeout=worker.cfg.stall_timeout,
        open_timeout=worker.open_timeout,
        wedge_after=worker.wedge_after,
        alive=worker.alive,
    )
