"""One bounded POST for the agent's HTTP clients (the classification API, the
dataset upload API): the reply's status, headers and body read with a cap, or
why no reply was had, in words that never name the URL's path or query (the key
may be there).

Design rule: transport trouble is told once, here; each client maps it to its
own error kind (``timeout``, ``connection``) and reads the status itself.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, Mapping

import aiohttp

from .strenum import StrEnum

_READ_CHUNK = 64 * 1024


class Failure(StrEnum):
    TIMEOUT = "timeout"
    CONNECTION = "connection"  # no connection, TLS refused, or the reply cut short


class Unreached(Exception):
    """No reply: ``kind``, a description safe to log, and whether the request could
    have reached the server (False: the connection or TLS was refused first)."""

    def __init__(self, kind: Failure, description: str, *, reached: bool = True):
        super().__init__(description)
        self.kind = kind
        self.description = description
        self.reached = reached


@dataclass(frozen=True)
class Posted:
    status: int
    headers: Mapping[str, str]
    raw: bytes | None  # None: the body passed the cap and was not read to the end


async def post_capped(session: aiohttp.ClientSession, url: str, *, params: Any, data: Any,
                      headers: Mapping[str, str], timeout: float, limit: int) -> Posted:
    try:
        async with session.post(url, params=params, data=data, headers=headers,
                                timeout=aiohttp.ClientTimeout(total=timeout), allow_redirects=False) as resp:
            raw = await read_capped(resp, limit)
            if raw is None:
                resp.close()  # not released: the rest stays unread, the connection is dropped
            return Posted(resp.status, resp.headers, raw)
    except asyncio.TimeoutError:
        raise Unreached(Failure.TIMEOUT, f"no reply within {timeout:g} s") from None
    except aiohttp.ClientConnectorCertificateError as exc:
        reason = getattr(exc.certificate_error, "verify_message", None) or type(exc.certificate_error).__name__
        raise Unreached(Failure.CONNECTION, f"TLS certificate not trusted ({reason})", reached=False) from None
    except aiohttp.ClientConnectorError as exc:
        # str(exc) names host:port and the OS error, never the path or query.
        raise Unreached(Failure.CONNECTION, f"cannot connect to {exc.host}:{exc.port}: "
                                            f"{exc.os_error.strerror or exc.os_error}", reached=False) from None
    except aiohttp.ServerDisconnectedError:
        raise Unreached(Failure.CONNECTION, "server closed the connection") from None
    except aiohttp.ClientPayloadError:
        raise Unreached(Failure.CONNECTION, "reply cut short") from None
    except (aiohttp.ClientError, OSError) as exc:
        raise Unreached(Failure.CONNECTION, f"request failed: {type(exc).__name__}") from None


async def read_capped(resp: aiohttp.ClientResponse, limit: int) -> bytes | None:
    """The body, decoded (gzip/deflate), or None once it passes ``limit`` bytes.
    A Content-Length over the limit is refused before anything is read."""
    length = resp.content_length
    if length is not None and length > limit:
        return None
    chunks: list[bytes] = []
    total = 0
    while True:
        chunk = await resp.content.read(_READ_CHUNK)
        if not chunk:
            return b"".join(chunks)
        total += len(chunk)
        if total > limit:
            return None
        chunks.append(chunk)
