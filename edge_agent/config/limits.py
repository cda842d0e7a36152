"""Bounds on what a config may make the agent do.

Design rule: a hostile or broken file is a config error (exit 2) within a second
and in bounded memory, never a hang, a traceback or an out-of-memory kill; each
bound here says what it is measured against, so whoever changes one knows what
else must change with it (MAX_CAMERAS with the unit's TasksMax=).
"""

MAX_CONFIG_BYTES = 64 * 1024  # a real config is a few KB; pure-Python YAML parses 64 KiB in < 1 s
MAX_KEY_FILE_BYTES = 4096  # an API key (or the status page's password) is one short line
MAX_NODES = 10_000  # values after YAML aliases are followed (a 64 KiB file without aliases has fewer)
MAX_DEPTH = 32  # nesting levels; a real config needs 5
# The systemd unit's TasksMax= caps the service's threads. Measured (`edge-agent run` on
# N H.264 file cameras, counting /proc/PID/task): each camera costs its capture thread,
# one FFmpeg decode thread per CPU core and one more native thread started with the
# decoder. `edge-agent run` caps FFmpeg's decode threads at 4 (OPENCV_FFMPEG_THREADS:
# a Pi has 4 cores; more add nothing at our frame rates), so a camera costs at most 6.
# The agent itself: the main thread, paho's, asyncio's default executor (at most
# cores + 4), the malloc-trim thread (memory.py) and one more: 12 on a Pi, 14 on an
# 8-core machine (OpenCV's own worker pool is one thread: OPENCV_FOR_THREADS_NUM=1). With TasksMax=256:
# 14 + 16 x 6 = 110 tasks, more than twice that to spare for reopens and bursts.
TASKS_MAX = 256
THREADS_PER_CAMERA = 6
AGENT_THREADS = 14
MAX_CAMERAS = 16


def too_many_cameras(n: int) -> str | None:
    """Why ``n`` cameras are too many for the service, or None."""
    if n <= MAX_CAMERAS:
        return None
    return (f"at most {MAX_CAMERAS} cameras, got {n} (the service's TasksMax={TASKS_MAX} allows {MAX_CAMERAS} "
            f"at up to {THREADS_PER_CAMERA} threads each plus {AGENT_THREADS} for the agent, with room to spare)")


MAX_VIEWS = 8  # views of one camera: each is classified as a camera of its own
