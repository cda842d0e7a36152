"""Small files kept in the agent's state directory (counters that must survive a restart).

The agent runs for months on an SD card that may fill up, turn read-only or lose
power mid-write.  So a file is replaced atomically (a reader sees the old document
or the new one, never half of each), a bad file on disk means a fresh start with
one warning instead of a crash loop, and a failing disk is logged once per episode
instead of once per write.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import stat
import tempfile
import threading
from pathlib import Path
from typing import Any

from ..episode import Episode

log = logging.getLogger(__name__)


def fsync_dir(folder: Path) -> None:
    """Make a create or rename in ``folder`` durable; some file systems refuse, then it is best effort."""
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def ensure_state_dir(path: str | Path) -> Path:
    """Create the state directory (and its parents) private to the agent: mode 0700.

    Counters are not secret, but nothing else on the box needs to read or tamper
    with them.  An existing directory with a looser mode (systemd's
    ``StateDirectory=`` is 0755 by default) is tightened only when we own it: a
    directory someone else set up for us is theirs to configure.  Parents are
    created with the default mode, as ``mkdir -p`` does.  Any failure raises
    :class:`OSError` to the caller, who knows whether to carry on without state.
    """
    p = Path(path)
    p.mkdir(mode=0o700, parents=True, exist_ok=True)
    st = p.stat()
    if not stat.S_ISDIR(st.st_mode):
        raise NotADirectoryError(f"{p} is not a directory")
    if st.st_mode & 0o077 and st.st_uid == os.geteuid():
        p.chmod(0o700)
    return p


class JsonFile:
    """One JSON document on disk, written atomically (temp file in the same folder +
    fsync + ``os.replace`` + fsync of the folder), created with mode 0600."""

    def __init__(self, path: str | Path, max_bytes: int = 1_000_000):
        self.path = Path(path)
        self.max_bytes = max_bytes
        self._episode = Episode()
        self._lock = threading.Lock()

    def load(self) -> dict[str, Any]:
        """The document, or ``{}`` when missing.

        A corrupt, unreadable, non-object or oversize file is ONE warning naming the
        file and the problem, and ``{}`` (a fresh start); never raises: a damaged
        state file must not keep the daemon from starting.
        """
        try:
            # O_NONBLOCK: a FIFO in its place must not hang the start-up.
            fd = os.open(self.path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
            with os.fdopen(fd, "rb") as f:
                if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
                    return self._bad("is not a regular file")
                raw = f.read(self.max_bytes + 1)
        except FileNotFoundError:
            return {}
        except OSError as e:  # a directory in its place, permissions, I/O error
            return self._bad(f"cannot be read ({e.strerror or e})")
        if len(raw) > self.max_bytes:
            return self._bad(f"is larger than {self.max_bytes} bytes")
        try:
            data = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError) as e:
            return self._bad(f"is not valid JSON ({e})")
        if not isinstance(data, dict):
            return self._bad(f"holds a JSON {type(data).__name__}, not an object")
        return data

    def _bad(self, problem: str) -> dict[str, Any]:
        log.warning("state file %s %s; starting afresh", self.path, problem)
        return {}

    def save(self, data: dict[str, Any]) -> bool:
        """Replace the document atomically; True when it is on disk.

        An OSError (disk full, read-only file system) is logged once per episode of
        failures and returns False; never raises: losing a counter update is better
        than losing the capture thread that asked for it.  A document that cannot be
        encoded, or would be larger than ``max_bytes`` (so ``load`` would refuse it),
        is not written either.
        """
        with self._lock:
            try:
                text = json.dumps(data, allow_nan=False, sort_keys=True, separators=(",", ":"))
            except (TypeError, ValueError) as e:
                self._failed("unencodable", f"cannot be encoded as JSON ({e})")
                return False
            raw = text.encode("utf-8")
            if len(raw) > self.max_bytes:
                self._failed("oversize", f"would be larger than {self.max_bytes} bytes")
                return False
            try:
                self._write(raw)
            except OSError as e:
                kind = f"errno {e.errno}" if e.errno is not None else type(e).__name__
                self._failed(kind, f"cannot be written ({e.strerror or e})")
                return False
            failures = self._episode.ok()
            if failures:
                log.info("state file %s written again after %d failed writes", self.path, failures)
            return True

    def _failed(self, kind: str, problem: str) -> None:
        if self._episode.fail(kind):
            log.warning("state file %s %s; keeping the last saved copy", self.path, problem)

    def _write(self, raw: bytes) -> None:
        folder = self.path.parent
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=folder)  # mode 0600
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(raw)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        # Make the rename itself durable (the new document is complete and in place either way).
        fsync_dir(folder)
