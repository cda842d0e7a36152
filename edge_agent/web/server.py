"""The status server: one aiohttp app on the agent's own event loop.

GET /                          the page (all cameras; refreshes itself; no external assets)
GET /api/status                the same data as JSON
GET /cameras/<name>/latest.jpg the latest classified frame, annotated; for a camera with views
                               (issue #21), its newest whole frame as is: the page outlines
                               each view's region on it
GET /healthz                   200, or 503 with the reasons as JSON
GET /metrics                   Prometheus text
GET /api/events                the event history, newest first (?camera=&since=&until=&limit=)
GET /api/events/<id>.jpg       an event's picture (the frame that decided it, <= 320 px)

Hostile or broken clients must not take the agent down with them (issue #9: 1,100
idle connections used every descriptor, the cameras could not reopen their sources
and asyncio logged a traceback per failed accept). So the server

* keeps at most MAX_CONNECTIONS; a new client past it takes the slot of the oldest
  connection that is not in the middle of a request (an idle keep-alive or one still
  dribbling its headers), or gets a 503 when every slot is busy: /healthz from a
  fresh connection keeps answering while junk connections are shed;
* gives a new connection HEADER_TIMEOUT in total (not per read) to send its first
  request's headers; later ones get KEEPALIVE_TIMEOUT in total from the last
  response (aiohttp's keep-alive timer is a deadline, not reset by each byte);
  a response the client does not read is given up after WRITE_TIMEOUT;
* accepts on its own sockets: out of descriptors, it logs one warning for the
  episode, drops its own idle connections and pauses accepting (ACCEPT_BACKOFF,
  doubling) instead of asyncio's accept path, whose default handler logged a
  traceback per attempt and retried in a loop;
* logs each kind of trouble once per episode (episode.Episode), and names itself
  ``edge-agent`` in the Server header instead of aiohttp's version.

Who may look (issue #13): with ``status.auth``, HTTP basic auth (auth.py); without
it, the config refuses a non-loopback ``status.listen`` unless ``status.public: true``,
which is logged as a warning at start.
"""

from __future__ import annotations

import asyncio
import errno
import html
import logging
import socket
from importlib import resources
from typing import TYPE_CHECKING, Any, Awaitable, Callable

from aiohttp import hdrs, web
from aiohttp.http_exceptions import HttpProcessingError

from ..encode import encode_jpeg
from ..episode import Episode, Throttle
from ..camera import by_camera
from .auth import auth_middleware
from .view import camera_frame, event_view, health, status_view

if TYPE_CHECKING:
    from ..readmodel import AgentView

log = logging.getLogger(__name__)
NO_STORE = {"Cache-Control": "no-store"}
SERVER_NAME = "edge-agent"

MAX_CONNECTIONS = 64  # open connections kept at once (the page, scrapers, a few browsers: far fewer)
HEADER_TIMEOUT = 10.0  # s from connect to the end of the first request's headers, in total
KEEPALIVE_TIMEOUT = 15.0  # s an idle keep-alive connection (or a later request's headers) may take
WRITE_TIMEOUT = 10.0  # s a client may leave a response unread (our buffer full) before it is cut
LISTEN_BACKLOG = 128  # the kernel's queue of connections not yet accepted
ACCEPT_BACKOFF = (0.25, 2.0)  # s to pause accepting when out of descriptors: first, then doubling to
QUIET = 60.0  # s without connection trouble that end an episode (the next one is logged again)
HANDLER_LIMITS: dict[str, Any] = {
    "keepalive_timeout": KEEPALIVE_TIMEOUT,
    "max_headers": 32,  # aiohttp's 8190-byte line and field limits stay
    "lingering_time": 2.0,  # s to read and drop an unread request body before closing
    "access_log": None,
}
OUT_OF_RESOURCES = (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM)
FRAME_QUALITY = 85  # JPEG quality of a camera's whole frame (as annotate's pictures)
BUSY = (b"HTTP/1.1 503 Service Unavailable\r\nServer: " + SERVER_NAME.encode() + b"\r\n"
        b"Content-Type: text/plain\r\nContent-Length: 5\r\nRetry-After: 1\r\nConnection: close\r\n\r\nbusy\n")


class ListenError(RuntimeError):
    """``StatusServer.start()`` cannot listen: ``in_use`` when another process has the
    address (EADDRINUSE), ``reason`` the OS's words for why ("Cannot assign requested
    address"). A RuntimeError, as the failure was before it had a type of its own."""

    def __init__(self, where: str, exc: OSError):
        self.where = where  # host:port
        self.in_use = exc.errno == errno.EADDRINUSE
        self.reason = exc.strerror or str(exc)
        super().__init__(f"status server cannot listen on {where}: {self.reason}")


class _Connection(web.RequestHandler):
    """aiohttp's protocol for one connection, with the server's admission, deadlines
    and logging around it."""

    __slots__ = ("_owner", "_admitted", "_busy", "_served", "_deadline", "_stall")

    def __init__(self, owner: "StatusServer", manager: web.Server, **kwargs: Any):
        super().__init__(manager, **kwargs)
        self._owner = owner
        self._admitted = False
        self._busy = 0  # requests in a handler now
        self._served = False  # the first request's headers arrived
        self._deadline: asyncio.TimerHandle | None = None
        self._stall: asyncio.TimerHandle | None = None

    def idle(self) -> bool:
        """Not in a handler and nothing of ours unsent: it can be closed without losing a reply."""
        t = self.transport
        return self._busy == 0 and (t is None or t.get_write_buffer_size() == 0)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        try:
            self._admitted = self._owner._admit(self)
            if not self._admitted:
                transport.write(BUSY)  # type: ignore[attr-defined]
                transport.close()
                return
            super().connection_made(transport)
            self._deadline = self._loop.call_later(HEADER_TIMEOUT, self._headers_late)
        except Exception:  # never leave asyncio's accept waiting on a half-made connection
            log.exception("status server: cannot set up a connection")
            transport.abort()  # type: ignore[attr-defined]

    def connection_lost(self, exc: BaseException | None) -> None:
        for handle in (self._deadline, self._stall):
            if handle is not None:
                handle.cancel()
        self._deadline = self._stall = None
        if not self._admitted:
            return
        self._owner._release(self)
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._admitted:
            super().data_received(data)

    def request_started(self) -> None:
        self._busy += 1
        if not self._served:
            self._served = True
            if self._deadline is not None:
                self._deadline.cancel()
                self._deadline = None

    def request_done(self) -> None:
        self._busy -= 1
        self._owner._touch(self)

    def _headers_late(self) -> None:
        self._deadline = None
        if not self._served and self.transport is not None:
            self._owner._trouble("slow", "status server: a client did not send its request within %g s; "
                                 "closing such connections", HEADER_TIMEOUT)
            self.force_close()

    def pause_writing(self) -> None:
        super().pause_writing()
        if self._stall is None:
            self._stall = self._loop.call_later(WRITE_TIMEOUT, self._write_stalled)

    def resume_writing(self) -> None:
        super().resume_writing()
        if self._stall is not None:
            self._stall.cancel()
            self._stall = None

    def _write_stalled(self) -> None:
        self._stall = None
        if self.transport is not None:
            self._owner._trouble("stalled", "status server: a client read no response for %g s; "
                                 "dropping such connections", WRITE_TIMEOUT)
            self.transport.abort()

    def force_close(self) -> None:
        transport = self.transport
        super().force_close()
        if transport is not None and transport.get_write_buffer_size():
            # close() waits for the unsent reply: not forever
            self._loop.call_later(WRITE_TIMEOUT, transport.abort)

    def handle_error(self, request: Any, status: int = 500, exc: BaseException | None = None,
                     message: str | None = None) -> web.StreamResponse:
        resp = super().handle_error(request, status, exc, message)
        resp.headers[hdrs.SERVER] = SERVER_NAME  # the parser's 400s skip the app's signals
        return resp

    def log_exception(self, *args: Any, **kw: Any) -> None:
        exc = kw.get("exc_info")
        if isinstance(exc, HttpProcessingError):  # the client's fault: no traceback, not every time
            left_out = self._owner._bad_requests.allow(self._loop.time())
            if left_out is not None:
                log.warning("status server: a bad request (%s, HTTP %s)%s; not logged again for %g s",
                            type(exc).__name__, exc.code,
                            f", {left_out} more since the last such line" if left_out else "", QUIET)
            return
        super().log_exception(*args, **kw)


@web.middleware
async def _track(request: web.Request,
                 handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
    conn = request.protocol
    if not isinstance(conn, _Connection):
        return await handler(request)
    conn.request_started()
    try:
        return await handler(request)
    finally:
        conn.request_done()


async def _name_ourselves(request: web.Request, response: web.StreamResponse) -> None:
    response.headers[hdrs.SERVER] = SERVER_NAME


def _bind(infos: list[tuple[Any, ...]]) -> list[socket.socket]:
    """Listening sockets for each address, as ``loop.create_server`` makes them."""
    socks: list[socket.socket] = []
    try:
        for family, type_, proto, _, addr in dict.fromkeys(infos):
            sock = socket.socket(family, type_, proto)
            socks.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6 and hasattr(socket, "IPPROTO_IPV6"):
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind(addr)
            sock.listen(LISTEN_BACKLOG)
            sock.setblocking(False)
    except OSError:
        for sock in socks:
            sock.close()
        raise
    return socks


class StatusServer:
    def __init__(self, agent: "AgentView"):
        self.agent = agent
        self._page = resources.files("edge_agent.web").joinpath("page.html").read_bytes()
        self._page_html: bytes | None = None
        self._frames: dict[str, tuple[str, bytes]] = {}  # camera with views -> (its frame's key, JPEG)
        self._runner: web.AppRunner | None = None
        self._sockets: list[socket.socket] = []
        self._acceptors: list[asyncio.Task[None]] = []
        self._conns: dict[_Connection, None] = {}  # oldest (least recently served) first
        self._crowd = Episode()  # connections over the limit, too slow, not reading
        self._crowd_last = 0.0
        self._no_fds = Episode()  # accept() out of descriptors
        self._no_fds_last = 0.0
        self._no_fds_recovered = False
        self._bad_requests = Throttle(QUIET)

    def app(self) -> web.Application:
        auth = self.agent.cfg.status.auth
        app = web.Application(middlewares=[_track] + ([auth_middleware(auth)] if auth is not None else []))
        app.router.add_get("/", self.page)
        app.router.add_get("/api/status", self.status)
        app.router.add_get("/cameras/{name}/latest.jpg", self.latest)
        app.router.add_get("/healthz", self.healthz)
        app.router.add_get("/metrics", self.metrics)
        app.router.add_get("/api/events", self.events)
        app.router.add_get(r"/api/events/{id:\d{1,18}}.jpg", self.event_picture)
        app.on_response_prepare.append(_name_ourselves)
        return app

    async def start(self) -> None:
        cfg = self.agent.cfg.status
        loop = asyncio.get_running_loop()
        self._runner = web.AppRunner(self.app(), shutdown_timeout=1.0, **HANDLER_LIMITS)
        await self._runner.setup()
        try:
            infos = await loop.getaddrinfo(cfg.host, cfg.port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
            self._sockets = _bind(infos)
        except OSError as exc:
            await self._runner.cleanup()
            self._runner = None
            raise ListenError(f"{cfg.host}:{cfg.port}", exc) from None
        server = self._runner.server
        assert server is not None

        def protocol() -> _Connection:
            return _Connection(self, server, loop=loop, **HANDLER_LIMITS)

        self._acceptors = [asyncio.create_task(self._accept(sock, protocol), name=f"status-accept-{i}")
                           for i, sock in enumerate(self._sockets)]
        log.info("status page on http://%s/%s", cfg.listen,
                 f" (basic auth, user {cfg.auth.username!r})" if cfg.auth is not None else "")
        if cfg.auth is None and (cfg.public or not cfg.loopback):
            log.warning("status page on %s is open to anyone who can reach it (status.public: true): "
                        "camera pictures and event history included; set status.auth to require a password",
                        cfg.listen)

    async def stop(self) -> None:
        for task in self._acceptors:
            task.cancel()
        await asyncio.gather(*self._acceptors, return_exceptions=True)
        self._acceptors = []
        for sock in self._sockets:
            sock.close()
        self._sockets = []
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # -- connections -----------------------------------------------------------------

    async def _accept(self, sock: socket.socket, protocol: Callable[[], _Connection]) -> None:
        loop = asyncio.get_running_loop()
        backoff = ACCEPT_BACKOFF[0]
        while True:
            try:
                conn, _ = await loop.sock_accept(sock)
            except OSError as exc:
                self._no_fds_last = loop.time()
                if exc.errno in OUT_OF_RESOURCES:
                    if self._no_fds.fail("fds"):
                        log.warning("status server: out of file descriptors (%s, %d connections of ours open); "
                                    "shedding idle ones and pausing accepts", exc.strerror, len(self._conns))
                    self._shed_idle()
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, ACCEPT_BACKOFF[1])
                elif exc.errno not in (errno.ECONNABORTED, errno.EPROTO, errno.EPERM):
                    if self._no_fds.fail(f"errno {exc.errno}"):
                        log.warning("status server: accept failed: %s", exc.strerror or exc)
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, ACCEPT_BACKOFF[1])
                continue
            backoff = ACCEPT_BACKOFF[0]
            self._accepted()
            try:
                await loop.connect_accepted_socket(protocol, conn)
            except OSError:
                conn.close()

    def _accepted(self) -> None:
        """An accept worked: say so once per episode; the episode ends after QUIET s without failures
        (shedding our idle connections frees a few descriptors, then they run out again: one episode)."""
        if not self._no_fds.active:
            return
        if asyncio.get_running_loop().time() - self._no_fds_last > QUIET:
            self._no_fds.ok()
            self._no_fds_recovered = False
        elif not self._no_fds_recovered:
            self._no_fds_recovered = True
            log.info("status server: accepting again after %d failed accepts (trouble not logged again "
                     "until %g s quiet)", self._no_fds.failures, QUIET)

    def _admit(self, conn: _Connection) -> bool:
        now = asyncio.get_running_loop().time()
        if self._crowd.active and now - self._crowd_last > QUIET:
            log.info("status server: connections back to normal (%d dropped or refused)", self._crowd.ok())
        if len(self._conns) >= MAX_CONNECTIONS:
            victim = next((c for c in self._conns if c.idle()), None)
            if victim is None:
                self._trouble("full", "status server: %d connections open, all busy; refusing new ones with 503",
                              MAX_CONNECTIONS)
                return False
            self._trouble("evict", "status server: %d connections open, the limit; closing the oldest idle "
                          "ones to make room", MAX_CONNECTIONS)
            self._drop(victim)
        self._conns[conn] = None
        return True

    def _drop(self, conn: _Connection) -> None:
        self._conns.pop(conn, None)
        conn.force_close()

    def _release(self, conn: _Connection) -> None:
        self._conns.pop(conn, None)

    def _touch(self, conn: _Connection) -> None:
        if conn in self._conns:  # the most recently served go last in line to be dropped
            del self._conns[conn]
            self._conns[conn] = None

    def _shed_idle(self) -> None:
        for conn in [c for c in self._conns if c.idle()]:
            self._drop(conn)

    def _trouble(self, kind: str, msg: str, *args: Any) -> None:
        self._crowd_last = asyncio.get_running_loop().time()
        if self._crowd.fail(kind):
            log.warning(msg + " (logged once until %g s quiet)", *args, QUIET)

    # -- routes ------------------------------------------------------------------------

    async def page(self, request: web.Request) -> web.Response:
        """The page, with the essentials in the HTML itself (camera names and links), for a
        browser without JavaScript and for the moment before the script runs."""
        if self._page_html is None:
            items = "".join(self._essential(camera, [c.name for c in views] if views[0].cfg.view_of else [])
                            for camera, views in by_camera(self.agent.cameras.values()).items())
            essentials = (f'<nav id="essentials"><ul>{items}</ul><a href="/api/status">/api/status</a> · '
                          '<a href="/api/events">/api/events</a></nav>')
            self._page_html = self._page.replace(b"<!--CAMERAS-->", essentials.encode())
        return web.Response(body=self._page_html, content_type="text/html", charset="utf-8", headers=NO_STORE)

    @staticmethod
    def _essential(camera: str, views: list[str]) -> str:
        """A camera's item in the list: its picture's link, and its views' (each its own picture)."""
        def link(name: str) -> str:
            return f'<a href="/cameras/{html.escape(name)}/latest.jpg">{html.escape(name)}</a>'

        return f"<li>{link(camera)}{': ' + ', '.join(map(link, views)) if views else ''}</li>"

    async def status(self, request: web.Request) -> web.Response:
        return web.json_response(status_view(self.agent), headers=NO_STORE)

    async def latest(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        cam = self.agent.cameras.get(name)
        if cam is None:
            return self._camera_frame(name)
        shown = cam.results
        if shown.latest is not None:
            return web.Response(body=shown.latest.jpeg(cam.cfg.region), content_type="image/jpeg", headers=NO_STORE)
        if shown.unclassified is not None:  # online while the API fails: a picture to aim the camera by
            return web.Response(body=shown.unclassified_jpeg(cam.cfg.region), content_type="image/jpeg",
                                headers=NO_STORE)
        raise web.HTTPNotFound(text="no frame yet")

    def _camera_frame(self, camera: str) -> web.Response:
        """A camera with views: its newest whole frame, not drawn on (encoded once per frame)."""
        if not any(c.cfg.view_of == camera for c in self.agent.cameras.values()):
            raise web.HTTPNotFound(text="no such camera")
        found = camera_frame(self.agent, camera)
        if found is None:
            raise web.HTTPNotFound(text="no frame yet")
        key, preview = found
        cached = self._frames.get(camera)
        if cached is None or cached[0] != key:
            cached = self._frames[camera] = key, encode_jpeg(preview, FRAME_QUALITY)
        return web.Response(body=cached[1], content_type="image/jpeg", headers=NO_STORE)

    async def events(self, request: web.Request) -> web.Response:
        """The event history, newest first: ``?camera=&since=&until=&limit=`` (limit <= 1000)."""
        q = request.query
        camera = q.get("camera") or None
        if camera is not None and camera not in self.agent.cameras:
            raise web.HTTPNotFound(text="no such camera")
        try:
            since = float(q["since"]) if "since" in q else None
            until = float(q["until"]) if "until" in q else None
            limit = min(1000, max(1, int(q.get("limit", "100"))))
        except ValueError:
            raise web.HTTPBadRequest(text="since and until are epoch seconds, limit a whole number") from None
        found = await self.agent.events.history(camera=camera, since=since, until=until, limit=limit)
        body = [event_view(self.agent, e) for e in found]
        return web.json_response({"events": body}, headers=NO_STORE)

    async def event_picture(self, request: web.Request) -> web.Response:
        jpeg = await self.agent.events.thumbnail(int(request.match_info["id"]))
        if jpeg is None:
            raise web.HTTPNotFound(text="no picture for that event")
        return web.Response(body=jpeg, content_type="image/jpeg", headers={"Cache-Control": "max-age=86400"})

    async def healthz(self, request: web.Request) -> web.Response:
        ok, reasons = health(self.agent)
        return web.json_response({"ok": ok, "reasons": reasons}, status=200 if ok else 503, headers=NO_STORE)

    async def metrics(self, request: web.Request) -> web.Response:
        body, content_type = self.agent.metrics.render()
        return web.Response(body=body, headers={"Content-Type": content_type, **NO_STORE})
