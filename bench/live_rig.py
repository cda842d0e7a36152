"""What bench_agent.py's live and h264 sections run on: a live HTTP MJPEG camera in a
process of its own, a fresh-frame loop, agents of any checkout (this one or
``--other-tree``) started so that each imports its own tree, and a stand-in API
that notes when each request arrived. Nothing here measures on its own.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from aiohttp import web

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.helpers import free_port, wait_until  # noqa: E402
from tools.standin_api import StandinApi  # noqa: E402

KEY = "bench-key"
PREFIX = "edge_agent/bench"

MJPEG_SERVER = textwrap.dedent("""
    # A live HTTP MJPEG camera: the JPEGs of a folder in a loop at FPS, in real time.
    # Every client sees the same frame at the same moment (frame k is due at
    # start + k / FPS), as viewers of one camera do. Prints its port, then serves.
    import asyncio, sys, time
    from pathlib import Path
    from aiohttp import web
    frames = [p.read_bytes() for p in sorted(Path(sys.argv[1]).glob("*.jpg"))]
    fps = float(sys.argv[2])
    start = time.monotonic()
    async def stream(request):
        resp = web.StreamResponse(headers={"Content-Type": "multipart/x-mixed-replace; boundary=frame"})
        await resp.prepare(request)
        k = int((time.monotonic() - start) * fps) + 1
        while True:
            await asyncio.sleep(max(0.0, start + k / fps - time.monotonic()))
            jpeg = frames[k % len(frames)]
            try:
                await resp.write(b"--frame\\r\\nContent-Type: image/jpeg\\r\\nContent-Length: "
                                 + str(len(jpeg)).encode() + b"\\r\\n\\r\\n" + jpeg + b"\\r\\n")
            except ConnectionError:
                return resp
            k = max(k + 1, int((time.monotonic() - start) * fps))  # a slow viewer skips, as on a camera
    async def main():
        app = web.Application()
        app.router.add_get("/stream", stream)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        print(site._server.sockets[0].getsockname()[1], flush=True)
        await asyncio.Event().wait()
    asyncio.run(main())
""")

FRESH_LOOP = textwrap.dedent("""
    # The fresh-frame loop: what a reader that always holds the newest frame costs.
    # read() (demux and decode) every frame of the live stream; FPS times a second,
    # resize the newest to 416 px, encode it and post it from a pool of 4 threads
    # (as an agent keeps several requests in flight). glibc's malloc defaults.
    import base64, sys, threading, time, cv2, requests
    from concurrent.futures import ThreadPoolExecutor
    url, api, fps = sys.argv[1], sys.argv[2], float(sys.argv[3])
    local = threading.local()
    def post(jpeg):
        session = getattr(local, "session", None) or requests.Session()
        local.session = session
        try:
            session.post(api, data=base64.b64encode(jpeg), timeout=10,
                         headers={"Content-Type": "application/x-www-form-urlencoded"})
        except requests.RequestException:
            pass
    pool = ThreadPoolExecutor(4)
    cap = cv2.VideoCapture(url, cv2.CAP_FFMPEG)
    next_send = 0.0
    while True:
        ok, frame = cap.read()
        if not ok:
            cap.release(); time.sleep(0.5); cap = cv2.VideoCapture(url, cv2.CAP_FFMPEG); continue
        now = time.monotonic()
        if now >= next_send:
            next_send = max(next_send + 1 / fps, now - 0.5 / fps)
            small = cv2.resize(frame, (416, 312), interpolation=cv2.INTER_AREA)
            ok, buf = cv2.imencode(".jpg", small, [cv2.IMWRITE_JPEG_QUALITY, 80])
            pool.submit(post, buf.tobytes())
""")


class MjpegServer:
    """MJPEG_SERVER as a process of its own, so that serving never waits on the bench."""

    def __init__(self, work: Path, frames_dir: Path, fps: float):
        script = work / "mjpeg_server.py"
        script.write_text(MJPEG_SERVER)
        self.proc = subprocess.Popen([sys.executable, str(script), str(frames_dir), str(fps)],
                                     stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        self.url = f"http://127.0.0.1:{int(self.proc.stdout.readline())}/stream"

    def __enter__(self) -> "MjpegServer":
        return self

    def __exit__(self, *exc: object) -> None:
        self.proc.kill()
        self.proc.wait()


def start_fresh_loop(work: Path, url: str, api_url: str, fps: float, slug: str) -> subprocess.Popen:
    script = work / "fresh_loop.py"
    script.write_text(FRESH_LOOP)
    return subprocess.Popen([sys.executable, str(script), url, f"{api_url}/{slug}/1?api_key={KEY}", str(fps)])


@dataclass
class AgeStandin(StandinApi):
    """The stand-in, noting each classify request's arrival (wall clock, path) before
    any of its own work, so a request's age is that minus its frame's captured_at.
    ``GET /_bench/arrivals/all`` gives them as JSON."""

    arrivals: list[tuple[float, str]] = field(default_factory=list)

    def app(self) -> web.Application:
        app = super().app()
        app.router.add_get("/_bench/arrivals/all", lambda request: web.json_response(self.arrivals))
        return app

    async def _classify(self, request: web.Request) -> web.StreamResponse:
        self.arrivals.append((time.time(), request.path))
        return await super()._classify(request)


class StandinProcess:
    """An AgeStandin in a process of its own (``python bench/live_rig.py standin``):
    its arrival times are then never late for work of the bench's own (its MQTT
    recorder, another agent's request being decoded in the same process)."""

    def __init__(self, latency: float):
        self.proc = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "standin", str(latency)],
                                     stdout=subprocess.PIPE, text=True, cwd=ROOT)
        assert self.proc.stdout is not None
        self.url = self.proc.stdout.readline().strip()

        self._final: list[tuple[float, str]] | None = None  # what it saw, once stopped

    def _arrivals(self) -> list[tuple[float, str]]:
        if self._final is not None:
            return self._final
        with urllib.request.urlopen(f"{self.url}/_bench/arrivals/all", timeout=10) as r:
            return [(t, p) for t, p in json.load(r)]

    def arrived(self, slug: str, span: tuple[float, float]) -> list[float]:
        """Wall-clock arrivals of requests for ``slug`` within ``span`` (wall clock);
        still known after the stop."""
        path = f"/{slug}/1"
        return [t for t, p in self._arrivals() if p == path and span[0] <= t < span[1]]

    def __enter__(self) -> "StandinProcess":
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self._final = self._arrivals()
        finally:
            self.proc.kill()
            self.proc.wait()


def ages(arrivals: list[float], captured: list[float], interval: float) -> list[float]:
    """Each request's age at the API: its arrival minus the capture time of the newest
    frame captured before it (results' captured_at). Frames are ``interval`` apart, so
    that is the request's own frame whenever it is younger than ``interval``; one
    that is older (its frame's result is then not the newest) is left out."""
    cap = sorted(captured)
    out = []
    j = 0
    for t in sorted(arrivals):
        while j < len(cap) and cap[j] <= t:
            j += 1
        if j and t - cap[j - 1] < interval:
            out.append(t - cap[j - 1])
    return out


@dataclass(frozen=True)
class Tree:
    """A checkout of the agent: this one, or another one (``--other-tree``)."""

    path: Path
    label: str

    @classmethod
    def of(cls, path: Path) -> "Tree":
        path = path.resolve()
        try:
            head = subprocess.run(["git", "-C", str(path), "rev-parse", "--short", "HEAD"], capture_output=True,
                                  text=True, check=True, timeout=10).stdout.strip()
        except (subprocess.CalledProcessError, FileNotFoundError):
            head = "?"
        dirty = subprocess.run(["git", "-C", str(path), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return cls(path, "this tree" if path == ROOT else f"{head}{'+' if dirty else ''} {path.name}")

    def _config_source(self) -> str:
        pkg = self.path / "edge_agent"
        files = [pkg / "config.py"] if (pkg / "config.py").exists() else sorted((pkg / "config").glob("*.py"))
        return "".join(f.read_text() for f in files)

    def knows(self, key: str) -> bool:
        """Does this tree's config take ``key`` (a dataclass field of that name)? Older
        trees reject keys they do not know, so the bench leaves those out."""
        return re.search(rf"^\s+{re.escape(key)}\s*:", self._config_source(), re.M) is not None

    def env(self) -> dict[str, str]:
        return {"PYTHONPATH": str(self.path)}

    def compile(self) -> None:
        """Bytecode first, as ``pip install`` does (see bench_sources)."""
        subprocess.run([sys.executable, "-m", "compileall", "-q", str(self.path / "edge_agent")], check=True,
                       timeout=120)

    def imported_from(self) -> str:
        """Where ``import edge_agent`` resolves with this tree's cwd and environment: the
        agent's ``python -m edge_agent`` resolves it the same way (cwd first on sys.path)."""
        return subprocess.run([sys.executable, "-c", "import edge_agent; print(edge_agent.__file__)"],
                              cwd=self.path, env={**os.environ, **self.env()}, capture_output=True, text=True,
                              check=True, timeout=60).stdout.strip()


class TreeAgent:
    """``python -m edge_agent run`` of one tree: cwd and PYTHONPATH that tree, so it imports
    its own edge_agent (``check()`` reads both back from /proc)."""

    def __init__(self, work: Path, tree: Tree, name: str, api_url: str, broker_port: int,
                 camera: dict[str, Any], env: dict[str, str] | None = None, slug: str | None = None):
        self.tree, self.name, self.slug = tree, name, slug or name
        d = work / name
        d.mkdir()
        cam = {"name": name, **camera}
        if tree.knows("change"):
            cam["change"] = {"enabled": False}  # the gate off: every look is a call
        elif "decode" in cam and not tree.knows("decode"):
            raise ValueError(f"{tree.path} does not know cameras[].decode")
        cfg: dict[str, Any] = {
            "device_id": f"bench-{name}",
            "api": {"url": api_url, "model": f"{self.slug}/1", "api_key": KEY, "timeout": 5},
            "mqtt": {"host": "127.0.0.1", "port": broker_port, "topic_prefix": PREFIX,
                     "client_id": f"edge-agent-bench-{name}"},
            "cameras": [cam],
            "status": {"listen": f"127.0.0.1:{free_port()}"},
        }
        if tree.knows("state_dir"):
            cfg["state_dir"] = str(d / "state")
        path = d / "agent.yaml"
        path.write_text(yaml.safe_dump(cfg))
        path.chmod(0o600)
        self.log_path = d / "agent.log"
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen([sys.executable, "-m", "edge_agent", "run", "-c", str(path),
                                      "--log-level", "info"], cwd=tree.path,
                                     env={**os.environ, **tree.env(), **(env or {}), "PYTHONUNBUFFERED": "1"},
                                     stdout=self._log, stderr=subprocess.STDOUT)

    def check(self) -> None:
        """The running agent's cwd and PYTHONPATH are its tree's (from /proc)."""
        cwd = Path(os.readlink(f"/proc/{self.proc.pid}/cwd"))
        with open(f"/proc/{self.proc.pid}/environ", "rb") as f:
            environ = dict(v.split(b"=", 1) for v in f.read().split(b"\0") if b"=" in v)
        if cwd != self.tree.path or environ.get(b"PYTHONPATH", b"").decode() != str(self.tree.path):
            raise RuntimeError(f"agent {self.name} runs in {cwd} with PYTHONPATH "
                               f"{environ.get(b'PYTHONPATH')!r}, not {self.tree.path}")

    def alive(self) -> None:
        if self.proc.poll() is not None:
            raise RuntimeError(f"agent {self.name} exited:\n{self.log_path.read_text(errors='replace')[-2000:]}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)

    def close(self) -> None:
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        self._log.close()


def stop_all(agents: list[TreeAgent]) -> None:
    for a in agents:
        a.stop()
    for a in agents:
        a.close()


def wait_results(arrivals: StandinProcess, slugs: list[str], timeout: float) -> None:
    wait_until(lambda: all(arrivals.arrived(s, (0, float("inf"))) for s in slugs), timeout,
               what="requests from every agent and loop")


async def _serve_standin(latency: float) -> None:
    api = AgeStandin(api_key=KEY, latency=latency)
    await api.start()
    print(api.url, flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    if sys.argv[1:2] == ["standin"]:
        asyncio.run(_serve_standin(float(sys.argv[2])))
