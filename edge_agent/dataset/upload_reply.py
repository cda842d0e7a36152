"""The upload API's requests and replies, as pure functions (no I/O, no clock).

What goes out: the route and query of an upload or an annotation, built from
bounded parts (a project slug and an image id are path segments, quoted whole, so
neither can climb out of ``/dataset/<project>/``). What comes back: a JSON reply
read into an :class:`Uploaded` or an :class:`Annotated`, or :class:`BadUploadReply`.
The caller (``upload.py``) owns the HTTP, the caps and the redaction.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Sequence
from urllib.parse import quote

from ..strenum import StrEnum

MAX_TAGS = 16  # the agent sends five (edge-agent, camera, reason, device, model)
MAX_TAG_CHARS = 100
MAX_NAME_CHARS = 128  # of the image's ``name`` (``<id>.jpg``) and of the batch
MAX_IMAGE_ID = 128
# What an image id may be: Roboflow's are short alphanumerics; anything else in
# a reply is refused rather than pasted into the next URL.
# It never starts with a dot, so it cannot be "." or "..".
_IMAGE_ID_RE = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.-]{0,%d}" % (MAX_IMAGE_ID - 1))


class BadUploadReply(ValueError):
    """A 2xx reply that is not the shape the contract promises (``rejected``: it
    is the shape, and it says no: ``success`` false, or an ``error``)."""

    def __init__(self, message: str, *, rejected: bool = False):
        super().__init__(message)
        self.rejected = rejected


class Annotated(StrEnum):
    """What an annotate request came to (both mean: the image has a label)."""
    LABELLED = "labelled"
    ALREADY_LABELLED = "already_labelled"  # HTTP 409: labelled before; not an error


@dataclass(frozen=True)
class Uploaded:
    """The image is in the dataset: new (``duplicate`` False) or sent before.
    ``image_id`` is None only for a duplicate whose reply named no id."""
    image_id: str | None
    duplicate: bool


@dataclass(frozen=True)
class Request:
    """A route and its query (a list: ``tag`` repeats). The key is one of the
    query pairs: never format a Request into text."""
    url: str
    params: tuple[tuple[str, str], ...]

    def __repr__(self) -> str:  # the params hold the key
        return f"Request({self.url!r}, <{len(self.params)} params>)"


def _segment(value: str, what: str) -> str:
    if not value or len(value) > MAX_NAME_CHARS or not value.strip("."):
        raise ValueError(f"{what} must be 1-{MAX_NAME_CHARS} characters, not only dots")
    return quote(value, safe="")


def _text(value: str, what: str, limit: int) -> str:
    if not value or len(value) > limit or not value.isprintable():
        raise ValueError(f"{what} must be 1-{limit} printable characters")
    return value


def upload_request(base_url: str, project: str, *, api_key: str | None, batch: str,
                   tags: Sequence[str]) -> Request:
    """``POST {base}/dataset/{project}/upload?api_key=KEY&batch=NAME&tag=T1&tag=T2``."""
    if len(tags) > MAX_TAGS:
        raise ValueError(f"at most {MAX_TAGS} tags")
    params: list[tuple[str, str]] = []
    if api_key:
        params.append(("api_key", api_key))
    params.append(("batch", _text(batch, "batch", MAX_NAME_CHARS)))
    for tag in dict.fromkeys(tags):  # once each, in order
        params.append(("tag", _text(tag, "a tag", MAX_TAG_CHARS)))
    url = f"{base_url.rstrip('/')}/dataset/{_segment(project, 'project')}/upload"
    return Request(url, tuple(params))


def annotate_request(base_url: str, project: str, image_id: str, *, api_key: str | None,
                     prediction: bool) -> Request:
    """``POST {base}/dataset/{project}/annotate/{image_id}?api_key=KEY&name=<id>.txt``,
    plus ``&prediction=true`` when the label is the model's own guess."""
    if not _IMAGE_ID_RE.fullmatch(image_id):
        raise ValueError("not an image id")
    params: list[tuple[str, str]] = []
    if api_key:
        params.append(("api_key", api_key))
    params.append(("name", f"{image_id}.txt"))
    if prediction:
        params.append(("prediction", "true"))
    url = f"{base_url.rstrip('/')}/dataset/{_segment(project, 'project')}/annotate/{image_id}"
    return Request(url, tuple(params))


def check_name(name: str) -> str:
    """The image's file name as the dataset shows it (``<id>.jpg``)."""
    if "/" in name or "\\" in name:
        raise ValueError("the image name must not hold a path")
    return _text(name, "the image name", MAX_NAME_CHARS)


def _image_id(value: Any) -> str | None:
    if isinstance(value, str) and _IMAGE_ID_RE.fullmatch(value):
        return value
    return None


def parse_upload_reply(body: Any) -> Uploaded:
    """``{"success": true, "id": ...}`` or ``{"duplicate": true[, "id": ...]}``
    (roboflow-python reads the id of a duplicate too; ``inference`` ignores it)."""
    if not isinstance(body, dict):
        raise BadUploadReply(f"a JSON {type(body).__name__}, not an object")
    if body.get("duplicate") is True:
        raw = body.get("id")
        image_id = _image_id(raw)
        if raw is not None and image_id is None:
            raise BadUploadReply("duplicate with a malformed id")
        return Uploaded(image_id, True)
    if body.get("success") is True:
        image_id = _image_id(body.get("id"))
        if image_id is None:
            raise BadUploadReply("success without a well-formed id")
        return Uploaded(image_id, False)
    raise BadUploadReply(f"neither success nor duplicate: {_message(body)}", rejected=True)


def parse_annotate_reply(body: Any) -> Annotated:
    """``{"success": true}`` (a reply with an ``error`` is refused, as ``inference`` does)."""
    if not isinstance(body, dict):
        raise BadUploadReply(f"a JSON {type(body).__name__}, not an object")
    if body.get("success") is True and "error" not in body:
        return Annotated.LABELLED
    raise BadUploadReply(f"annotation not saved: {_message(body)}", rejected=True)


def _message(body: dict[str, Any]) -> str:
    """The server's own words, if it gave any (the caller redacts and cuts them)."""
    for key in ("message", "error"):
        value = body.get(key)
        if isinstance(value, dict):
            value = value.get("message")
        if isinstance(value, str) and value:
            return value
    return "no message"
