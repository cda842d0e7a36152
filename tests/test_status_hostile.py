"""Issue #9: slow and idle clients must not take every descriptor.

One agent (a looping file camera, the status server) runs as a subprocess under a
512-descriptor limit. Real loopback sockets from this process then play idle
clients, slowloris clients (one header byte a second) and a client that runs the
agent out of descriptors; meanwhile /healthz, the camera and MQTT must carry on and
the log must stay short.
"""

from __future__ import annotations

import os
import resource
import selectors
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import pytest
import requests
import yaml

from edge_agent.web.server import HEADER_TIMEOUT, KEEPALIVE_TIMEOUT, MAX_CONNECTIONS
from tests.helpers import ROOT, AgentProc, Broker, Recorder, agent_config, free_port, wait_until
from tools.standin_api import StandinApi, ThreadedStandin

PREFIX = "edge_agent/test"
FD_LIMIT = 512
IDLE, SLOW = 600, 100


class LimitedAgent(AgentProc):
    """AgentProc, started under RLIMIT_NOFILE = ``FD_LIMIT`` (systemd's default is 1024)."""

    def __init__(self, workdir: Path, config: dict[str, Any]):  # mirrors AgentProc.__init__
        self.workdir = workdir
        self.config_path = workdir / "agent.yaml"
        config = {"state_dir": str(workdir / "state"), **config}
        self.config_path.write_text(yaml.safe_dump(config))
        self.config_path.chmod(0o600)
        self.log_path = workdir / "agent.log"
        self._log = open(self.log_path, "wb")
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "edge_agent", "run", "-c", str(self.config_path), "--log-level", "debug"],
            cwd=ROOT, env=env, stdout=self._log, stderr=subprocess.STDOUT,
            preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (FD_LIMIT, FD_LIMIT)))

    def fds(self) -> int:
        return len(os.listdir(f"/proc/{self.proc.pid}/fd"))


@dataclass
class Running:
    agent: LimitedAgent
    port: int
    rec: Recorder

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@pytest.fixture(scope="module")
def running(tmp_path_factory, videos) -> Iterator[Running]:
    d = tmp_path_factory.mktemp("hostile")
    broker = Broker(d).start()
    rec = Recorder(broker.port, PREFIX)
    port = free_port()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = IDLE + SLOW + 300  # this process's own sockets, bounded
    if soft < want:
        if hard != resource.RLIM_INFINITY and hard < want:
            pytest.skip(f"needs {want} descriptors in the test process, hard limit is {hard}")
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    try:
        with ThreadedStandin(StandinApi(api_key="test-key")) as api:
            cfg = agent_config(api_url=api.url, broker_port=broker.port,
                               cameras=[{"name": "door", "source": str(videos["rgb"]), "fps": 4, "loop": True}])
            cfg["status"] = {"listen": f"127.0.0.1:{port}"}
            agent = LimitedAgent(d, cfg)
            try:
                rec.wait_for("door/result", timeout=30)
                wait_until(lambda: _healthz(f"http://127.0.0.1:{port}", 1) == 200, 10, what="healthz")
                yield Running(agent, port, rec)
            finally:
                agent.signal(signal.SIGTERM)
                try:
                    agent.wait(10)
                finally:
                    agent.close()
    finally:
        rec.close()
        broker.stop()
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def _healthz(url: str, timeout: float) -> int | None:
    try:
        return requests.get(f"{url}/healthz", timeout=timeout).status_code  # a fresh connection each time
    except requests.RequestException:
        return None


def _status_lines(log: str) -> list[str]:
    return [ln for ln in log.splitlines() if "status server" in ln]


class Clients:
    """Raw sockets to the status server; records when the server closed each one."""

    def __init__(self, port: int):
        self.port = port
        self.sel = selectors.DefaultSelector()
        self.opened: dict[socket.socket, float] = {}
        self.closed: dict[socket.socket, float] = {}
        self.slow: list[socket.socket] = []
        self.replies: dict[socket.socket, bytes] = {}

    def open(self, first: bytes = b"", slow: bool = False) -> socket.socket:
        s = socket.create_connection(("127.0.0.1", self.port), timeout=5)
        if first:
            s.sendall(first)
        s.setblocking(False)
        self.opened[s] = time.monotonic()
        self.sel.register(s, selectors.EVENT_READ)
        if slow:
            self.slow.append(s)
        return s

    def _gone(self, s: socket.socket) -> None:
        if s not in self.closed:
            self.closed[s] = time.monotonic()
            self.sel.unregister(s)
            s.close()

    def pump(self, seconds: float) -> None:
        """Read what comes, note EOFs and resets, and drip one header byte a second into the slow ones."""
        end = time.monotonic() + seconds
        next_drip = time.monotonic()
        while time.monotonic() < end and len(self.closed) < len(self.opened):
            if time.monotonic() >= next_drip:
                for s in self.slow:
                    if s not in self.closed:
                        try:
                            s.send(b"a")
                        except BlockingIOError:
                            pass
                        except OSError:
                            self._gone(s)
                next_drip += 1.0
            for key, _ in self.sel.select(timeout=0.1):
                s = key.fileobj
                try:
                    data = s.recv(65536)
                except BlockingIOError:
                    continue
                except OSError:
                    data = b""
                if data:
                    self.replies[s] = self.replies.get(s, b"") + data
                else:
                    self._gone(s)

    def lifetimes(self) -> list[float]:
        return [self.closed[s] - self.opened[s] for s in self.closed]

    def still_open(self) -> int:
        return len(self.opened) - len(self.closed)

    def close(self) -> None:
        for s in self.opened:
            if s not in self.closed:
                self.sel.unregister(s)
                s.close()
        self.sel.close()


def test_server_header_does_not_name_aiohttp(running: Running):
    for path in ("/", "/healthz", "/api/status", "/metrics", "/nope"):
        r = requests.get(running.url + path, timeout=5)
        assert r.headers.get("Server") == "edge-agent", (path, r.headers)
    with socket.create_connection(("127.0.0.1", running.port), timeout=5) as s:  # the parser's own 400
        s.sendall(b"GET /\x01bad HTTP/1.1\r\nHost: x\r\n\r\n")
        reply = b""
        while chunk := s.recv(65536):
            reply += chunk
    assert reply.split(b" ", 2)[1] == b"400" and b"\r\nServer: edge-agent\r\n" in reply
    assert b"aiohttp" not in reply.lower()
    assert "Traceback" not in running.agent.log()


def test_slow_headers_are_cut_by_a_total_deadline(running: Running):
    """Idle and one-byte-a-second clients (fewer than the limit: nobody is evicted) are
    closed at HEADER_TIMEOUT after connecting; an idle keep-alive at KEEPALIVE_TIMEOUT."""
    clients = Clients(running.port)
    try:
        keep = clients.open(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")  # a reply, then idle keep-alive
        for _ in range(5):
            clients.open()
        for _ in range(5):
            clients.open(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ", slow=True)
        clients.pump(KEEPALIVE_TIMEOUT + 4)
        assert clients.still_open() == 0
        assert clients.replies[keep].startswith(b"HTTP/1.1 200")
        assert KEEPALIVE_TIMEOUT - 1 < clients.closed[keep] - clients.opened[keep] < KEEPALIVE_TIMEOUT + 2
        others = [clients.closed[s] - clients.opened[s] for s in clients.opened if s is not keep]
        assert all(HEADER_TIMEOUT - 1 < t < HEADER_TIMEOUT + 2 for t in others), others
        assert all(s not in clients.replies for s in clients.slow)  # no request ever reached a handler
    finally:
        clients.close()


def test_a_flood_of_idle_and_slow_clients(running: Running):
    agent = running.agent
    log_before = len(agent.log())
    baseline_fds = agent.fds()
    results_before = len(running.rec.all("door/result"))
    checks: list[tuple[float, int | None, bool]] = []  # (latency, healthz status, door online)
    fds: list[int] = []
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            t = time.monotonic()
            code = _healthz(running.url, 5)
            latency = time.monotonic() - t
            try:
                cams = requests.get(f"{running.url}/api/status", timeout=5).json()["cameras"]
                online = all(c["online"] for c in cams)
            except requests.RequestException:
                online = False
            checks.append((latency, code, online))
            fds.append(agent.fds())
            stop.wait(0.5)

    watcher = threading.Thread(target=watch, daemon=True)
    clients = Clients(running.port)
    t0 = time.monotonic()
    try:
        watcher.start()
        for _ in range(IDLE):
            clients.open()
        for i in range(SLOW):
            clients.open(b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow-%d: " % i, slow=True)
        opened = time.monotonic() - t0
        clients.pump(HEADER_TIMEOUT + 4)
        lifetimes = clients.lifetimes()
        left = clients.still_open()
    finally:
        clients.close()
        stop.set()
        watcher.join(10)
    flood_end = time.monotonic()

    assert opened < 8, f"opening {IDLE + SLOW} connections took {opened:.1f} s"
    assert left == 0 and len(lifetimes) == IDLE + SLOW
    assert max(lifetimes) < HEADER_TIMEOUT + 2, max(lifetimes)
    # The server never held more than its limit: its descriptors stayed near the baseline.
    assert max(fds) <= baseline_fds + MAX_CONNECTIONS + 16, (baseline_fds, max(fds))
    # /healthz from a fresh connection answered at every check, quickly, and the camera stayed online.
    assert len(checks) >= 8, checks
    assert all(code == 200 and latency < 3 and online for latency, code, online in checks), checks
    # Results kept coming on MQTT, and the camera's status never said offline.
    during = [m for m in running.rec.all("door/result") if t0 <= m.at <= flood_end]
    assert len(during) >= 10, f"{len(during)} results in {flood_end - t0:.0f} s"
    assert len(running.rec.all("door/result")) > results_before
    statuses = [m.json() for m in running.rec.all("door/status") if m.at >= t0]
    assert statuses and all(s["camera"] == "online" for s in statuses)
    # A couple of lines about it, no traceback flood.
    log = agent.log()[log_before:]
    assert "Traceback" not in log and "socket.accept" not in log and "out of file descriptors" not in log
    assert len(_status_lines(log)) <= 2, _status_lines(log)
    assert len(_status_lines(agent.log())) <= 4, _status_lines(agent.log())


def test_out_of_descriptors_is_one_warning_and_a_pause(running: Running):
    """The agent runs out of descriptors (its limit pushed down to what it uses): the
    accept failure is logged once, accepting pauses instead of spinning, and everything
    comes back when descriptors do."""
    agent = running.agent
    log_before = len(agent.log())
    resource.prlimit(agent.proc.pid, resource.RLIMIT_NOFILE, (agent.fds() + 4, FD_LIMIT))
    clients = Clients(running.port)
    try:
        cpu_before = _cpu_seconds(agent.proc.pid)
        t0 = time.monotonic()
        for _ in range(40):  # a few accepted, the rest wait in the backlog
            clients.open()
        wait_until(lambda: "out of file descriptors" in agent.log()[log_before:], 5, what="the warning")
        time.sleep(3)
        busy = (_cpu_seconds(agent.proc.pid) - cpu_before) / (time.monotonic() - t0)
        resource.prlimit(agent.proc.pid, resource.RLIMIT_NOFILE, (FD_LIMIT, FD_LIMIT))
        wait_until(lambda: _healthz(running.url, 2) == 200, 10, what="healthz after descriptors came back")
        wait_until(lambda: "accepting again" in agent.log()[log_before:], 5, what="the all-clear")
    finally:
        resource.prlimit(agent.proc.pid, resource.RLIMIT_NOFILE, (FD_LIMIT, FD_LIMIT))
        clients.close()
    log = agent.log()[log_before:]
    assert "Traceback" not in log and "socket.accept" not in log
    assert sum("out of file descriptors" in ln for ln in log.splitlines()) == 1, _status_lines(log)
    assert busy < 0.7, f"the agent used {busy:.0%} of a CPU while out of descriptors"
    assert agent.proc.poll() is None
    running.rec.wait_for("door/result", after=time.monotonic(), timeout=10)


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
