"""``exec:`` and ``rpicam`` sources on real processes: frames out of a command's
stdout, its exit and stalls reported, its whole process group stopped (no zombie,
no orphan), a blocked grab interrupted, its stderr logged with a rate limit."""

from __future__ import annotations

import json
import logging
import os
import shutil
import sys
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge_agent.config import CameraConfig
from edge_agent.sources.pipe import PipeSource
from edge_agent.sources.rpicam import NOT_INSTALLED, RpicamSource, camera_framerate, rpicam_argv
from tests.fake_rpicam_vid import install

pytestmark = pytest.mark.timeout(30)

needs_ffmpeg = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs ffmpeg")
FFMPEG_RED = ["ffmpeg", "-nostdin", "-loglevel", "error", "-re", "-f", "lavfi",
              "-i", "color=c=red:s=320x240:r=10", "-f", "mjpeg", "-q:v", "5", "-"]
FFMPEG_RED_SH = " ".join(FFMPEG_RED)


def source(argv: list[str], stall: float = 5.0, name: str = "cam1") -> PipeSource:
    return PipeSource(name, argv, stall_timeout=stall, shown=" ".join(argv))


def sh(script: str, **kw: object) -> PipeSource:
    return source(["sh", "-c", script], **kw)  # type: ignore[arg-type]


def decode(src: PipeSource) -> np.ndarray:
    data = src.retrieve()
    assert data is not None and data.dtype == np.uint8 and data.ndim == 1
    image = cv2.imdecode(data, cv2.IMREAD_COLOR)
    assert image is not None
    return image


def is_red(image: np.ndarray) -> bool:
    b, g, r = (float(v) for v in image.reshape(-1, 3).mean(axis=0))
    return r > 200 and g < 60 and b < 60


def gone(pid: int, timeout: float = 3.0) -> bool:
    """The process no longer runs. A killed grandchild is reaped by init, which in a
    container may be slow or never: a zombie that is not our child counts as gone."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            if fields[0] == "Z" and int(fields[1]) != os.getpid():
                return True
        except (FileNotFoundError, IndexError, ValueError):
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)


def pid_of(src: PipeSource) -> int:
    assert src._proc is not None
    return src._proc.pid


def read_pid(path: Path, timeout: float = 5.0) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and path.read_text().strip():
            return int(path.read_text())
        time.sleep(0.05)
    raise AssertionError(f"{path} never written")


@needs_ffmpeg
def test_ffmpeg_frames_arrive_red_at_their_size() -> None:
    src = source(FFMPEG_RED)
    assert src.open() is None
    pid = pid_of(src)
    try:
        assert src.size() is None
        start = time.monotonic()
        for _ in range(5):
            assert src.grab(), src.error
        elapsed = time.monotonic() - start
        assert is_red(decode(src))
        assert src.size() == (320, 240)
        assert src.describe() == FFMPEG_RED_SH
        assert src.frame_rate() is None and not src.is_file and src.jpeg
        assert elapsed < 3.0  # about 10 a second (-re)
    finally:
        src.close()
    assert not Path(f"/proc/{pid}").exists()  # reaped: no zombie
    src.close()  # idempotent
    assert not src.grab() and src.error


@needs_ffmpeg
def test_garbage_before_the_jpegs_is_skipped() -> None:
    src = sh(r"printf 'garbage \377\330\377 more \377\331 junk'; head -c 3000 /dev/zero; exec " + FFMPEG_RED_SH)
    assert src.open() is None
    start = time.monotonic()
    try:
        for _ in range(3):
            assert src.grab(), src.error
            assert is_red(decode(src))
        assert time.monotonic() - start < 2.0  # the false SOI swallowed nothing
    finally:
        src.close()


@needs_ffmpeg
def test_a_command_that_exits_reports_its_status(tmp_path: Path) -> None:
    script = f"{FFMPEG_RED_SH.replace('-re', '-re -t 1')}; echo 'camera gone' >&2; exit 3"
    src = sh(script)
    assert src.open() is None
    pid = pid_of(src)
    frames = 0
    start = time.monotonic()
    while src.grab():
        frames += 1
    assert 5 <= frames <= 15
    assert time.monotonic() - start < 5
    assert src.error == "the command exited with status 3: camera gone"
    src.close()
    assert not Path(f"/proc/{pid}").exists()


def test_a_command_killed_by_a_signal() -> None:
    src = sh("kill -9 $$")
    assert src.open() is None
    assert not src.grab()
    assert src.error is not None and src.error.startswith("the command was killed by signal 9")
    src.close()


@needs_ffmpeg
def test_a_stall_is_reported_and_the_whole_group_stopped(tmp_path: Path) -> None:
    grandchild = tmp_path / "grandchild.pid"
    script = (f"sleep 30 & echo $! > {grandchild}; "
              f"{FFMPEG_RED_SH.replace('-f mjpeg', '-frames:v 1 -f mjpeg')}; sleep 30")
    src = sh(script, stall=1.0)
    assert src.open() is None
    pid = pid_of(src)
    try:
        assert src.grab(), src.error
        assert is_red(decode(src))
        start = time.monotonic()
        assert not src.grab()
        took = time.monotonic() - start
        assert src.error == "no frame for 1 s"
        assert 0.9 <= took < 3.0
    finally:
        src.close()
    assert not Path(f"/proc/{pid}").exists()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert gone(read_pid(grandchild))


def test_a_child_ignoring_sigterm_is_killed(tmp_path: Path) -> None:
    script = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('ready', flush=True); time.sleep(30)"
    src = source([sys.executable, "-c", script], stall=0.5)
    assert src.open() is None
    pid = pid_of(src)
    time.sleep(0.5)  # let it install the handler
    start = time.monotonic()
    assert not src.grab()  # "ready" is not a JPEG: a stall
    assert src.error == "no frame for 0.5 s"
    assert time.monotonic() - start < 4.0  # 0.5 s stall + 2 s grace
    src.close()
    assert not Path(f"/proc/{pid}").exists()


def test_interrupt_unblocks_a_grab() -> None:
    src = sh("sleep 30", stall=20.0)
    assert src.open() is None
    pid = pid_of(src)
    threading.Timer(0.3, src.interrupt).start()
    start = time.monotonic()
    assert not src.grab()
    assert time.monotonic() - start < 1.0
    assert src.error == "interrupted"
    src.close()
    assert not Path(f"/proc/{pid}").exists()
    assert src.open() == "interrupted"  # sticky: the agent is stopping
    src.close()


def test_interrupt_before_open() -> None:
    src = sh("sleep 30")
    src.interrupt()
    assert src.open() == "interrupted"
    assert src._proc is None


def test_stderr_is_logged_at_debug_rate_limited_with_the_camera_name(
        caplog: pytest.LogCaptureFixture) -> None:
    long = "x" * 500
    script = f"echo '{long}' >&2; i=1; while [ $i -lt 50 ]; do echo \"line $i\" >&2; i=$((i+1)); done"
    src = sh(script, name="porch")
    with caplog.at_level(logging.DEBUG, logger="edge_agent.sources.pipe"):
        assert src.open() is None
        assert not src.grab()
        src.close()
    lines = [r for r in caplog.records if r.name == "edge_agent.sources.pipe"]
    assert all(r.levelno == logging.DEBUG for r in lines)
    said = [r.getMessage() for r in lines if "command says" in r.getMessage()]
    assert len(said) == 20
    assert all(m.startswith("porch: command says: ") for m in said)
    assert len(said[0]) < 300 and said[0].endswith("chars)")  # cut to 200 chars
    assert said[1] == "porch: command says: line 1"
    assert any(r.getMessage() == "porch: 30 more lines of the command's stderr left out" for r in lines)
    assert src.error == "the command exited with status 0: line 49"


def test_a_missing_executable_is_a_reason_not_an_exception(tmp_path: Path) -> None:
    assert source(["/nonexistent/rpicam-vid"]).open() == "cannot run /nonexistent/rpicam-vid: not found"
    assert source(["no-such-program-here"]).open() == "cannot run no-such-program-here: not found"
    plain = tmp_path / "plain"
    plain.write_text("not a program")
    assert source([str(plain)]).open() == f"cannot run {plain}: permission denied"
    assert source([]).open() == "no command given"


# -- rpicam -------------------------------------------------------------------


def fake_which(*installed: str):  # type: ignore[no-untyped-def]
    return lambda name: f"/usr/bin/{name}" if name in installed else None


def test_rpicam_argv() -> None:
    assert rpicam_argv(0, 1280, 720, 2.0, [], fake_which("rpicam-vid", "libcamera-vid")) == [
        "rpicam-vid", "--camera", "0", "-t", "0", "--nopreview", "--codec", "mjpeg",
        "--width", "1280", "--height", "720", "--framerate", "3", "--flush", "-o", "-"]
    argv = rpicam_argv(1, 640, 480, 0.2, ["--rotation", "180"], fake_which("libcamera-vid"))
    assert argv == ["libcamera-vid", "--camera", "1", "-t", "0", "--nopreview", "--codec", "mjpeg",
                    "--width", "640", "--height", "480", "--framerate", "2", "--flush",
                    "--rotation", "180", "-o", "-"]
    assert rpicam_argv(0, 640, 480, 2.0, [], fake_which()) == NOT_INSTALLED
    assert [camera_framerate(f) for f in (0.1, 1, 2, 2.5, 10, 29, 30, 60)] == [2, 2, 3, 4, 11, 30, 30, 30]


@pytest.fixture
def fake_rpicam(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    install(bin_dir)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")
    record = tmp_path / "args.json"
    monkeypatch.setenv("FAKE_RPICAM_ARGS", str(record))
    return record


def test_pipe_source_on_the_fake_rpicam_vid(fake_rpicam: Path) -> None:
    argv = rpicam_argv(0, 160, 120, 4.0, ["--rotation", "180"])
    assert isinstance(argv, list) and argv[0] == "rpicam-vid"
    src = PipeSource("pi", argv, stall_timeout=10.0, shown="Pi camera 0")
    assert src.open() is None
    try:
        for _ in range(3):
            assert src.grab(), src.error
        assert is_red(decode(src))
        assert src.size() == (160, 120)
    finally:
        src.close()
    recorded = json.loads(fake_rpicam.read_text())
    assert recorded == argv[1:]
    assert recorded[recorded.index("--codec") + 1] == "mjpeg"
    assert recorded[-2:] == ["-o", "-"]
    assert recorded[recorded.index("--framerate") + 1] == "5"


def test_rpicam_source_from_a_camera_config(fake_rpicam: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_RPICAM_COLOR", "blue")
    cfg = CameraConfig(name="pi", source="rpicam:1", fps=2.0, resolution=(96, 64), options=("--hflip",))
    src = RpicamSource(cfg, 1)
    assert src.open() is None
    try:
        assert src.grab(), src.error
        image = decode(src)
        assert image.shape == (64, 96, 3) and image[..., 0].mean() > 200 and image[..., 2].mean() < 60
        assert src.describe() == "Pi camera 1"
    finally:
        src.close()
    recorded = json.loads(fake_rpicam.read_text())
    assert recorded[:2] == ["--camera", "1"] and "--hflip" in recorded
    assert "rpicam-vid, 96x64 MJPEG at 3 fps" == src.info()
    missing = RpicamSource(cfg, 0, which=fake_which())
    assert missing.open() == NOT_INSTALLED and missing.error == NOT_INSTALLED


def test_no_descriptor_or_thread_leaks_over_many_runs() -> None:
    def fds() -> int:
        return len(os.listdir("/proc/self/fd"))

    src = sh("echo starting >&2; exit 1")
    src.open(), src.grab(), src.close()  # warm up (logging, imports)
    before, threads = fds(), threading.active_count()
    for _ in range(20):
        assert src.open() is None
        assert not src.grab()
        assert src.error == "the command exited with status 1: starting"
        src.close()
    stalled = sh("sleep 30", stall=0.05)
    for _ in range(5):
        assert stalled.open() is None
        assert not stalled.grab()
        stalled.close()
    assert fds() == before
    assert threading.active_count() == threads
