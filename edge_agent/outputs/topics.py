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

    def confidence(self, camera: str) -> str:
        return f"{self.prefix}/{camera}/confidence"

    def status(self, camera: str) -> str:
        return f"{self.prefix}/{camera}/status"

    def snapshot(self, camera: str) -> str:
        return f"{self.prefix}/{camera}/snapshot"

    def snapshot_request(self, camera: str) -> str:
        return f"{self.prefix}/{camera}/snapshot/request"

    def event(self, camera: str) -> str:
        return f"{self.prefix}/{camera}/event"

    def classify(self, camera: str) -> str:
        return f"{self.prefix}/{camera}/classify"

    def collect(self, camera: str) -> str:
        return f"{self.prefix}/{camera}/collect"

    def set(self, camera: str, field: str) -> str:
        return f"{self.prefix}/{camera}/set/{field}"

    @property
    def control_filters(self) -> tuple[str, ...]:
        """What the agent subscribes to for control messages."""
        return (f"{self.prefix}/+/set/+", f"{self.prefix}/+/snapshot/request", f"{self.prefix}/+/classify",
                f"{self.prefix}/+/collect")

    def parse_control(self, topic: str) -> tuple[str, str] | None:
        """``(camera, field)`` of a control topic (field ``snapshot`` for a
        snapshot request, ``classify`` to classify now, ``collect`` to save for training), or None if it is not one."""
        if not topic.startswith(self.prefix + "/"):
            return None
        parts = topic[len(self.prefix) + 1:].split("/")
        if len(parts) == 3 and parts[1] == "set" and parts[0] and parts[2]:
            return parts[0], parts[2]
        if len(parts) == 3 and parts[1:] == ["snapshot", "request"] and parts[0]:
            return parts[0], "snapshot"
        if len(parts) == 2 and parts[1] in ("classify", "collect") and parts[0]:
            return parts[0], parts[1]
        return None
