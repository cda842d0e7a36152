"""The dataset upload API: one HTTP client for Roboflow's upload and annotate routes.

Design rule: like ``classify.ClassifyClient`` - one request, one typed outcome or
one :class:`UploadError` of an :class:`UploadErrorKind`; what comes back is capped
(``MAX_REPLY_BYTES`` counted after gzip/deflate decoding, so a gzip bomb stops at
the cap; JSON only); no error text ever holds the request URL or the key (a
quoted reply body is redacted whole, then cut). What to do after a failure is
the pure :func:`disposition`. The client logs nothing: the caller (the uploader
loop, wired later) logs an episode once.

The contract, checked against the two clients Roboflow ships (read 2026-12-03):

* roboflow-python ``roboflow/adapters/rfapi.py`` (``upload_image``,
  ``_local_upload_url``, ``save_annotation``, ``_save_annotation_url``; commit
  c731b4ec, upload last changed 2026-04-27, annotate 2026-04-09);
* roboflow ``inference`` ``inference/core/roboflow_api.py``
  (``register_image_at_roboflow``, ``annotate_image_at_roboflow``; commit
  3bb973b5, both last changed 2026-07-24) and its callers
  (``core_steps/sinks/roboflow/dataset_upload/v1.py``).

Upload: both send ``POST {url}/dataset/{project}/upload?api_key=KEY&batch=NAME``
with one ``tag`` parameter per tag, a multipart body with ``name``, ``file``
(image/jpeg) and optional ``metadata`` (a JSON string); both accept a reply with
``success`` or ``duplicate`` and read ``id``. They differ in small things; we send
``split=train`` (roboflow-python; ``inference`` leaves it to the server's default,
which is train) and the image's name as the file part's filename (roboflow-python;
``inference`` sends "imageToUpload"). A duplicate's ``id`` is read when present
(roboflow-python uses it; ``inference`` drops it).

Annotate: they differ, and we follow ``inference`` (the newer, and the only one
that labels a classification by its class name): ``POST
{url}/dataset/{project}/annotate/{image_id}?api_key=KEY&name=<id>.txt``,
``Content-Type: text/plain``, the class name as the body (roboflow-python sends
JSON ``{"annotationFile", "labelmap"}``), and every 409 is "already labelled"
(roboflow-python also checks the message says "already annotated").
``prediction=true`` is sent for the model's own guess; for a person's label the
parameter is left off, as roboflow-python does (``inference`` would send
``prediction=false``, but its callers only ever send model guesses).
"""

from __future__ import annotations

import json
from typing import Any, Mapping, Sequence

import aiohttp

from ..backoff import parse_retry_after
from ..classify import key_forms
from ..httppost import Unreached, post_capped  # the same bounded POST as classification
from ..redact import Redactor
from ..strenum import StrEnum
from .upload_reply import (Annotated, BadUploadReply, Request, Uploaded, annotate_request, check_name,
                           parse_annotate_reply, parse_upload_reply, upload_request)

__all__ = ["Annotated", "Next", "UploadClient", "UploadError", "UploadErrorKind", "Uploaded", "disposition"]

DEFAULT_URL = "https://api.roboflow.com"
DEFAULT_TIMEOUT = 60.0  # seconds: a 1280-px JPEG over a slow uplink
MAX_REPLY_BYTES = 64 * 1024  # a real reply is under 1 kB; counted after decompression
MAX_METADATA_BYTES = 16 * 1024  # of the metadata JSON we send
MAX_LABEL_CHARS = 200  # a class name (reply.MAX_CLASS_NAME)
MAX_RETRY_AFTER = 3600.0  # seconds: uploads can wait longer than classification
EXCERPT_CHARS = 80
SPLIT = "train"


class UploadErrorKind(StrEnum):
    """What went wrong (the value is the word logs, status and metrics use)."""
    UNAUTHORIZED = "unauthorized"  # 401/403: the key is wrong or may not write to the dataset
    NOT_FOUND = "not_found"  # 404: no such project (or image, for an annotation)
    RATE_LIMITED = "rate_limited"  # 429
    HTTP_4XX = "http_4xx"  # any other refusal of this request (and any other non-2xx, non-5xx)
    HTTP_5XX = "http_5xx"
    TIMEOUT = "timeout"
    CONNECTION = "connection"  # no connection, TLS refused, or the reply cut short
    BAD_REPLY = "bad_reply"  # a 2xx too large, not JSON, or not the contract's shape
    REJECTED = "rejected"  # a 2xx that says the server did not take it (success false)


class Next(StrEnum):
    """What the uploader does with the item after a failure."""
    RETRY = "retry"  # keep it; try again after a backoff (or the Retry-After)
    PAUSE = "pause"  # keep it; stop uploading until the config changes (key, project)
    DROP = "drop"  # the server refused THIS item; retrying it would jam the queue


_DISPOSITION = {
    UploadErrorKind.UNAUTHORIZED: Next.PAUSE,
    UploadErrorKind.NOT_FOUND: Next.PAUSE,
    UploadErrorKind.RATE_LIMITED: Next.RETRY,
    UploadErrorKind.HTTP_5XX: Next.RETRY,
    UploadErrorKind.TIMEOUT: Next.RETRY,
    UploadErrorKind.CONNECTION: Next.RETRY,
    UploadErrorKind.BAD_REPLY: Next.RETRY,  # a proxy's HTML page is usually passing
    UploadErrorKind.HTTP_4XX: Next.DROP,
    UploadErrorKind.REJECTED: Next.DROP,
}


def disposition(kind: UploadErrorKind) -> Next:
    """Pure: pause on what only a config change mends, drop what the server refused
    on its merits, retry (with backoff) everything passing."""
    return _DISPOSITION[UploadErrorKind(kind)]


class UploadError(Exception):
    """A failed request, of an ``UploadErrorKind``. ``str()`` never holds a secret."""

    def __init__(self, kind: UploadErrorKind | str, description: str, *, status: int | None = None,
                 retry_after: float | None = None):
        super().__init__(description)
        self.kind = UploadErrorKind(kind)
        self.description = description
        self.status = status
        self.retry_after = retry_after

    @property
    def next(self) -> Next:
        return disposition(self.kind)


class UploadClient:
    """Uploads to ``{url}/dataset/{project}/...`` over a session it is given (and
    does not close): the agent's own, or one made with ``classify.new_session``."""

    def __init__(self, session: aiohttp.ClientSession, *, api_key: str | None, url: str = DEFAULT_URL,
                 timeout: float = DEFAULT_TIMEOUT):
        self.session = session
        self.url = url.rstrip("/")
        self._key = api_key
        self._timeout_s = timeout
        self.redact = Redactor(key_forms(api_key))

    def __repr__(self) -> str:
        return f"UploadClient({self.url!r})"

    async def upload(self, jpeg: bytes, *, name: str, project: str, batch: str, tags: Sequence[str],
                     metadata: Mapping[str, Any] | None = None) -> Uploaded:
        """One image into the project's dataset (split ``train``)."""
        req = upload_request(self.url, project, api_key=self._key, batch=batch, tags=tags)
        name = check_name(name)
        form = aiohttp.FormData()
        form.add_field("name", name)
        form.add_field("split", SPLIT)
        if metadata is not None:
            text = json.dumps(dict(metadata), separators=(",", ":"), default=str)
            if len(text.encode()) > MAX_METADATA_BYTES:
                raise ValueError(f"metadata over {MAX_METADATA_BYTES} bytes")
            form.add_field("metadata", text)
        form.add_field("file", jpeg, filename=name, content_type="image/jpeg")
        status, retry_after, raw = await self._post(req, form, {})
        body = self._json(status, retry_after, raw, annotate=False)
        try:
            return parse_upload_reply(body)
        except BadUploadReply as exc:
            raise self._refused(exc) from None

    async def annotate(self, image_id: str, label: str, *, project: str, prediction: bool) -> Annotated:
        """The image's class: the model's guess (``prediction`` True, the user
        reviews it) or a person's. A 409 (labelled before) is ALREADY_LABELLED."""
        if not label or len(label) > MAX_LABEL_CHARS or not label.isprintable():
            raise ValueError(f"a label must be 1-{MAX_LABEL_CHARS} printable characters")
        req = annotate_request(self.url, project, image_id, api_key=self._key, prediction=prediction)
        status, retry_after, raw = await self._post(req, label.encode("utf-8"),
                                                    {"Content-Type": "text/plain"})
        if status == 409:
            return Annotated.ALREADY_LABELLED
        body = self._json(status, retry_after, raw, annotate=True)
        try:
            return parse_annotate_reply(body)
        except BadUploadReply as exc:
            raise self._refused(exc) from None

    # -- the request ---------------------------------------------------------------

    async def _post(self, req: Request, data: Any, headers: dict[str, str]) -> tuple[int, str | None, bytes | None]:
        try:
            posted = await post_capped(self.session, req.url, params=list(req.params), data=data, headers=headers,
                                       timeout=self._timeout_s, limit=MAX_REPLY_BYTES)
        except Unreached as exc:
            raise UploadError(UploadErrorKind(exc.kind), exc.description) from None
        return posted.status, posted.headers.get("Retry-After"), posted.raw

    def _json(self, status: int, retry_after: str | None, raw: bytes | None, *, annotate: bool) -> Any:
        """The reply's JSON, or the UploadError its status and body amount to."""
        what = "annotation" if annotate else "upload"
        if status in (401, 403):
            raise UploadError(UploadErrorKind.UNAUTHORIZED, f"API key refused for the {what} (HTTP {status})",
                              status=status)
        if status == 404:
            where = "the project or image" if annotate else "the project"
            raise UploadError(UploadErrorKind.NOT_FOUND, f"{where} is not found (HTTP 404): {self._excerpt(raw)}",
                              status=status)
        if status == 429:
            wait = parse_retry_after(retry_after, cap=MAX_RETRY_AFTER)
            extra = f", retry after {wait:g} s" if wait is not None else ""
            raise UploadError(UploadErrorKind.RATE_LIMITED, f"rate limited (HTTP 429{extra})", status=status,
                              retry_after=wait)
        if status >= 500:
            raise UploadError(UploadErrorKind.HTTP_5XX, f"server error (HTTP {status})", status=status)
        if not 200 <= status < 300:
            raise UploadError(UploadErrorKind.HTTP_4XX, f"{what} refused (HTTP {status}): {self._excerpt(raw)}",
                              status=status)
        if raw is None:
            raise UploadError(UploadErrorKind.BAD_REPLY, f"reply larger than the {MAX_REPLY_BYTES // 1024} KiB cap")
        try:
            return json.loads(raw)
        except RecursionError:
            raise UploadError(UploadErrorKind.BAD_REPLY, "reply JSON is nested too deeply") from None
        except (UnicodeDecodeError, ValueError):
            raise UploadError(UploadErrorKind.BAD_REPLY, f"reply is not JSON: {self._excerpt(raw)}") from None

    def _refused(self, exc: BadUploadReply) -> UploadError:
        text = self.redact.bounded(" ".join(str(exc).split()), 160)
        if exc.rejected:
            return UploadError(UploadErrorKind.REJECTED, f"refused: {text}")
        return UploadError(UploadErrorKind.BAD_REPLY, f"unexpected reply: {text}")

    def _excerpt(self, raw: bytes | None) -> str:
        """The start of a body: decoded and redacted WHOLE, then cut."""
        if raw is None:
            return f"(body larger than {MAX_REPLY_BYTES // 1024} KiB, not shown)"
        text = " ".join(self.redact(raw.decode("utf-8", "replace")).split())
        return repr(text[:EXCERPT_CHARS] + ("..." if len(text) > EXCERPT_CHARS else ""))
