"""The network probe (``sources/probe.py``): a camera passes once a picture's first
bytes come, never with credentials sent; and what it cannot see without them (a
camera that asks for credentials, then sends nothing) is bounded by the source:
that camera's next open waits, leaving the open lock free (#24 item 5)."""

from __future__ import annotations

import threading
import time

import pytest

from edge_agent.config import CameraConfig
from edge_agent.sources import parse_source
from edge_agent.sources.opencv import HOLD_SHARE, OpenCVSource
from edge_agent.sources.probe import Reply, http_reply, probe_stream, rtsp_message, video_track
from tests.helpers import free_port
from tests.streams import HalfDeadCamera, MjpegCamera, RtspCamera, need_gst

HEAD = b"HTTP/1.0 200 OK\r\nContent-Type: multipart/x-mixed-replace; boundary=frame\r\n\r\n"


def test_an_http_reply_is_a_picture_once_its_first_parts_picture_begins():
    assert http_reply(b"HTTP/1.0 200 OK\r\nContent-Ty") is Reply.WAITING
    assert http_reply(HEAD) is Reply.WAITING  # the half-dead camera: headers, then nothing
    assert http_reply(HEAD + b"--frame\r\nContent-Type: image/jpeg\r\n") is Reply.WAITING
    assert http_reply(HEAD + b"--frame\r\nContent-Type: image/jpeg\r\n\r\n") is Reply.WAITING
    assert http_reply(HEAD + b"--frame\r\nContent-Type: image/jpeg\r\n\r\n\xff") is Reply.PICTURE
    assert http_reply(HEAD + b"\r\n--frame\nContent-Type: image/jpeg\n\n\xff\xd8") is Reply.PICTURE  # bare LFs
    assert http_reply(HEAD + b"x" * 4096) is Reply.PICTURE  # no part headers at all, but plenty sent
    assert http_reply(b"HTTP/1.1 200 OK\r\nContent-Type: video/mp4\r\n\r\n") is Reply.WAITING
    assert http_reply(b"HTTP/1.1 200 OK\r\nContent-Type: video/mp4\r\n\r\n\0") is Reply.PICTURE
    for refused in (b"HTTP/1.1 401 Unauthorized\r\n\r\n", b"HTTP/1.0 403 Forbidden\n\n", b"HTTP/1.1 302 Found\r\n\r\n"):
        assert http_reply(refused) is Reply.ANSWERED  # FFmpeg takes it from there, with the credentials


def test_rtsp_replies_and_the_video_track_to_set_up():
    msg, rest = rtsp_message(b"RTSP/1.0 200 OK\r\nCSeq: 2\r\nContent-Length: 3\r\n\r\nabc$\x00")
    assert msg is not None and (msg.status, msg.headers["cseq"], msg.body, rest) == (200, "2", b"abc", b"$\x00")
    half = b"RTSP/1.0 200 OK\r\nContent-Length: 3\r\n\r\nab"
    assert rtsp_message(half) == (None, half)  # its body still to come
    sdp = (b"v=0\r\na=control:*\r\nm=audio 0 RTP/AVP 0\r\na=control:trackID=0\r\n"
           b"m=video 0 RTP/AVP 96\r\na=control:trackID=1\r\n")
    assert video_track(sdp, "rtsp://cam/live/") == "rtsp://cam/live/trackID=1"
    assert video_track(sdp, "rtsp://cam/live?ch=1") == "rtsp://cam/live/trackID=1?ch=1"
    assert video_track(b"m=video 0 RTP/AVP 96\r\na=control:rtsp://cam/v\r\n", "rtsp://cam/") == "rtsp://cam/v"
    assert video_track(b"m=video 0 RTP/AVP 96\r\n", "rtsp://cam/s") == "rtsp://cam/s"
    assert video_track(b"m=audio 0 RTP/AVP 0\r\n", "rtsp://cam/s") is None


@pytest.mark.parametrize("scheme", ["http", "rtsp"])
def test_a_camera_that_answers_but_sends_no_picture_fails_the_probe(scheme: str):
    with HalfDeadCamera(scheme) as dead:
        t0 = time.monotonic()
        why = probe_stream(dead.url("viewer:secret-pw"), 1.0)
        took = time.monotonic() - t0
        requests = list(dead.requests)
    assert why is not None and "answers but sent no picture within 1 s" in why and "secret-pw" not in why
    assert 0.9 <= took <= 1.5  # one deadline for the whole probe
    assert requests and all("authorization" not in r.lower() and "secret-pw" not in r for r in requests)
    if scheme == "rtsp":
        assert [r.split(" ", 1)[0] for r in requests] == ["OPTIONS", "DESCRIBE", "SETUP", "PLAY"]


@pytest.mark.parametrize("scheme", ["http", "rtsp"])
def test_a_camera_asking_for_credentials_has_answered(scheme: str):
    # Without credentials the probe sees no further than the 401: the source bounds the rest.
    with HalfDeadCamera(scheme, auth=True) as dead:
        assert probe_stream(dead.url("viewer:secret-pw"), 1.0) is None
        assert all("authorization" not in r.lower() for r in dead.requests)


def test_good_cameras_pass_the_probe():
    with MjpegCamera("red", fps=5, answer_after=0.3) as cam:
        assert probe_stream(cam.url, 2.0) is None
    assert "Connection refused" in probe_stream(f"http://127.0.0.1:{free_port()}/x", 1.0)
    need_gst()
    rtsp = RtspCamera(free_port(), "red").start()
    try:
        t0 = time.monotonic()
        assert probe_stream(rtsp.url(), 5.0) is None  # DESCRIBE, SETUP, PLAY, its first media bytes
        assert time.monotonic() - t0 < 2.0
    finally:
        rtsp.stop()


def source(url: str, open_timeout: float) -> OpenCVSource:
    cfg = CameraConfig(name="cam", source=url, fps=2, stall_timeout=1.0)
    return OpenCVSource(parse_source(url), cfg, open_timeout=open_timeout, look_interval=lambda: 0.5)


@pytest.mark.timeout(40)
@pytest.mark.parametrize("scheme", ["http", "rtsp"])
def test_a_camera_whose_open_ran_out_with_no_picture_leaves_the_lock_free_before_its_next(scheme: str):
    # Behind credentials, so past the probe: FFmpeg's open holds the open lock for its
    # whole timeout (RTSP: it even says "opened", and no frame comes). The next open
    # waits 3x that, and the lock is free meanwhile: a good camera opens at once.
    with HalfDeadCamera(scheme, auth=True) as dead, MjpegCamera("red", fps=10) as good:
        src = source(dead.url("viewer:secret-pw"), open_timeout=1.0)
        try:
            t0 = time.monotonic()
            if src.open() is None:
                assert not src.grab()  # RTSP: "opened", then the read times out
            src.close()
            held = time.monotonic() - t0
            seen = dead.connections
            why = src.open()
            assert why is not None and "leaving the other cameras' opens free" in why and "secret-pw" not in why
            assert dead.connections == seen  # not even probed
            other = source(good.url, open_timeout=5.0)
            t1 = time.monotonic()
            assert other.open() is None and other.grab()
            assert time.monotonic() - t1 < 1.0
            other.close()
            time.sleep(max(0.0, t0 + held + (1 / HOLD_SHARE - 1) * 1.0 - time.monotonic()) + 0.2)
            opened = threading.Event()

            def again() -> None:
                src.open()
                opened.set()

            threading.Thread(target=again, daemon=True).start()
            assert opened.wait(5) and dead.connections > seen  # tried again once the pause is over
        finally:
            src.close()
