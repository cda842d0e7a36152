"""Frame -> JPEG bytes for the API: resize (aspect kept, never upscaled), encode."""

from __future__ import annotations

import math
from collections import OrderedDict
from typing import Callable

import cv2
import numpy as np

Resize = Callable[[np.ndarray, tuple[int, int]], np.ndarray]

# A buffer this big is kept for the camera's next frame (Scratch, and a source's
# retrieve buffer) and written over: no allocation, and no page faults when glibc
# would map a fresh one (a size its moving mmap threshold has not reached yet, or
# after a trim, see memory.py). A 1080p keyframe's take path: 3.0 ms kept, 3.9 ms
# fresh (bench_sources' take path). Smaller ones are recycled by malloc as well.
REUSE_MIN_BYTES = 1 << 20


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


def jpeg_scale(width: int, height: int, longest: int, region: Region | None, preview: int) -> int:
    """How far a camera's JPEG may be scaled down while it is decoded (1, 2, 4 or 8).

    libjpeg can decode at 1/2, 1/4 or 1/8 size for a fraction of the work. That is
    allowed only when it changes nothing that is sent: the region must still have at
    least ``longest`` pixels on its longest side (or all of its own, when smaller),
    and the whole frame at least ``preview``. Pure maths:
    ``jpeg_scale(1920, 1080, 416, None, 640) == 2``; ``jpeg_scale(640, 480, 416, None, 640) == 1``.
    """
    x1, y1, x2, y2 = region_box(width, height, region) if region is not None else (0, 0, width, height)
    region_side = max(x2 - x1, y2 - y1)
    frame_side = max(width, height)
    for scale in (8, 4, 2):
        if (region_side // scale >= min(longest, region_side)
                and frame_side // scale >= min(preview, frame_side)):
            return scale
    return 1


JPEG_SCALE_FLAGS = {1: cv2.IMREAD_COLOR, 2: cv2.IMREAD_REDUCED_COLOR_2, 4: cv2.IMREAD_REDUCED_COLOR_4,
                    8: cv2.IMREAD_REDUCED_COLOR_8}


def decode_jpeg(data: np.ndarray | bytes, scale: int = 1) -> np.ndarray | None:
    """A camera's JPEG to BGR pixels at 1/``scale`` size; None when it is not a JPEG."""
    buf = np.frombuffer(data, np.uint8) if isinstance(data, (bytes, bytearray)) else data.reshape(-1)
    # Camera frames carry no meaningful EXIF orientation; FFmpeg ignores it too.
    return cv2.imdecode(buf, JPEG_SCALE_FLAGS[scale] | cv2.IMREAD_IGNORE_ORIENTATION)


def decode_jpeg_grey(data: np.ndarray | bytes) -> np.ndarray | None:
    """A camera's JPEG as greyscale at 1/8 size (libjpeg's cheapest decode); None when not a JPEG."""
    buf = np.frombuffer(data, np.uint8) if isinstance(data, (bytes, bytearray)) else data.reshape(-1)
    return cv2.imdecode(buf, cv2.IMREAD_REDUCED_GRAYSCALE_8 | cv2.IMREAD_IGNORE_ORIENTATION)


def decode_jpeg_colour_8(data: np.ndarray | bytes) -> np.ndarray | None:
    """A camera's JPEG as BGR at 1/8 size, for the change gate's luma and chroma
    thumbnails; None when not a JPEG. libjpeg decodes only each 8x8 block's average
    (as for the greyscale 1/8 decode): +5-15 % over that, and half a full decode."""
    buf = np.frombuffer(data, np.uint8) if isinstance(data, (bytes, bytearray)) else data.reshape(-1)
    return cv2.imdecode(buf, cv2.IMREAD_REDUCED_COLOR_8 | cv2.IMREAD_IGNORE_ORIENTATION)


def _linear(frame: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    return cv2.resize(frame, size, interpolation=cv2.INTER_LINEAR)


class Scratch:
    """One camera's working images, kept from frame to frame.

    A camera's frames all go through the same sizes, so a big step (the first
    halving of a 1080p frame is 1.5 MB) can be written into the buffer the last
    frame used instead of a fresh one (see ``REUSE_MIN_BYTES``; smaller results
    are allocated as usual). At most
    ``MAX_KEPT`` buffers, the least recently used dropped. What ``resize`` returns
    is valid until the next call for the same size: nothing it returns may leave the
    capture thread that owns it (``prepare_with_preview`` copies when it would).
    """

    MAX_KEPT = 6  # a 4K frame with a region goes through five big sizes

    def __init__(self) -> None:
        self._kept: OrderedDict[tuple[int, ...], np.ndarray] = OrderedDict()

    def _buffer(self, shape: tuple[int, ...]) -> np.ndarray | None:
        """The kept buffer for ``shape`` (uint8), or None: then the caller allocates."""
        if math.prod(shape) < REUSE_MIN_BYTES:
            return None
        return self._kept.pop(shape, None)

    def _keep(self, image: np.ndarray) -> np.ndarray:
        if image.nbytes >= REUSE_MIN_BYTES and image.dtype == np.uint8:
            self._kept[image.shape] = image
            while len(self._kept) > self.MAX_KEPT:
                self._kept.popitem(last=False)
        return image

    def resize(self, frame: np.ndarray, size: tuple[int, int]) -> np.ndarray:
        """``cv2.resize`` (bilinear) into a kept buffer when the result is big."""
        dst = self._buffer((size[1], size[0]) + frame.shape[2:])
        return self._keep(cv2.resize(frame, size, dst=dst, interpolation=cv2.INTER_LINEAR))

    def grey(self, frame: np.ndarray) -> np.ndarray:
        """BGR to greyscale (``cv2.cvtColor``) into a kept buffer when the result is big."""
        dst = self._buffer(frame.shape[:2])
        return self._keep(cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY, dst=dst))

    def holds(self, image: np.ndarray) -> bool:
        return any(np.may_share_memory(image, kept) for kept in self._kept.values())

    def clear(self) -> None:
        self._kept.clear()


def halvings(width: int, height: int, size: tuple[int, int]) -> int:
    """How many times ``shrink`` halves a ``width`` x ``height`` image on its way to
    ``size`` (pure): ``halvings(1920, 1080, (416, 234)) == 2``."""
    n = 0
    while width >= 2 * size[0] and height >= 2 * size[1]:
        width, height, n = width // 2, height // 2, n + 1
    return n


def halve(frame: np.ndarray, times: int, resize: Resize = _linear) -> np.ndarray:
    """``frame`` halved ``times`` times (bilinear at exactly half size: 2x2 box averages)."""
    for _ in range(times):
        frame = resize(frame, (frame.shape[1] // 2, frame.shape[0] // 2))
    return frame


def shrink(frame: np.ndarray, size: tuple[int, int], resize: Resize = _linear) -> np.ndarray:
    """Downscale to ``size``: halve while at least 2x too big, then bilinear.

    Bilinear at exactly half size averages each 2x2 block (a box filter), so the
    halvings keep fine detail from aliasing, and the last step shrinks by less than
    2x, where bilinear is close to area averaging: on camera-like frames its output
    is within a PSNR of 38 dB of INTER_AREA's (no visible difference) for a fifth of
    the CPU (INTER_AREA takes ~3 ms for 640x480 -> 416x312 with OpenCV 5, which was
    the largest cost per classified frame).
    """
    frame = halve(frame, halvings(frame.shape[1], frame.shape[0], size), resize)
    if (frame.shape[1], frame.shape[0]) == size:
        return frame
    return resize(frame, size)


def resize_for_api(frame: np.ndarray, longest: int, resize: Resize = _linear) -> np.ndarray:
    height, width = frame.shape[:2]
    size = target_size(width, height, longest)
    if size == (width, height):
        return frame
    return shrink(frame, size, resize)


def encode_jpeg(frame: np.ndarray, quality: int) -> bytes:
    ok, buf = cv2.imencode(".jpg", frame, [int(cv2.IMWRITE_JPEG_QUALITY), int(quality)])
    if not ok:
        raise ValueError("JPEG encoding failed")
    return buf.tobytes()


def prepare(frame: np.ndarray, longest: int, quality: int, region: Region | None = None) -> bytes:
    """The one path every image takes before it is sent: crop, resize, then JPEG."""
    return encode_jpeg(resize_for_api(crop(frame, region), longest), quality)


def prepare_with_preview(frame: np.ndarray, longest: int, quality: int, region: Region | None,
                         preview_longest: int, scratch: Scratch | None = None,
                         frame_is_kept: bool = False) -> tuple[bytes, np.ndarray]:
    """What a taken frame becomes: the JPEG that is sent (exactly ``prepare``'s) and
    the whole frame at most ``preview_longest`` px for people (exactly
    ``resize_for_api``'s), computed together: without a region both start with the
    same halvings, done once (the first halving of a 1080p frame reads all 6 MB of
    it). In-between images go through ``scratch``. The preview is always an array of
    its own, never ``scratch``'s nor, when ``frame_is_kept`` (a buffer the source
    writes the next frame into), ``frame`` itself."""
    resize: Resize = scratch.resize if scratch is not None else _linear
    height, width = frame.shape[:2]
    preview_size = target_size(width, height, preview_longest)
    base = frame
    api_size = target_size(width, height, longest)
    if region is None:
        base = halve(frame, min(halvings(width, height, api_size), halvings(width, height, preview_size)), resize)
        api = shrink(base, api_size, resize)
    else:
        api = resize_for_api(crop(frame, region), longest, resize)
    jpeg = encode_jpeg(api, quality)
    # image_size 640: the API's image is the preview already (the same steps from the same base)
    preview = api if region is None and api_size == preview_size else shrink(base, preview_size, resize)
    if (frame_is_kept and np.may_share_memory(preview, frame)) or (scratch is not None and scratch.holds(preview)):
        preview = preview.copy()
    return jpeg, preview
