"""One admission object per camera (pure; clock passed in): the doors a frame
passes, and a slot that is released exactly once whichever path gets there first."""

from __future__ import annotations

import cv2
import numpy as np

from edge_agent.admission import Admission, InFlight
from edge_agent.checking import MAX_CONFIRM, Outcome, Why
from edge_agent.budget import Budget
from edge_agent.change import thumbnail, thumbnails
from edge_agent.config import BudgetConfig, CameraConfig, ChangeConfig

RNG = np.random.default_rng(3)
STILL = RNG.integers(0, 255, (240, 320, 3), dtype=np.uint8)
MOVED = STILL.copy()
MOVED[60:200, 100:220] = 255 - MOVED[60:200, 100:220]


def admission(*, fps: float = 2, inflight: int = 2, gate: bool = True, heartbeat: float = 600,
              budget: BudgetConfig = BudgetConfig(), ready=lambda now: True) -> Admission:
    cfg = CameraConfig(name="cam", source="0", fps=fps, change=ChangeConfig(enabled=gate, heartbeat=heartbeat))
    return Admission(cfg, inflight=InFlight(inflight), budget=Budget(budget), api_ready=ready)


def look(a: Admission, frame: np.ndarray, now: float, settle: bool = True) -> str | None:
    """One grabbed frame through both doors, as the capture thread does it (luma and
    chroma thumbnails); the reason of the call, or None. ``settle``: the call's result
    settles the decision at once (a model that agrees with itself); False: no result
    is fed back (the test does it)."""
    slot = a.open(now)
    if slot is None:
        return None
    if not a.decide(slot, thumbnails(frame) if a.needs_thumbnail() else None, now):
        return None
    slot.finish(credits=None, reached=True)
    if settle:
        a.note_result(settled=True, now=now)
    return slot.reason.name.lower() if slot.reason is not None else None


def test_a_slot_is_released_exactly_once_whoever_releases_it():
    a = admission(inflight=1)
    slot = a.open(0.0)
    assert slot is not None and a.inflight.count == 1
    busy = a.open(0.6)  # the only place is taken: a look only, holding no place
    assert busy is not None and busy.skipped is Why.BUSY and a.inflight.count == 1
    assert busy.release() and a.inflight.count == 1
    assert a.decide(slot, thumbnail(STILL), 0.0)
    assert a.budget.view().calls == 1
    slot.finish(credits=0.0002, reached=True)
    assert slot.release() is False  # too late: already released by finish()
    slot.finish(credits=0.0002, reached=True)
    assert a.inflight.count == 0 and a.budget.view().credits == 0.0002  # settled once
    again = a.open(1.2)
    assert again is not None and again.release() and not again.release()
    assert a.inflight.count == 0


def test_a_decided_frame_that_is_never_sent_gives_its_call_back():
    a = admission(gate=False)
    slot = a.open(0.0)
    assert a.decide(slot, None, 0.0) and a.budget.view().calls == 1
    slot.release()  # e.g. the frame would not encode, or the agent is stopping
    assert a.budget.view().calls == 0 and a.inflight.count == 0


def test_the_gate_checks_after_a_change_until_settled_then_stops():
    a = admission()
    assert look(a, STILL, settle=False, now=0.0) == "change"  # nothing classified yet: a check begins
    assert look(a, STILL, settle=False, now=0.5) == "confirm"
    a.note_result(settled=False, now=0.6)  # a result that names the old state does not end it
    assert look(a, STILL, settle=False, now=1.0) == "confirm"
    a.note_result(settled=True, now=1.1)  # the votes since the change agree
    assert look(a, STILL, settle=False, now=1.5) is None
    assert look(a, MOVED, settle=False, now=2.0) == "change"
    a.note_result(settled=True, now=2.1)
    assert look(a, MOVED, settle=False, now=2.5) is None
    assert a.unchanged == 2 and dict(a.calls) == {"change": 2, "confirm": 2}


def test_checking_that_never_settles_gives_up_then_rechecks_on_a_backoff():
    a = admission(heartbeat=600)
    look(a, STILL, settle=False, now=0.0)  # a change: a model that never agrees with itself from here
    reasons = [look(a, STILL, settle=False, now=0.5 * i) for i in range(1, MAX_CONFIRM + 6)]
    assert reasons.count("confirm") == MAX_CONFIRM and reasons[MAX_CONFIRM:] == [None] * 5
    assert a.note_result(settled=False, now=10.0) is Outcome.GAVE_UP  # stale now (the stage marks it)
    rechecks = []
    t = 10.0
    while t < 700 and len(rechecks) < 8:
        t += 0.5
        if look(a, STILL, settle=False, now=t) == "confirm":
            rechecks.append(t)
            assert a.note_result(settled=False, now=t) is Outcome.CHECKING
    gaps = [b - a_ for a_, b in zip([10.0] + rechecks, rechecks)]
    assert 2.5 <= gaps[0] <= 5.5 and gaps[-1] > 4 * gaps[0]  # seconds at first, then longer
    assert all(g <= 600.5 for g in gaps)  # never longer than the heartbeat
    assert a.note_result(settled=True, now=t + 1) is Outcome.SETTLED
    assert look(a, STILL, settle=False, now=t + 2) is None
    assert look(a, STILL, settle=False, now=t + 1 + 30) == "confirm"  # verified once, stale_after / 2 later
    assert a.note_result(settled=True, now=t + 32) is Outcome.IDLE
    assert look(a, STILL, settle=False, now=t + 1e4) == "heartbeat"  # then no re-checks: the heartbeat as ever


def test_a_disagreeing_result_on_demand_starts_checking_as_a_change_does():
    a = admission()
    look(a, STILL, settle=False, now=0.0)
    for i in range(1, MAX_CONFIRM + 3):
        look(a, STILL, settle=False, now=0.5 * i)
    a.note_result(settled=True, now=20.0)
    assert look(a, STILL, settle=False, now=20.5) is None  # the confirming calls are spent and the decision settled
    a.classify_now()
    assert look(a, STILL, settle=False, now=20.6) == "on_demand"
    a.note_result(settled=False, now=20.7, disagreed=True)  # it named another class
    assert look(a, STILL, settle=False, now=21.6) == "confirm"  # checked as a change the gate saw


def test_the_rate_is_a_ceiling_on_looks_and_calls():
    a = admission(fps=2)
    frames = [MOVED if i % 2 else STILL for i in range(30)]  # changes at every frame, 30 fps for 1 s
    reasons = [look(a, f, i / 30) for i, f in enumerate(frames)]
    assert sum(r is not None for r in reasons) == 2  # 0 s and 0.5 s


def test_heartbeat_and_forgetting_the_reference():
    a = admission(heartbeat=10)
    assert look(a, STILL, 0.0) == "change"
    assert [look(a, STILL, t) for t in (5.0, 9.5)] == [None, None]
    assert look(a, STILL, 10.0) == "heartbeat"
    a.forget_reference()  # a call failed: its result never came
    assert look(a, STILL, 10.5) == "change"


def test_classify_now_goes_past_rate_and_gate_but_not_past_the_budget():
    a = admission(budget=BudgetConfig(calls_per_day=2))
    assert look(a, STILL, 0.0) == "change"
    a.classify_now()
    assert look(a, STILL, 0.01) == "on_demand"  # the rate was not due, the picture is still
    a.classify_now()
    assert look(a, STILL, 0.02) is None and a.budget.exhausted()  # spent: refused


def test_paused_backing_off_or_closed_takes_nothing():
    ready = {"ok": False}
    a = admission(ready=lambda now: ready["ok"])
    assert look(a, MOVED, 0.0) is None  # the API is backing off
    ready["ok"] = True
    a.pause()
    assert a.paused
    assert look(a, MOVED, 1.0) is None
    a.resume()
    assert not a.paused
    assert look(a, MOVED, 2.0) == "change"
    a.close()
    assert look(a, STILL, 3.0) is None and a.inflight.count == 0


def test_resuming_looks_afresh_and_a_failed_check_is_kept_from_its_first_failure():
    a = admission()
    assert look(a, STILL, 0.0) == "change"
    a.note_result(settled=True, now=0.1)
    assert look(a, STILL, 1.0) is None  # nothing changed
    a.pause()
    a.resume()  # the picture may have changed while paused
    assert look(a, STILL, 2.0) == "change"
    a.mark_checked()
    a.mark_unchecked(5.0, Why.API)
    a.mark_unchecked(6.0, Why.BUDGET)
    assert a.unchecked_since == 5.0 and a.unchecked_why is Why.BUDGET  # from the first miss, the newest why
    a.mark_checked()
    assert a.unchecked_since is None and a.unchecked_why is None


def test_a_check_the_gate_wants_but_cannot_make_is_marked_missed_with_why():
    """The API backing off, the budget spent, every place taken, paused: the gate still
    looks, and a change it would call for marks the state unchecked (stale later)."""
    ready = {"ok": True}
    a = admission(ready=lambda now: ready["ok"], inflight=1)
    assert look(a, STILL, 0.0) == "change"
    ready["ok"] = False
    assert look(a, STILL, 1.0) is None and a.unchecked_since is None  # still: nothing was needed
    assert look(a, MOVED, 1.5) is None and a.unchecked_why is Why.API  # a change the API could not take
    a.mark_checked()
    ready["ok"] = True
    held = a.open(2.0)  # the only place, held by a request in flight
    assert look(a, MOVED, 2.5) is None and a.unchecked_why is Why.BUSY  # the change is still news
    held.release()
    a.mark_checked()
    assert look(a, MOVED, 3.0) == "change" and a.unchecked_since is None  # and now it is classified
    spent = admission(budget=BudgetConfig(calls_per_day=1))
    assert look(spent, STILL, 0.0) == "change" and spent.budget.exhausted()
    assert look(spent, STILL, 0.5) is None and spent.unchecked_since is None
    assert look(spent, MOVED, 1.0) is None and spent.unchecked_why is Why.BUDGET
    a.mark_checked()
    a.pause()
    assert a.unchecked_why is Why.PAUSED


def textured(seed: int = 5) -> np.ndarray:
    """A grey, textured 320x240 scene (smooth enough for a thumbnail, as a camera's is)."""
    rng = np.random.default_rng(seed)
    grey = cv2.resize(rng.integers(40, 220, (12, 16), dtype=np.uint8), (320, 240), interpolation=cv2.INTER_CUBIC)
    return cv2.cvtColor(grey, cv2.COLOR_GRAY2BGR).astype(np.float32)


def shot(radiance: np.ndarray, seed: int, gain: float = 1.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.clip(radiance * gain + rng.normal(0, 4, radiance.shape), 0, 255).astype(np.uint8)


def test_a_colour_change_at_equal_brightness_is_a_change():
    base = textured()
    red, green = base.copy(), base.copy()
    red[60:180, 80:240] = (0, 0, 255)  # RGB (255, 0, 0): luma 76
    green[60:180, 80:240] = (0, 128, 0)  # RGB (0, 128, 0): luma 75
    a = admission()
    assert look(a, shot(red, 1), 0.0) == "change"
    assert look(a, shot(red, 2), 0.5) is None
    assert look(a, shot(green, 3), 1.0) == "change"
    assert look(a, shot(green, 4), 1.5) is None


def test_lights_on_is_one_call_a_slow_fade_none():
    base = textured()
    a = admission()
    reasons = {t: look(a, shot(base, i, gain=0.3 if t < 5.2 else 1.0), t)
               for i, t in enumerate(x * 0.5 for x in range(21))}
    assert [t for t, r in reasons.items() if r] == [0.0, 6.0]  # the first look; the look after 5.5, the first lit
    b = admission()
    fade = [look(b, shot(base, i, gain=1.0 - 0.6 * min(1.0, t / 20)), t)
            for i, t in enumerate(x * 0.5 for x in range(51))]
    assert fade[0] == "change" and fade[1:] == [None] * 50
    assert b.calls["change"] == 1 and b.unchanged == 50


class Door:
    """The two questions admission asks of the fallback (endpoints.Endpoints answers them)."""

    def __init__(self, all_: bool = False, spent: bool = False):
        self.all, self.spent = all_, spent

    def takes_all(self) -> bool:
        return self.all

    def takes_spent(self) -> bool:
        return self.spent


def routed(a: Admission, frame: np.ndarray, now: float):
    """(reason, endpoint, reserved?) of a look's call, or None."""
    slot = a.open(now)
    if slot is None or not a.decide(slot, thumbnails(frame) if a.needs_thumbnail() else None, now):
        return None
    out = (slot.reason.name.lower(), str(slot.endpoint), slot.reservation is not None)
    slot.finish(credits=None, reached=True)
    return out


def test_while_calls_go_to_the_fallback_they_carry_no_reservation_and_a_probe_goes_to_the_primary():
    a = admission(budget=BudgetConfig(calls_per_day=10))
    door = a.fallback = Door(all_=True)
    assert routed(a, STILL, 0.0) == ("change", "fallback", False)
    assert a.budget.view().calls == 0  # the budget counts the primary only
    a.probe_now()
    assert routed(a, STILL, 0.01) == ("probe", "primary", True)  # past the rate and the gate, budgeted
    assert a.budget.view().calls == 1 and a.calls["probe"] == 1
    assert routed(a, STILL, 0.6) is None  # the probe was one frame: the still picture needs nothing
    door.all = False
    assert routed(a, MOVED, 1.2) == ("change", "primary", True)


def test_a_spent_budget_sends_calls_to_the_fallback_only_when_budget_is_listed():
    a = admission(budget=BudgetConfig(calls_per_day=1))
    a.fallback = Door(spent=False)
    assert routed(a, STILL, 0.0)[1:] == ("primary", True)
    assert a.budget.exhausted()
    assert routed(a, MOVED, 0.6) is None  # when: [unreachable]: a spent budget still stops the calls
    b = admission(budget=BudgetConfig(calls_per_day=1))
    b.fallback = Door(spent=True)
    assert routed(b, STILL, 0.0)[1:] == ("primary", True)
    assert routed(b, MOVED, 0.6) == ("change", "fallback", False)  # the next change: the fallback's
    b.classify_now()
    assert routed(b, MOVED, 0.61) == ("on_demand", "fallback", False)
    assert b.budget.view().calls == 1  # never passed
    b.probe_now()
    assert routed(b, MOVED, 0.62) is None  # a probe is the primary's, and the budget is spent


def test_a_paced_budget_sends_the_change_it_defers_to_the_fallback_when_budget_is_listed():
    a = admission(budget=BudgetConfig(calls_per_day=1000), gate=False)
    a.fallback = Door(spent=True)
    where = [routed(a, STILL, i * 0.5) for i in range(40)]  # 20 s of looks: more than the bucket holds
    assert {w[1] for w in where if w} == {"primary", "fallback"}
    assert all(w is not None for w in where)  # no look deferred: what the bucket refused went to the fallback
    assert a.deferred == 0
