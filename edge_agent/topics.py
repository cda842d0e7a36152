"""MQTT topic names (pure). ``P`` is ``mqtt.topic_prefix``."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Topics:
    prefix: str

    @property
    def availability(self) -> str:
        return f"{self.prefix}/availability"

    def result(self, camera: str) -> str:
        return f"{self.prefix}/{camera}/result"

    def state(self, camera: str) -> str:
        return f"{self.prefix}/{camera}/state"

    def status(self, camera: str) -> str:
        return f"{self.prefix}/{camera}/status"
