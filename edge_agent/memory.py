"""glibc malloc settings for a daemon that handles large, short-lived buffers.

Frames are megabytes each (a 1080p BGR frame is 6 MB; FFmpeg's probe buffers at
open are several) and live for one look. glibc's defaults suit the opposite: after
the first large block is freed it raises its mmap threshold (up to 32 MB), so every
later frame buffer comes from the heap, and what is freed there stays resident; and
every thread that meets contention gets its own arena (up to 8 per core), each
keeping its own free memory. Measured (bench/bench_sources.py), that is 10-20 MB of
a 1080p H.264 camera's heap that holds nothing.

So: a fixed 128 KiB mmap threshold (a block that large is mapped on its own and
handed back to the kernel when freed), two arenas, and ``release()``, which asks
glibc to return free heap pages once a capture has opened (the probe's buffers
just freed). Elsewhere (musl, macOS) these are no-ops, and so they are with
``EDGE_AGENT_MALLOC=glibc`` in the environment (glibc's defaults: to compare, or
should these ever misbehave).

The cost: a block over the threshold is a fresh mapping each time, so its page
faults each time (about 2 ms for a 6 MB 1080p frame on the bench machine, more than
the work done on it). So the few big buffers a camera needs for every frame are
kept on purpose instead (a source's retrieve buffer, ``encode.Scratch``): the
memory they hold is the memory the frames need, and nothing else lingers.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os

log = logging.getLogger(__name__)

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
M_ARENA_MAX = -8
MMAP_THRESHOLD = 128 * 1024
TRIM_THRESHOLD = 128 * 1024
ARENA_MAX = 2


def _libc() -> ctypes.CDLL | None:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.mallopt, libc.malloc_trim  # noqa: B018 - glibc only
    except (OSError, AttributeError):
        return None
    return libc


_LIBC = None if os.environ.get("EDGE_AGENT_MALLOC") == "glibc" else _libc()


def tune() -> bool:
    """Set the malloc parameters above; True when glibc took them. Call it early
    (before cv2 is imported): it applies to allocations made after it."""
    if _LIBC is None:
        return False
    ok = all(_LIBC.mallopt(param, value) == 1 for param, value in
             ((M_MMAP_THRESHOLD, MMAP_THRESHOLD), (M_TRIM_THRESHOLD, TRIM_THRESHOLD), (M_ARENA_MAX, ARENA_MAX)))
    if not ok:  # pragma: no cover - glibc refuses only values out of range
        log.debug("mallopt refused a setting; keeping glibc's defaults for it")
    return ok


def release() -> None:
    """Hand free heap pages back to the kernel (glibc's malloc_trim); thread-safe,
    about a millisecond. Called after a capture opens, not per frame."""
    if _LIBC is not None:
        _LIBC.malloc_trim(0)
