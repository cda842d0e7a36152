"""glibc malloc settings for a daemon that handles large, short-lived buffers.

Frames are large (a 640x480 BGR frame is 0.9 MB, a 1080p one 6 MB) and live for
one look, and OpenCV allocates some of them itself (``cv2.imdecode`` decodes into
a buffer of its own and copies that into the array it returns: two frame-sized
blocks per decode that no caller can keep). glibc's default suits that: a block
over its mmap threshold (128 KiB at the start) is mapped on its own, and when
such a block is freed the threshold rises to its size (up to 32 MB), so from the
second frame on a camera's frame-sized blocks come from the heap, reused frame
after frame without a page fault. A fixed 128 KiB threshold (this module's
setting until #23) mapped every one of them afresh instead, faulted in page by
page on every frame: 500 page faults and 3.1 ms for a 640x480 JPEG's decode,
resize and encode against 1.6 ms (7.2 against 3.4 ms at 1280x720), +30-40 % CPU
per result for a 640x480 camera, to save 1-2 MB of heap (bench_agent.py live).

What the moving threshold costs is memory freed and not reused: it stays in the
heap until the top of it grows past the trim threshold (twice the mmap
threshold). So: two arenas instead of up to eight per core (each keeps free
memory of its own), and ``malloc_trim`` at the moments that free memory without
handing back what the next frame needs: after a capture opens (``release()``:
the probe's buffers just freed) and once a minute (``TRIM_INTERVAL``: whatever a
burst left behind, a snapshot or a reopen); the next frame's blocks fault in
again at most once a minute. Elsewhere (musl, macOS) these are no-ops, and so
they are with ``EDGE_AGENT_MALLOC=glibc`` in the environment (glibc's defaults:
to compare, or should these ever misbehave).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import threading

log = logging.getLogger(__name__)

M_ARENA_MAX = -8
ARENA_MAX = 2
TRIM_INTERVAL = 60.0  # s between trims (each about a millisecond, plus the next frame's faults)


def _libc() -> ctypes.CDLL | None:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.mallopt, libc.malloc_trim  # noqa: B018 - glibc only
    except (OSError, AttributeError):
        return None
    return libc


_LIBC = None if os.environ.get("EDGE_AGENT_MALLOC") == "glibc" else _libc()
_trimmer: threading.Thread | None = None


def tune(trim_interval: float | None = TRIM_INTERVAL) -> bool:
    """Set the arena limit and start the periodic trim (a daemon thread, every
    ``trim_interval`` s; None: none); True when glibc took the setting. Call it
    early (before cv2 is imported and its threads start)."""
    global _trimmer
    if _LIBC is None:
        return False
    ok = _LIBC.mallopt(M_ARENA_MAX, ARENA_MAX) == 1
    if not ok:  # pragma: no cover - glibc refuses only values out of range
        log.debug("mallopt refused M_ARENA_MAX; keeping glibc's default")
    if trim_interval is not None and _trimmer is None:
        _trimmer = threading.Thread(target=_trim_every, args=(trim_interval,), name="malloc-trim", daemon=True)
        _trimmer.start()
    return ok


def _trim_every(interval: float) -> None:
    wait = threading.Event().wait  # never set: a sleep that a daemon thread may die in
    while True:
        wait(interval)
        release()


def release() -> None:
    """Hand free heap pages back to the kernel (glibc's malloc_trim); thread-safe,
    about a millisecond. Called after a capture opens and once a minute, not per frame."""
    if _LIBC is not None:
        _LIBC.malloc_trim(0)
