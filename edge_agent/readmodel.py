"""What the web side and the systemd supervisor may read of a running agent: a
narrow read model, so they depend on this, not on the agent (no import circle)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Mapping, Protocol

if TYPE_CHECKING:
    from .admission import InFlight
    from .budget import Budget
    from .camera import CameraRuntime
    from .classify import ApiGuard
    from .config import Config
    from .endpoints import Endpoints
    from .collection_view import CollectionView
    from .metrics import Metrics
    from .outputs.dispatch import OutputHealth
    from .sdnotify import Notifier
    from .storage.reader import EventReader


class AgentView(Protocol):
    cfg: "Config"
    cameras: "Mapping[str, CameraRuntime]"
    started_at: float  # epoch s
    @property
    def guard(self) -> "ApiGuard": ...  # the API's status and last error: the endpoint in use's

    endpoints: "Endpoints"  # the primary and a fallback (#22): which is in use, and their figures
    inflight: "InFlight"
    budget: "Budget"
    metrics: "Metrics"
    notifier: "Notifier"
    collection: "CollectionView | None"  # training data; None unless dataset.enabled

    @property
    def events(self) -> "EventReader": ...  # read only: the agent alone writes the store

    def redact(self, text: str) -> str: ...

    def mqtt(self) -> "OutputHealth | None": ...  # the MQTT output's own figures
