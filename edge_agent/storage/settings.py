"""Settings made over MQTT (``set/enabled``, ``set/fps``), kept across restarts.

They live in ``settings.json`` in the state directory, per camera, beside the
config value they replaced. At start a kept setting is applied only while the
config still says what it said when the setting was made: a user who edits the
config file afterwards has the last word, and nothing stale overrides it.
"""

from __future__ import annotations

import logging
import math
from typing import TYPE_CHECKING, Any

from ..outputs.control import MAX_FPS
from .files import JsonFile

if TYPE_CHECKING:
    from ..camera import CameraRuntime

log = logging.getLogger(__name__)


class Settings:
    def __init__(self, file: JsonFile | None):
        self._file = file
        data = file.load() if file is not None else {}
        cameras = data.get("cameras")
        self._cameras: dict[str, dict[str, Any]] = cameras if isinstance(cameras, dict) else {}

    def apply(self, cam: "CameraRuntime") -> None:
        """Restore what was set over MQTT for this camera, if the config has not changed since."""
        kept = self._cameras.get(cam.name)
        if not isinstance(kept, dict):
            return
        changed = []
        fps = kept.get("fps")
        if (isinstance(fps, (int, float)) and not isinstance(fps, bool) and math.isfinite(fps)
                and 0 < fps <= MAX_FPS and kept.get("config_fps") == cam.cfg.fps and fps != cam.cfg.fps):
            cam.admission.set_fps(float(fps))
            changed.append(f"fps {fps:g}")
        if kept.get("enabled") is False:
            cam.admission.paused = True
            changed.append("paused")
        if changed:
            log.info("%s: %s, as set over MQTT before the restart (kept in %s)", cam.name, ", ".join(changed),
                     self._file.path if self._file else "memory")

    def record(self, cam: "CameraRuntime") -> None:
        """Keep the camera's current settings (called after each control change)."""
        self._cameras[cam.name] = {"enabled": cam.enabled, "fps": round(cam.fps, 6), "config_fps": cam.cfg.fps}
        if self._file is not None:
            self._file.save({"cameras": self._cameras})
