"""decode: all | keyframes | auto for FFmpeg sources: the pure rules, and the real
thing on H.264 files whose keyframe interval is known."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from edge_agent.config import CameraConfig, DecodeMode
from edge_agent.sources import SourceKind, SourceSpec
from edge_agent.sources.opencv import OpenCVSource, auto_keyframes, capture_options


def test_capture_options_add_keyframes_to_what_the_user_set():
    assert capture_options(None, False) == "rtsp_transport;tcp"
    assert capture_options(None, True) == "rtsp_transport;tcp|avdiscard;nonkey"
    assert capture_options("rtsp_transport;udp|stimeout;5000000", True) == \
        "rtsp_transport;udp|stimeout;5000000|avdiscard;nonkey"
    assert capture_options("avdiscard;nonkey", False) == ""  # ours alone decide


@pytest.mark.parametrize("interval,look,keyframes", [
    (1.0, 1.0, True), (1.0, 2.0, True), (1.0, 0.5, False), (2.0, 1.0, False), (1.04, 1.0, True),
    (None, 10.0, False),
])
def test_auto_keeps_keyframes_only_when_the_camera_looks_no_more_often(interval, look, keyframes):
    assert auto_keyframes(interval, look) is keyframes


@pytest.fixture(scope="module")
def gop1(tmp_path_factory) -> Path:
    """640x480 25 fps H.264 with a keyframe every second (camera-like: moving test pattern)."""
    path = tmp_path_factory.mktemp("decode") / "gop1.mp4"
    subprocess.run(["ffmpeg", "-nostdin", "-y", "-loglevel", "error", "-f", "lavfi", "-i",
                    "testsrc2=s=640x480:r=25:d=8", "-c:v", "libx264", "-preset", "veryfast", "-g", "25",
                    "-keyint_min", "25", "-sc_threshold", "0", "-pix_fmt", "yuv420p", str(path)],
                   check=True, timeout=120)
    return path


def frames(source: OpenCVSource, n: int) -> list[float]:
    """Positions (s) of the next n frames grabbed."""
    out = []
    while len(out) < n and source.grab():
        out.append(source.position() or 0.0)
    return out


@pytest.mark.parametrize("mode,fps,every", [("all", 1, 0.04), ("keyframes", 4, 1.0), ("auto", 1, 1.0)])
def test_what_each_mode_decodes(gop1: Path, mode: str, fps: float, every: float):
    cfg = CameraConfig(name="cam", source=str(gop1), fps=fps, decode=DecodeMode(mode))
    src = OpenCVSource(SourceSpec(SourceKind.FILE, str(gop1)), cfg, open_timeout=5, look_interval=lambda: 1 / fps)
    try:
        assert src.open() is None
        got = frames(src, 5)
        assert not src.reopen_wanted
        gaps = [b - a for a, b in zip(got, got[1:])]
        assert gaps and all(abs(g - every) < 0.02 for g in gaps), got
        if mode != "all":
            assert src.info().startswith("keyframes only")
    finally:
        src.close()
    if mode == "auto":
        assert "every 1.0 s" in src.info()


def test_auto_decodes_every_frame_when_the_camera_looks_more_often_than_keyframes(gop1: Path):
    cfg = CameraConfig(name="cam", source=str(gop1), fps=4, decode=DecodeMode.AUTO)
    src = OpenCVSource(SourceSpec(SourceKind.FILE, str(gop1)), cfg, open_timeout=5, look_interval=lambda: 0.25)
    try:
        assert src.open() is None
        frames(src, 3)  # keyframes 0, 1, 2 s: the interval is learned
        assert src.reopen_wanted
        src.close()
        assert src.open() is None
        got = frames(src, 4)
        assert [round(b - a, 2) for a, b in zip(got, got[1:])] == [0.04, 0.04, 0.04]
        assert src.info() == "all frames (keyframes every 1.0 s)"
    finally:
        src.close()


def test_the_agent_says_how_it_decodes(tmp_path: Path, gop1: Path, broker, recorder):
    from tests.helpers import AgentProc, agent_config
    from tools.standin_api import StandinApi, ThreadedStandin

    with ThreadedStandin(StandinApi(api_key="k" * 12)) as api:
        cfg = agent_config(api_url=api.url, broker_port=broker.port, api_key="k" * 12,
                           cameras=[{"name": "cam", "source": str(gop1), "fps": 1, "loop": True}])
        agent = AgentProc(tmp_path, cfg)
        try:
            st = recorder.wait_for("cam/status", lambda m: "keyframes only, every 1.0 s" in (m.json()["decode"] or ""),
                                   timeout=20)
            assert st.json()["camera"] == "online"
            recorder.wait_for("cam/result", timeout=10)
        finally:
            agent.signal(__import__("signal").SIGTERM)
            assert agent.wait(10) == 0
            agent.close()
    assert agent.log().count("decoding keyframes only") == 1  # said once, not at every loop of the file
