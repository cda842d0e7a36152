"""Parse the classification API's JSON reply (pure; no I/O).

Two shapes, as served by Roboflow's hosted API and the inference server:

* single-label: ``{"top": str, "confidence": float,
  "predictions": [{"class": str, "confidence": float, ...}, ...]}``
* multi-label: ``{"predictions": {class: {"confidence": float, "class_id": int}},
  "predicted_classes": [str, ...]}``
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any


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
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise BadReply(f"{where}: confidence is not a number")
    if not 0.0 <= value <= 1.0:
        raise BadReply(f"{where}: confidence {value} is outside 0..1")
    return float(value)


def _class_name(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value:
        raise BadReply(f"{where}: class is not a non-empty string")
    return value


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
    preds = []
    for name, p in raw.items():
        if not isinstance(p, dict):
            raise BadReply(f"predictions[{name!r}] is not an object")
        preds.append(Prediction(_class_name(name, "predictions"), _confidence(p.get("confidence"), f"predictions[{name!r}]")))
    if not preds:
        raise BadReply("multi-label reply has no predictions")
    preds.sort(key=lambda p: p.confidence, reverse=True)
    classes = body.get("predicted_classes", [])
    if not isinstance(classes, list) or not all(isinstance(c, str) for c in classes):
        raise BadReply("predicted_classes is not a list of strings")
    return Classification(top=preds[0].cls, confidence=preds[0].confidence,
                          predictions=tuple(preds), predicted_classes=tuple(classes))
