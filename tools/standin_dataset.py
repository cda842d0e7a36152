"""The STAND-IN's dataset routes: Roboflow's upload and annotate API, as its
clients call it (see ``edge_agent/dataset/upload.py`` for the contract and where
it was read). Not a dataset: it files what it receives in a folder, so a test or
the demo can look at exactly what arrived.

* ``POST /dataset/<project>/upload?api_key=&batch=&tag=...`` (multipart ``name``,
  ``split``, ``file`` image/jpeg, optional ``metadata`` JSON): stores
  ``<folder>/<project>/<id>.jpg`` and ``<id>.json`` (name, split, batch, tags,
  metadata, when it was received); replies ``{"success": true, "id": ...}``, or
  ``{"duplicate": true, "id": ...}`` with the same id for the same bytes again,
  as Roboflow does (the id is their hash, so a restarted stand-in on the same
  folder still knows them): a frame sent twice is filed once.
* ``POST /dataset/<project>/annotate/<id>?api_key=&name=<id>.txt[&prediction=true]``
  (``text/plain``, the class name): stores ``<id>.label.json``; ``{"success":
  true}``, 409 for a second label, 404 for an unknown image.

What is filed can be read back with :func:`stored` (and counted by why each was
saved with :func:`by_reason`): the demo's closing line and the tests read it so.

The key is checked as the classification route checks it. ``projects`` (if
given) are the only ones that exist: others are 404. ``down`` answers 503 to
everything; ``add_faults`` plays one fault per request, as the classification
faults do: ``{"status": N}`` (optionally ``"retry_after"``), ``{"hang": s}``,
``{"reset": True}``, ``{"garbage": True}`` (an HTML page), ``{"reply": obj}`` (a
200 with that JSON), ``{"big_body": N}`` (``"chunked": True`` for no
Content-Length), ``{"gzip_bomb": N}``, ``{"echo_key": True}`` (a 400 quoting the
key). A fault is played after the key check, before anything is stored.
"""

from __future__ import annotations

import asyncio
import collections
import hashlib
import json
import shutil
import tempfile
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from aiohttp import BodyPartReader, web

from tools.hostile_bodies import big_body, gzip_bomb, key_echo

MAX_LABEL = 1024  # bytes of an annotation body
# The reasons the agent saves a frame for (the README's "Training data"); the
# reason is read from the metadata, else from the tags (one of them is the reason).
REASONS = ("on_demand", "overruled", "change", "uncertain", "random")
MAX_PART = 32 * 1024 * 1024  # bytes of one multipart field (the image)


async def _read_part(part: BodyPartReader) -> bytes | None:
    """A multipart field, or None once it passes ``MAX_PART`` bytes."""
    chunks, total = [], 0
    while chunk := await part.read_chunk():
        total += len(chunk)
        if total > MAX_PART:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


@dataclass(frozen=True)
class Received:
    """One upload or annotation as the stand-in took it."""
    at: float  # time.monotonic()
    route: str  # "upload" or "annotate"
    project: str
    status: int
    image_id: str | None = None
    fields: dict[str, Any] = field(default_factory=dict)


@dataclass
class DatasetRoutes:
    folder: Path | None  # None: a temporary folder, made at the first upload, removed by ``close``
    api_key: Callable[[], str | None]  # read per request: a test may change the stand-in's key
    projects: set[str] | None = None  # None: every project exists
    down: bool = False
    faults: deque[dict[str, Any]] = field(default_factory=deque)
    received: list[Received] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    _temporary: bool = False

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post("/dataset/{project}/upload", self._upload)
        app.router.add_post("/dataset/{project}/annotate/{image_id}", self._annotate)

    def add_faults(self, *faults: dict[str, Any]) -> None:
        with self._lock:
            self.faults.extend(faults)

    def log(self) -> list[Received]:
        with self._lock:
            return list(self.received)

    def uploads(self) -> list[Received]:
        """The images stored (new ones, not duplicates), in the order they came."""
        return [r for r in self.log() if r.route == "upload" and r.status == 200 and r.image_id is not None
                and not r.fields.get("duplicate")]

    def _note(self, route: str, project: str, status: int, image_id: str | None = None, **fields: Any) -> None:
        with self._lock:
            self.received.append(Received(time.monotonic(), route, project, status, image_id, fields))

    # -- the gate every request passes ----------------------------------------------------

    async def _gate(self, request: web.Request, route: str) -> web.StreamResponse | None:
        project = request.match_info["project"]
        if self.down:
            self._note(route, project, 503)
            return web.json_response({"message": "stand-in outage"}, status=503)
        key = self.api_key()
        if key is not None and request.query.get("api_key") != key:
            self._note(route, project, 401)
            return web.json_response({"error": {"message": "Unauthorized api_key"}}, status=401)
        with self._lock:
            fault = self.faults.popleft() if self.faults else None
        if fault is not None:
            await request.read()  # the client has sent everything: the fault is the reply
            self._note(route, project, int(fault.get("status", 200)), fault=fault)
            return await self._fault(request, fault)
        if self.projects is not None and project not in self.projects:
            self._note(route, project, 404)
            return web.json_response({"error": {"message": f"Dataset {project} not found"}}, status=404)
        return None

    def root(self) -> Path:
        """The folder everything is filed under (made now if it was not given)."""
        with self._lock:
            if self.folder is None:
                self.folder, self._temporary = Path(tempfile.mkdtemp(prefix="standin-dataset-")), True
            return self.folder

    def close(self) -> None:
        with self._lock:
            if self._temporary and self.folder is not None:
                shutil.rmtree(self.folder, ignore_errors=True)
                self.folder, self._temporary = None, False

    def _dir(self, project: str) -> Path:
        d = self.root() / project.replace("/", "_").replace("..", "_")
        d.mkdir(parents=True, exist_ok=True)
        return d

    # -- the routes ------------------------------------------------------------------------

    async def _upload(self, request: web.Request) -> web.StreamResponse:
        refused = await self._gate(request, "upload")
        if refused is not None:
            return refused
        project = request.match_info["project"]
        if not request.content_type.startswith("multipart/form-data"):
            return self._bad("upload", project, f"bad Content-Type {request.content_type}")
        parts: dict[str, Any] = {}
        reader = await request.multipart()
        async for part in reader:
            if not isinstance(part, BodyPartReader):
                return self._bad("upload", project, "a nested multipart")
            data = await _read_part(part)
            if data is None:
                return self._bad("upload", project, f"a part over {MAX_PART} bytes")
            if part.name == "file":
                parts["file"], parts["filename"] = data, part.filename
                parts["file_type"] = part.headers.get("Content-Type", "")
            elif part.name:
                parts[part.name] = data.decode("utf-8", "replace")
        jpeg = parts.get("file")
        if not parts.get("name") or jpeg is None:
            return self._bad("upload", project, "name and file are required")
        if parts.get("file_type") != "image/jpeg" or not jpeg.startswith(b"\xff\xd8"):
            return self._bad("upload", project, "file is not an image/jpeg")
        metadata = None
        if "metadata" in parts:
            try:
                metadata = json.loads(parts["metadata"])
            except ValueError:
                metadata = None
            if not isinstance(metadata, dict):
                return self._bad("upload", project, "metadata is not a JSON object")
        image_id = hashlib.sha256(jpeg).hexdigest()[:20]
        d = self._dir(project)
        info = {"name": parts["name"], "split": parts.get("split"), "filename": parts.get("filename"),
                "batch": request.query.get("batch"), "tags": request.query.getall("tag", []),
                "metadata": metadata}
        if (d / f"{image_id}.jpg").exists():
            self._note("upload", project, 200, image_id, duplicate=True, **info)
            return web.json_response({"duplicate": True, "id": image_id})
        # received_at: the order they came in, for a reader of the folder (``stored``)
        (d / f"{image_id}.json").write_text(json.dumps({**info, "received_at": time.time()}, indent=1))
        (d / f"{image_id}.jpg").write_bytes(jpeg)  # last: its presence means "stored"
        self._note("upload", project, 200, image_id, **info)
        return web.json_response({"success": True, "id": image_id})

    async def _annotate(self, request: web.Request) -> web.StreamResponse:
        refused = await self._gate(request, "annotate")
        if refused is not None:
            return refused
        project = request.match_info["project"]
        image_id = request.match_info["image_id"]
        if request.content_type != "text/plain":
            return self._bad("annotate", project, f"bad Content-Type {request.content_type}")
        raw = await request.content.read(MAX_LABEL + 1)
        if len(raw) > MAX_LABEL or not raw:
            return self._bad("annotate", project, "a label is 1-1024 bytes")
        name = request.query.get("name", "")
        if name != f"{image_id}.txt":
            return self._bad("annotate", project, "name must be <image id>.txt")
        d = self._dir(project)
        if not (d / f"{image_id}.jpg").exists():
            self._note("annotate", project, 404, image_id)
            return web.json_response({"error": {"message": f"Image {image_id} not found"}}, status=404)
        label_file = d / f"{image_id}.label.json"
        info = {"label": raw.decode("utf-8", "replace"), "name": name,
                "prediction": request.query.get("prediction") == "true"}
        if label_file.exists():
            self._note("annotate", project, 409, image_id, **info)
            return web.json_response({"error": {"message": "Image already annotated."}}, status=409)
        label_file.write_text(json.dumps(info, indent=1))
        self._note("annotate", project, 200, image_id, **info)
        return web.json_response({"success": True})

    def _bad(self, route: str, project: str, message: str) -> web.StreamResponse:
        self._note(route, project, 400, message=message)
        return web.json_response({"error": {"message": message}}, status=400)

    # -- faults ------------------------------------------------------------------------------

    async def _fault(self, request: web.Request, fault: dict[str, Any]) -> web.StreamResponse:

        if "hang" in fault:
            await asyncio.sleep(float(fault["hang"]))
            return web.json_response({"message": "late"})
        if fault.get("reset"):
            assert request.transport is not None
            request.transport.abort()
            return web.Response()
        if fault.get("garbage"):
            return web.Response(body=b"<html>502 Bad Gateway</html>", content_type="text/html")
        if "reply" in fault:
            return web.json_response(fault["reply"])
        if "big_body" in fault:
            return await self._big_body(request, int(fault["big_body"]), bool(fault.get("chunked")))
        if "gzip_bomb" in fault:
            return web.Response(body=gzip_bomb(int(fault["gzip_bomb"])), content_type="application/json",
                                headers={"Content-Encoding": "gzip"})
        if fault.get("echo_key"):
            key = self.api_key() or request.query.get("api_key") or "no-key-sent"
            head = '{"message": "this dataset cannot be written with the key'
            body = key_echo(head, key)
            return web.Response(body=body, status=400, content_type="application/json")
        status = int(fault.get("status", 500))
        headers = {"Retry-After": str(fault["retry_after"])} if "retry_after" in fault else {}
        return web.json_response({"message": f"stand-in fault {status}"}, status=status, headers=headers)

    async def _big_body(self, request: web.Request, size: int, chunked: bool) -> web.StreamResponse:
        """A valid reply padded to ``size`` bytes."""
        return await big_body(request, b'{"success": true, "id": "padded", "padding": "', b'"}', size, chunked)


# -- what was filed --------------------------------------------------------------------------


@dataclass(frozen=True)
class StoredImage:
    """One image in the stand-in's folder, as it was received (read back from its files)."""
    project: str  # the folder's name: the project slug
    image_id: str
    name: str
    batch: str | None
    tags: tuple[str, ...]
    metadata: dict[str, Any] | None
    label: str | None  # None: not labelled
    prediction: bool | None  # the label is the model's guess (True) or a person's (False)

    @property
    def reason(self) -> str | None:
        """Why the agent saved it: the metadata's ``reason``, else the tag that is one."""
        if self.metadata and isinstance(self.metadata.get("reason"), str):
            return self.metadata["reason"]
        return next((t for t in self.tags if t in REASONS), None)


def stored(folder: Path) -> list[StoredImage]:
    """Every image filed under ``folder`` (all projects), oldest first. A file being
    written, or one that is not the stand-in's, is left out."""
    out: list[tuple[float, StoredImage]] = []
    if not folder.is_dir():
        return []
    for project in sorted(p for p in folder.iterdir() if p.is_dir()):
        for jpg in project.glob("*.jpg"):
            try:
                info = json.loads((project / f"{jpg.stem}.json").read_text())
                label_file = project / f"{jpg.stem}.label.json"
                label = json.loads(label_file.read_text()) if label_file.exists() else None
                mtime = jpg.stat().st_mtime
            except (OSError, ValueError):
                continue
            if not isinstance(info, dict) or not (label is None or isinstance(label, dict)):
                continue
            at = info.get("received_at") if isinstance(info.get("received_at"), float) else mtime
            out.append((at, StoredImage(
                project.name, jpg.stem, str(info.get("name")), info.get("batch"), tuple(info.get("tags") or ()),
                info.get("metadata"), None if label is None else label.get("label"),
                None if label is None else bool(label.get("prediction")))))
    return [image for _, image in sorted(out, key=lambda x: x[0])]


def by_reason(images: list[StoredImage]) -> dict[str, int]:
    """How many were saved for each reason, most first (``?``: none named)."""
    return dict(collections.Counter(i.reason or "?" for i in images).most_common())
