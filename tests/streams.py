"""Cameras on loopback for capture tests: an HTTP MJPEG camera
(multipart/x-mixed-replace, as IP cameras and ESP32-CAMs serve it), an RTSP
camera sending H.264 (GStreamer's RTSP server, ``tests/rtsp_server.py``), and a
half-dead camera (HTTP or RTSP) that answers every request but never sends a
picture."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
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

    def __init__(self, color: str = "red", fps: float = 10, size: tuple[int, int] = (320, 240), *,
                 answer_after: float = 0.0):
        self.color = color
        self.fps = fps
        self.size = size
        self.answer_after = answer_after  # s before a request is answered at all (a slow camera)
        self.frozen = threading.Event()
        self.cut_mid_frame = threading.Event()  # send half a frame, then nothing, connection left open
        self.garbage = threading.Event()  # send parts that are not JPEGs (a camera's broken frames)
        self.clients = 0
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True, name="mjpeg-camera")
        self._runner: web.AppRunner | None = None

    async def _stream(self, request: web.Request) -> web.StreamResponse:
        await asyncio.sleep(self.answer_after)
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


SDP = ("v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=cam\r\nc=IN IP4 0.0.0.0\r\nt=0 0\r\na=control:*\r\n"
       "m=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\na=fmtp:96 packetization-mode=1\r\na=control:track1\r\n")


class HalfDeadCamera:
    """A camera whose firmware answers every request and never sends a picture.

    ``http``: a GET is answered ``HTTP/1.0 200 OK`` with multipart (MJPEG) headers,
    then nothing. ``rtsp``: OPTIONS, DESCRIBE (an H.264 track), SETUP and PLAY are
    answered, then no media. ``auth``: a request without an ``Authorization`` header
    is refused 401 (Basic) first, as most cameras do; any credentials are taken.
    Connections stay open until :meth:`close`. ``requests``: the head of every
    request seen, for what was asked and with what credentials."""

    def __init__(self, scheme: str = "http", *, auth: bool = False):
        assert scheme in ("http", "rtsp")
        self.scheme, self.auth = scheme, auth
        self.requests: list[str] = []
        self.connections = 0
        self._sock = socket.create_server(("127.0.0.1", 0))
        self._sock.settimeout(0.2)
        self.port = self._sock.getsockname()[1]
        self._conns: list[socket.socket] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._accept, daemon=True, name="half-dead-camera")

    def url(self, user: str = "") -> str:
        path = "/video" if self.scheme == "http" else "/cam"
        return f"{self.scheme}://{user + '@' if user else ''}127.0.0.1:{self.port}{path}"

    def __enter__(self) -> "HalfDeadCamera":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        with self._lock:
            for c in self._conns:
                c.close()
        self._sock.close()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except OSError:
                continue
            with self._lock:
                self._conns.append(conn)
                self.connections += 1
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        buf = b""
        try:
            while not self._stop.is_set():
                while b"\r\n\r\n" not in buf:
                    data = conn.recv(4096)
                    if not data:
                        return
                    buf += data
                head, buf = buf.split(b"\r\n\r\n", 1)
                text = head.decode("latin-1")
                with self._lock:
                    self.requests.append(text)
                reply, more = self._reply(text)
                conn.sendall(reply)
                if not more:
                    return  # the connection stays open, and silent, until close()
        except OSError:
            return

    def _reply(self, head: str) -> tuple[bytes, bool]:
        """The reply to one request, and whether another request is read after it."""
        lines = head.split("\r\n")
        method = lines[0].split(" ", 1)[0]
        fields = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:])}
        authorised = not self.auth or "authorization" in fields
        if self.scheme == "http":
            if not authorised:
                return (b'HTTP/1.0 401 Unauthorized\r\nWWW-Authenticate: Basic realm="cam"\r\n'
                        b"Content-Length: 0\r\n\r\n", False)
            return b"HTTP/1.0 200 OK\r\nContent-Type: multipart/x-mixed-replace; boundary=frame\r\n\r\n", False
        cseq = f"CSeq: {fields.get('cseq', '0')}\r\n"
        if method not in ("OPTIONS", "TEARDOWN") and not authorised:
            return f'RTSP/1.0 401 Unauthorized\r\n{cseq}WWW-Authenticate: Basic realm="cam"\r\n\r\n'.encode(), True
        extra, body = "", ""
        if method == "OPTIONS":
            extra = "Public: OPTIONS, DESCRIBE, SETUP, PLAY, TEARDOWN, GET_PARAMETER\r\n"
        elif method == "DESCRIBE":
            body = SDP
            extra = (f"Content-Base: rtsp://127.0.0.1:{self.port}/cam/\r\nContent-Type: application/sdp\r\n"
                     f"Content-Length: {len(body)}\r\n")
        elif method == "SETUP":
            extra = f"Transport: {fields.get('transport', '')}\r\nSession: 12345678;timeout=60\r\n"
        elif method in ("PLAY", "GET_PARAMETER", "TEARDOWN"):
            extra = "Session: 12345678\r\n"
        else:
            return f"RTSP/1.0 405 Method Not Allowed\r\n{cseq}\r\n".encode(), True
        return f"RTSP/1.0 200 OK\r\n{cseq}{extra}\r\n{body}".encode(), True
