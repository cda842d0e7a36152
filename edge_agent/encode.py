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


Region = tuple[float, float, float, float]


def region_box(width: int, height: int, region: Region) -> tuple[int, int, int, int]:
    """Pixel box ``(x1, y1, x2, y2)`` of a region given as fractions; at least 1x1.

    Pure maths: ``region_box(640, 480, (0.25, 0.5, 0.75, 1.0)) == (160, 240, 480, 480)``.
    """
    x1, y1, x2, y2 = region
    px1 = min(width - 1, max(0, int(round(x1 * width))))
    py1 = min(height - 1, max(0, int(round(y1 * height))))
    px2 = max(px1 + 1, min(width, int(round(x2 * width))))
    py2 = max(py1 + 1, min(height, int(round(y2 * height))))
    return px1, py1, px2, py2


def crop(frame: np.ndarray, region: Region | None) -> np.ndarray:
    """The part of the frame inside ``region`` (a view, no copy)."""
    if region is None:
        return frame
    h, w = frame.shape[:2]
    x1, y1, x2, y2 = region_box(w, h, region)
    return frame[y1:y2, x1:x2]


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


def prepare(frame: np.ndarray, longest: int, quality: int, region: Region | None = None) -> bytes:
    """The one path every image takes before it is sent: crop, resize, then JPEG."""
    return encode_jpeg(resize_for_api(crop(frame, region), longest), quality)
