"""Logging to stderr, every line passed through the secret redactor.

The formatter (``redact.RedactingFormatter``) also escapes control characters in
the message (a newline in a class name cannot forge a log line) and caps the
message at ``MAX_LOG_MESSAGE`` characters after redaction; tracebacks keep their
lines, redacted, capped at ``MAX_LOG_TRACEBACK``. Text from outside (topics,
class names, error bodies) should still be cut where it is logged, with
``Redactor.bounded`` (redacts the whole, then cuts)."""

from __future__ import annotations

import logging
import os
import sys

from .redact import MAX_LOG_MESSAGE, MAX_LOG_TRACEBACK, Redactor, RedactingFormatter


def setup_logging(level: str, redactor: Redactor) -> None:
    # Under journald (JOURNAL_STREAM set) the journal stamps each line itself.
    fmt = "%(levelname)s %(message)s" if os.environ.get("JOURNAL_STREAM") else \
        "%(asctime)s %(levelname)s %(message)s"
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(RedactingFormatter(fmt, redactor, max_message=MAX_LOG_MESSAGE,
                                           max_traceback=MAX_LOG_TRACEBACK))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    # Libraries speak only when something is wrong.
    for name in ("aiohttp", "paho", "asyncio"):
        logging.getLogger(name).setLevel(max(logging.WARNING, root.level))
