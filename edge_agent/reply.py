"""Parse the classification API's JSON reply (pure; no I/O).

Two shapes, as served by Roboflow's hosted API and the inference server:

* single-label: ``{"top": str, "confidence": float,
  "predictions": [{"class": str, "confidence": float, ...}, ...]}``
* multi-label: ``{"predictions": {class: {"confidence": float, "class_id": int}},
  "predicted_classes": [str, ...]}``

The reply comes from outside, so it is capped: at most ``MAX_PREDICTIONS``
predictions (and predicted classes), class names of at most ``MAX_CLASS_NAME``
characters. Beyond a cap the reply is a ``BadReply`` whose message says which cap
(and never quotes more than a few characters of the reply).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any


MAX_PREDICTIONS = 1000  # a real model has tens of classes
MAX_CLASS_NAME = 200  # characters


class BadReply(ValueError):
    """The reply is not JSON of either documented shape."""


@dataclass(frozen=True)
class Prediction:
    cls: str
    confidence: float


@dataclass(frozen=True)
class Classification:
    top: str
    confidence: float
    predictions: tuple[Prediction, ...]  # highest confidence first
    predicted_classes: tuple[str, ...] | None = None  # multi-label only


def _confidence(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise BadReply(f"{where}: confidence is not a number")
    if isinstance(value, float) and not math.isfinite(value):  # (an int is finite, if huge)
        raise BadReply(f"{where}: confidence is not a number")
    if not 0 <= value <= 1:
        shown = f"{value:.4g}" if isinstance(value, float) or abs(value) < 10 ** 12 else "(a huge integer)"
        raise BadReply(f"{where}: confidence {shown} is outside 0..1")
    return float(value)


def _class_name(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value:
        raise BadReply(f"{where}: class is not a non-empty string")
    if len(value) > MAX_CLASS_NAME:
        raise BadReply(f"{where}: class name longer than {MAX_CLASS_NAME} characters ({len(value)})")
    return value


def _show(name: str, limit: int = 40) -> str:
    """A class name quoted in an error message: short, one line."""
    return repr(name[:limit] + "…" if len(name) > limit else name)


def _count(items: Any, what: str) -> None:
    if len(items) > MAX_PREDICTIONS:
        raise BadReply(f"more than {MAX_PREDICTIONS} {what} ({len(items)})")


def parse_reply(body: Any) -> Classification:
    if not isinstance(body, dict):
        raise BadReply("reply is not a JSON object")
    preds = body.get("predictions")
    if isinstance(preds, list):
        return _single_label(body, preds)
    if isinstance(preds, dict):
        return _multi_label(body, preds)
    raise BadReply("reply has no 'predictions' list or object")


def _single_label(body: dict[str, Any], raw: list[Any]) -> Classification:
    _count(raw, "predictions")
    preds = []
    for i, p in enumerate(raw):
        if not isinstance(p, dict):
            raise BadReply(f"predictions[{i}] is not an object")
        preds.append(Prediction(_class_name(p.get("class"), f"predictions[{i}]"),
                                _confidence(p.get("confidence"), f"predictions[{i}]")))
    preds.sort(key=lambda p: p.confidence, reverse=True)
    if "top" in body:
        top = _class_name(body["top"], "top")
        confidence = _confidence(body.get("confidence"), "top")
    elif preds:
        top, confidence = preds[0].cls, preds[0].confidence
    else:
        raise BadReply("reply has neither 'top' nor any prediction")
    return Classification(top=top, confidence=confidence, predictions=tuple(preds))


def _multi_label(body: dict[str, Any], raw: dict[str, Any]) -> Classification:
    _count(raw, "predictions")
    preds = []
    for name, p in raw.items():
        name = _class_name(name, "predictions")
        if not isinstance(p, dict):
            raise BadReply(f"predictions[{_show(name)}] is not an object")
        preds.append(Prediction(name, _confidence(p.get("confidence"), f"predictions[{_show(name)}]")))
    if not preds:
        raise BadReply("multi-label reply has no predictions")
    preds.sort(key=lambda p: p.confidence, reverse=True)
    classes = body.get("predicted_classes", [])
    if not isinstance(classes, list) or not all(isinstance(c, str) for c in classes):
        raise BadReply("predicted_classes is not a list of strings")
    _count(classes, "predicted_classes")
    if any(len(c) > MAX_CLASS_NAME for c in classes):
        raise BadReply(f"predicted_classes: class name longer than {MAX_CLASS_NAME} characters")
    return Classification(top=preds[0].cls, confidence=preds[0].confidence,
                          predictions=tuple(preds), predicted_classes=tuple(classes))
