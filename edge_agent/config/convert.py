"""The converters named by fields whose value is more than a bounded number or word.

Design rule: a converter checks and converts ONE given value of one field, as
``(value, key, context) -> value``, raising :class:`ConfigError` at ``key``; it
never looks at another field (those rules are parse.py's) and does no I/O beyond
asking whether a named file exists. A field names its converter in its spec
(model.py), so a camera's ``source`` is read by :func:`source` wherever a
``CameraConfig`` is read.
"""

from __future__ import annotations

import enum
import re
import shlex
from pathlib import Path
from typing import Any

from ..redact import redact_url
from .errors import ConfigError, did_you_mean, show
from .spec import Context, Converter

NAME_RE = re.compile(r"^[a-z0-9_-]+$")
MODEL_RE = re.compile(r"^[A-Za-z0-9_.-]+/[0-9]+$")
PROJECT_RE = re.compile(r"^[A-Za-z0-9_.-]+$")  # a Roboflow project's slug (api.model before the /)
BATCH_RE = re.compile(r"^[A-Za-z0-9 _-]{1,50}$")

Box = tuple[float, float, float, float]


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def http_url(url: str, key: str, ctx: Context) -> str:
    if not re.match(r"^https?://[^/\s]+", url):
        raise ConfigError(key, f"must be an http:// or https:// URL, got {redact_url(url)!r}")
    return url.rstrip("/")


def mqtt_topic(prefix: str, key: str, ctx: Context) -> str:
    if (not prefix or any(c in prefix for c in "+#\0") or prefix.startswith("/") or prefix.endswith("/")
            or "//" in prefix):
        raise ConfigError(key, f"must be a topic without wildcards or empty levels, got {prefix!r}")
    return prefix


def discovery_prefix(prefix: str, key: str, ctx: Context) -> str:
    if not prefix or any(c in prefix for c in "+#\0") or prefix.startswith("/") or prefix.endswith("/"):
        raise ConfigError(key, f"must be a topic without wildcards, got {prefix!r}")
    return prefix


def basic_auth_user(username: str, key: str, ctx: Context) -> str:
    if ":" in username:
        raise ConfigError(key, "must not contain ':' (HTTP basic auth cannot carry it)")
    return username


def host_port(listen: str, key: str, ctx: Context) -> tuple[str, int]:
    """``HOST:PORT`` (``[v6]:PORT`` too) as the host and the port."""
    host, sep, port_text = listen.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ConfigError(key, f"must be HOST:PORT, e.g. 127.0.0.1:8080, got {listen!r}")
    return host, int(port_text)


def existing_file(name: str, key: str, ctx: Context) -> str:
    """A file that must exist (a CA bundle, a certificate); "" means none."""
    if name and not Path(name).is_file():
        raise ConfigError(key, f"file {name!r} does not exist")
    return name


def config_path(name: str, key: str, ctx: Context) -> str | None:
    """A file named relative to the config's folder, as an absolute path; "" means none."""
    if not name:
        return None
    path = Path(name)
    return str(path if path.is_absolute() else ctx.base_dir / path)


def source(value: Any, key: str, ctx: Context) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise ConfigError(key, f"must be a device index, a path or a URL, got {show(value)}")
    if isinstance(value, int) and value < 0:
        raise ConfigError(key, f"device index must be >= 0, got {value}")
    text = str(value).strip()
    if not text:
        raise ConfigError(key, "must not be empty")
    if text.startswith("exec:"):
        try:
            argv = shlex.split(text[len("exec:"):])
        except ValueError as exc:
            raise ConfigError(key, f"exec: command line does not parse: {exc}") from None
        if not argv:
            raise ConfigError(key, "exec: needs a command, e.g. exec:rpicam-vid -t 0 --codec mjpeg -o -")
    elif text == "rpicam" or text.startswith("rpicam:"):
        n = text[len("rpicam:"):] if ":" in text else "0"
        if not n.isdigit():
            raise ConfigError(key, f"must be rpicam or rpicam:<camera number>, got {text!r}")
    return text


def pixels(lo: int, hi: int) -> Converter:
    """``[width, height]``, each a whole number of pixels from ``lo`` to ``hi``."""

    def size(value: Any, key: str, ctx: Context) -> tuple[int, int]:
        if (not isinstance(value, list) or len(value) != 2
                or not all(isinstance(v, int) and not isinstance(v, bool) and lo <= v <= hi for v in value)):
            raise ConfigError(key, f"must be [width, height] in pixels ({lo}..{hi}), got {show(value)}")
        return (value[0], value[1])

    return size


def options(value: Any, key: str, ctx: Context) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, (str, int, float)) and not isinstance(v, bool)
                                              for v in value):
        raise ConfigError(key, f"must be a list of command-line arguments, got {show(value)}")
    return tuple(str(v) for v in value)


def region(value: Any, key: str, ctx: Context) -> tuple[float, float, float, float]:
    if not isinstance(value, list) or len(value) != 4:
        raise ConfigError(key, f"must be [x1, y1, x2, y2] as fractions of the frame, got {show(value)}")
    if not all(_number(v) for v in value):
        raise ConfigError(key, f"must be four numbers, got {value}")
    x1, y1, x2, y2 = (float(v) for v in value)
    if not (0 <= x1 < x2 <= 1 and 0 <= y1 < y2 <= 1):
        raise ConfigError(key, f"needs 0 <= x1 < x2 <= 1 and 0 <= y1 < y2 <= 1, got {value}")
    return (x1, y1, x2, y2)


def classes(value: Any, key: str, ctx: Context) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ConfigError(key, f"must be a list of class names, got {show(value)}")
    if len(set(value)) != len(value):
        raise ConfigError(key, f"has a duplicate: {value}")
    return tuple(value)


def words_of(of: type[enum.Enum]) -> Converter:
    """A non-empty list of distinct words, each one of the enum ``of``'s values (read as that enum)."""
    words = [m.value for m in of]

    def convert(value: Any, key: str, ctx: Context) -> tuple[Any, ...]:
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not value:
            got = "an empty list" if value == [] else show(value)
            raise ConfigError(key, f"must be a non-empty list of {', '.join(words)}, got {got}")
        out = []
        for i, word in enumerate(value):
            if word not in words:
                raise ConfigError(f"{key}[{i}]", f"must be one of {', '.join(words)}, got {show(word)}"
                                  + (did_you_mean(word, set(words)) if isinstance(word, str) else ""))
            if of(word) in out:
                raise ConfigError(f"{key}[{i}]", f"{word!r} is listed twice")
            out.append(of(word))
        return tuple(out)
    return convert


def boxes(value: Any, key: str, ctx: Context) -> tuple[Box, ...]:
    """A list of ``[x, y, w, h]`` boxes as fractions of the frame."""
    if not isinstance(value, list):
        raise ConfigError(key, f"must be a list of [x, y, w, h] boxes as fractions of the frame, got {show(value)}")
    out = []
    for i, box in enumerate(value):
        if not isinstance(box, list) or len(box) != 4 or not all(_number(v) for v in box):
            raise ConfigError(f"{key}[{i}]", f"must be [x, y, w, h] as fractions of the frame, got {show(box)}")
        x, y, w, h = (float(v) for v in box)
        if not (0 <= x < 1 and 0 <= y < 1 and 0 < w and 0 < h and x + w <= 1 + 1e-9 and y + h <= 1 + 1e-9):
            raise ConfigError(f"{key}[{i}]",
                              f"needs 0 <= x, y < 1, w and h > 0 and the box inside the frame, got {box}")
        out.append((x, y, w, h))
    return tuple(out)
