"""Logging to stderr, every line passed through the secret redactor."""

from __future__ import annotations

import logging
import os
import sys

from .redact import Redactor, RedactingFormatter


def setup_logging(level: str, redactor: Redactor) -> None:
    # Under journald (JOURNAL_STREAM set) the journal stamps each line itself.
    fmt = "%(levelname)s %(message)s" if os.environ.get("JOURNAL_STREAM") else \
        "%(asctime)s %(levelname)s %(message)s"
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(RedactingFormatter(fmt, redactor))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    # Libraries speak only when something is wrong.
    for name in ("aiohttp", "paho", "asyncio"):
        logging.getLogger(name).setLevel(max(logging.WARNING, root.level))
