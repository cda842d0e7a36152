"""Hostile reply bodies the stand-in API answers with when a test asks for a fault
(classification and dataset routes alike): a gzip bomb that inflates to valid JSON,
a valid reply padded to any size, and an error body that quotes the caller's key."""

from __future__ import annotations

import functools
import struct
import zlib

from aiohttp import web


KEY_ECHO_AT = 70  # where the "echo_key" fault puts the key in its 400 body


@functools.lru_cache(maxsize=4)
def gzip_bomb(size: int) -> bytes:
    """A gzip body (about size/1000 bytes) that inflates to ``size`` bytes of valid
    JSON: one deflate segment of 1 MiB of "0" after a full flush (so it stands
    alone) repeated, between a JSON head and tail, with a correct gzip trailer."""
    head = b'{"top": "red", "confidence": 0.9, "predictions": [], "padding": "'
    tail = b'"}'
    block = b"0" * (1 << 20)
    fill = max(0, size - len(head) - len(tail))
    repeats, rest = divmod(fill, len(block))
    deflate = zlib.compressobj(9, zlib.DEFLATED, -15)
    first = deflate.compress(head) + deflate.flush(zlib.Z_FULL_FLUSH)
    segment = deflate.compress(block) + deflate.flush(zlib.Z_FULL_FLUSH)
    last = deflate.compress(block[:rest] + tail) + deflate.flush()
    crc = zlib.crc32(head)
    for _ in range(repeats):
        crc = zlib.crc32(block, crc)
    crc = zlib.crc32(block[:rest] + tail, crc)
    total = len(head) + fill + len(tail)
    header = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff"
    return header + first + segment * repeats + last + struct.pack("<II", crc, total & 0xFFFFFFFF)


def key_echo(head: str, key: str) -> bytes:
    """An error body quoting ``key`` at ``KEY_ECHO_AT`` (a client must redact it)."""
    return (head.ljust(KEY_ECHO_AT - 1, ".") + " " + key + ' (plan expired)"}').encode()


async def big_body(request: web.Request, head: bytes, tail: bytes, size: int, chunked: bool) -> web.StreamResponse:
    """``head`` + padding + ``tail``, ``size`` bytes in all, written in chunks (never held whole)."""
    pad = max(0, size - len(head) - len(tail))
    response = web.StreamResponse(headers={"Content-Type": "application/json"})
    if not chunked:
        response.content_length = len(head) + pad + len(tail)
    await response.prepare(request)
    block = b"0" * (64 * 1024)
    try:
        await response.write(head)
        while pad > 0:
            await response.write(block[:pad])
            pad -= len(block)
        await response.write(tail)
        await response.write_eof()
    except (ConnectionError, RuntimeError):
        pass  # the client hung up part way, as a capped client should
    return response
