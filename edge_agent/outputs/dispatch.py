"""The agent fans what it decides out to its outputs (Frigate's dispatcher is the
model): MQTT, with Home Assistant and the control topics (``mqtt.py``), and
whatever a test records. Outputs receive typed messages (``messages.py``) and
serialise them as their medium wants. Each output reports its own health; one
output's failure is logged once and never keeps the others from their messages.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Protocol

from ..episode import Episode
from ..messages import ConfidenceMessage, ResultMessage, StateMessage, StatusMessage

if TYPE_CHECKING:
    from ..storage.event import Event

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class OutputHealth:
    """An output's own figures, for the status topic, the page and the metrics."""

    name: str
    connected: bool
    messages_dropped: int = 0
    disconnects: int = 0
    pending: int = 0  # messages waiting to go out


class Output(Protocol):
    """Where results, states, status, snapshots and events go."""

    name: str

    def start(self) -> None: ...
    async def stop(self) -> None: ...
    def result(self, camera: str, msg: ResultMessage) -> None: ...
    def state(self, camera: str, msg: StateMessage) -> None: ...  # the decided state (retained)
    def status(self, camera: str, msg: StatusMessage) -> None: ...  # health and counters (retained)
    def snapshot(self, camera: str, jpeg: bytes) -> None: ...  # the annotated frame (retained)
    def confidence(self, camera: str, msg: ConfidenceMessage) -> None: ...  # in the state (retained)
    def event(self, event: "Event") -> None: ...  # a stored state change
    def health(self) -> OutputHealth: ...


class Dispatcher:
    """Every message to every output, in the order given."""

    def __init__(self, outputs: list[Output] | None = None):
        self.outputs: list[Output] = []
        self._trouble: dict[int, Episode] = {}
        self.attach(outputs or [])

    def attach(self, outputs: list[Output]) -> None:
        """Outputs made once the loop runs (the agent's start)."""
        for out in outputs:
            self.outputs.append(out)
            self._trouble[id(out)] = Episode()

    def _each(self, what: str, send: Callable[[Output], None]) -> None:
        for out in self.outputs:
            try:
                send(out)
            except Exception:  # a bug in one output must not silence the others
                if self._trouble[id(out)].fail(what):
                    log.exception("output %s failed in %s (logged once)", out.name, what)

    def start(self) -> None:
        self._each("start", lambda out: out.start())

    async def stop(self) -> None:
        for out in self.outputs:
            try:
                await out.stop()
            except Exception:
                log.exception("output %s failed to stop", out.name)

    def result(self, camera: str, msg: ResultMessage) -> None:
        self._each("result", lambda out: out.result(camera, msg))

    def state(self, camera: str, msg: StateMessage) -> None:
        self._each("state", lambda out: out.state(camera, msg))

    def status(self, camera: str, msg: StatusMessage) -> None:
        self._each("status", lambda out: out.status(camera, msg))

    def snapshot(self, camera: str, jpeg: bytes) -> None:
        self._each("snapshot", lambda out: out.snapshot(camera, jpeg))

    def confidence(self, camera: str, msg: ConfidenceMessage) -> None:
        self._each("confidence", lambda out: out.confidence(camera, msg))

    def event(self, event: "Event") -> None:
        self._each("event", lambda out: out.event(event))

    # -- health ------------------------------------------------------------------

    def _health(self, out: Output) -> OutputHealth:
        """Its own figures; an output whose ``health()`` fails reads as disconnected (logged
        once): the status, the page and the watchdog that ask must not fail with it."""
        try:
            return out.health()
        except Exception:
            if self._trouble[id(out)].fail("health"):
                log.exception("output %s failed in health (logged once)", out.name)
            return OutputHealth(out.name, connected=False)

    def health(self) -> list[OutputHealth]:
        return [self._health(out) for out in self.outputs]

    def health_of(self, name: str) -> OutputHealth | None:
        """The named output's figures (``"mqtt"``), None when there is no such output."""
        return next((self._health(out) for out in self.outputs if out.name == name), None)

    def messages_dropped(self) -> int:
        return sum(h.messages_dropped for h in self.health())
