"""Draw what the agent decided onto a frame, for people (status page, snapshots)."""

from __future__ import annotations

import cv2
import numpy as np

from .encode import Region, encode_jpeg, region_box

REGION_COLOUR = (0, 215, 255)  # amber (BGR)
TEXT_COLOUR = (255, 255, 255)
BAR_COLOUR = (40, 40, 40)


def annotate(preview: np.ndarray, label: str, region: Region | None = None, quality: int = 85) -> bytes:
    """A JPEG of ``preview`` with ``label`` in a bar at the top and ``region`` outlined."""
    img = preview.copy()
    h, w = img.shape[:2]
    thickness = max(1, round(min(w, h) / 240))
    if region is not None:
        x1, y1, x2, y2 = region_box(w, h, region)
        cv2.rectangle(img, (x1, y1), (x2 - 1, y2 - 1), REGION_COLOUR, thickness + 1)
    scale = max(0.4, min(w, h) / 480)
    (tw, th), base = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)
    pad = max(4, th // 3)
    cv2.rectangle(img, (0, 0), (min(w, tw + 2 * pad), th + base + 2 * pad), BAR_COLOUR, cv2.FILLED)
    cv2.putText(img, label, (pad, pad + th), cv2.FONT_HERSHEY_SIMPLEX, scale, TEXT_COLOUR, thickness,
                cv2.LINE_AA)
    return encode_jpeg(img, quality)


def label_for(top: str, confidence: float) -> str:
    return f"{top} {confidence * 100:.0f}%"
