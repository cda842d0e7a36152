"""The Raspberry Pi camera (``source: rpicam`` or ``rpicam:<n>``), through ``rpicam-vid``.

libcamera cameras are not plain V4L2 devices OpenCV can read, so the agent runs
``rpicam-vid`` (``libcamera-vid`` before Bookworm), which encodes MJPEG on the
Pi's hardware and writes it to stdout: a ``PipeSource`` reads it.

Frame rate: the camera should deliver just above what the agent looks at, at most
30 (``camera_framerate``). Fewer frames cost less to encode and pipe, and a lower
frame rate lets the exposure grow longer in the dark; one frame more than needed
a second keeps a fresh frame ready when the agent looks.

``--flush`` makes rpicam-vid flush stdout after every frame: without it the end
of each JPEG waits in stdio's buffer for the next frame, a whole frame late (half
a second at 2 fps).
"""

from __future__ import annotations

import math
import shutil
from typing import TYPE_CHECKING, Callable

from .pipe import PipeSource

if TYPE_CHECKING:
    from ..config import CameraConfig

TOOLS = ("rpicam-vid", "libcamera-vid")
NOT_INSTALLED = "neither rpicam-vid nor libcamera-vid is installed: sudo apt install rpicam-apps"
MAX_FRAMERATE = 30


def camera_framerate(fps: float) -> int:
    """The frame rate to ask of the camera for ``fps`` looks a second: one more than
    needed (rounded up), at least 2, at most 30."""
    return min(MAX_FRAMERATE, max(math.ceil(fps) + 1, 2))


def find_tool(which: Callable[[str], str | None] = shutil.which) -> str | None:
    """The camera tool's name, newest first; None if neither is installed."""
    for tool in TOOLS:
        if which(tool):
            return tool
    return None


def rpicam_argv(camera: int, width: int, height: int, fps: float, options: list[str],
                which: Callable[[str], str | None] = shutil.which) -> list[str] | str:
    """The command that streams camera ``camera`` as MJPEG to stdout, or why there is none.
    ``options`` (from the config) go last before the output, so they can override
    anything but the codec and the output."""
    tool = find_tool(which)
    if tool is None:
        return NOT_INSTALLED
    return [tool, "--camera", str(camera), "-t", "0", "--nopreview", "--codec", "mjpeg",
            "--width", str(width), "--height", str(height),
            "--framerate", str(camera_framerate(fps)), "--flush",
            *options, "-o", "-"]


class RpicamSource(PipeSource):
    """A ``PipeSource`` on rpicam-vid. The tool is looked up at every open, so
    installing rpicam-apps while the agent runs is picked up at the next retry."""

    def __init__(self, cfg: "CameraConfig", camera: int, *,
                 which: Callable[[str], str | None] = shutil.which):
        super().__init__(cfg.name, [], stall_timeout=cfg.stall_timeout, shown=f"Pi camera {camera}")
        self.camera = camera
        self.width, self.height = cfg.resolution
        self.fps = cfg.fps
        self.options = list(cfg.options)
        self._which = which

    def open(self) -> str | None:
        argv = rpicam_argv(self.camera, self.width, self.height, self.fps, self.options, self._which)
        if isinstance(argv, str):
            self.close()
            self.error = argv
            return argv
        self.argv = argv
        return super().open()

    def info(self) -> str:
        tool = self.argv[0] if self.argv else TOOLS[0]
        return f"{tool}, {self.width}x{self.height} MJPEG at {camera_framerate(self.fps)} fps"
