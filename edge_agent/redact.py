"""Keep secrets out of everything the agent emits, and keep outside text tame.

``redact_url`` hides ``user:pass@`` in a URL and an ``api_key`` query value;
``Redactor`` replaces known secret strings in any text; ``RedactingFormatter``
applies it to every formatted log line, tracebacks included.

Every pattern here runs in time linear in the text (a log line may carry text
from outside: an MQTT topic, a class name, an API error body). Text from outside
is redacted WHOLE and only then cut (``bounded``), so a secret that straddles a
cut can never leak its first characters; and the log formatter escapes control
characters in the message, so a newline in a class name cannot forge a line.
"""

from __future__ import annotations

import logging
import re
from typing import Iterable
from urllib.parse import urlsplit

MASK = "***"
MAX_LOG_MESSAGE = 2000  # chars of one log message (after redaction and escaping)
MAX_LOG_TRACEBACK = 20000  # chars of a traceback / stack appended to a log line
DEFAULT_BOUND = 200  # chars kept by ``bounded`` unless told otherwise

# "://" preceded by a scheme character, then the authority's userinfo: everything up
# to the LAST "@" before the first "/" or whitespace (a password may hold "@").
# The pattern starts with the literal "://" (not with the scheme, whose [a-z]* run
# was rescanned from every start position: quadratic), so the engine jumps from one
# "://" to the next; each scan ends at the next "/" - which every later "://" holds -
# so the scans never overlap: linear.
_USERINFO_RE = re.compile(r"://(?<=[a-zA-Z0-9+.-]://)(?P<userinfo>[^/\s]*@)")
# The value after "api_key=" (also apikey, access_token, token, password). It starts
# with the literal "=" (fast to find) and the names are look-behinds, so the
# replacement is a plain string: re.sub then never calls back into Python per
# match (a megabyte of "token=x " would cost a microsecond per match).
_QUERY_SECRET_RE = re.compile(
    r"(?i)=(?:(?<=api_key=)|(?<=apikey=)|(?<=token=)|(?<=password=))[^&\s\"'#]+")
_QUERY_MASK = f"={MASK}"
# At most 32 blanks after "bearer": a "bearer" followed by a megabyte of blanks
# then backtracks 32 steps, not a megabyte (Python 3.10 has no possessive \s++).
_BEARER_RE = re.compile(r"(?i)bearer\s{1,32}[A-Za-z0-9._~+/=-]+")
_BEARER_MASK = f"Bearer {MASK}"
_USERINFO_MASK = f"://{MASK}@"

# C0 and C1 controls, DEL, and the Unicode line/paragraph separators.
_CONTROL_ESCAPES = {c: f"\\x{c:02x}" for c in [*range(0x00, 0x20), *range(0x7F, 0xA0)]}
_CONTROL_ESCAPES.update({0x0A: "\\n", 0x0D: "\\r", 0x09: "\\t", 0x2028: "\\u2028", 0x2029: "\\u2029"})


def url_has_credentials(url: str) -> bool:
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    return bool(parts.scheme and parts.netloc and "@" in parts.netloc)


def redact_url(text: str) -> str:
    """Hide credentials in any URL inside ``text`` (userinfo, api_key=..., Bearer ...)."""
    if "://" in text:
        text = _USERINFO_RE.sub(_USERINFO_MASK, text)
    if "=" in text:
        text = _QUERY_SECRET_RE.sub(_QUERY_MASK, text)
    if "bearer" in text.lower():
        text = _BEARER_RE.sub(_BEARER_MASK, text)
    return text


def escape_controls(text: str) -> str:
    """``\\n``, ``\\r``, ``\\t`` and every other C0/C1 control as a visible escape."""
    return text.translate(_CONTROL_ESCAPES)


def cut(text: str, limit: int) -> str:
    """The first ``limit`` characters, marked with the full length if anything was cut.
    Never call it on unredacted text: use ``bounded``."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}…({len(text)} chars)"


def bounded(text: str, limit: int = DEFAULT_BOUND, redactor: "Redactor | None" = None) -> str:
    """Text from outside, fit for a log line or a status field: redacted whole
    (known secrets if a ``redactor`` is given, URL credentials always), then cut to
    ``limit`` characters + "…(N chars)"."""
    text = redactor(text) if redactor is not None else redact_url(text)
    return cut(text, limit)


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

    def bounded(self, text: str, limit: int = DEFAULT_BOUND) -> str:
        """Redact the whole of ``text``, then cut it to ``limit`` characters."""
        return bounded(text, limit, self)


class RedactingFormatter(logging.Formatter):
    """Every log line redacted. The message is redacted, its control characters
    escaped, and it is cut to ``max_message`` characters (in that order); a
    traceback keeps its lines but is redacted and cut to ``max_traceback``."""

    def __init__(self, fmt: str, redactor: Redactor, *, max_message: int = MAX_LOG_MESSAGE,
                 max_traceback: int = MAX_LOG_TRACEBACK):
        super().__init__(fmt)
        self.redactor = redactor
        self.max_message = max_message
        self.max_traceback = max_traceback

    def clean_message(self, message: str) -> str:
        return cut(escape_controls(self.redactor(message)), self.max_message)

    def formatMessage(self, record: logging.LogRecord) -> str:
        raw = record.message
        record.message = self.clean_message(raw)
        try:
            return super().formatMessage(record)
        finally:
            record.message = raw

    def _tail(self, text: str) -> str:
        return cut(self.redactor(text), self.max_traceback)

    def formatException(self, ei) -> str:  # type: ignore[no-untyped-def]
        return self._tail(super().formatException(ei))

    def formatStack(self, stack_info: str) -> str:
        return self._tail(super().formatStack(stack_info))

    def format(self, record: logging.LogRecord) -> str:
        # The final pass also covers a traceback another formatter cached unredacted
        # (record.exc_text) and any other field of the format string.
        return self.redactor(super().format(record))
