"""Keep secrets out of everything the agent emits.

``redact_url`` hides ``user:pass@`` in a URL and an ``api_key`` query value;
``Redactor`` replaces known secret strings in any text; ``RedactingFormatter``
applies it to every formatted log line, tracebacks included.
"""

from __future__ import annotations

import logging
import re
from typing import Iterable
from urllib.parse import urlsplit

MASK = "***"
_USERINFO_RE = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<userinfo>[^/@\s]*@)")
_QUERY_SECRET_RE = re.compile(r"(?i)((?:api_key|apikey|access_token|token|password)=)[^&\s\"'#]+")
_BEARER_RE = re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]+")


def url_has_credentials(url: str) -> bool:
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    return bool(parts.scheme and parts.netloc and "@" in parts.netloc)


def redact_url(text: str) -> str:
    """Hide credentials in any URL inside ``text`` (userinfo, api_key=...)."""
    text = _USERINFO_RE.sub(lambda m: f"{m.group('scheme')}{MASK}@", text)
    text = _QUERY_SECRET_RE.sub(lambda m: m.group(1) + MASK, text)
    return _BEARER_RE.sub(lambda m: m.group(1) + MASK, text)


class Redactor:
    """Replaces every known secret (longest first) and URL credentials in text."""

    def __init__(self, secrets: Iterable[str] = ()):
        self._secrets: list[str] = []
        self.add(secrets)

    def add(self, secrets: Iterable[str]) -> None:
        merged = set(self._secrets) | {s for s in secrets if s and len(s) >= 3}
        self._secrets = sorted(merged, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, MASK)
        return redact_url(text)


class RedactingFormatter(logging.Formatter):
    def __init__(self, fmt: str, redactor: Redactor):
        super().__init__(fmt)
        self.redactor = redactor

    def format(self, record: logging.LogRecord) -> str:
        return self.redactor(super().format(record))
