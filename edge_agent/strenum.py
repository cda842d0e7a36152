"""``enum.StrEnum`` (Python 3.11), and the same for Python 3.10 (Ubuntu 22.04),
which the agent still supports: members are their words in comparisons, ``str()``,
f-strings and JSON, so kinds and outcomes are enums while logs, metrics and MQTT
show the words they always did."""

from __future__ import annotations

import enum
import sys

if sys.version_info >= (3, 11):
    StrEnum = enum.StrEnum
else:  # pragma: no cover - exercised by tests/test_strenum.py on 3.10
    class StrEnum(str, enum.Enum):
        def __str__(self) -> str:
            return str(self.value)

        def __format__(self, spec: str) -> str:
            return str.__format__(str(self.value), spec)
