"""Config errors: ``<key path>: <what is wrong>``, and how a bad value is shown in one.

Design rule: every problem in a config is one :class:`ConfigError` naming the key
path and what is wrong, e.g. ``cameras[1].fps: must be > 0, got -2``; the helpers
here are the only way a value is written into such a message, so a hostile value
(a 5000-digit number, a huge list) never makes one unbounded.
"""

from __future__ import annotations

import difflib
from typing import Any, Mapping


class ConfigError(ValueError):
    """A config problem; ``str()`` is ``<key path>: <what is wrong>``."""

    def __init__(self, key: str, problem: str):
        self.key = key
        self.problem = problem
        super().__init__(f"{key}: {problem}" if key else problem)


def did_you_mean(name: str, known: set[str]) -> str:
    close = difflib.get_close_matches(name, sorted(known), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def fmt(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


def show(value: Any) -> str:
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > 10**30:
        return f"a {len(str(abs(value)))}-digit number"
    text = repr(value)
    return text if len(text) <= 100 else text[:97] + "..."
