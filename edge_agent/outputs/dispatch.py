"""The agent fans what it decides out to its outputs (Frigate's dispatcher is the
model): MQTT, with Home Assistant and the control topics (``mqtt.py``), and
whatever a test records. One output's failure is logged once and never keeps the
others from their messages."""

from __future__ import annotations

import logging
from typing import Any, Protocol

from ..episode import Episode

log = logging.getLogger(__name__)


class Output(Protocol):
    """Where results, states, status, snapshots and events go."""

    def start(self) -> None: ...
    async def stop(self) -> None: ...
    def result(self, camera: str, payload: bytes) -> None: ...
    def state(self, camera: str, payload: bytes) -> None: ...  # the decided state (retained)
    def status(self, camera: str, payload: bytes) -> None: ...  # health and counters (retained)
    def snapshot(self, camera: str, jpeg: bytes) -> None: ...  # the annotated frame (retained)
    def confidence(self, camera: str, payload: bytes) -> None: ...  # the newest result's, in the state (retained)
    def event(self, event: Any) -> None: ...  # a stored state change (eventstore.Event)


class Dispatcher:
    def __init__(self, outputs: list[Output]):
        self.outputs = outputs
        self._trouble = {id(o): Episode() for o in outputs}

    def _each(self, method: str, *args: Any) -> None:
        for out in self.outputs:
            try:
                getattr(out, method)(*args)
            except Exception:  # a bug in one output must not silence the others
                if self._trouble[id(out)].fail(method):
                    log.exception("output %s failed in %s (logged once)", type(out).__name__, method)

    def start(self) -> None:
        self._each("start")

    async def stop(self) -> None:
        for out in self.outputs:
            try:
                await out.stop()
            except Exception:
                log.exception("output %s failed to stop", type(out).__name__)

    def result(self, camera: str, payload: bytes) -> None:
        self._each("result", camera, payload)

    def state(self, camera: str, payload: bytes) -> None:
        self._each("state", camera, payload)

    def status(self, camera: str, payload: bytes) -> None:
        self._each("status", camera, payload)

    def snapshot(self, camera: str, jpeg: bytes) -> None:
        self._each("snapshot", camera, jpeg)

    def event(self, event: Any) -> None:
        self._each("event", event)

    def confidence(self, camera: str, payload: bytes) -> None:
        self._each("confidence", camera, payload)
