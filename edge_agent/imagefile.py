"""A local image file for the CLI (``classify``, ``collect``): read bounded, decoded bounded.

Design rule: a path a user gives is read as a regular file only (a FIFO would
block, /dev/zero never ends), never more than ``MAX_IMAGE_FILE`` bytes, and decoded
by OpenCV with its pixel cap set (``OPENCV_IO_MAX_IMAGE_PIXELS``, set by
:func:`load_image` before cv2 is imported). A problem is :class:`NotAnImage`,
whose message says why without the path.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

MAX_IMAGE_FILE = 64 * 1024 * 1024  # bytes of an image file the CLI reads (a phone's 50-Mpx JPEG: ~20 MB)
MAX_IMAGE_PIXELS = 100_000_000  # OpenCV refuses to decode more (a small PNG can claim 400 Mpx: 1.2 GB)


class NotAnImage(Exception):
    """The file cannot be read as an image: the message says why (no path in it)."""


def read_image_file(path: str, limit: int = MAX_IMAGE_FILE) -> tuple[bytes, float]:
    """A regular file's bytes, at most ``limit``, and its mtime: never opens a FIFO or
    a device (a FIFO would block, /dev/zero never ends), never reads more than ``limit + 1``."""
    import stat

    try:
        st = os.stat(path)
        if not stat.S_ISREG(st.st_mode):
            raise NotAnImage("not a regular file")
        if st.st_size > limit:
            raise NotAnImage(f"larger than {limit // (1024 * 1024)} MiB ({st.st_size} bytes)")
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOCTTY", 0))
    except FileNotFoundError:
        raise NotAnImage("no such file") from None
    except OSError as exc:
        raise NotAnImage(exc.strerror or type(exc).__name__) from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):  # swapped for something else since the stat
            raise NotAnImage("not a regular file")
        chunks, size = [], 0
        while size <= limit and (chunk := os.read(fd, limit + 1 - size)):
            chunks.append(chunk)
            size += len(chunk)
    except OSError as exc:
        raise NotAnImage(exc.strerror or type(exc).__name__) from None
    finally:
        os.close(fd)
    if size > limit:
        raise NotAnImage(f"larger than {limit // (1024 * 1024)} MiB")
    return b"".join(chunks), st.st_mtime


def decode_image(data: bytes) -> "np.ndarray":
    """BGR pixels of an image file's bytes (``OPENCV_IO_MAX_IMAGE_PIXELS`` set before cv2's import)."""
    import cv2
    import numpy as np

    try:
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    except cv2.error as exc:
        if "CV_IO_MAX_IMAGE_PIXELS" in str(exc):
            cap = os.environ.get("OPENCV_IO_MAX_IMAGE_PIXELS", str(MAX_IMAGE_PIXELS))
            megapixels = f"{int(cap) / 1e6:g}" if cap.isdigit() else cap
            raise NotAnImage(f"more than {megapixels} megapixels") from None
        raise NotAnImage("not an image OpenCV can read") from None
    if image is None:
        raise NotAnImage("not an image OpenCV can read")
    return image


def load_image(path: str) -> "tuple[np.ndarray, float]":
    """BGR pixels of the image file at ``path``, and its mtime: bounded in bytes and pixels."""
    os.environ.setdefault("OPENCV_IO_MAX_IMAGE_PIXELS", str(MAX_IMAGE_PIXELS))
    data, mtime = read_image_file(path)
    return decode_image(data), mtime
