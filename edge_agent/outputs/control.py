"""Control messages from MQTT (pure parsing): ``P/<camera>/set/<field>``,
``P/<camera>/snapshot/request``, ``classify`` and ``collect``. A bad payload raises ValueError with the reason."""

from __future__ import annotations

import math
from dataclasses import dataclass
from ..strenum import StrEnum

MAX_FPS = 60.0
MIN_FPS = 0.001  # one look every 1000 s; below, a typo (1e-300) would leave the camera blind


class CommandField(StrEnum):
    """What a control message acts on (the value is the topic's word)."""
    ENABLED = "enabled"  # P/<camera>/set/enabled: ON or OFF
    FPS = "fps"  # P/<camera>/set/fps: a number
    SNAPSHOT = "snapshot"  # P/<camera>/snapshot/request: any payload
    CLASSIFY = "classify"  # P/<camera>/classify: any payload
    COLLECT = "collect"  # P/<camera>/collect: empty (the model's guess) or the class a person gives


@dataclass(frozen=True)
class Command:
    camera: str
    field: CommandField
    value: bool | float | str | None = None  # collect: the class a person gave, None: the model's guess


MAX_LABEL = 200  # characters of a class name in a collect message (reply.MAX_CLASS_NAME)


def parse_command(camera: str, field: str, payload: bytes) -> Command:
    if field in (CommandField.SNAPSHOT, CommandField.CLASSIFY):  # any payload
        return Command(camera, CommandField(field))
    try:
        text = payload.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise ValueError("payload is not UTF-8 text") from None
    if field == CommandField.COLLECT:
        if len(text) > MAX_LABEL or not text.isprintable():
            raise ValueError(f"collect takes nothing or a class name of at most {MAX_LABEL} printable "
                             f"characters, got {text[:40]!r}")
        return Command(camera, CommandField.COLLECT, text or None)
    if field == CommandField.ENABLED:
        word = text.upper()
        if word in ("ON", "TRUE", "1"):
            return Command(camera, CommandField.ENABLED, True)
        if word in ("OFF", "FALSE", "0"):
            return Command(camera, CommandField.ENABLED, False)
        raise ValueError(f"enabled takes ON or OFF, got {text[:40]!r}")
    if field == CommandField.FPS:
        try:
            fps = float(text)
        except ValueError:
            raise ValueError(f"fps takes a number, got {text[:40]!r}") from None
        if not math.isfinite(fps) or not MIN_FPS <= fps <= MAX_FPS:
            raise ValueError(f"fps must be >= {MIN_FPS:g} and <= {MAX_FPS:g}, got {text[:40]!r}")
        return Command(camera, CommandField.FPS, fps)
    raise ValueError(f"unknown setting {field[:40]!r} (known: enabled, fps)")
