"""A local STAND-IN for Roboflow's hosted classification API. Not a model.

It speaks the documented contract of ``POST /<dataset-slug>/<version>``: the
key as ``?api_key=`` (or ``Authorization: Bearer``), the body the base64 of an
image, ``Content-Type: application/x-www-form-urlencoded``; it checks all of
that and answers with the API's reply shapes. The "class" is just the dominant
colour of the image (red, green or blue) with its share of the colour as the
confidence, so tests can make videos whose right answers are known.

Like Roboflow's serverless API it says what each reply took in an
``X-Processing-Time`` header (seconds), which is what a call is billed by;
``billing=False`` leaves it out, as a self-hosted inference server does.

For tests and benchmarks it can add a set latency to every reply and play a
script of faults, and it records every request it saw. A fault is a dict, played
by the next request (``api.add_faults({...}, ...)``):

The stand-in can also inject confident mistakes (``noise``: the share of good
replies answered with another class at 0.55-0.95, ``seed`` to repeat them) and be
``down`` (every request 503, an outage), or ``stall`` (every request hangs that
many seconds; ``ThreadedStandin.refuse()`` / ``accept()`` close and reopen its
port, for a host that is gone).

* ``{"status": 503}`` (optionally ``"retry_after": "3"``), ``{"garbage": True}``,
  ``{"wrong_shape": True}``, ``{"hang": seconds}``, ``{"reset": True}``;
* hostile replies, for the client's caps: ``{"big_body": N}`` a 200 of N bytes of
  valid JSON (a reply plus padding; streamed, with Content-Length unless
  ``"chunked": True``); ``{"gzip_bomb": N}`` a small gzip body
  (``Content-Encoding: gzip``) that inflates to N bytes of valid JSON;
  ``{"nested": depth}`` JSON nested ``depth`` deep; ``{"predictions": N}`` a valid
  single-label reply with N predictions; ``{"class": text}`` a valid reply whose
  top class is ``text``; ``{"echo_key": True}`` a 400 whose body quotes the API
  key at character 70 (it straddles an 80-character cut).

It also serves Roboflow's dataset upload and annotate routes (``/dataset/...``,
issue #20), with the same key check and their own fault switches; what they
receive is filed in a folder (``dataset_dir``, ``--dataset-dir``; a temporary one
if not given). See ``tools/standin_dataset.py``.

Run it: ``python -m tools.standin_api --port 9001 --api-key demo-key`` (``--noise
0.2 --seed 1`` for confident mistakes, ``--dataset-dir DIR`` to keep what the
dataset routes receive). It prints its URL and that folder as JSON lines on
stdout, and on stderr one line saying what it is: a stand-in, not a model.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import json
import signal
import sys
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from aiohttp import web

# KEY_ECHO_AT: tests read it here
from tools.hostile_bodies import KEY_ECHO_AT, big_body, gzip_bomb, key_echo  # noqa: F401
from tools.standin_dataset import DatasetRoutes

CLASSES = ("blue", "green", "red")  # BGR channel order


@dataclass
class Seen:
    """One request as the stand-in received it."""

    at: float  # time.monotonic() on arrival
    path: str
    key_in_query: str | None
    auth_header: str | None
    content_type: str
    width: int
    height: int
    status: int
    body_b64_len: int


@dataclass
class StandinApi:
    api_key: str | None = "test-key"
    latency: float = 0.0
    multi_label: bool = False
    billing: bool = True  # send X-Processing-Time, as the serverless API does
    noise: float = 0.0  # share of good replies turned into a confident mistake (another class, 0.55-0.95)
    seed: int | None = None  # of the mistakes' randomness (a seeded stand-in repeats its mistakes)
    down: bool = False  # answer every request 503, as an API in an outage
    stall: float = 0.0  # s every request hangs before it is answered (an API that accepts and then says nothing)
    flip: bool = False  # answer the classes in turn, whatever the picture (a state change a call)
    faults: deque[dict[str, Any]] = field(default_factory=deque)
    seen: list[Seen] = field(default_factory=list)
    host: str = "127.0.0.1"
    port: int = 0
    ssl_context: Any = None  # an ssl.SSLContext to serve HTTPS
    in_flight: int = 0
    max_in_flight_seen: int = 0
    mistakes: int = 0
    dataset_dir: Path | None = None  # where the dataset routes file what they receive (None: a temporary folder)
    projects: set[str] | None = None  # the dataset projects that exist (None: any)
    _dataset: DatasetRoutes | None = None
    _runner: web.AppRunner | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    # -- the contract ---------------------------------------------------------------

    def app(self) -> web.Application:
        app = web.Application(client_max_size=32 * 1024 * 1024)
        app.router.add_post("/{slug}/{version}", self._classify)
        self.dataset.add_routes(app)
        return app

    @property
    def dataset(self) -> DatasetRoutes:
        """The upload and annotate routes: their folder, log, faults and ``down`` switch."""
        if self._dataset is None:
            self._dataset = DatasetRoutes(self.dataset_dir, lambda: self.api_key, self.projects)
        return self._dataset

    def _record(self, request: web.Request, status: int, w: int = 0, h: int = 0, n: int = 0) -> None:
        with self._lock:
            self.seen.append(Seen(time.monotonic(), request.path, request.query.get("api_key"),
                                  request.headers.get("Authorization"), request.content_type, w, h, status, n))

    async def _classify(self, request: web.Request) -> web.StreamResponse:
        self.in_flight += 1
        self.max_in_flight_seen = max(self.max_in_flight_seen, self.in_flight)
        try:
            return await self._answer(request)
        finally:
            self.in_flight -= 1

    async def _answer(self, request: web.Request) -> web.StreamResponse:
        started = time.monotonic()
        response = await self._reply_to(request)
        if self.billing:
            response.headers["X-Processing-Time"] = f"{time.monotonic() - started:.4f}"
        return response

    async def _reply_to(self, request: web.Request) -> web.StreamResponse:
        if self.stall:
            self._record(request, 0)
            await asyncio.sleep(self.stall)
        if self.down:
            self._record(request, 503)
            return web.json_response({"message": "stand-in outage"}, status=503)
        fault = None
        with self._lock:
            if self.faults:
                fault = self.faults.popleft()
        if not request.match_info["version"].isdigit():
            self._record(request, 404)
            return web.json_response({"message": "version must be a number"}, status=404)
        key = request.query.get("api_key")
        auth = request.headers.get("Authorization", "")
        if auth.startswith("Bearer "):
            key = auth[len("Bearer "):]
        if self.api_key is not None and key != self.api_key:
            self._record(request, 401)
            return web.json_response({"message": "Unauthorized api_key"}, status=401)
        if request.content_type != "application/x-www-form-urlencoded":
            self._record(request, 400)
            return web.json_response({"message": f"bad Content-Type {request.content_type}"}, status=400)
        raw = await request.read()
        try:
            data = base64.b64decode(raw, validate=True)
        except (binascii.Error, ValueError):
            self._record(request, 400)
            return web.json_response({"message": "body is not base64"}, status=400)
        if not data.startswith(b"\xff\xd8"):
            self._record(request, 400, n=len(raw))
            return web.json_response({"message": "body is not a JPEG"}, status=400)
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        if image is None:
            self._record(request, 400, n=len(raw))
            return web.json_response({"message": "JPEG does not decode"}, status=400)
        h, w = image.shape[:2]
        if fault is not None:
            return await self._fault(request, fault, w, h, len(raw))
        if self.latency:
            await asyncio.sleep(self.latency)
        self._record(request, 200, w, h, len(raw))
        body = self.reply(image)
        if self.flip and "top" in body:
            self._flips = getattr(self, "_flips", 0) + 1
            body["top"] = CLASSES[self._flips % len(CLASSES)]
            body["confidence"] = 0.99
        if self.noise and self._rng.random() < self.noise:
            body = self._mistake(body)
        return web.json_response(body)

    async def _fault(self, request: web.Request, fault: dict[str, Any], w: int, h: int, n: int) -> web.StreamResponse:
        if "hang" in fault:
            self._record(request, 0, w, h, n)
            await asyncio.sleep(float(fault["hang"]))
            return web.json_response(self.reply(np.zeros((h, w, 3), np.uint8)))
        if fault.get("reset"):
            self._record(request, 0, w, h, n)
            assert request.transport is not None
            request.transport.abort()
            return web.Response()
        if fault.get("garbage"):
            self._record(request, 200, w, h, n)
            return web.Response(body=b"<html>502 Bad Gateway</html>", content_type="text/html")
        if fault.get("wrong_shape"):
            self._record(request, 200, w, h, n)
            return web.json_response({"predictions": "nope"})
        if "big_body" in fault:
            self._record(request, 200, w, h, n)
            return await self._big_body(request, int(fault["big_body"]), chunked=bool(fault.get("chunked")))
        if "gzip_bomb" in fault:
            self._record(request, 200, w, h, n)
            return web.Response(body=gzip_bomb(int(fault["gzip_bomb"])), content_type="application/json",
                                headers={"Content-Encoding": "gzip"})
        if "nested" in fault:
            self._record(request, 200, w, h, n)
            depth = int(fault["nested"])
            return web.Response(body=b'{"predictions": ' + b"[" * depth + b"]" * depth + b"}",
                                content_type="application/json")
        if "predictions" in fault:
            self._record(request, 200, w, h, n)
            count = int(fault["predictions"])
            preds = [{"class": f"class-{i}", "class_id": i, "confidence": 0.5 / count} for i in range(count)]
            preds[0]["confidence"] = 0.5
            return web.json_response({"time": 0.001, "predictions": preds, "top": "class-0", "confidence": 0.5})
        if "class" in fault:
            self._record(request, 200, w, h, n)
            name = str(fault["class"])
            return web.json_response({"time": 0.001, "top": name, "confidence": 0.9,
                                      "predictions": [{"class": name, "class_id": 0, "confidence": 0.9}]})
        if fault.get("echo_key"):
            self._record(request, 400, w, h, n)
            key = self.api_key or request.query.get("api_key") or "no-key-sent"
            head = '{"message": "this model cannot be called by the key'
            body = key_echo(head, key)
            return web.Response(body=body, status=400, content_type="application/json")
        status = int(fault.get("status", 500))
        headers = {}
        if "retry_after" in fault:
            headers["Retry-After"] = str(fault["retry_after"])
        self._record(request, status, w, h, n)
        return web.json_response({"message": f"stand-in fault {status}"}, status=status, headers=headers)

    async def _big_body(self, request: web.Request, size: int, chunked: bool) -> web.StreamResponse:
        """A valid reply padded to ``size`` bytes."""
        head = b'{"top": "red", "confidence": 0.9, "predictions": [], "padding": "'
        return await big_body(request, head, b'"}', size, chunked)

    def _mistake(self, body: dict[str, Any]) -> dict[str, Any]:
        """A confident wrong answer, as real models now and then give on one frame."""
        self.mistakes += 1
        if "top" not in body:
            return body
        wrong = self._rng.choice([c for c in CLASSES if c != body["top"]])
        conf = round(self._rng.uniform(0.55, 0.95), 4)
        rest = (1 - conf) / (len(CLASSES) - 1)
        body["top"], body["confidence"] = wrong, conf
        body["predictions"] = [{"class": wrong, "class_id": CLASSES.index(wrong), "confidence": conf}] + [
            {"class": c, "class_id": CLASSES.index(c), "confidence": round(rest, 4)} for c in CLASSES if c != wrong]
        return body

    @property
    def _rng(self) -> Any:
        if getattr(self, "_random", None) is None:
            import random

            self._random = random.Random(self.seed)
        return self._random

    def reply(self, image: np.ndarray) -> dict[str, Any]:
        means = image.reshape(-1, 3).mean(axis=0) + 1e-6
        shares = means / means.sum()
        ranked = sorted(zip(CLASSES, shares.tolist()), key=lambda x: x[1], reverse=True)
        h, w = image.shape[:2]
        base = {"inference_id": str(uuid.uuid4()), "time": 0.001, "image": {"width": w, "height": h}}
        if self.multi_label:
            base["predictions"] = {c: {"confidence": round(s, 4), "class_id": CLASSES.index(c)} for c, s in ranked}
            base["predicted_classes"] = [c for c, s in ranked if s >= 0.5]
            return base
        base["predictions"] = [{"class": c, "class_id": CLASSES.index(c), "confidence": round(s, 4)} for c, s in ranked]
        base["top"] = ranked[0][0]
        base["confidence"] = round(ranked[0][1], 4)
        return base

    # -- running ------------------------------------------------------------------------

    async def start(self) -> None:
        self._runner = web.AppRunner(self.app(), access_log=None, handler_cancellation=True)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, ssl_context=self.ssl_context)
        await site.start()
        sock = site._server.sockets[0]  # type: ignore[union-attr]
        self.port = sock.getsockname()[1]

    async def stop(self) -> None:
        if self._runner:
            await self._runner.cleanup()
            self._runner = None
        if self._dataset is not None:
            self._dataset.close()  # removes its folder only if it made a temporary one

    @property
    def url(self) -> str:
        return f"{'https' if self.ssl_context else 'http'}://{self.host}:{self.port}"

    def add_faults(self, *faults: dict[str, Any]) -> None:
        with self._lock:
            self.faults.extend(faults)

    def requests(self) -> list[Seen]:
        with self._lock:
            return list(self.seen)


class ThreadedStandin:
    """The stand-in on its own event loop in a background thread (for tests)."""

    def __init__(self, api: StandinApi):
        self.api = api
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="standin-api", daemon=True)

    def __enter__(self) -> StandinApi:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self.api.start(), self._loop).result(10)
        return self.api

    def refuse(self) -> None:
        """Stop listening: connections to its port are refused (an API host that is gone)."""
        asyncio.run_coroutine_threadsafe(self.api.stop(), self._loop).result(10)

    def accept(self) -> None:
        """Listen again, on the same port."""
        asyncio.run_coroutine_threadsafe(self.api.start(), self._loop).result(10)

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self.api.stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=9001)
    ap.add_argument("--api-key", default=None, help="key to require (default: accept any)")
    ap.add_argument("--latency", type=float, default=0.0, help="seconds added to every reply")
    ap.add_argument("--multi-label", action="store_true")
    ap.add_argument("--no-billing", action="store_true", help="no X-Processing-Time (as a self-hosted server)")
    ap.add_argument("--noise", type=float, default=0.0,
                    help="share of replies answered with a confident mistake (another class, 0.55-0.95)")
    ap.add_argument("--seed", type=int, default=None, help="of the mistakes (a seeded stand-in repeats them)")
    ap.add_argument("--dataset-dir", type=Path, default=None,
                    help="folder for what the dataset upload/annotate routes receive "
                         "(default: a temporary one, removed at the stop)")
    args = ap.parse_args()
    api = StandinApi(api_key=args.api_key, latency=args.latency, multi_label=args.multi_label,
                     billing=not args.no_billing, noise=args.noise, seed=args.seed, host=args.host,
                     port=args.port, dataset_dir=args.dataset_dir)

    async def serve() -> None:
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        await api.start()
        folder = api.dataset.root()
        print(json.dumps({"standin_api": api.url}), flush=True)
        print(json.dumps({"standin_dataset_folder": str(folder)}), flush=True)
        kept = "kept" if args.dataset_dir else "a temporary folder, removed at the stop; --dataset-dir keeps one"
        print(f"STAND-IN for Roboflow's documented API contract, not a model and not Roboflow: classifies "
              f"{api.url}/<slug>/<version> by the dominant colour; takes uploads at {api.url}/dataset/<project>/upload "
              f"and labels at .../annotate/<id>, and files what they receive in {folder} ({kept})",
              file=sys.stderr, flush=True)
        try:
            await stop.wait()
        finally:
            await api.stop()  # a temporary dataset folder goes with it (--dataset-dir keeps one)

    try:
        asyncio.run(serve())
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
