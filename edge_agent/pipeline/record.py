"""The record stage: a decided change of state becomes an event, committed to
the event log (on its own thread: a commit's fsync never holds up the loop) with
a small picture, then published; outputs mark it delivered when their medium
acknowledges it. A state decided again after a restart is no event."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Callable, Coroutine

import numpy as np

from ..decide import Kind, State
from ..encode import encode_jpeg, resize_for_api
from ..outputs.dispatch import Dispatcher
from ..storage.event import Event
from ..storage.eventlog import EventLog
from .result import Result

if TYPE_CHECKING:
    from ..camera import CameraRuntime

THUMBNAIL_SIZE = 320  # longest side of an event's picture in the history


class RecordEventStage:
    name = "record event"

    def __init__(self, events: EventLog, outputs: Dispatcher,
                 spawn: Callable[[Coroutine[Any, Any, None]], None]):
        self.events = events
        self.outputs = outputs
        self.spawn = spawn

    def handle(self, r: Result) -> None:
        state = r.state
        if state is None:
            return
        if state.kind is Kind.CHANGE:
            self.spawn(self._record(r.camera, state, r.captured_at, r.frame.preview))
        else:
            r.camera.previous_class = state.cls

    async def _record(self, cam: "CameraRuntime", state: State, at: float, preview: np.ndarray) -> None:
        try:
            thumb = encode_jpeg(resize_for_api(preview, THUMBNAIL_SIZE), 70)
        except Exception:  # a picture is a nice-to-have; the event is not
            thumb = None
        event = await self.events.add(cam.name, state.cls, state.confidence, at, thumb, since=state.since)
        if event is None:  # no durable log: published all the same, not kept
            event = Event(id=int(time.time() * 1000), camera=cam.name, cls=state.cls, previous=cam.previous_class,
                          confidence=state.confidence, at=at, delivered=False, has_thumbnail=False)
        cam.previous_class = state.cls
        self.outputs.event(event)
