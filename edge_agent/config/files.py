"""Reading the config file and the key files it names, in bounded time and memory.

Design rule: a file is read only if it is a regular file of at most its limit
(limits.py), never more than ``limit + 1`` bytes, and YAML is composed no deeper
than MAX_DEPTH levels: ``/dev/zero``, a FIFO, a directory, a 100 MB file or 64 KiB
of ``[`` is a ConfigError within a second, never a hang or a traceback. This
module knows bytes and YAML, not what a config means (parse.py).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import yaml

from .errors import ConfigError
from .limits import MAX_CONFIG_BYTES, MAX_DEPTH, MAX_KEY_FILE_BYTES


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISDIR, "a directory"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return "not a regular file"


def _size_text(n: int) -> str:
    return f"{n // 1024} KiB" if n % 1024 == 0 else f"{n} bytes"


class _Loader(yaml.SafeLoader):
    """``yaml.safe_load``'s loader, refusing to nest deeper than MAX_DEPTH: PyYAML
    composes recursively (64 KiB of ``[`` is a RecursionError after a second)."""

    _depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self._depth >= MAX_DEPTH:
            raise yaml.composer.ComposerError(None, None, f"nested more than {MAX_DEPTH} levels deep",
                                              self.peek_event().start_mark)
        self._depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def read_bounded_text(path: Path, limit: int, key: str, what: str) -> str:
    """The UTF-8 text of a regular file of at most ``limit`` bytes, else a ConfigError.

    Never opens a FIFO, a device or a directory (``/dev/zero`` never ends, a FIFO
    blocks until a writer comes) and never reads more than ``limit + 1`` bytes."""
    name = f"{what} {str(path)!r}" if what else repr(str(path))
    try:
        before = os.stat(path)
        if not stat.S_ISREG(before.st_mode):
            raise ConfigError(key, f"{name} is {_kind(before.st_mode)}, not a regular file")
        if before.st_size > limit:
            raise ConfigError(key, f"{name} is larger than {_size_text(limit)} ({before.st_size} bytes)")
        # O_NONBLOCK: should it be swapped for a FIFO after the check, open() does not block.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOCTTY", 0))
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise ConfigError(key, f"{name} is {_kind(st.st_mode)}, not a regular file")
            chunks: list[bytes] = []
            size = 0
            while size <= limit:
                chunk = os.read(fd, limit + 1 - size)
                if not chunk:
                    break
                chunks.append(chunk)
                size += len(chunk)
        finally:
            os.close(fd)
    except OSError as exc:
        raise ConfigError(key, f"cannot read {name}: {exc.strerror or exc}") from None
    data = b"".join(chunks)
    if len(data) > limit:
        raise ConfigError(key, f"{name} is larger than {_size_text(limit)}")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(key, f"{name} is not UTF-8 text at byte {exc.start}") from None


def read_key_file(path: str, key: str) -> str:
    """A key file's text (an API key, a password): one short line, at most MAX_KEY_FILE_BYTES."""
    return read_bounded_text(Path(path), MAX_KEY_FILE_BYTES, key, "")


def read_yaml(path: Path) -> Any:
    """The config file's YAML document (not None), or a ConfigError naming the file."""
    text = read_bounded_text(path, MAX_CONFIG_BYTES, "", "config file")
    try:
        data = yaml.load(text, Loader=_Loader)  # noqa: S506 - a SafeLoader
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError("", f"{path}: not valid YAML{where}: {getattr(exc, 'problem', exc)}") from None
    except RecursionError:
        raise ConfigError("", f"{path}: not valid YAML: nested too deeply") from None
    except (ValueError, TypeError, OverflowError) as exc:  # e.g. a date 2024-13-45, a 5000-digit number
        raise ConfigError("", f"{path}: not valid YAML: {str(exc)[:200]}") from None
    if data is None:
        raise ConfigError("", f"{path}: the file is empty")
    return data
