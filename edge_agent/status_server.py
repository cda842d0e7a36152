"""The status server: one aiohttp app on the agent's own event loop.

GET /                          the page (all cameras; refreshes itself; no external assets)
GET /api/status                the same data as JSON
GET /cameras/<name>/latest.jpg the latest classified frame, annotated
GET /healthz                   200, or 503 with the reasons as JSON
GET /metrics                   Prometheus text
"""

from __future__ import annotations

import logging
from importlib import resources
from typing import TYPE_CHECKING

from aiohttp import web

from .view import health, status_view

if TYPE_CHECKING:
    from .agent import Agent

log = logging.getLogger("edge_agent.status")
NO_STORE = {"Cache-Control": "no-store"}


class StatusServer:
    def __init__(self, agent: "Agent"):
        self.agent = agent
        self._page = resources.files("edge_agent").joinpath("page.html").read_bytes()
        self._runner: web.AppRunner | None = None

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/", self.page)
        app.router.add_get("/api/status", self.status)
        app.router.add_get("/cameras/{name}/latest.jpg", self.latest)
        app.router.add_get("/healthz", self.healthz)
        app.router.add_get("/metrics", self.metrics)
        return app

    async def start(self) -> None:
        cfg = self.agent.cfg.status
        self._runner = web.AppRunner(self.app(), access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, cfg.host, cfg.port)
        try:
            await site.start()
        except OSError as exc:
            await self._runner.cleanup()
            raise RuntimeError(f"status server cannot listen on {cfg.host}:{cfg.port}: {exc.strerror}") from None
        log.info("status page on http://%s:%d/", cfg.host if ":" not in cfg.host else f"[{cfg.host}]", cfg.port)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def page(self, request: web.Request) -> web.Response:
        return web.Response(body=self._page, content_type="text/html", charset="utf-8", headers=NO_STORE)

    async def status(self, request: web.Request) -> web.Response:
        return web.json_response(status_view(self.agent), headers=NO_STORE)

    async def latest(self, request: web.Request) -> web.Response:
        cam = self.agent.cameras.get(request.match_info["name"])
        if cam is None:
            raise web.HTTPNotFound(text="no such camera")
        if cam.latest is None:
            raise web.HTTPNotFound(text="no classified frame yet")
        return web.Response(body=cam.latest.jpeg(cam.cfg.region), content_type="image/jpeg", headers=NO_STORE)

    async def healthz(self, request: web.Request) -> web.Response:
        ok, reasons = health(self.agent)
        return web.json_response({"ok": ok, "reasons": reasons}, status=200 if ok else 503, headers=NO_STORE)

    async def metrics(self, request: web.Request) -> web.Response:
        body, content_type = self.agent.metrics.render()
        return web.Response(body=body, headers={"Content-Type": content_type, **NO_STORE})
