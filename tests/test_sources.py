"""Capture from the kinds of source a user points the agent at."""

from __future__ import annotations

import signal
from pathlib import Path

import numpy as np
import pytest

from edge_agent.sources import SourceKind, parse_source
from tests.helpers import AgentProc, Broker, Recorder, agent_config
from tests.streams import MjpegCamera
from tools.standin_api import StandinApi, ThreadedStandin

KEY = "rf_sources_SECRET_9"


@pytest.mark.parametrize("source,kind,target", [
    ("0", "device", 0),
    ("2", "device", 2),
    ("/dev/video0", "device", "/dev/video0"),
    ("/dev/v4l/by-id/usb-cam-video-index0", "device", "/dev/v4l/by-id/usb-cam-video-index0"),
    ("rtsp://u:p@cam.lan:554/s1", "stream", "rtsp://u:p@cam.lan:554/s1"),
    ("http://cam.lan/mjpg/video.mjpg", "stream", "http://cam.lan/mjpg/video.mjpg"),
    ("HTTPS://cam.lan/x", "stream", "HTTPS://cam.lan/x"),
    ("/home/pi/clip.mp4", "file", "/home/pi/clip.mp4"),
    ("file:///home/pi/clip.mp4", "file", "/home/pi/clip.mp4"),
    ("clip.mkv", "file", "clip.mkv"),
    ("exec:rpicam-vid -t 0 --codec mjpeg -o -", "exec", "rpicam-vid -t 0 --codec mjpeg -o -"),
    ("rpicam", "rpicam", 0),
    ("rpicam:1", "rpicam", 1),
])
def test_parse_source(source, kind, target):
    spec = parse_source(source)
    assert (spec.kind, spec.target) == (SourceKind(kind), target)


def test_stream_description_hides_credentials():
    assert parse_source("rtsp://admin:hunter22@cam/s").describe() == "rtsp://***@cam/s"
    assert parse_source("exec:ffmpeg -i rtsp://admin:hunter22@cam/s -f mjpeg -").describe() \
        == "ffmpeg -i rtsp://***@cam/s -f mjpeg -"


def run_until_state(tmp_path: Path, broker: Broker, recorder: Recorder, source: str, *, expect: str,
                    camera_cfg: dict | None = None) -> str:
    with ThreadedStandin(StandinApi(api_key=KEY)) as api:
        cam = {"name": "cam", "source": source, "fps": 5, "stall_timeout": 3, **(camera_cfg or {})}
        agent = AgentProc(tmp_path, agent_config(api_url=api.url, broker_port=broker.port, api_key=KEY, cameras=[cam]))
        try:
            state = recorder.wait_for("cam/state", timeout=30)
            assert state.json()["class"] == expect
        finally:
            agent.signal(signal.SIGTERM)
            assert agent.wait(10) == 0
            agent.close()
    return agent.log()


def test_http_mjpeg_stream(tmp_path: Path, broker: Broker, recorder: Recorder):
    with MjpegCamera("blue", fps=10) as cam:
        log = run_until_state(tmp_path, broker, recorder, cam.url, expect="blue")
    assert "camera online" in log


def test_mjpeg_stream_that_freezes_mid_stream_is_reopened(tmp_path: Path, broker: Broker, recorder: Recorder):
    with MjpegCamera("red", fps=10) as cam, ThreadedStandin(StandinApi(api_key=KEY)) as api:
        cfg = agent_config(api_url=api.url, broker_port=broker.port, api_key=KEY,
                           cameras=[{"name": "cam", "source": cam.url, "fps": 5, "stall_timeout": 2}])
        agent = AgentProc(tmp_path, cfg)
        try:
            first = recorder.wait_for("cam/state", timeout=30)
            assert first.json()["class"] == "red"
            cam.frozen.set()
            off = recorder.wait_for("cam/status", lambda m: m.json()["camera"] == "offline", timeout=15,
                                    after=first.at)
            assert "no frame" in off.json()["last_error"]
            cam.color = "green"
            cam.frozen.clear()
            recorder.wait_for("cam/status", lambda m: m.json()["camera"] == "online", timeout=30, after=off.at)
            assert recorder.wait_for("cam/state", lambda m: m.json()["class"] == "green", timeout=20)
            assert cam.clients >= 2  # the agent opened the stream again
        finally:
            agent.signal(signal.SIGTERM)
            assert agent.wait(10) == 0
            agent.close()


def test_missing_v4l2_device_is_offline_not_fatal(tmp_path: Path, broker: Broker, recorder: Recorder):
    """No webcam here: a /dev/video path that does not exist goes through the V4L2
    open path, is reported offline with the reason, and retried."""
    with ThreadedStandin(StandinApi(api_key=KEY)) as api:
        cfg = agent_config(api_url=api.url, broker_port=broker.port, api_key=KEY,
                           cameras=[{"name": "cam", "source": "/dev/video63", "fps": 2}])
        agent = AgentProc(tmp_path, cfg)
        try:
            st = recorder.wait_for("cam/status", lambda m: m.json()["last_error"] is not None, timeout=15)
            assert st.json()["camera"] == "offline"
            assert "cannot open /dev/video63: no such device" in st.json()["last_error"]
            assert agent.proc.poll() is None
        finally:
            agent.signal(signal.SIGTERM)
            assert agent.wait(10) == 0
            agent.close()


def test_the_frame_source_protocol_has_defaults_only_where_a_default_is_true():
    """A source that forgets a member it must implement fails loudly; the optional
    ones answer as a plain live stream would."""
    from edge_agent.sources import FrameSource

    class Bare(FrameSource):
        is_file = jpeg = False
        error = None

    src = Bare()
    for required in (src.open, src.grab, src.retrieve, src.info, src.close, src.interrupt, src.describe):
        with pytest.raises(NotImplementedError):
            required()
    assert not src.reopen_wanted and not src.can_decode_itself
    assert src.rewind() is False and src.holds(np.zeros(1)) is False
    assert src.frame_rate() is None and src.position() is None and src.size() is None
