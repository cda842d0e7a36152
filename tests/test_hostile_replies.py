"""Hostile API replies (issue #9) over real HTTP against the stand-in: every one is
a quick ApiError of the expected kind whose text holds no part of the key, and
none of them makes the process's memory balloon.

The two memory tests come first and run the client in a subprocess (a tiny
script), so that nothing this test process allocated earlier masks the peak.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge_agent.classify import MAX_REPLY_BYTES, ApiError, ClassifyClient, key_forms, new_session
from edge_agent.config import ApiConfig
from edge_agent.redact import Redactor, RedactingFormatter
from edge_agent.reply import MAX_CLASS_NAME, MAX_PREDICTIONS
from tools.standin_api import KEY_ECHO_AT, StandinApi

KEY = "rf_live_KEY_do_not_leak_42"
ROOT = Path(__file__).resolve().parents[1]
MB = 1024 * 1024


def red_jpeg() -> bytes:
    img = np.zeros((120, 160, 3), np.uint8)
    img[..., 2] = 255
    ok, buf = cv2.imencode(".jpg", img)
    assert ok
    return buf.tobytes()


@pytest.fixture
def api(standin: StandinApi) -> StandinApi:
    standin.api_key = KEY
    return standin


def assert_no_key(err: ApiError) -> None:
    texts = [str(err), repr(err), err.description, repr(err.__context__), repr(err.__cause__)]
    for text in texts:
        assert KEY[:5] not in text, text
        assert not any(form[:6] in text for form in key_forms(KEY)), text


# ------------------------------------------------------------------ memory (subprocess)

CLIENT = r"""
import asyncio, json, resource, sys, time
from edge_agent.classify import ApiError, ClassifyClient, new_session
from edge_agent.config import ApiConfig

url, key, jpeg_path = sys.argv[1:4]
jpeg = open(jpeg_path, "rb").read()

def peak_kib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux

async def main():
    cfg = ApiConfig(model="colours/1", url=url, api_key=key, timeout=60)
    async with new_session(cfg) as session:
        client = ClassifyClient(cfg, session)
        await client.classify(jpeg)  # warm up: imports, the connection, the parser
        before = peak_kib()
        print("ready", flush=True)
        sys.stdin.readline()  # the test queues the fault, then says go
        t0 = time.monotonic()
        try:
            await client.classify(jpeg)
            out = {"kind": None, "description": ""}
        except ApiError as err:
            out = {"kind": err.kind, "description": str(err)}
        out.update(seconds=time.monotonic() - t0, growth_mib=(peak_kib() - before) / 1024)
        print(json.dumps(out), flush=True)

asyncio.run(main())
"""


@pytest.mark.parametrize("fault", [
    {"gzip_bomb": 1024 * MB},  # 1 MB on the wire, 1 GiB inflated
    {"big_body": 50 * MB},  # announced by Content-Length
    {"big_body": 50 * MB, "chunked": True},  # no Content-Length: the read itself must stop
], ids=["gzip-bomb-1GiB", "body-50MB", "body-50MB-chunked"])
def test_memory_stays_flat(api, tmp_path, fault):
    jpeg = tmp_path / "red.jpg"
    jpeg.write_bytes(red_jpeg())
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-c", CLIENT, api.url, KEY, str(jpeg)], cwd=ROOT, env=env,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdin is not None
        assert proc.stdout.readline().strip() == "ready", proc.stderr.read() if proc.stderr else ""
        api.add_faults(fault)
        out, err = proc.communicate("go\n", timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    result = json.loads(out.strip().splitlines()[-1])
    assert result["kind"] == "bad_reply" and "1 MiB" in result["description"], result
    assert result["growth_mib"] < 50, result
    assert result["seconds"] < 5, result
    assert KEY[:5] not in out + err


# ------------------------------------------------------------------ in process

async def classify_twice(api: StandinApi, fault: dict) -> tuple[ApiError | None, object, float]:
    """The hostile reply, then a normal one on the same session (it must still work)."""
    cfg = ApiConfig(model="colours/1", url=api.url, api_key=KEY, timeout=10)
    api.add_faults(fault)
    async with new_session(cfg) as session:
        client = ClassifyClient(cfg, session)
        t0 = time.monotonic()
        error, reply = None, None
        try:
            reply = await client.classify(red_jpeg())
        except ApiError as err:
            error = err
        elapsed = time.monotonic() - t0
        after = await client.classify(red_jpeg())
        assert after.result.top == "red"
    return error, reply, elapsed


@pytest.mark.parametrize("fault,kind,says", [
    ({"gzip_bomb": 20 * MB}, "bad_reply", "larger than the 1 MiB cap"),
    ({"big_body": 2 * MB, "chunked": True}, "bad_reply", "larger than the 1 MiB cap"),
    ({"big_body": 2 * MB}, "bad_reply", "larger than the 1 MiB cap"),
    ({"class": "x" * 10_000_000}, "bad_reply", "larger than the 1 MiB cap"),
    ({"class": KEY + "x" * 10_000}, "bad_reply", f"class name longer than {MAX_CLASS_NAME} characters"),
    ({"class": "y" * (MAX_CLASS_NAME + 1)}, "bad_reply", f"class name longer than {MAX_CLASS_NAME} characters"),
    ({"predictions": MAX_PREDICTIONS + 1}, "bad_reply", f"more than {MAX_PREDICTIONS} predictions"),
    ({"predictions": 10_000}, "bad_reply", f"more than {MAX_PREDICTIONS} predictions"),
    ({"nested": 100_000}, "bad_reply", "nested too deeply"),
    ({"echo_key": True}, "http_4xx", "request refused (HTTP 400)"),
], ids=["gzip-bomb", "body-chunked", "body-length", "class-10MB", "class-with-key", "class-201",
        "predictions-1001", "predictions-10000", "nested", "echo-key"])
async def test_hostile_reply_is_a_quick_clean_error(api, fault, kind, says):
    error, reply, elapsed = await classify_twice(api, fault)
    assert error is not None, reply
    assert error.kind == kind and says in error.description, error.description
    assert len(error.description) < 200
    assert elapsed < 2
    assert_no_key(error)


async def test_echo_key_straddles_the_old_cut(api):
    error, _, _ = await classify_twice(api, {"echo_key": True})
    assert error is not None
    # The key began at character 70 of the body, across the 80-character excerpt: masked whole.
    assert KEY_ECHO_AT < 80
    assert "***" in error.description
    assert_no_key(error)


@pytest.mark.parametrize("fault", [
    {"big_body": MAX_REPLY_BYTES - 100},  # just under the byte cap
    {"gzip_bomb": MAX_REPLY_BYTES - 100},
    {"predictions": MAX_PREDICTIONS},
    {"class": "z" * MAX_CLASS_NAME},
    {"nested": 50},  # parses; merely the wrong shape
], ids=["body-under-cap", "gzip-under-cap", "predictions-1000", "class-200", "nested-50"])
async def test_up_to_the_caps_replies_are_read(api, fault):
    error, reply, _ = await classify_twice(api, fault)
    if "nested" in fault:
        assert error is not None and error.kind == "bad_reply" and "unexpected reply" in error.description
    else:
        assert error is None and reply is not None


async def test_class_with_a_newline_cannot_forge_a_log_line(api):
    name = "open\nERROR porch: API key rejected\r"
    error, reply, _ = await classify_twice(api, {"class": name})
    assert error is None and reply.result.top == name  # a valid reply; the log line escapes it
    fmt = RedactingFormatter("%(levelname)s %(message)s", Redactor([KEY]))
    rec = logging.LogRecord("edge_agent", logging.INFO, __file__, 1, "porch: state -> %s", (reply.result.top,), None)
    line = fmt.format(rec)
    assert line == "INFO porch: state -> open\\nERROR porch: API key rejected\\r"


async def test_rate_limit_of_1e308_waits_at_most_300_s(api):
    error, _, _ = await classify_twice(api, {"status": 429, "retry_after": "1e308"})
    assert error is not None and error.kind == "rate_limited"
    assert error.retry_after == 300 and error.description == "rate limited (HTTP 429, retry after 300 s)"

