"""systemd integration: the notify protocol over a real AF_UNIX socket the test
listens on (as systemd would), and the unit file checked by systemd-analyze."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

from edge_agent.sdnotify import Notifier
from tests.helpers import ROOT, AgentProc, Broker, Recorder, agent_config, wait_until
from tools.standin_api import StandinApi, ThreadedStandin

KEY = "rf_systemd_SECRET_44"


class NotifyListener:
    """What systemd would receive on $NOTIFY_SOCKET: (monotonic time, message) pairs."""

    def __init__(self, path: Path):
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.2)
        self.got: list[tuple[float, str]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                data = self.sock.recv(4096)
            except socket.timeout:
                continue
            self.got.append((time.monotonic(), data.decode()))

    def lines(self, key: str) -> list[tuple[float, str]]:
        out = []
        for at, msg in list(self.got):
            for line in msg.splitlines():
                if line.startswith(key):
                    out.append((at, line))
        return out

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.sock.close()


def test_notifier_is_silent_outside_systemd():
    n = Notifier({})
    assert not n.enabled and n.watchdog_interval is None and n.ready("x") is False


def test_notifier_watchdog_settings(tmp_path: Path):
    n = Notifier({"NOTIFY_SOCKET": "@abstract-name", "WATCHDOG_USEC": "20000000", "WATCHDOG_PID": str(os.getpid())})
    assert n.enabled and n.watchdog_interval == 10.0
    assert Notifier({"NOTIFY_SOCKET": "/x", "WATCHDOG_USEC": "5", "WATCHDOG_PID": "1"}).watchdog_interval is None
    listener = NotifyListener(tmp_path / "notify.sock")
    try:
        n = Notifier({"NOTIFY_SOCKET": str(listener.path)})
        assert n.ready("all good") and n.watchdog() and n.stopping()
        wait_until(lambda: len(listener.got) == 3, 5, what="three datagrams")
        assert [m for _, m in listener.got] == ["READY=1\nSTATUS=all good", "WATCHDOG=1", "STOPPING=1\nSTATUS=stopping"]
    finally:
        listener.close()


def test_ready_status_watchdog_and_stopping(tmp_path: Path, videos, broker: Broker, recorder: Recorder):
    listener = NotifyListener(tmp_path / "notify.sock")
    with ThreadedStandin(StandinApi(api_key=KEY)) as api:
        cfg = agent_config(api_url=api.url, broker_port=broker.port, api_key=KEY,
                           cameras=[{"name": "cam", "source": str(videos["red_long"]), "fps": 4, "loop": True},
                                    {"name": "gone", "source": str(tmp_path / "missing.mp4"), "fps": 2}])
        agent = AgentProc(tmp_path, cfg, env={"NOTIFY_SOCKET": str(listener.path), "WATCHDOG_USEC": "1000000"})
        try:
            wait_until(lambda: listener.lines("READY=1"), 20, what="READY=1")
            ready_at = listener.lines("READY=1")[0][0]
            status = listener.lines("STATUS=")[0][1]
            assert status.startswith("STATUS=2 camera(s): 1 online; API ok; MQTT connected")
            time.sleep(3)
            pings = [at for at, _ in listener.lines("WATCHDOG=1") if at > ready_at]
            assert len(pings) >= 4  # every 0.5 s (half of WATCHDOG_USEC)
            assert max(b - a for a, b in zip(pings, pings[1:])) < 1.0
            assert recorder.all("cam/state")  # READY came once the agent was really working
        finally:
            agent.signal(signal.SIGTERM)
            assert agent.wait(10) == 0
            agent.close()
            wait_until(lambda: listener.lines("STOPPING=1"), 5, what="STOPPING=1")
            listener.close()
    statuses = [line for _, line in listener.lines("STATUS=")]
    assert any(re.match(r"STATUS=2 camera\(s\): 1 online; API ok; MQTT connected; \d+ classified", s)
               for s in statuses[1:])


@pytest.mark.timeout(90)
async def test_wedged_capture_thread_stops_the_watchdog(tmp_path: Path):
    """A source whose open never returns (what a hung V4L2 driver does; FIFOs, the
    way to show it before, are now refused), in-process: the camera is marked
    offline, READY still comes, the watchdog pings go on until the thread counts as
    wedged, then stop, so systemd would restart us."""
    import asyncio

    from edge_agent.agent import Agent
    from edge_agent.sources import FrameSource
    from tests.inprocess import FakeClassifier, RecordingOutput, config

    release = threading.Event()

    class HangingSource(FrameSource):
        """Its open never returns (until the test releases it)."""
        is_file = jpeg = False
        error = None

        def open(self) -> str:
            release.wait(120)  # stuck inside "OpenCV", beyond every timeout
            return "released"

        def close(self) -> None:
            pass

        def interrupt(self) -> None:
            pass  # like OpenCV: nothing unblocks it

        def describe(self) -> str:
            return "a source that hangs"

        def info(self) -> str:
            return "hanging"

    listener = NotifyListener(tmp_path / "notify.sock")
    out = RecordingOutput()
    cfg = config(tmp_path, {"stall_timeout": 1})
    notifier = Notifier({"NOTIFY_SOCKET": str(listener.path), "WATCHDOG_USEC": "1000000"})
    agent = Agent(cfg, notifier=notifier, classifier=lambda c: (FakeClassifier(), None),
                  outputs=lambda ctx: [out], worker_seams=lambda c: {"source": HangingSource, "open_timeout": 1.0})
    task = asyncio.create_task(agent.run())

    async def until(pred, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not pred():
            assert time.monotonic() < deadline, f"timed out waiting for {what}"
            assert not task.done(), task
            await asyncio.sleep(0.05)

    try:
        def blocked() -> bool:
            return any(m.topic.endswith("/cam/status") and b"capture blocked" in m.payload for m in out.messages)

        await until(blocked, 15, "capture blocked")
        assert out.last_status()["camera"] == "offline"
        await until(lambda: listener.lines("READY=1"), 10, "READY=1")
        # wedge_after = 2 * (open timeout 1 s + stall 1 s) + 10 s = 14 s after the open began
        await until(lambda: listener.lines("STATUS=unhealthy"), 40, "the unhealthy status")
        stopped_at = listener.lines("STATUS=unhealthy")[0][0]
        await asyncio.sleep(2.5)
        late_pings = [at for at, _ in listener.lines("WATCHDOG=1") if at > stopped_at]
        assert late_pings == []
        assert listener.lines("WATCHDOG=1"), "it pinged while it was healthy"
    finally:
        release.set()
        agent.request_stop()
        await asyncio.wait_for(task, 10)
        listener.close()


UNIT = ROOT / "systemd" / "edge-agent.service"


@pytest.mark.skipif(not shutil.which("systemd-analyze"), reason="systemd-analyze not installed")
def test_unit_file_verifies_and_is_hardened(tmp_path: Path):
    # verify wants ExecStart's binary to exist: point a copy of the unit at this venv's.
    exe = Path(os.environ.get("VIRTUAL_ENV", "")) / "bin" / "edge-agent"
    if not exe.exists():
        exe = Path(shutil.which("edge-agent") or "/usr/bin/true")
    unit = tmp_path / "edge-agent.service"
    unit.write_text(UNIT.read_text().replace("/opt/edge-agent/.venv/bin/edge-agent", str(exe)))
    # --man=no: Documentation=man:... must not need man installed (CI machines may lack it).
    r = subprocess.run(["systemd-analyze", "verify", "--man=no", str(unit)], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stderr.strip() == "", r.stderr
    r = subprocess.run(["systemd-analyze", "security", "--offline=yes", str(unit)], capture_output=True,
                       text=True, timeout=60)
    m = re.search(r"Overall exposure level for .*: (\d+\.\d+)", r.stdout + r.stderr)
    assert m, r.stdout + r.stderr
    score = float(m.group(1))
    print(f"systemd-analyze security: exposure {score}")
    assert score <= 2.5
    text = UNIT.read_text()
    for needed in ("Type=notify", "WatchdogSec=", "Restart=on-failure", "RestartPreventExitStatus=2",
                   "DeviceAllow=char-video4linux rw", "SupplementaryGroups=video", "LoadCredential",
                   "NoNewPrivileges=yes", "ProtectSystem=strict", "ProtectHome=yes", "PrivateTmp=yes",
                   "RestrictAddressFamilies=", "MemoryMax=", "StateDirectory=edge-agent",
                   "StateDirectoryMode=0700", "ExecReload=/bin/kill -HUP $MAINPID"):
        assert needed in text, needed
    # A directive said twice is not harmless: two ExecReload= lines send SIGHUP twice.
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith("#")]
    assert len(lines) == len(set(lines)), [ln for ln in set(lines) if lines.count(ln) > 1]
    assert [ln for ln in lines if ln.startswith("ExecReload=")] == ["ExecReload=/bin/kill -HUP $MAINPID"]
