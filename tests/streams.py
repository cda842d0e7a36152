"""Cameras on loopback for capture tests: an HTTP MJPEG camera
(multipart/x-mixed-replace, as IP cameras and ESP32-CAMs serve it), and an RTSP
camera sending H.264 (GStreamer's RTSP server, ``tests/rtsp_server.py``)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import threading
from pathlib import Path

import cv2
import numpy as np
import pytest
from aiohttp import web

ROOT = Path(__file__).resolve().parent.parent

BGR = {"red": (0, 0, 255), "green": (0, 255, 0), "blue": (255, 0, 0)}


def solid_jpeg(color: str, size: tuple[int, int] = (320, 240)) -> bytes:
    img = np.zeros((size[1], size[0], 3), np.uint8)
    img[:] = BGR[color]
    ok, buf = cv2.imencode(".jpg", img)
    assert ok
    return buf.tobytes()


class MjpegCamera:
    """Serves ``/stream`` at ``fps``; ``color`` may be changed while it runs;
    ``freeze()`` stops sending mid-stream without closing the connection."""

    def __init__(self, color: str = "red", fps: float = 10, size: tuple[int, int] = (320, 240)):
        self.color = color
        self.fps = fps
        self.size = size
        self.frozen = threading.Event()
        self.cut_mid_frame = threading.Event()  # send half a frame, then nothing, connection left open
        self.garbage = threading.Event()  # send parts that are not JPEGs (a camera's broken frames)
        self.clients = 0
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True, name="mjpeg-camera")
        self._runner: web.AppRunner | None = None

    async def _stream(self, request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "multipart/x-mixed-replace; boundary=frame"})
        await resp.prepare(request)
        self.clients += 1
        cache: dict[str, bytes] = {}
        while True:
            if self.frozen.is_set():
                await asyncio.sleep(0.05)
                continue
            jpeg = cache.setdefault(self.color, solid_jpeg(self.color, self.size))
            if self.garbage.is_set():
                jpeg = b"\xff\xd8" + b"this is not a JPEG " * 64
            if self.cut_mid_frame.is_set():
                try:
                    await resp.write(b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: "
                                     + str(len(jpeg)).encode() + b"\r\n\r\n" + jpeg[: len(jpeg) // 2])
                except ConnectionError:
                    return resp
                while self.cut_mid_frame.is_set():
                    await asyncio.sleep(0.05)
                return resp  # this connection is dead to the viewer; a new one works
            try:
                await resp.write(b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: "
                                 + str(len(jpeg)).encode() + b"\r\n\r\n" + jpeg + b"\r\n")
            except ConnectionError:  # the viewer went away
                return resp
            await asyncio.sleep(1 / self.fps)

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_get("/stream", self._stream)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/stream"

    def __enter__(self) -> "MjpegCamera":
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._runner is not None
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)


class RtspCamera:
    """tests/rtsp_server.py in the system Python (GStreamer's RTSP server): H.264 at
    10 fps with a keyframe every ``gop`` frames; ``schedule`` ``[("blue", 5), ...]``:
    each client's stream turns to these colours after these seconds."""

    def __init__(self, port: int, colour: str, *, gop: int = 10, schedule: tuple[tuple[str, float], ...] = (),
                 password: str = "rtsp-pw"):
        self.port, self.colour, self.gop, self.schedule, self.password = port, colour, gop, schedule, password
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, colour: str | None = None) -> "RtspCamera":
        self.colour = colour or self.colour
        args = ["/usr/bin/python3", str(ROOT / "tests/rtsp_server.py"), str(self.port), self.colour, str(self.gop)]
        if self.schedule:
            args.append(",".join(f"{c}:{s:g}" for c, s in self.schedule))
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        assert line.strip() == b"ready", line
        return self

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.kill()
            self.proc.wait(5)

    def url(self) -> str:
        return f"rtsp://admin:{self.password}@127.0.0.1:{self.port}/cam"


def need_gst() -> None:
    """Skip (fail in CI) without GStreamer's RTSP server and the system Python's bindings."""
    r = subprocess.run(["/usr/bin/python3", "-c", "import gi; gi.require_version('GstRtspServer', '1.0')"],
                       capture_output=True, timeout=30)
    if r.returncode != 0:
        if os.environ.get("CI"):
            pytest.fail("GStreamer's RTSP server must be installed in CI (scripts/setup.sh does)")
        pytest.skip("gir1.2-gst-rtsp-server-1.0 / python3-gi not installed")
