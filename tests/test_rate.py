import random

import pytest

from edge_agent.rate import RateGate


def run_gate(fps: float, source_fps: float, seconds: float, jitter: float = 0.0) -> list[float]:
    gate, taken = RateGate(fps), []
    rng = random.Random(0)
    for i in range(int(seconds * source_fps)):
        ts = 100.0 + i / source_fps + rng.uniform(-jitter, jitter)
        if gate.due(ts):
            gate.take(ts)
            taken.append(ts)
    return taken


@pytest.mark.parametrize("fps,source", [(10, 30), (2, 30), (1, 25), (5, 15), (0.5, 30), (4, 30)])
def test_gate_delivers_the_asked_rate_from_a_faster_source(fps, source):
    taken = run_gate(fps, source, 20, jitter=0.004)
    rate = (len(taken) - 1) / (taken[-1] - taken[0])
    assert fps * 0.95 <= rate <= fps * 1.001
    gate = RateGate(fps)
    assert min(b - a for a, b in zip(taken, taken[1:])) >= gate.interval - gate.tolerance


@pytest.mark.parametrize("fps", [10, 2, 30])
def test_no_one_second_window_exceeds_fps_on_a_steady_source(fps):
    taken = run_gate(fps, 30, 10)
    for i, t in enumerate(taken):
        in_window = [x for x in taken[i:] if x < t + 1.0 - 1e-9]  # half-open window, float slack
        assert len(in_window) <= fps


def test_source_slower_than_fps_sends_every_frame_without_bursts():
    taken = run_gate(10, 5, 5)
    assert len(taken) == 25


def test_a_stall_does_not_earn_a_burst():
    gate = RateGate(2)
    gate.take(0.0)
    assert not gate.due(0.2)
    # Nothing for 10 s, then a 30 fps source again: one frame, then the normal spacing.
    ts = [10.0 + i / 30 for i in range(60)]
    taken = []
    for t in ts:
        if gate.due(t):
            gate.take(t)
            taken.append(t)
    assert len(taken) == 4
    assert all(b - a >= 0.48 for a, b in zip(taken, taken[1:]))


def test_set_fps():
    gate = RateGate(1)
    gate.set_fps(4)
    assert gate.interval == 0.25
    with pytest.raises(ValueError):
        gate.set_fps(0)


@pytest.mark.parametrize("tiny", [1e-300, 0.001])
def test_a_new_fps_takes_effect_at_once(tiny):
    """set/fps 1e-300 then set/fps 2 left the camera dead: the slot stayed far ahead."""
    gate = RateGate(2)
    gate.take(100.0)
    gate.set_fps(tiny)
    gate.take(100.5) if gate.due(100.5) else None
    assert not gate.due(101.0)
    gate.set_fps(2)
    assert gate.due(101.0)  # 0.5 s after the last frame taken, not 1000 s or 1e300 s
    gate.take(101.0)
    assert not gate.due(101.2) and gate.due(101.5)


def test_a_faster_fps_moves_the_next_slot_forward_but_never_back_before_the_last_take():
    gate = RateGate(0.1)  # every 10 s
    gate.take(0.0)
    gate.set_fps(1)
    assert not gate.due(0.5) and gate.due(1.0)
