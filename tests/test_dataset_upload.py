"""The dataset upload client (#20) over real HTTP against the stand-in's upload and
annotate routes, and its pure parts (the request, the reply, the disposition)."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import aiohttp
import cv2
import numpy as np
import pytest

from edge_agent.classify import key_forms
from edge_agent.dataset.upload import (MAX_REPLY_BYTES, Annotated, Next, UploadClient, UploadError,
                                       UploadErrorKind, Uploaded, disposition)
from edge_agent.dataset.upload_reply import (MAX_TAGS, BadUploadReply, annotate_request, parse_annotate_reply,
                                             parse_upload_reply, upload_request)
from tools.standin_api import StandinApi, ThreadedStandin

KEY = "rf_live_KEY_do_not_leak_42"
MB = 1024 * 1024
TAGS = ["edge-agent", "porch", "overruled", "pi-7", "colours-1"]
META = {"camera": "porch", "reason": "overruled", "top": "red", "confidence": 0.61,
        "predictions": [{"class": "red", "confidence": 0.61}], "captured_at": "2026-12-03T18:00:00Z"}


def jpeg(colour: int = 2, seed: int = 0) -> bytes:
    img = np.zeros((90, 120, 3), np.uint8)
    img[..., colour] = 200
    img[:16, :16] = np.random.default_rng(seed).integers(0, 256, (16, 16, 3))  # other bytes per seed
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 90])
    assert ok
    return buf.tobytes()


@pytest.fixture
def api(tmp_path: Path):
    with ThreadedStandin(StandinApi(api_key=KEY, dataset_dir=tmp_path / "dataset")) as a:
        yield a


async def upload(api: StandinApi, data: bytes | None = None, *, key: str = KEY, timeout: float = 5,
                 project: str = "colours", **kw) -> Uploaded:
    async with aiohttp.ClientSession() as s:
        client = UploadClient(s, api_key=key, url=api.url, timeout=timeout)
        return await client.upload(data or jpeg(), name=kw.pop("name", "abc123.jpg"), project=project,
                                   batch=kw.pop("batch", "edge-agent 2026-12-03"), tags=kw.pop("tags", TAGS),
                                   metadata=kw.pop("metadata", META))


async def annotate(api: StandinApi, image_id: str, label: str, *, prediction: bool, key: str = KEY,
                   project: str = "colours") -> Annotated:
    async with aiohttp.ClientSession() as s:
        return await UploadClient(s, api_key=key, url=api.url).annotate(image_id, label, project=project,
                                                                        prediction=prediction)


def assert_no_key(err: UploadError) -> None:
    for text in (str(err), repr(err), err.description, repr(err.__context__), repr(err.__cause__)):
        assert KEY[:6] not in text, text
        assert not any(form[:6] in text for form in key_forms(KEY)), text


# ------------------------------------------------------------------ over HTTP

async def test_upload_arrives_intact_with_tags_batch_and_metadata(api):
    data = jpeg()
    up = await upload(api, data)
    assert up.duplicate is False and up.image_id
    [got] = api.dataset.uploads()
    assert got.project == "colours" and got.image_id == up.image_id
    assert got.fields["name"] == "abc123.jpg" and got.fields["filename"] == "abc123.jpg"
    assert got.fields["split"] == "train"
    assert got.fields["batch"] == "edge-agent 2026-12-03"
    assert got.fields["tags"] == TAGS  # one tag parameter each, in order
    assert got.fields["metadata"] == META
    folder = api.dataset_dir / "colours"
    assert (folder / f"{up.image_id}.jpg").read_bytes() == data
    assert json.loads((folder / f"{up.image_id}.json").read_text())["tags"] == TAGS


async def test_without_metadata_and_with_a_key_free_stand_in(tmp_path):
    with ThreadedStandin(StandinApi(api_key=None, dataset_dir=tmp_path)) as api:
        up = await upload(api, key="", metadata=None)
        assert not up.duplicate
        [got] = api.dataset.uploads()
        assert got.fields["metadata"] is None


async def test_same_bytes_again_is_a_duplicate_with_the_same_id(api):
    first = await upload(api, jpeg(seed=1))
    again = await upload(api, jpeg(seed=1), name="other.jpg")
    other = await upload(api, jpeg(seed=2))
    assert again == Uploaded(first.image_id, True)
    assert not other.duplicate and other.image_id != first.image_id
    assert len(api.dataset.uploads()) == 2


async def test_a_restarted_stand_in_on_the_same_folder_knows_its_images(tmp_path):
    with ThreadedStandin(StandinApi(api_key=KEY, dataset_dir=tmp_path)) as api:
        first = await upload(api, jpeg(seed=5))
    with ThreadedStandin(StandinApi(api_key=KEY, dataset_dir=tmp_path)) as api:
        assert await upload(api, jpeg(seed=5)) == Uploaded(first.image_id, True)
        assert await annotate(api, first.image_id, "red", prediction=True) is Annotated.LABELLED
    assert (tmp_path / "colours" / f"{first.image_id}.jpg").exists()  # a given folder is kept


async def test_a_temporary_folder_is_removed_at_the_stop():
    with ThreadedStandin(StandinApi(api_key=KEY)) as api:
        await upload(api)
        folder = api.dataset.root()
        assert len(list((folder / "colours").glob("*.jpg"))) == 1
    assert not folder.exists()


async def test_annotate_with_and_without_prediction_then_409(api):
    guessed = await upload(api, jpeg(seed=3))
    labelled = await upload(api, jpeg(seed=4))
    assert await annotate(api, guessed.image_id, "red", prediction=True) is Annotated.LABELLED
    assert await annotate(api, labelled.image_id, "blue", prediction=False) is Annotated.LABELLED
    folder = api.dataset_dir / "colours"
    one = json.loads((folder / f"{guessed.image_id}.label.json").read_text())
    two = json.loads((folder / f"{labelled.image_id}.label.json").read_text())
    assert one == {"label": "red", "name": f"{guessed.image_id}.txt", "prediction": True}
    assert two == {"label": "blue", "name": f"{labelled.image_id}.txt", "prediction": False}
    # Labelled before: 409, which is not an error; the first label stays.
    assert await annotate(api, guessed.image_id, "green", prediction=False) is Annotated.ALREADY_LABELLED
    assert json.loads((folder / f"{guessed.image_id}.label.json").read_text())["label"] == "red"
    assert [r.status for r in api.dataset.log() if r.route == "annotate"] == [200, 200, 409]


async def test_annotate_an_unknown_image_is_not_found(api):
    with pytest.raises(UploadError) as err:
        await annotate(api, "nosuchimage", "red", prediction=True)
    assert err.value.kind is UploadErrorKind.NOT_FOUND and err.value.next is Next.PAUSE


async def test_unknown_project_is_not_found_and_pauses(tmp_path):
    with ThreadedStandin(StandinApi(api_key=KEY, dataset_dir=tmp_path, projects={"colours"})) as api:
        assert not (await upload(api, project="colours")).duplicate
        with pytest.raises(UploadError) as err:
            await upload(api, project="colurs")
    assert err.value.kind is UploadErrorKind.NOT_FOUND and err.value.status == 404
    assert "not found" in err.value.description and err.value.next is Next.PAUSE
    assert_no_key(err.value)


@pytest.mark.parametrize("route", ["upload", "annotate"])
async def test_wrong_key_is_unauthorized_and_pauses(api, route):
    with pytest.raises(UploadError) as err:
        if route == "upload":
            await upload(api, key="wrong-key-123")
        else:
            await annotate(api, "abc", "red", prediction=True, key="wrong-key-123")
    assert err.value.kind is UploadErrorKind.UNAUTHORIZED and err.value.next is Next.PAUSE
    assert api.dataset.uploads() == []


@pytest.mark.parametrize("fault,kind,retry_after,nxt", [
    ({"status": 401}, "unauthorized", None, Next.PAUSE),
    ({"status": 403}, "unauthorized", None, Next.PAUSE),
    ({"status": 404}, "not_found", None, Next.PAUSE),
    ({"status": 429, "retry_after": "7"}, "rate_limited", 7.0, Next.RETRY),
    ({"status": 429, "retry_after": "Wed, 21 Oct 2015 07:28:00 GMT"}, "rate_limited", 0.0, Next.RETRY),
    ({"status": 429, "retry_after": "1e308"}, "rate_limited", 3600.0, Next.RETRY),
    ({"status": 429}, "rate_limited", None, Next.RETRY),
    ({"status": 500}, "http_5xx", None, Next.RETRY),
    ({"status": 503}, "http_5xx", None, Next.RETRY),
    ({"status": 400}, "http_4xx", None, Next.DROP),
    ({"status": 413}, "http_4xx", None, Next.DROP),
    ({"status": 302}, "http_4xx", None, Next.DROP),
    ({"garbage": True}, "bad_reply", None, Next.RETRY),
    ({"reply": {"success": True}}, "bad_reply", None, Next.RETRY),
    ({"reply": {"success": True, "id": "../../x"}}, "bad_reply", None, Next.RETRY),
    ({"reply": ["success"]}, "bad_reply", None, Next.RETRY),
    ({"reply": {"success": False, "message": "image too small"}}, "rejected", None, Next.DROP),
    ({"reset": True}, "connection", None, Next.RETRY),
    ({"hang": 3}, "timeout", None, Next.RETRY),
], ids=lambda v: json.dumps(v) if isinstance(v, dict) else None)
async def test_each_error_kind_holds_no_key(api, fault, kind, retry_after, nxt):
    api.dataset.add_faults(fault)
    with pytest.raises(UploadError) as err:
        await upload(api, timeout=1)
    assert err.value.kind == kind and err.value.retry_after == retry_after
    assert err.value.next is nxt and disposition(err.value.kind) is nxt
    assert len(err.value.description) < 200
    assert_no_key(err.value)
    assert api.dataset.uploads() == []  # a fault stores nothing


async def test_outage_then_recovery(api):
    api.dataset.down = True
    with pytest.raises(UploadError) as err:
        await upload(api)
    assert err.value.kind is UploadErrorKind.HTTP_5XX
    api.dataset.down = False
    assert not (await upload(api)).duplicate


async def test_connection_refused():
    async with aiohttp.ClientSession() as s:
        with pytest.raises(UploadError) as err:
            await UploadClient(s, api_key=KEY, url="http://127.0.0.1:9", timeout=2).upload(
                jpeg(), name="a.jpg", project="p", batch="b", tags=[], metadata=None)
    assert err.value.kind is UploadErrorKind.CONNECTION and err.value.next is Next.RETRY
    assert_no_key(err.value)


@pytest.mark.parametrize("fault,says", [
    ({"big_body": 2 * MB}, "larger than the 64 KiB cap"),
    ({"big_body": 50 * MB, "chunked": True}, "larger than the 64 KiB cap"),
    ({"gzip_bomb": 200 * MB}, "larger than the 64 KiB cap"),
    ({"garbage": True}, "not JSON: '<html>502 Bad Gateway</html>'"),
    ({"echo_key": True}, "upload refused (HTTP 400)"),
], ids=["body-2MB", "body-50MB-chunked", "gzip-bomb-200MB", "html", "echo-key"])
async def test_hostile_replies_are_quick_bounded_errors(api, fault, says):
    api.dataset.add_faults(fault)
    t0 = time.monotonic()
    with pytest.raises(UploadError) as err:
        await upload(api, timeout=20)
    assert time.monotonic() - t0 < 3
    assert says in err.value.description, err.value.description
    assert len(err.value.description) < 200
    assert_no_key(err.value)
    if "echo_key" in fault:
        assert "***" in err.value.description  # the key straddled the cut: masked whole


async def test_a_reply_just_under_the_cap_is_read(api):
    api.dataset.add_faults({"big_body": MAX_REPLY_BYTES - 10})
    assert await upload(api) == Uploaded("padded", False)


async def test_key_is_in_no_log_record(api, caplog):
    caplog.set_level(logging.DEBUG)
    for fault in ({"status": 401}, {"status": 500}, {"echo_key": True}, {"garbage": True}, {"hang": 2}):
        api.dataset.add_faults(fault)
        try:
            await upload(api, timeout=0.5)
        except UploadError as err:
            logging.getLogger("edge_agent.dataset").warning("upload failed: %s", err)
            logging.getLogger("edge_agent.dataset").warning("as repr: %r", err)
    up = await upload(api)
    await annotate(api, up.image_id, "red", prediction=True)
    assert caplog.records  # the failures above were logged
    for rec in caplog.records:
        text = rec.getMessage() + (rec.exc_text or "")
        assert KEY[:6] not in text, text


async def test_client_repr_holds_no_key():
    async with aiohttp.ClientSession() as s:
        client = UploadClient(s, api_key=KEY, url="http://127.0.0.1:9")
        assert KEY not in repr(client) and KEY not in str(vars(client).get("url"))


# ------------------------------------------------------------------ pure parts

def test_upload_request_repeats_tag_and_quotes_the_project():
    req = upload_request("https://api.roboflow.com/", "my project/../x", api_key=KEY, batch="edge-agent 2026-12-03",
                         tags=["edge-agent", "porch", "edge-agent", "colours-1"])
    assert req.url == "https://api.roboflow.com/dataset/my%20project%2F..%2Fx/upload"
    assert req.params == (("api_key", KEY), ("batch", "edge-agent 2026-12-03"), ("tag", "edge-agent"),
                          ("tag", "porch"), ("tag", "colours-1"))
    assert KEY not in repr(req)
    assert upload_request("http://h", "p", api_key=None, batch="b", tags=[]).params == (("batch", "b"),)


@pytest.mark.parametrize("kw", [
    {"project": ".."}, {"project": ""}, {"project": "p" * 129}, {"batch": ""}, {"batch": "a\nb"},
    {"tags": ["ok", ""]}, {"tags": ["x" * 101]}, {"tags": [f"t{i}" for i in range(MAX_TAGS + 1)]},
])
def test_upload_request_refuses_what_it_cannot_send(kw):
    args = {"project": "p", "batch": "b", "tags": ["t"], **kw}
    with pytest.raises(ValueError):
        upload_request("http://h", args.pop("project"), api_key=KEY, **args)


def test_annotate_request():
    guess = annotate_request("http://h", "colours", "img_01", api_key=KEY, prediction=True)
    person = annotate_request("http://h", "colours", "img_01", api_key=KEY, prediction=False)
    assert guess.url == person.url == "http://h/dataset/colours/annotate/img_01"
    assert guess.params == (("api_key", KEY), ("name", "img_01.txt"), ("prediction", "true"))
    assert person.params == (("api_key", KEY), ("name", "img_01.txt"))
    for bad in ("..", ".", "a/b", "", "x" * 129, "a b"):
        with pytest.raises(ValueError):
            annotate_request("http://h", "colours", bad, api_key=KEY, prediction=True)


@pytest.mark.parametrize("body,expected", [
    ({"success": True, "id": "AbC123"}, Uploaded("AbC123", False)),
    ({"duplicate": True, "id": "AbC123"}, Uploaded("AbC123", True)),
    ({"duplicate": True}, Uploaded(None, True)),  # as inference reads it: no id needed
    ({"success": True, "duplicate": True, "id": "x1"}, Uploaded("x1", True)),
])
def test_parse_upload_reply(body, expected):
    assert parse_upload_reply(body) == expected


@pytest.mark.parametrize("body,rejected", [
    ({"success": True}, False), ({"success": True, "id": 12}, False), ({"success": True, "id": "a/b"}, False),
    ({"success": "yes", "id": "a"}, True), ({"duplicate": True, "id": ".."}, False), ([], False), ("ok", False),
    ({"success": False, "message": "nope"}, True), ({"error": {"message": "bad image"}}, True),
])
def test_parse_upload_reply_refuses(body, rejected):
    with pytest.raises(BadUploadReply) as err:
        parse_upload_reply(body)
    assert err.value.rejected is rejected


def test_parse_annotate_reply():
    assert parse_annotate_reply({"success": True}) is Annotated.LABELLED
    for body in ({"success": True, "error": "x"}, {"success": False}, {}, None, [True]):
        with pytest.raises(BadUploadReply):
            parse_annotate_reply(body)


def test_disposition_covers_every_kind():
    assert {k: disposition(k) for k in UploadErrorKind} == {
        UploadErrorKind.UNAUTHORIZED: Next.PAUSE, UploadErrorKind.NOT_FOUND: Next.PAUSE,
        UploadErrorKind.RATE_LIMITED: Next.RETRY, UploadErrorKind.HTTP_5XX: Next.RETRY,
        UploadErrorKind.TIMEOUT: Next.RETRY, UploadErrorKind.CONNECTION: Next.RETRY,
        UploadErrorKind.BAD_REPLY: Next.RETRY, UploadErrorKind.HTTP_4XX: Next.DROP,
        UploadErrorKind.REJECTED: Next.DROP}


async def test_caller_errors_are_value_errors_before_any_request(api):
    async with aiohttp.ClientSession() as s:
        client = UploadClient(s, api_key=KEY, url=api.url)
        with pytest.raises(ValueError):
            await client.upload(jpeg(), name="../a.jpg", project="p", batch="b", tags=[])
        with pytest.raises(ValueError):
            await client.upload(jpeg(), name="a.jpg", project="p", batch="b", tags=[],
                                metadata={"pad": "x" * 20000})
        with pytest.raises(ValueError):
            await client.annotate("abc", "red\n", project="p", prediction=True)
    assert api.dataset.log() == []


# ------------------------------------------------------------------ the stand-in holds callers to the contract

async def test_stand_in_refuses_what_breaks_the_contract(api):
    base = f"{api.url}/dataset/colours"
    up = await upload(api, jpeg(seed=9))

    def form(**fields) -> aiohttp.FormData:
        f = aiohttp.FormData()
        for name, value in fields.items():
            if name == "file":
                f.add_field("file", value[0], filename="a.jpg", content_type=value[1])
            else:
                f.add_field(name, value)
        return f

    cases = [
        ("upload", {"data": b"x", "headers": {"Content-Type": "image/jpeg"}}, 400),  # not multipart
        ("upload", {"data": form(name="a.jpg", file=(b"PNG...", "image/jpeg"))}, 400),  # not a JPEG
        ("upload", {"data": form(name="a.jpg", file=(jpeg(), "image/png"))}, 400),  # wrong part type
        ("upload", {"data": form(file=(jpeg(), "image/jpeg"))}, 400),  # no name
        ("upload", {"data": form(name="a.jpg", metadata="[1]", file=(jpeg(), "image/jpeg"))}, 400),
        ("annotate", {"data": b"red", "headers": {"Content-Type": "application/json"}}, 400),
        ("annotate", {"data": b"red", "headers": {"Content-Type": "text/plain"}, "name": "x.txt"}, 400),
        ("annotate", {"data": b"", "headers": {"Content-Type": "text/plain"}}, 400),
    ]
    async with aiohttp.ClientSession() as s:
        for route, kw, status in cases:
            params = {"api_key": KEY, "batch": "b"}
            if route == "annotate":
                params["name"] = kw.pop("name", f"{up.image_id}.txt")
                url = f"{base}/annotate/{up.image_id}"
            else:
                url = f"{base}/upload"
            async with s.post(url, params=params, **kw) as resp:
                assert resp.status == status, (route, kw, await resp.text())
    assert len(api.dataset.uploads()) == 1
    assert not (api.dataset_dir / "colours" / f"{up.image_id}.label.json").exists()


async def test_a_gzip_bomb_of_1_GiB_costs_no_memory(api):
    """Python's own allocations while the bomb is read (tracemalloc sees every bytes
    object, the inflated chunks included): far below what inflating it would take."""
    import tracemalloc

    api.dataset.add_faults({"gzip_bomb": 1024 * MB})
    async with aiohttp.ClientSession() as s:
        client = UploadClient(s, api_key=KEY, url=api.url, timeout=20)
        tracemalloc.start()
        try:
            with pytest.raises(UploadError) as err:
                await client.upload(jpeg(), name="a.jpg", project="colours", batch="b", tags=[])
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert peak < 8 * MB, peak
    assert err.value.kind is UploadErrorKind.BAD_REPLY and "64 KiB cap" in err.value.description
