"""The classification API: one HTTP client, and the retry policy around it.

``ClassifyClient`` speaks Roboflow's classification route (hosted API, serverless
and the self-hosted inference server all serve it): ``POST {url}/{model}``, the
body the base64 of a JPEG, ``Content-Type: application/x-www-form-urlencoded``,
the key as ``?api_key=`` or ``Authorization: Bearer``.

``ApiGuard`` (pure) decides when the next request may go after a failure.
No error text produced here ever contains the request URL (it holds the key),
and a quoted reply body is redacted whole (the key, its base64 and URL-encoded
forms, URL credentials) before it is cut.

What comes back is capped (each beyond-cap reply is a ``bad_reply``):
``MAX_REPLY_BYTES`` of body, counted after gzip/deflate decoding (a gzip bomb
stops at the cap); JSON nested too deeply for the parser; and, in ``reply``,
``MAX_PREDICTIONS`` predictions and ``MAX_CLASS_NAME`` characters a class name.
A ``Retry-After`` is honoured up to ``MAX_RETRY_AFTER`` seconds.
"""

from __future__ import annotations

import base64
import json
import logging
import ssl
import time
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import quote

import aiohttp

from . import __version__
from .backoff import Backoff, parse_retry_after
from .budget import credits_of
from .config import ApiConfig, Config
from .episode import Episode
from .httppost import Unreached, post_capped
from .redact import Redactor
from .reply import BadReply, Classification, parse_reply
from .strenum import StrEnum

USER_AGENT = f"edge-agent/{__version__}"
log = logging.getLogger(__name__)

MAX_REPLY_BYTES = 1024 * 1024  # a real reply is a few kB; counted after decompression
MAX_RETRY_AFTER = 300.0  # seconds: a longer Retry-After is cut to this
EXCERPT_CHARS = 80  # of a refused or non-JSON reply body, quoted in the error


class ApiErrorKind(StrEnum):
    """What went wrong with a request (the value is the word logs and metrics use)."""
    UNAUTHORIZED = "unauthorized"  # 401/403: the key is wrong
    RATE_LIMITED = "rate_limited"  # 429
    HTTP_4XX = "http_4xx"  # any other refusal (and any non-2xx status that is not 5xx)
    HTTP_5XX = "http_5xx"
    TIMEOUT = "timeout"
    CONNECTION = "connection"  # no connection, TLS refused, or the reply cut short
    BAD_REPLY = "bad_reply"  # a 2xx whose body is too large, not JSON or not a classification


class ApiStatus(StrEnum):
    """The API's health as the agent reports it (status topic, page, STATUS=)."""
    OK = "ok"
    ERROR = "error"
    UNAUTHORIZED = "unauthorized"
    RATE_LIMITED = "rate_limited"


class ApiError(Exception):
    """A failed request, of an ``ApiErrorKind``. ``str()`` never holds a secret."""

    def __init__(self, kind: ApiErrorKind | str, description: str, *, retry_after: float | None = None,
                 status: int | None = None, reached: bool = True, credits: float | None = None):
        super().__init__(description)
        self.kind = ApiErrorKind(kind)
        self.description = description
        self.retry_after = retry_after
        self.status = status
        self.reached = reached  # False: no connection was made, so nothing can have been billed
        self.credits = credits  # what the reply's billing headers say it cost, if it came


@dataclass(frozen=True)
class Reply:
    body: Any  # the JSON as the API sent it
    result: Classification
    latency_ms: float
    credits: float | None = None  # from the billing headers; None from a server that sends none


def tls_context(cfg: ApiConfig) -> ssl.SSLContext | bool:
    """Certificates are verified (system CAs, or ``api.ca_certs``) unless ``api.insecure``.
    With the system CAs: aiohttp's own verified context (True), made when it is
    imported; a second copy of the CA store would cost the heap about 1 MB."""
    if cfg.insecure:
        return False
    return ssl.create_default_context(cafile=cfg.ca_certs) if cfg.ca_certs else True


def new_session(cfg: ApiConfig) -> aiohttp.ClientSession:
    """One session for the agent's lifetime: connections are kept alive and reused."""
    if cfg.insecure and cfg.url.startswith("https://"):
        log.warning("api.insecure is true: the API's TLS certificate is NOT verified")
    connector = aiohttp.TCPConnector(limit=cfg.max_in_flight + 2, ttl_dns_cache=300,
                                     keepalive_timeout=60, ssl=tls_context(cfg))
    return aiohttp.ClientSession(connector=connector, headers={"User-Agent": USER_AGENT},
                                 raise_for_status=False)


class Classifier(Protocol):
    """What the agent calls to classify a frame, at one endpoint (the primary, or
    the fallback: ``endpoints.py``); tests pass their own."""

    async def classify(self, jpeg: bytes, model: str | None = None) -> Reply:
        """``model``: the camera's or view's (#21); None: ``api.model``."""
        ...


class ClassifyClient:
    def __init__(self, cfg: ApiConfig, session: aiohttp.ClientSession):
        self.cfg = cfg
        self.session = session
        self.endpoint = f"{cfg.url}/{cfg.model}"
        self.redact = Redactor(key_forms(cfg.api_key))

    def _request_parts(self) -> tuple[dict[str, str], dict[str, str]]:
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        params: dict[str, str] = {}
        if self.cfg.api_key:
            if self.cfg.key_transport == "header":
                headers["Authorization"] = f"Bearer {self.cfg.api_key}"
            else:
                params["api_key"] = self.cfg.api_key
        return headers, params

    async def classify(self, jpeg: bytes, model: str | None = None) -> Reply:
        headers, params = self._request_parts()
        endpoint = self.endpoint if model is None else f"{self.cfg.url}/{model}"
        body = base64.b64encode(jpeg)
        t0 = time.monotonic()
        try:
            posted = await post_capped(self.session, endpoint, params=params, data=body, headers=headers,
                                       timeout=self.cfg.timeout, limit=MAX_REPLY_BYTES)
        except Unreached as exc:
            raise ApiError(ApiErrorKind(exc.kind), exc.description, reached=exc.reached) from None
        status, retry_after, raw = posted.status, posted.headers.get("Retry-After"), posted.raw
        credits = credits_of(posted.headers)
        latency_ms = (time.monotonic() - t0) * 1000
        try:
            body, result = self._interpret(status, retry_after, raw)
        except ApiError as err:
            err.credits = credits
            raise
        return Reply(body, result, latency_ms=latency_ms, credits=credits)

    def _interpret(self, status: int, retry_after: str | None, raw: bytes | None) -> tuple[Any, Classification]:
        """``raw`` None: the body passed ``MAX_REPLY_BYTES`` and was not read to the end."""
        if status in (401, 403):
            raise ApiError(ApiErrorKind.UNAUTHORIZED, f"API key rejected (HTTP {status})", status=status)
        if status == 429:
            wait = parse_retry_after(retry_after, cap=MAX_RETRY_AFTER)
            extra = f", retry after {wait:g} s" if wait is not None else ""
            raise ApiError(ApiErrorKind.RATE_LIMITED, f"rate limited (HTTP 429{extra})", retry_after=wait,
                           status=status)
        if status >= 500:
            raise ApiError(ApiErrorKind.HTTP_5XX, f"server error (HTTP {status})", status=status)
        if status >= 400 or status < 200 or status >= 300:
            raise ApiError(ApiErrorKind.HTTP_4XX, f"request refused (HTTP {status}): {self._excerpt(raw)}",
                           status=status)
        if raw is None:
            raise ApiError(ApiErrorKind.BAD_REPLY, f"reply larger than the {_size(MAX_REPLY_BYTES)} cap")
        try:
            body = json.loads(raw)
        except RecursionError:
            raise ApiError(ApiErrorKind.BAD_REPLY, "reply JSON is nested too deeply") from None
        except (UnicodeDecodeError, ValueError):
            raise ApiError(ApiErrorKind.BAD_REPLY, f"reply is not JSON: {self._excerpt(raw)}") from None
        try:
            return body, parse_reply(body)
        except BadReply as exc:
            raise ApiError(ApiErrorKind.BAD_REPLY, f"unexpected reply: {self.redact.bounded(str(exc), 160)}") from None

    def _excerpt(self, raw: bytes | None, limit: int = EXCERPT_CHARS) -> str:
        """The start of a reply body for an error message: decoded and redacted
        WHOLE (so a key straddling the cut is masked entirely), then cut."""
        if raw is None:  # only part of it was read: quoting that part could cut a key
            return f"(body larger than {_size(MAX_REPLY_BYTES)}, not shown)"
        text = " ".join(self.redact(raw.decode("utf-8", "replace")).split())
        return repr(text[:limit] + ("..." if len(text) > limit else ""))


def key_forms(key: str | None) -> list[str]:
    """The key as it may come back in an error body: as is, URL-encoded, and
    base64-encoded (standalone, and at each of the three alignments it can have
    inside a longer base64 string)."""
    if not key:
        return []
    forms = {key, quote(key, safe=""), quote(key)}
    raw = key.encode("utf-8", "replace")
    b64 = base64.b64encode(raw).decode("ascii")
    forms.update({b64, b64.rstrip("=")})
    for shift in range(3):
        enc = base64.b64encode(b"\0" * shift + raw).decode("ascii").rstrip("=")
        # Drop the characters that depend on the padding before and on what follows.
        lead = -(-shift * 4 // 3)
        tail_bits = ((shift + len(raw)) * 8) % 6
        core = enc[lead:len(enc) - (1 if tail_bits else 0)]
        if len(core) >= 8:
            forms.add(core)
    return [f for f in forms if len(f) >= 3]


def _size(n: int) -> str:
    return f"{n // (1024 * 1024)} MiB" if n % (1024 * 1024) == 0 else f"{n} bytes"


API_STATUS = {ApiErrorKind.UNAUTHORIZED: ApiStatus.UNAUTHORIZED, ApiErrorKind.RATE_LIMITED: ApiStatus.RATE_LIMITED}


def build_endpoint(api: ApiConfig) -> tuple[Classifier, aiohttp.ClientSession]:
    """The one place an endpoint's client is made: the hosted (or self-hosted) API
    client, and the session to close at the stop (each endpoint its own: its TLS)."""
    session = new_session(api)
    return ClassifyClient(api, session), session


def build_classifier(cfg: Config) -> tuple[Classifier, aiohttp.ClientSession]:
    """The primary endpoint (``api``); the fallback is ``build_endpoint(cfg.api.fallback_api())``."""
    return build_endpoint(cfg.api)


class ApiGuard:
    """When may the next request go? (pure: the caller passes the clock).

    * 401/403: the key is wrong; retry slowly (``unauthorized_retry``).
    * 429: wait ``Retry-After`` if given (at most ``MAX_RETRY_AFTER``), else back off.
    * anything else: exponential backoff with jitter, reset on success.

    Failures of requests that started before the last recorded failure belong to
    the same burst and do not advance the backoff again (with several requests
    in flight, one outage must not count as four).
    """

    def __init__(self, cfg: ApiConfig, rng: Any = None):
        self.cfg = cfg
        self.backoff = Backoff(cfg.retry_initial, cfg.retry_max, rng=rng)
        self.episode = Episode()
        self.status = ApiStatus.OK
        self.not_before = 0.0  # monotonic
        self.last_error: str | None = None
        self._last_failure = float("-inf")

    def ready(self, now: float) -> bool:
        return now >= self.not_before

    def success(self, started: float) -> int:
        """Record a good reply; returns the failures of the episode it ended."""
        if started < self._last_failure:
            return 0
        self.backoff.reset()
        self.status = ApiStatus.OK
        return self.episode.ok()

    def failure(self, err: ApiError, started: float, now: float) -> tuple[float, bool]:
        """Record a failure; returns (seconds until the next request, log it?)."""
        self.last_error = err.description
        should_log = self.episode.fail(err.kind)
        if started < self._last_failure:
            return max(0.0, self.not_before - now), should_log
        self._last_failure = now
        if err.kind is ApiErrorKind.UNAUTHORIZED:
            delay = self.cfg.unauthorized_retry
        elif err.kind is ApiErrorKind.RATE_LIMITED and err.retry_after is not None:
            delay = min(err.retry_after, MAX_RETRY_AFTER)
            self.backoff.attempts += 1
        else:
            delay = self.backoff.next_delay()
        self.status = API_STATUS.get(err.kind, ApiStatus.ERROR)
        self.not_before = now + delay
        return delay, should_log
