"""The API client over real HTTP against the local stand-in, and the retry policy."""

import asyncio
import base64
import random

import cv2
import numpy as np
import pytest

from edge_agent.classify import ApiError, ApiErrorKind, ApiGuard, ApiStatus, ClassifyClient, new_session
from edge_agent.config import ApiConfig
from edge_agent.encode import prepare
from tools.standin_api import StandinApi, ThreadedStandin

KEY = "rf_live_KEY_do_not_leak_42"


def red_jpeg() -> bytes:
    img = np.zeros((240, 320, 3), np.uint8)
    img[..., 2] = 255
    return prepare(img, 416, 80)


@pytest.fixture
def api():
    with ThreadedStandin(StandinApi(api_key=KEY)) as a:
        yield a


async def call(api: StandinApi, **kw):
    cfg = ApiConfig(model="colours/1", url=api.url, api_key=kw.pop("key", KEY), timeout=kw.pop("timeout", 2), **kw)
    async with new_session(cfg) as s:
        return await ClassifyClient(cfg, s).classify(red_jpeg())


@pytest.mark.parametrize("transport", ["query", "header"])
async def test_request_format_and_reply(api, transport):
    reply = await call(api, key_transport=transport)
    assert reply.result.top == "red" and reply.result.confidence > 0.9
    assert reply.body["top"] == "red"
    seen = api.requests()[-1]
    assert seen.path == "/colours/1" and seen.content_type == "application/x-www-form-urlencoded"
    assert (seen.width, seen.height) == (320, 240)
    if transport == "query":
        assert seen.key_in_query == KEY and seen.auth_header is None
    else:
        assert seen.key_in_query is None and seen.auth_header == f"Bearer {KEY}"


async def test_multi_label_reply(api):
    api.multi_label = True
    reply = await call(api)
    assert reply.result.predicted_classes == ("red",)
    assert reply.result.top == "red"


@pytest.mark.parametrize("fault,kind,retry_after", [
    ({"status": 500}, "http_5xx", None),
    ({"status": 503}, "http_5xx", None),
    ({"status": 429, "retry_after": "3"}, "rate_limited", 3.0),
    ({"status": 429, "retry_after": "Wed, 21 Oct 2015 07:28:00 GMT"}, "rate_limited", 0.0),
    ({"status": 400}, "http_4xx", None),
    ({"garbage": True}, "bad_reply", None),
    ({"wrong_shape": True}, "bad_reply", None),
    ({"reset": True}, "connection", None),
    ({"hang": 3}, "timeout", None),
])
async def test_errors_are_classified_and_hold_no_secret(api, fault, kind, retry_after):
    api.add_faults(fault)
    with pytest.raises(ApiError) as err:
        await call(api, timeout=1)
    assert err.value.kind == kind
    assert err.value.retry_after == retry_after
    assert KEY not in str(err.value) and KEY not in repr(err.value.__context__ or "")


async def test_wrong_key_is_unauthorized(api):
    with pytest.raises(ApiError) as err:
        await call(api, key="wrong-key-123")
    assert err.value.kind == "unauthorized" and "API key rejected" in str(err.value)


async def test_connection_refused():
    cfg = ApiConfig(model="m/1", url="http://127.0.0.1:9", api_key=KEY, timeout=2)
    async with new_session(cfg) as s:
        with pytest.raises(ApiError) as err:
            await ClassifyClient(cfg, s).classify(red_jpeg())
    assert err.value.kind == "connection" and KEY not in str(err.value)


# ------------------------------------------------------------------ ApiGuard (pure)

def guard(**kw) -> ApiGuard:
    return ApiGuard(ApiConfig(model="m/1", retry_initial=1, retry_max=8, unauthorized_retry=60, **kw),
                    rng=random.Random(1))


def test_guard_backs_off_exponentially_and_resets_on_success():
    g = guard()
    delays, t = [], 0.0
    for _ in range(6):
        d, _ = g.failure(ApiError("http_5xx", "x"), started=t, now=t)
        delays.append(d)
        assert not g.ready(t + d - 0.001) and g.ready(t + d)
        t += d + 0.01
    ceilings = [1, 2, 4, 8, 8, 8]
    assert all(c / 2 <= d <= c for c, d in zip(ceilings, delays))
    assert g.status == "error"
    assert g.success(started=t) == 6
    assert g.status == "ok" and g.backoff.attempts == 0


def test_guard_logs_once_per_episode_and_on_change_of_kind():
    g = guard()
    logs = [g.failure(ApiError(k, k), started=i, now=i)[1] for i, k in
            enumerate(["http_5xx", "http_5xx", "rate_limited", "rate_limited", "timeout", "http_5xx",
                       "timeout", "http_5xx"])]
    assert logs == [True, False, True, False, True, False, False, False]
    g.success(started=100)
    assert g.failure(ApiError("http_5xx", "x"), started=101, now=101)[1]  # a new episode logs again


def test_guard_honours_retry_after_and_unauthorized():
    g = guard()
    d, _ = g.failure(ApiError("rate_limited", "x", retry_after=7), started=0, now=0)
    assert d == 7 and g.status == "rate_limited"
    d, _ = g.failure(ApiError("unauthorized", "x"), started=10, now=10)
    assert d == 60 and g.status == "unauthorized"


def test_guard_one_burst_counts_once():
    g = guard()
    g.failure(ApiError("timeout", "x"), started=0.0, now=2.0)
    # Three more requests that were already in flight fail: backoff does not advance.
    for _ in range(3):
        g.failure(ApiError("timeout", "x"), started=0.5, now=2.1)
    assert g.backoff.attempts == 1
    # A late success of a request from before the failure does not clear the backoff.
    assert g.success(started=1.0) == 0 and g.status == "error"


def test_kinds_and_statuses_are_enums_that_still_compare_as_their_words():
    err = ApiError("rate_limited", "x")
    assert err.kind is ApiErrorKind.RATE_LIMITED and err.kind == "rate_limited"
    with pytest.raises(ValueError):
        ApiError("no_such_kind", "x")
    g = guard()
    assert g.status is ApiStatus.OK
    g.failure(ApiError(ApiErrorKind.TIMEOUT, "x"), started=0, now=0)
    assert g.status is ApiStatus.ERROR and f"API {g.status}" == "API error"


# ------------------------------------------------------------------ TLS to the API

@pytest.fixture
def https_api(tmp_path):
    import ssl

    from tests.helpers import make_certs

    certs = make_certs(tmp_path)
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(certs["cert"], certs["key"])
    with ThreadedStandin(StandinApi(api_key=KEY, ssl_context=ctx)) as a:
        yield a, certs


async def test_tls_is_verified_by_default(https_api):
    api, _ = https_api
    assert api.url.startswith("https://")
    with pytest.raises(ApiError) as err:
        await call(api)
    assert err.value.kind == "connection" and "TLS certificate not trusted" in str(err.value)
    assert api.requests() == []  # nothing was sent to an unverified server


async def test_tls_with_a_private_ca(https_api):
    api, certs = https_api
    reply = await call(api, ca_certs=str(certs["ca"]))
    assert reply.result.top == "red"


async def test_tls_insecure_must_be_explicit_and_warns(https_api, caplog):
    api, _ = https_api
    with caplog.at_level("WARNING"):
        reply = await call(api, insecure=True)
    assert reply.result.top == "red"
    assert "NOT verified" in caplog.text


# ------------------------------------------------------------------ issue #9: caps, redaction

from edge_agent.classify import MAX_RETRY_AFTER, key_forms  # noqa: E402


@pytest.mark.parametrize("header", ["1e308", "inf", "86400"])
async def test_retry_after_is_capped(api, header):
    api.add_faults({"status": 429, "retry_after": header})
    with pytest.raises(ApiError) as err:
        await call(api)
    assert err.value.kind == "rate_limited" and err.value.retry_after == MAX_RETRY_AFTER == 300
    assert str(err.value) == "rate limited (HTTP 429, retry after 300 s)"
    g = guard()
    d, _ = g.failure(err.value, started=0, now=0)
    assert d == 300 and g.status == "rate_limited"


def test_guard_caps_a_huge_retry_after_itself():
    d, _ = guard().failure(ApiError("rate_limited", "x", retry_after=1e308), started=0, now=0)
    assert d == MAX_RETRY_AFTER


def test_key_forms_cover_base64_at_any_alignment():
    import base64
    import os

    forms = key_forms(KEY)
    for pre in range(4):
        for post in range(3):
            enc = base64.b64encode(os.urandom(pre) + KEY.encode() + os.urandom(post)).decode()
            assert any(f in enc for f in forms), (pre, post)
    assert key_forms("") == [] and key_forms(None) == []


@pytest.mark.parametrize("body", [
    ("x" * 70 + KEY + " trailing").encode(),
    ("y" * 75 + base64.b64encode(KEY.encode()).decode() + " z").encode(),
    ('{"detail": "bad request", "url": "https://api.example/m/1?api_key=' + KEY + '"}').encode(),
    (" \n" * 40 + KEY).encode(),  # collapsed blanks move the key into the excerpt
])
def test_excerpt_is_redacted_whole_then_cut(body):
    client = ClassifyClient(ApiConfig(model="m/1", api_key=KEY), session=None)  # type: ignore[arg-type]
    with pytest.raises(ApiError) as err:
        client._interpret(400, None, body)
    text = str(err.value)
    assert err.value.kind == "http_4xx"
    assert not any(KEY[:n] in text for n in (5, 8)), text
    assert not any(f[:6] in text for f in key_forms(KEY) if f != KEY), text
