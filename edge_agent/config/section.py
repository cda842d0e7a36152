"""One mapping of a config at its key path.

Design rule: a section is checked when it is made: it is a mapping (null reads as
empty) whose keys are all names, so no reader ever sorts or compares a key that
is not a string; every key path in an error is made here (``cameras[0].fps``).
"""

from __future__ import annotations

from typing import Any, Mapping

from .errors import ConfigError, did_you_mean, show


class Section:
    """One mapping of the config at a key path (``""`` for the top level)."""

    def __init__(self, path: str, data: Any):
        if data is None:
            data = {}
        if not isinstance(data, Mapping):
            raise ConfigError(path or "top level", f"must be a mapping, got {show(data)}")
        self.path = path
        for k in data:
            if not isinstance(k, str):
                raise ConfigError(path or "top level", f"has a key that is not a name: {show(k)}")
        self.data: dict[str, Any] = dict(data)

    def key(self, name: str) -> str:
        return f"{self.path}.{name}" if self.path else name

    def get(self, name: str) -> Any:
        return self.data.get(name)

    def check_keys(self, known: set[str]) -> None:
        """Fail on the first key not among ``known``."""
        unknown = sorted(set(self.data) - known)
        if unknown:
            raise ConfigError(self.key(unknown[0]), "unknown key" + did_you_mean(unknown[0], known))
