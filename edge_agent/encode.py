"""Frame -> JPEG bytes for the API: resize (aspect kept, never upscaled), encode."""

from __future__ import annotations

import cv2
import numpy as np


def target_size(width: int, height: int, longest: int) -> tuple[int, int]:
    """Size with the longest side at most ``longest``, aspect kept, never upscaled.

    Pure maths: ``target_size(1920, 1080, 416) == (416, 234)``.
    """
    if width <= 0 or height <= 0:
        raise ValueError(f"bad frame size {width}x{height}")
    if longest <= 0:
        raise ValueError(f"bad target size {longest}")
    side = max(width, height)
    if side <= longest:
        return width, height
    scale = longest / side
    new_w = max(1, min(longest, round(width * scale)))
    new_h = max(1, min(longest, round(height * scale)))
    return new_w, new_h


def resize_for_api(frame: np.ndarray, longest: int) -> np.ndarray:
    height, width = frame.shape[:2]
    size = target_size(width, height, longest)
    if size == (width, height):
        return frame
    # INTER_AREA: the right filter for shrinking (no aliasing) and cheap.
    return cv2.resize(frame, size, interpolation=cv2.INTER_AREA)


def encode_jpeg(frame: np.ndarray, quality: int) -> bytes:
    ok, buf = cv2.imencode(".jpg", frame, [int(cv2.IMWRITE_JPEG_QUALITY), int(quality)])
    if not ok:
        raise ValueError("JPEG encoding failed")
    return buf.tobytes()


def prepare(frame: np.ndarray, longest: int, quality: int) -> bytes:
    """The one path every image takes before it is sent: resize, then JPEG."""
    return encode_jpeg(resize_for_api(frame, longest), quality)
