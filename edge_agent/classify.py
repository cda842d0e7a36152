"""The classification API: one HTTP client, and the retry policy around it.

``ClassifyClient`` speaks Roboflow's classification route (hosted API, serverless
and the self-hosted inference server all serve it): ``POST {url}/{model}``, the
body the base64 of a JPEG, ``Content-Type: application/x-www-form-urlencoded``,
the key as ``?api_key=`` or ``Authorization: Bearer``.

``ApiGuard`` (pure) decides when the next request may go after a failure.
No error text produced here ever contains the request URL (it holds the key).
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import ssl
import time
from dataclasses import dataclass
from typing import Any

import aiohttp

from . import __version__
from .backoff import Backoff, parse_retry_after
from .budget import credits_of
from .config import ApiConfig
from .episode import Episode
from .reply import BadReply, Classification, parse_reply

USER_AGENT = f"edge-agent/{__version__}"
log = logging.getLogger("edge_agent.api")


class ApiError(Exception):
    """A failed request. ``kind`` is one of: unauthorized, rate_limited, http_4xx,
    http_5xx, timeout, connection, bad_reply. ``str()`` never holds a secret."""

    def __init__(self, kind: str, description: str, *, retry_after: float | None = None,
                 status: int | None = None, reached: bool = True, credits: float | None = None):
        super().__init__(description)
        self.kind = kind
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
    """Certificates are verified (system CAs, or ``api.ca_certs``) unless ``api.insecure``."""
    if cfg.insecure:
        return False
    ctx = ssl.create_default_context(cafile=cfg.ca_certs) if cfg.ca_certs else ssl.create_default_context()
    return ctx


def new_session(cfg: ApiConfig) -> aiohttp.ClientSession:
    """One session for the agent's lifetime: connections are kept alive and reused."""
    if cfg.insecure and cfg.url.startswith("https://"):
        log.warning("api.insecure is true: the API's TLS certificate is NOT verified")
    connector = aiohttp.TCPConnector(limit=cfg.max_in_flight + 2, ttl_dns_cache=300,
                                     keepalive_timeout=60, ssl=tls_context(cfg))
    return aiohttp.ClientSession(connector=connector, headers={"User-Agent": USER_AGENT},
                                 raise_for_status=False)


class ClassifyClient:
    def __init__(self, cfg: ApiConfig, session: aiohttp.ClientSession):
        self.cfg = cfg
        self.session = session
        self.endpoint = f"{cfg.url}/{cfg.model}"
        self._timeout = aiohttp.ClientTimeout(total=cfg.timeout)

    def _request_parts(self) -> tuple[dict[str, str], dict[str, str]]:
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        params: dict[str, str] = {}
        if self.cfg.api_key:
            if self.cfg.key_transport == "header":
                headers["Authorization"] = f"Bearer {self.cfg.api_key}"
            else:
                params["api_key"] = self.cfg.api_key
        return headers, params

    async def classify(self, jpeg: bytes) -> Reply:
        headers, params = self._request_parts()
        body = base64.b64encode(jpeg)
        t0 = time.monotonic()
        try:
            async with self.session.post(self.endpoint, params=params, data=body, headers=headers,
                                         timeout=self._timeout, allow_redirects=False) as resp:
                status = resp.status
                retry_after = resp.headers.get("Retry-After")
                credits = credits_of(resp.headers)
                raw = await resp.read()
        except asyncio.TimeoutError:
            raise ApiError("timeout", f"no reply within {self.cfg.timeout:g} s") from None
        except aiohttp.ClientConnectorCertificateError as exc:
            reason = getattr(exc.certificate_error, "verify_message", None) or type(exc.certificate_error).__name__
            raise ApiError("connection", f"TLS certificate not trusted ({reason})", reached=False) from None
        except aiohttp.ClientConnectorError as exc:
            # str(exc) names host:port and the OS error, never the path or query.
            raise ApiError("connection", f"cannot connect: {exc.os_error.strerror or exc.os_error}",
                           reached=False) from None
        except aiohttp.ServerDisconnectedError:
            raise ApiError("connection", "server closed the connection") from None
        except aiohttp.ClientPayloadError:
            raise ApiError("connection", "reply cut short") from None
        except (aiohttp.ClientError, OSError) as exc:
            raise ApiError("connection", f"request failed: {type(exc).__name__}") from None
        latency_ms = (time.monotonic() - t0) * 1000
        try:
            body, result = self._interpret(status, retry_after, raw)
        except ApiError as err:
            err.credits = credits
            raise
        return Reply(body, result, latency_ms=latency_ms, credits=credits)

    @staticmethod
    def _interpret(status: int, retry_after: str | None, raw: bytes) -> tuple[Any, Classification]:
        if status in (401, 403):
            raise ApiError("unauthorized", f"API key rejected (HTTP {status})", status=status)
        if status == 429:
            wait = parse_retry_after(retry_after)
            extra = f", retry after {wait:g} s" if wait is not None else ""
            raise ApiError("rate_limited", f"rate limited (HTTP 429{extra})", retry_after=wait, status=status)
        if status >= 500:
            raise ApiError("http_5xx", f"server error (HTTP {status})", status=status)
        if status >= 400 or status < 200 or status >= 300:
            raise ApiError("http_4xx", f"request refused (HTTP {status}): {_excerpt(raw)}", status=status)
        try:
            body = json.loads(raw)
        except (UnicodeDecodeError, ValueError):
            raise ApiError("bad_reply", f"reply is not JSON: {_excerpt(raw)}") from None
        try:
            return body, parse_reply(body)
        except BadReply as exc:
            raise ApiError("bad_reply", f"unexpected reply: {exc}") from None


def _excerpt(raw: bytes, limit: int = 80) -> str:
    text = raw[:limit].decode("utf-8", "replace").replace("\n", " ").strip()
    return repr(text + ("..." if len(raw) > limit else ""))


API_STATUS = {"unauthorized": "unauthorized", "rate_limited": "rate_limited"}


class ApiGuard:
    """When may the next request go? (pure: the caller passes the clock).

    * 401/403: the key is wrong; retry slowly (``unauthorized_retry``).
    * 429: wait ``Retry-After`` if given, else back off.
    * anything else: exponential backoff with jitter, reset on success.

    Failures of requests that started before the last recorded failure belong to
    the same burst and do not advance the backoff again (with several requests
    in flight, one outage must not count as four).
    """

    def __init__(self, cfg: ApiConfig, rng: Any = None):
        self.cfg = cfg
        self.backoff = Backoff(cfg.retry_initial, cfg.retry_max, rng=rng)
        self.episode = Episode()
        self.status = "ok"
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
        self.status = "ok"
        return self.episode.ok()

    def failure(self, err: ApiError, started: float, now: float) -> tuple[float, bool]:
        """Record a failure; returns (seconds until the next request, log it?)."""
        self.last_error = err.description
        should_log = self.episode.fail(err.kind)
        if started < self._last_failure:
            return max(0.0, self.not_before - now), should_log
        self._last_failure = now
        if err.kind == "unauthorized":
            delay = self.cfg.unauthorized_retry
        elif err.kind == "rate_limited" and err.retry_after is not None:
            delay = min(err.retry_after, 3600.0)
            self.backoff.attempts += 1
        else:
            delay = self.backoff.next_delay()
        self.status = API_STATUS.get(err.kind, "error")
        self.not_before = now + delay
        return delay, should_log
