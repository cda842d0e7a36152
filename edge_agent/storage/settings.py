"""Settings made over MQTT (``set/enabled``, ``set/fps``), kept across restarts.

They live in ``settings.json`` in the state directory, per camera, beside the
config value they replaced. At start a kept setting is applied only while the
config still says what it said when the setting was made: a user who edits the
config file afterwards has the last word, and nothing stale overrides it.

Storage only: it is told a camera's name and figures and says what to restore;
the agent applies that to the camera.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any

from .files import JsonFile

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Restored:
    """What to restore of a camera's settings made over MQTT before the restart."""
    fps: float | None = None  # None: the config's rate stands
    paused: bool = False


class Settings:
    def __init__(self, file: JsonFile | None, *, max_fps: float):
        """``max_fps``: the highest rate a control message may set; a kept rate above it is not restored."""
        self._file = file
        self._max_fps = max_fps
        data = file.load() if file is not None else {}
        cameras = data.get("cameras")
        self._cameras: dict[str, dict[str, Any]] = cameras if isinstance(cameras, dict) else {}

    def restore(self, camera: str, config_fps: float) -> Restored:
        """What was set over MQTT for this camera, if the config (its ``fps``: ``config_fps``)
        has not changed since; logged when there is something to restore."""
        kept = self._cameras.get(camera)
        if not isinstance(kept, dict):
            return Restored()
        changed = []
        restored_fps = None
        fps = kept.get("fps")
        if (isinstance(fps, (int, float)) and not isinstance(fps, bool) and math.isfinite(fps)
                and 0 < fps <= self._max_fps and kept.get("config_fps") == config_fps and fps != config_fps):
            restored_fps = float(fps)
            changed.append(f"fps {fps:g}")
        paused = kept.get("enabled") is False
        if paused:
            changed.append("paused")
        if changed:
            log.info("%s: %s, as set over MQTT before the restart (kept in %s)", camera, ", ".join(changed),
                     self._file.path if self._file else "memory")
        return Restored(restored_fps, paused)

    def record(self, camera: str, *, enabled: bool, fps: float, config_fps: float) -> None:
        """Keep the camera's current settings (called after each control change)."""
        self._cameras[camera] = {"enabled": enabled, "fps": round(fps, 6), "config_fps": config_fps}
        if self._file is not None:
            self._file.save({"cameras": self._cameras})
