"""Who may look (issue #13): the page shows camera pictures and their history. With
``status.auth`` every route but /healthz (for probes) needs HTTP basic auth, checked
in constant time; without it, the config refuses a non-loopback ``status.listen``
unless ``status.public: true``, which is logged as a warning at start."""

from __future__ import annotations

import base64
import binascii
import hmac
from typing import Awaitable, Callable

from aiohttp import hdrs, web

from ..config import StatusAuthConfig

REALM = "edge-agent"
OPEN_PATHS = frozenset({"/healthz"})  # answered without credentials: health probes


def _credentials(header: str) -> tuple[bytes, bytes] | None:
    """User and password from an ``Authorization: Basic ...`` header, else None."""
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "basic" or not token or len(token) > 4096:
        return None
    try:
        decoded = base64.b64decode(token.strip(), validate=True)
    except (binascii.Error, ValueError):
        return None
    user, sep, password = decoded.partition(b":")
    return (user, password) if sep else None


def _authorized(auth: StatusAuthConfig, header: str | None) -> bool:
    given = _credentials(header) if header else None
    if given is None:
        return False
    # Both compared in full, in constant time: neither which part was wrong nor how much
    # of it matched shows in the time taken.
    user_ok = hmac.compare_digest(given[0], auth.username.encode("utf-8"))
    password_ok = hmac.compare_digest(given[1], auth.password.encode("utf-8"))
    return user_ok & password_ok


def auth_middleware(auth: StatusAuthConfig) -> Callable[..., Awaitable[web.StreamResponse]]:
    """Every route but OPEN_PATHS answers 401 (uncached) without the right credentials."""
    @web.middleware
    async def check(request: web.Request,
                    handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
        if request.path in OPEN_PATHS or _authorized(auth, request.headers.get(hdrs.AUTHORIZATION)):
            return await handler(request)
        return web.Response(status=401, text="authentication required\n",
                            headers={hdrs.WWW_AUTHENTICATE: f'Basic realm="{REALM}"',
                                     hdrs.CACHE_CONTROL: "no-store"})

    return check
