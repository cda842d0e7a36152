"""The publish stage: every result to the outputs, the state when it changed (or
was checked again after being stale), the annotated snapshot with a new state,
and the newest confidence in the decided state after every result (retained, so
a late subscriber reads it at once)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..messages import ConfidenceMessage, ResultMessage
from ..outputs.dispatch import Dispatcher
from .result import Result

if TYPE_CHECKING:
    from ..camera import CameraRuntime


def publish_snapshot(outputs: Dispatcher, cam: "CameraRuntime", jpeg: bytes) -> None:
    """The camera's retained snapshot (the page shows the same one)."""
    cam.results.snapshot = jpeg
    outputs.snapshot(cam.name, jpeg)


class PublishStage:
    name = "publish"

    def __init__(self, outputs: Dispatcher, model: str):
        self.outputs = outputs
        self.model = model

    def handle(self, r: Result) -> None:
        cam, reply, decided = r.camera, r.reply, r.decided
        self.outputs.result(cam.name, ResultMessage(cam.name, r.model or cam.cfg.model or self.model, reply.result,
                                                    r.captured_at, reply.latency_ms, decided.cls if decided else None,
                                                    r.in_state, endpoint=str(r.endpoint)))
        if decided is None:
            return
        if r.state is not None or r.stale_changed:
            self.outputs.state(cam.name, cam.state_message())
        if r.state is not None and cam.results.latest is not None:
            publish_snapshot(self.outputs, cam, cam.results.latest.jpeg(cam.cfg.region))
        # Retained, after every result: Home Assistant's confidence sensor has a value at once
        # after its own restart, while the state is sent only when it changes.
        self.outputs.confidence(cam.name, ConfidenceMessage(decided.cls, r.in_state or 0.0, r.captured_at))
