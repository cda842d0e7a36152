"""One rule for "is this camera healthy?" (pure)."""

from edge_agent.health import CameraHealth


def health(frame_age, busy_for=0.0, alive=True) -> CameraHealth:
    return CameraHealth(frame_age=frame_age, busy_for=busy_for, stall_timeout=10, open_timeout=5, wedge_after=40,
                        alive=alive)


def test_a_camera_delivering_frames_is_healthy():
    h = health(0.1)
    assert not (h.blocked or h.stalled or h.wedged) and h.problem() is None and h.wedge() is None


def test_no_frame_yet_and_no_frame_for_a_while():
    assert health(None).problem() == "no frame yet"
    h = health(12.4)
    assert h.stalled and h.problem() == "no frame for 12 s" and not h.blocked and not h.wedged


def test_a_read_waiting_past_the_stall_timeout_counts_before_it_returns():
    h = health(1.0, busy_for=11)
    assert h.stalled and not h.blocked and h.problem() is None  # frames came recently


def test_blocked_then_wedged():
    assert health(None, busy_for=16).blocked and not health(None, busy_for=16).wedged
    h = health(None, busy_for=41)
    assert h.wedged and h.wedge() == "capture thread stuck in OpenCV for 41 s"
    assert health(1.0, alive=False).wedge() == "capture thread died"
