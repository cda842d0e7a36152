"""What the control topics may do (``P/<camera>/set/enabled``, ``set/fps``,
``snapshot/request``, ``classify``, ``collect``), on the loop. Settings made this way are
kept in the state folder; a "classify now" is refused, logged once a day, while
the API budget is spent. A camera's state from before a restart, read back from
the broker when no event store says it, is remembered here too."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Mapping

import numpy as np

from .annotate import annotate
from .budget import Budget
from .episode import Episode
from .outputs.control import Command, CommandField
from .outputs.dispatch import Dispatcher
from .pipeline.publish import publish_snapshot
from .status_topic import StatusTopic
from .storage.settings import Settings

if TYPE_CHECKING:
    from .camera import CameraRuntime
    from .dataset.collect import Collection

log = logging.getLogger(__name__)


@dataclass
class Commands:
    cameras: "Mapping[str, CameraRuntime]"
    settings: Settings
    budget: Budget
    status: StatusTopic
    outputs: Dispatcher
    collection: "Collection | None" = None  # training data (dataset.enabled)
    _refusals: Episode = field(default_factory=Episode)  # classify-now refused while the budget is spent
    _collect_off: Episode = field(default_factory=Episode)  # collect asked for while collection is off

    def restore_settings(self) -> None:
        """At start: what was set over MQTT before the restart (fps, paused) applies again."""
        for cam in self.cameras.values():
            kept = self.settings.restore(cam.name, cam.cfg.fps)
            if kept.fps is not None:
                cam.admission.set_fps(kept.fps)
            if kept.paused:
                cam.admission.pause()

    # -- the MQTT output's Controls ---------------------------------------------------

    def has_camera(self, name: str) -> bool:
        return name in self.cameras

    def remember_state(self, camera: str, cls: str, since: float) -> None:
        """The state before the restart: from the event store at start, else (no usable
        state_dir) the camera's retained state read back from the broker; used only while
        nothing is known or decided yet."""
        cam = self.cameras.get(camera)
        if cam is not None and cam.debouncer.state is None and cam.previous_class is None:
            cam.debouncer.remember(cls, since)
            cam.previous_class = cls

    def command(self, cmd: Command) -> None:
        cam = self.cameras.get(cmd.camera)
        if cam is None:
            return
        if cmd.field is CommandField.SNAPSHOT:
            if cam.worker is not None and cam.health.online:
                cam.snapshot_asked = True  # (the worker may be shared by the camera's views)
                cam.worker.request_snapshot()
            elif cam.results.latest is not None:
                publish_snapshot(self.outputs, cam, cam.results.latest.jpeg(cam.cfg.region))
            return
        if cmd.field is CommandField.CLASSIFY:
            self._classify_now(cam)
            return
        if cmd.field is CommandField.COLLECT:
            self._collect(cam, cmd.value if isinstance(cmd.value, str) else None)
            return
        if cmd.field is CommandField.ENABLED:
            if cmd.value:
                cam.admission.resume()  # the picture may have changed while paused: looked at afresh
            else:
                cam.admission.pause()
            log.info("%s: classification %s", cam.name, "resumed" if cam.enabled else "paused")
        elif cmd.field is CommandField.FPS:
            assert isinstance(cmd.value, float)
            cam.admission.set_fps(cmd.value)
            log.info("%s: fps set to %g", cam.name, cmd.value)
        self.settings.record(cam.name, enabled=cam.enabled, fps=cam.fps, config_fps=cam.cfg.fps)
        self.status.publish(cam, force=True)

    def _collect(self, cam: "CameraRuntime", label: str | None) -> None:
        """``P/<camera>/collect``: the last classified frame saved for training."""
        if self.collection is None or not self.collection.enabled_for(cam.name):
            if self._collect_off.fail("off"):
                log.warning("%s: 'save for training' ignored: %s", cam.name,
                            "dataset.enabled is false" if self.collection is None
                            else "cameras[].sampling.enabled is false for this camera")
            return
        self.collection.request(cam.name, label)

    def _classify_now(self, cam: "CameraRuntime") -> None:
        """``P/<camera>/classify``: the newest frame, past the gate, not past the budget."""
        if self.budget.exhausted():
            if self._refusals.fail("spent"):
                view = self.budget.view()
                log.warning("%s: 'classify now' refused: the API budget for %s is spent (%d calls); "
                            "further refusals today are not logged", cam.name, view.day, view.calls)
            return
        self._refusals.ok()
        cam.admission.classify_now()
        log.info("%s: classifying the newest frame on request", cam.name)

    # -- the capture thread's answer to a snapshot request ------------------------------

    def fresh_snapshot(self, cam: "CameraRuntime", preview: np.ndarray, captured_at: float) -> None:
        state = cam.debouncer.state
        label = f"{state.cls} (since {time.strftime('%H:%M:%S', time.localtime(state.since))})" if state \
            else "no state yet"
        publish_snapshot(self.outputs, cam, annotate(preview, label, cam.cfg.region))
        log.info("%s: snapshot published on request", cam.name)
