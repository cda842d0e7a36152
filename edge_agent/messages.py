"""MQTT payloads as typed dataclasses (pure)."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from typing import Any

from .budget import BudgetView
from .decide import State
from .reply import Classification, Prediction


def _json(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


def _predictions(predictions: tuple[Prediction, ...]) -> list[dict[str, Any]]:
    return [{"class": p.cls, "confidence": round(p.confidence, 6)} for p in predictions]


@dataclass(frozen=True)
class ResultMessage:
    camera: str
    model: str
    result: Classification
    captured_at: float
    latency_ms: float
    state: str | None = None  # the decided class after this result
    state_confidence: float | None = None  # this result's confidence in it (0 if it did not name it)
    endpoint: str = "primary"  # which endpoint classified it: "primary" or "fallback" (api.fallback)

    def payload(self) -> bytes:
        r = self.result
        body: dict[str, Any] = {
            "camera": self.camera,
            "model": self.model,
            "endpoint": self.endpoint,
            "top": r.top,
            "confidence": round(r.confidence, 6),
            "predictions": _predictions(r.predictions),
            "captured_at": round(self.captured_at, 3),
            "latency_ms": round(self.latency_ms, 1),
        }
        if r.predicted_classes is not None:
            body["predicted_classes"] = list(r.predicted_classes)
        if self.state is not None:
            body["state"] = self.state
            body["state_confidence"] = round(self.state_confidence or 0.0, 6)
        return _json(body)


def state_payload(state: State, predictions: tuple[Prediction, ...] | None = None,
                  stale_since: float | None = None, stale_reason: str | None = None) -> bytes:
    """``{"class", "confidence", "since", "votes", "stale", "stale_since", "stale_reason"}``,
    plus ``predictions`` (of the newest result) when given. ``votes``: what decided it
    (``{"for": 4, "of": 5, "confidences": [...]}``); ``stale``: a check that was
    needed has failed or been skipped since ``stale_since``, for ``stale_reason``
    (``api``, ``budget``, ``busy``, ``paused``; ``unsettled``: the results after a change
    did not agree on it, checking.py)."""
    body: dict[str, Any] = {"class": state.cls, "confidence": round(state.confidence, 6),
                            "since": round(state.since, 3)}
    if predictions is not None:
        body["predictions"] = _predictions(predictions)
    if state.window:
        body["votes"] = {"for": state.votes, "of": state.window, "confidences": list(state.confidences)}
    body["stale"] = stale_since is not None
    body["stale_since"] = None if stale_since is None else round(stale_since, 3)
    body["stale_reason"] = stale_reason if stale_since is not None else None
    return _json(body)


@dataclass(frozen=True)
class StateMessage:
    """The decided state (retained): see :func:`state_payload`."""

    state: State
    predictions: tuple[Prediction, ...] | None = None  # the newest result's
    stale_since: float | None = None
    stale_reason: str | None = None  # checking.Why's word

    def payload(self) -> bytes:
        return state_payload(self.state, self.predictions, self.stale_since, self.stale_reason)


MAX_CLASS = 200  # characters of a class name read back from the broker


def parse_state(payload: bytes) -> tuple[str, float] | None:
    """``(class, since)`` of a state message (this agent's own retained state, read back
    from the broker after a restart), or None for anything else: it came from the broker,
    so it is parsed defensively (the caller has bounded its size)."""
    try:
        body = json.loads(payload)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None
    if not isinstance(body, dict):
        return None
    cls, since = body.get("class"), body.get("since")
    if not isinstance(cls, str) or not 0 < len(cls) <= MAX_CLASS or isinstance(since, bool) \
            or not isinstance(since, (int, float)) or not math.isfinite(since):
        return None
    return cls, float(since)


def confidence_payload(cls: str, confidence: float, at: float) -> bytes:
    """``{"class", "confidence", "at"}``: the newest result's confidence in the decided
    class, and that result's capture time (epoch s). Retained and sent after every result
    once a state is decided, so a subscriber that comes late (Home Assistant after its own
    restart) reads the confidence as it is now, while the state itself is sent only when it
    changes."""
    return _json({"class": cls, "confidence": round(confidence, 6), "at": round(at, 3)})


@dataclass(frozen=True)
class ConfidenceMessage:
    """The newest result's confidence in the decided class (retained): see
    :func:`confidence_payload`."""

    cls: str
    confidence: float
    at: float

    def payload(self) -> bytes:
        return confidence_payload(self.cls, self.confidence, self.at)


@dataclass(frozen=True)
class StatusMessage:
    camera: str  # "online" | "offline"
    api: str  # "ok" | "error" | "unauthorized" | "rate_limited"
    frames_captured: int
    frames_dropped: int
    frames_sent: int
    requests_ok: int
    requests_failed: int
    messages_dropped: int
    last_error: str | None
    enabled: bool = True
    fps: float = 0.0
    camera_failures: int = 0  # failed opens and reads since start
    mqtt_disconnects: int = 0
    frames_unchanged: int = 0  # looked at by the change gate, no call needed
    calls: int = 0  # API calls made for this camera since start
    last_change: float | None = None  # epoch s of the last frame the gate saw change
    budget: dict[str, Any] | None = None  # the day's API spend, all cameras: see budget_payload
    device: str = ""  # the device_id of the agent that published it (whose topics these are)
    decode: str | None = None  # how the source is read: "keyframes only, every 1.0 s", "MJPEG, decoded only when taken"
    dataset: dict[str, Any] | None = None  # training data (DatasetStatus.payload()); None: dataset.enabled is off
    endpoint: str = "primary"  # the endpoint calls go to: "primary" or "fallback" (api.fallback)
    # with api.fallback: {"active", "reason", "since", "calls", "failed"} (EndpointsView.payload); else None
    fallback: dict[str, Any] | None = None

    def health(self) -> tuple[object, ...]:
        """The fields whose change alone is worth a publish."""
        return (self.camera, self.api, self.last_error, self.enabled, self.fps,
                self.budget["exhausted"] if self.budget else None,
                self.dataset["paused"] if self.dataset else None, self.endpoint)

    def payload(self) -> bytes:
        return _json({**asdict(self), "fps": round(self.fps, 3)})  # every field, in declaration order


def budget_payload(view: BudgetView) -> dict[str, Any]:
    """The day's API spend as the status topic and the page show it."""
    return {"day": view.day, "calls_today": view.calls, "credits_today": round(view.credits, 6),
            "calls_limit": view.calls_limit, "credits_limit": view.credits_limit,
            "exhausted": view.exhausted, "pacing": view.pacing}
