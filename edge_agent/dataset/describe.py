"""What is sent with a training frame besides its picture (pure): the batch, the
tags and the metadata, the same for the agent's samples and ``edge-agent collect``.

* batch: ``<dataset.batch_prefix> <UTC date>``;
* tags: ``edge-agent``, the camera, the reason, the device id, and the model id
  with ``/`` written as ``-`` (a tag holds no ``/``);
* metadata: camera, device, model, reason, captured_at (epoch s, as on MQTT) and,
  for a classified frame, every reason, top, confidence, predictions (at most 10,
  highest first) and state (the decided class at the time); the label a person
  gave, when one did.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Sequence

from ..config import Config
from .sampling import Facts

MAX_PREDICTIONS = 10


@dataclass(frozen=True)
class Description:
    batch: str
    tags: tuple[str, ...]
    metadata: dict[str, Any]


def describe(cfg: Config, *, camera: str, reason: str, captured_at: float, batch_at: float,
             facts: Facts | None = None, reasons: Sequence[str] = (), label: str | None = None,
             model: str | None = None) -> Description:
    """``batch_at``: the time whose UTC date names the batch (the capture's, or now);
    ``model``: the camera's or view's (#21), None: ``api.model``."""
    model = model or cfg.api.model
    meta: dict[str, Any] = {"camera": camera, "device": cfg.device_id, "model": model, "reason": reason}
    if facts is not None:
        meta.update({
            "reasons": [str(r) for r in reasons] or [reason], "top": facts.top,
            "confidence": round(facts.confidence, 4),
            "predictions": [{"class": p.cls, "confidence": round(p.confidence, 4)}
                            for p in facts.predictions[:MAX_PREDICTIONS]],
            "state": facts.decided})
    meta["captured_at"] = round(captured_at, 3)
    if label is not None:
        meta["label"] = label
    day = datetime.fromtimestamp(batch_at, timezone.utc).strftime("%Y-%m-%d")
    return Description(f"{cfg.dataset.batch_prefix} {day}",
                       ("edge-agent", camera, reason, cfg.device_id, model.replace("/", "-")), meta)
