"""What each camera's status topic says, and when it is sent: at once when its
health changes (online, API, last error, enabled, fps, budget spent, the
endpoint in use), forced
after a command or a failed request, else at most every ``status_interval``
while its figures move. Nothing before the camera's first open attempt: then
"offline" would be a false alarm and "online" a guess.

With training data collected (``collection`` set, the camera's sampling on) the
status carries ``dataset``: the collection as this camera sees it; a pause of the
uploads is a change of health (sent at once)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Mapping

from .budget import Budget
from .config import Config
from .messages import StatusMessage, budget_payload
from .outputs.dispatch import Dispatcher
from .outputs.mqtt import MqttOutput

if TYPE_CHECKING:
    from .camera import CameraRuntime
    from .collection_view import CollectionView
    from .endpoints import Endpoints


@dataclass
class StatusTopic:
    cfg: Config
    cameras: "Mapping[str, CameraRuntime]"
    endpoints: "Endpoints"  # the API's status is the active endpoint's
    budget: Budget
    outputs: Dispatcher
    stopping: bool = False  # the last status of each camera is sent at the stop, opened or not
    collection: "CollectionView | None" = None  # None unless dataset.enabled (Agent.collection)

    def dataset(self, camera: str) -> dict[str, Any] | None:
        """The ``dataset`` field: None unless this camera's frames may be collected."""
        if self.collection is None or not self.collection.enabled_for(camera):
            return None
        return self.collection.status(camera).payload()

    def message(self, cam: "CameraRuntime") -> StatusMessage:
        counts = cam.counters()
        mqtt = self.outputs.health_of(MqttOutput.name)
        endpoints = self.endpoints.view()
        return StatusMessage(
            camera="online" if cam.health.online else "offline",
            api=self.endpoints.guard.status,
            frames_captured=counts["captured"],
            frames_dropped=counts["dropped"],
            frames_sent=counts["sent"],
            requests_ok=cam.figures.requests_ok,
            requests_failed=cam.figures.requests_failed,
            messages_dropped=self.outputs.messages_dropped(),
            last_error=cam.health.last_error,
            enabled=cam.enabled,
            fps=cam.fps,
            camera_failures=cam.health.failures,
            mqtt_disconnects=mqtt.disconnects if mqtt else 0,
            frames_unchanged=counts["unchanged"],
            calls=counts["sent"],
            last_change=None if cam.admission.last_change_at is None else round(cam.admission.last_change_at, 3),
            budget=budget_payload(self.budget.view()),
            decode=cam.worker.source_info if cam.worker else None,
            device=self.cfg.device_id,
            dataset=self.dataset(cam.name),
            endpoint=str(endpoints.active),
            fallback=endpoints.payload(),
        )

    def publish(self, cam: "CameraRuntime", *, force: bool = False) -> None:
        if not cam.health.opened and not self.stopping:
            return
        msg = self.message(cam)
        now = time.monotonic()
        prev = cam.last_status
        changed = prev is None or msg.health() != prev.health()
        periodic = prev is not None and msg != prev and now - cam.last_status_at >= self.cfg.status_interval
        if not (force or changed or periodic):
            return
        cam.last_status, cam.last_status_at = msg, now
        self.outputs.status(cam.name, msg)

    def publish_all(self) -> None:
        for cam in self.cameras.values():
            self.publish(cam)
