"""Removing a camera without Home Assistant logging a line (pure; the clock is passed in).

A camera taken out of the config leaves retained topics behind: its discovery configs,
and its state, confidence, status and snapshot. So does a view (camera ``<camera>-<view>``
here: a name is only a key, dashes and all), and a camera that gained views (its own
topics give way to its views'); "camera" below means any of them. Home Assistant's entities read the latter until their
configs are gone, and an empty payload on a topic an entity still reads makes it log
("Erroneous JSON", "'value_json' is undefined"). So the order is:

1. every discovery config of ours that the config no longer makes is cleared first (an
   empty retained payload); the topics it names are noted;
2. a removed camera's state, confidence, status and snapshot are cleared only once no config that
   names them is waiting to be seen cleared on the broker (the agent's own subscription
   echoes the empty config back: the broker has passed it on to Home Assistant too), and
   ``settle`` seconds after the last such echo (Home Assistant drops the entity in far less);
3. at the latest ``max_wait`` seconds after the camera was found (an echo that never
   comes holds nothing up for ever: the templates tolerate an empty payload anyway).

A camera is looked at ``settle`` seconds at least after it was found, so the retained
configs, which arrive just after the retained status on a connect, are all known by then.
Everything here is bounded: at most ``MAX_PENDING`` cameras and configs at once (anyone
on the broker can publish a retained status naming this device: more wait for the next start).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Iterable

SETTLE = 3.0  # s after a config naming a topic was seen cleared (and after a camera was found)
MAX_WAIT = 20.0  # s after a camera was found: its topics are cleared whatever was seen
MAX_PENDING = 256  # cameras, and configs, waiting at once
MAX_TOPICS = 32  # topics read from one config


def topics_named(payload: bytes) -> frozenset[str]:
    """The topics a discovery config reads (``state_topic``, ``json_attributes_topic``,
    ``image_topic``, ``availability[].topic``, …): every string under a key ending in
    ``topic`` at the top level or in ``availability``. Empty for anything that is not a
    JSON object (parsed defensively: it came from the broker)."""
    try:
        body = json.loads(payload)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return frozenset()
    if not isinstance(body, dict):
        return frozenset()
    found: list[str] = []

    def take(obj: dict[Any, Any]) -> None:
        for key, value in obj.items():
            if isinstance(key, str) and (key.endswith(("topic", "_t")) or key == "t") \
                    and isinstance(value, str) and value:
                found.append(value)

    take(body)
    avail = body.get("availability")
    if isinstance(avail, list):
        for item in avail[:MAX_TOPICS]:
            if isinstance(item, dict):
                take(item)
    return frozenset(found[:MAX_TOPICS])


@dataclass
class _Camera:
    found_at: float
    topics: tuple[str, ...]  # still to clear


class Removals:
    def __init__(self, settle: float = SETTLE, max_wait: float = MAX_WAIT):
        self.settle = settle
        self.max_wait = max(settle, max_wait)
        self._configs: dict[str, frozenset[str]] = {}  # a config being cleared -> the topics it names
        self._echoed: dict[str, float] = {}  # topic -> when the last config naming it was seen cleared
        self._cameras: dict[str, _Camera] = {}

    def config_clearing(self, config_topic: str, named: Iterable[str]) -> None:
        """A stale discovery config of ours is being cleared; it names these topics."""
        if config_topic in self._configs or len(self._configs) < MAX_PENDING:
            self._configs[config_topic] = frozenset(named)

    def config_cleared(self, config_topic: str, now: float) -> None:
        """The empty config came back from the broker: Home Assistant has it too."""
        named = self._configs.pop(config_topic, None)
        if named is None:
            return
        for topic in named:
            if topic in self._echoed or len(self._echoed) < MAX_PENDING * MAX_TOPICS:
                self._echoed[topic] = now

    def camera_gone(self, camera: str, topics: Iterable[str], now: float) -> bool:
        """A camera of ours no longer in the config, with its retained topics to clear.
        False when it is known already, or too many are waiting."""
        if camera in self._cameras or len(self._cameras) >= MAX_PENDING:
            return False
        self._cameras[camera] = _Camera(now, tuple(topics))
        return True

    def pending(self, camera: str) -> bool:
        return camera in self._cameras

    def _config_pending(self, topic: str) -> bool:
        """A config naming ``topic`` is being cleared and has not come back yet."""
        return any(topic in named for named in self._configs.values())

    def _blocked(self, topic: str, now: float) -> bool:
        if self._config_pending(topic):
            return True
        echoed = self._echoed.get(topic)
        return echoed is not None and now < echoed + self.settle

    def due(self, now: float) -> list[tuple[str, list[str]]]:
        """``(camera, topics)`` to clear now; they are forgotten here."""
        out: list[tuple[str, list[str]]] = []
        for camera, cam in list(self._cameras.items()):
            if now < cam.found_at + self.settle:
                continue
            late = now >= cam.found_at + self.max_wait
            ready = [t for t in cam.topics if late or not self._blocked(t, now)]
            if not ready:
                continue
            cam.topics = tuple(t for t in cam.topics if t not in ready)
            if not cam.topics:
                del self._cameras[camera]
            for t in ready:
                self._echoed.pop(t, None)
            out.append((camera, ready))
        return out

    def next_check(self, now: float) -> float | None:
        """When :meth:`due` may next have something (a time on the same clock), or None."""
        times: list[float] = []
        for cam in self._cameras.values():
            if now < cam.found_at + self.settle:
                times.append(cam.found_at + self.settle)
                continue
            times.append(cam.found_at + self.max_wait)
            for t in cam.topics:
                if t in self._echoed and not self._config_pending(t):
                    times.append(self._echoed[t] + self.settle)
        return min(times) if times else None

    def flush(self) -> list[tuple[str, list[str]]]:
        """Everything still waiting (the agent is stopping: the templates tolerate it)."""
        out = [(camera, list(cam.topics)) for camera, cam in self._cameras.items() if cam.topics]
        self._cameras.clear()
        self._configs.clear()
        self._echoed.clear()
        return out
