"""Which grabbed frames become API calls: one admission object per camera.

Every API call costs money and CPU, so a frame passes three doors, all in the
camera's capture thread, and each refusal is counted where it is shown:

1. ``open(now)``, at every grabbed frame, cheap: not paused or stopping, and the
   camera's rate is due (``fps`` is a ceiling: the rate at which the gate
   *looks*). It hands out a :class:`Slot`: one of the shared in-flight places,
   when the API is not backing off and the day's budget is not spent; else a
   look only (``Slot.skipped``: why no call could go), so that a check the gate
   would want is marked as missed (``checking.Why``: the state goes stale after
   ``decide.stale_after``, with the reason) instead of going unseen.
2. ``decide(slot, thumb, now)``, after the frame is decoded and before it is
   encoded: the change gate (``change/``: the look's luma and chroma
   thumbnails, and ``now`` for the light's history) and the budget's pacing. Why
   call? Someone asked (``ON_DEMAND``); the picture changed since the last
   classified frame, in brightness or colour, or the whole picture's light
   stepped (lights on or off, IR mode, a covered lens), or there is no classified
   frame yet (``CHANGE``); the decision is being checked after a change
   (``CONFIRM``: until the votes since the change agree, at most
   ``checking.MAX_CONFIRM`` calls, then re-checks on a backoff, see checking.py);
   or nothing was classified for ``heartbeat`` seconds (``HEARTBEAT``). No
   reason, or the budget says not yet: the slot is released and the frame skipped.
   With a fallback endpoint (``api.fallback``, ``failover.py``) the slot also says
   where the call goes: while calls go to the fallback, or the day's budget is
   spent (or paced) and ``when`` lists ``budget``, it goes there without a
   reservation (the budget counts the primary only); a probe of the primary
   (``PROBE``, asked for by the loop) goes to the primary with one.
3. The slot travels with the frame; when the reply is in (or the request
   failed), ``slot.finish()`` settles the budget and frees the in-flight place.

A slot is released exactly once, whichever thread and path gets there first.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from typing import Callable, Protocol

import numpy as np

from .budget import Budget, Priority, Reservation
from .change import ChangeDetector, Thumb, Verdict
from .checking import Checking, Outcome, Why
from .config import CameraConfig
from .failover import Endpoint
from .rate import RateGate

log = logging.getLogger(__name__)


class FallbackDoor(Protocol):
    """What the capture thread may ask about the fallback (``endpoints.Endpoints``):
    plain reads, no lock."""

    def takes_all(self) -> bool:
        """Calls go to the fallback now (the primary is down, or its budget spent)."""
        ...

    def takes_spent(self) -> bool:
        """A call the spent budget refuses may go to the fallback (``when`` lists ``budget``)."""
        ...


class InFlight:
    """A counting limit shared by all cameras, tried without blocking."""

    def __init__(self, limit: int):
        self.limit = limit
        self._n = 0
        self._lock = threading.Lock()

    def try_acquire(self) -> bool:
        with self._lock:
            if self._n >= self.limit:
                return False
            self._n += 1
            return True

    def release(self) -> None:
        with self._lock:
            self._n = max(0, self._n - 1)

    @property
    def count(self) -> int:
        return self._n


class Slot:
    """One in-flight place and, once decided, one budget reservation."""

    __slots__ = ("_admission", "_lock", "_released", "reason", "reservation", "picture_changed", "endpoint",
                 "skipped")

    def __init__(self, admission: "Admission", skipped: Why | None = None):
        self._admission = admission
        self._lock = threading.Lock()
        self._released = False
        # A look only: no call can go now (why), but the gate looks so that a check it
        # would want is marked as missed. It holds no in-flight place.
        self.skipped = skipped
        self.reason: Priority | None = None
        self.reservation: Reservation | None = None
        self.picture_changed = False  # the change gate saw this frame differ from the last classified one
        self.endpoint = Endpoint.PRIMARY  # where the call goes (a fallback's calls carry no reservation)

    @property
    def released(self) -> bool:
        return self._released

    def release(self) -> bool:
        """Give the place back unused (or after use); True only the first time."""
        with self._lock:
            if self._released:
                return False
            self._released = True
        if self.reservation is not None:
            # Decided but never sent (the frame would not encode, or the agent is stopping).
            self._admission.budget.settle(self.reservation, None, reached=False)
            self.reservation = None
        if self.skipped is None:
            self._admission.inflight.release()
        return True

    def bill(self, *, credits: float | None, reached: bool) -> None:
        """After the primary's reply: settle the budget with what it cost, keeping the
        place (the frame may still be retried on the fallback). Settling is once."""
        with self._lock:
            reservation, self.reservation = self.reservation, None
        if reservation is not None:
            self._admission.budget.settle(reservation, credits, reached=reached)

    def finish(self, *, credits: float | None, reached: bool) -> None:
        """After the request: settle the budget with what it cost, free the place."""
        with self._lock:
            if self._released:
                return
            self._released = True
        self.bill(credits=credits, reached=reached)
        if self.skipped is None:
            self._admission.inflight.release()


class Admission:
    """Rate, change gate, budget, API guard and in-flight limit for one camera."""

    def __init__(self, cfg: CameraConfig, *, inflight: InFlight, budget: Budget,
                 api_ready: Callable[[float], bool], clock: Callable[[], float] = time.monotonic,
                 fallback: FallbackDoor | None = None):
        self.cfg = cfg
        self.fallback = fallback
        self.rate = RateGate(cfg.fps)
        self.inflight = inflight
        self.budget = budget
        self._api_ready = api_ready
        self._clock = clock
        self.detector = ChangeDetector(cfg.change.threshold, cfg.change.ignore, cfg.region)
        self.gate_on = cfg.change.enabled
        self.heartbeat = cfg.change.heartbeat
        # Set from the event loop, read by the capture thread.
        self._paused = False
        self._closed = False
        # After a change: until the votes agree, then verified once (checking.py).
        self.checking = Checking(cfg.change.heartbeat, verify_after=cfg.decide.stale_after / 2)
        self._now_wanted = threading.Event()  # classify on demand
        self._probe_wanted = threading.Event()  # the loop asks for a probe of the primary (failover.py)
        self._forget = False  # the reference's result never came: look afresh
        # Capture thread only.
        self._last_look = self._clock()  # the gate's clock at the newest look (re-checks are timed on it)
        self.last_call: float | None = None  # monotonic
        # Counters (written by the capture thread, read by anyone).
        self.unchanged = 0  # looked, and the picture had not changed: no call
        self.deferred = 0  # wanted a call, the budget said not now
        self.calls: Counter[str] = Counter()  # calls by reason
        self.last_change_at: float | None = None  # epoch s of the last frame the gate saw change
        # A call that was needed could not be made or failed (monotonic; None: all checks
        # succeeded since), and why (the newest reason). Set here when a look the gate
        # wanted a call for could not have one, through mark_unchecked() when a call fails.
        self.unchecked_since: float | None = None
        self.unchecked_why: Why | None = None

    # -- the event loop's side ---------------------------------------------------

    @property
    def paused(self) -> bool:
        return self._paused

    @property
    def closed(self) -> bool:
        return self._closed

    def pause(self) -> None:
        """``set/enabled`` off: no frame is taken until resumed, so the state is not
        checked (stale after ``stale_after``, as any check skipped)."""
        self._paused = True
        self.mark_unchecked(time.monotonic(), Why.PAUSED)

    def resume(self) -> None:
        """``set/enabled`` on: the picture may have changed while paused, so the next look
        counts as a change."""
        self._paused = False
        self.forget_reference()

    def close(self) -> None:
        """The agent stops: no new frame is taken (for good)."""
        self._closed = True

    def mark_unchecked(self, now: float, why: Why) -> None:
        """A check that was needed failed or was skipped at ``now`` (time.monotonic(), the
        watchdog's clock, whatever clock the gate runs on); kept from its first miss, with
        the newest reason."""
        if self.unchecked_since is None:
            self.unchecked_since = now
        self.unchecked_why = why

    def mark_checked(self) -> None:
        """A result came in: the state is checked."""
        self.unchecked_since = None
        self.unchecked_why = None

    def classify_now(self) -> None:
        """The next grabbed frame is classified, past the rate and the gate (not the budget)."""
        self._now_wanted.set()

    def probe_now(self) -> None:
        """The next grabbed frame goes to the primary, past the rate and the gate, to see
        whether it is back (counted against the budget)."""
        self._probe_wanted.set()

    def cancel_probe(self) -> None:
        """The probe asked for is no longer wanted."""
        self._probe_wanted.clear()

    def forget_reference(self) -> None:
        """A call failed, or classification resumed: the next look counts as a change."""
        self._forget = True

    def note_result(self, settled: bool, now: float | None = None, *, disagreed: bool = False) -> Outcome:
        """After each result: is the decision settled (the votes since the change agree)?
        ``disagreed``: a result not asked for by the gate's checking (on demand, a
        heartbeat) named another class than the state: it starts checking, as a change
        the gate saw does."""
        if disagreed:
            self.checking.start()
        return self.checking.result(settled, self._last_look if now is None else now)  # the gate's clock

    @property
    def unsettled(self) -> bool:
        """The gate is checking a change (confirming calls wanted)."""
        return self.checking.active

    def set_fps(self, fps: float) -> None:
        self.rate.set_fps(fps)

    @property
    def fps(self) -> float:
        return 1.0 / self.rate.interval

    # -- the capture thread's side -------------------------------------------------

    def open(self, now: float) -> Slot | None:
        """Door 1, at every grabbed frame: may this frame be looked at? When no call could
        go now (the API backing off, the budget spent, every place taken) a due look is
        still taken, as a look only: the gate says whether a check was missed."""
        if self.closed or self.paused:
            return None
        self._last_look = now
        probe = self._probe_wanted.is_set()  # the primary's: the loop asked when it may be tried
        wanted = self._now_wanted.is_set() or probe
        if not (wanted or self.rate.due(now)):
            return None
        skipped = None
        if not (probe or self._api_ready(now)):
            skipped = Why.API
        elif self.budget.exhausted() and not (self.fallback is not None and
                                              (self.fallback.takes_all() or self.fallback.takes_spent())):
            skipped = Why.BUDGET
        elif not self.inflight.try_acquire():
            skipped = Why.BUSY
        self.rate.take(now)
        if skipped is not None and not self.gate_on:
            self.mark_unchecked(time.monotonic(), skipped)  # no gate: every look is a check, and this one is missed
            return None
        return Slot(self, skipped)

    def needs_thumbnail(self) -> bool:
        return self.gate_on and not self._now_wanted.is_set() and not self._probe_wanted.is_set()

    def decide(self, slot: Slot, thumb: Thumb | np.ndarray | None, now: float, wall: float | None = None) -> bool:
        """Door 2, after decoding: call the API for this frame? If not, the slot is released.
        ``thumb``: the gate's thumbnails of the frame (``change.thumbnails``; a bare
        greyscale one is compared on brightness alone), None when not asked for."""
        if slot.skipped is not None:  # a look only: would the gate have called?
            if self._wanted(thumb, now):
                self.mark_unchecked(time.monotonic(), slot.skipped)
            slot.release()
            return False
        reason, changed = self._reason(thumb, now, wall)
        if reason is None:
            self.unchanged += 1
            slot.release()
            return False
        endpoint, reservation = self._where(reason)
        if endpoint is None:
            self.deferred += 1
            self.mark_unchecked(time.monotonic(), Why.BUDGET)
            if reason is Priority.ON_DEMAND:
                self._now_wanted.clear()  # refused (spent): not retried frame after frame
            elif reason is Priority.PROBE:
                self._probe_wanted.clear()  # the loop asks again later (probe_missed)
            slot.release()
            return False
        if reason is Priority.ON_DEMAND:
            self._now_wanted.clear()
        elif reason is Priority.PROBE:
            self._probe_wanted.clear()
        if reason is Priority.CONFIRM:
            self.checking.took(now)
        slot.reason, slot.reservation, slot.endpoint = reason, reservation, endpoint
        slot.picture_changed = changed
        if thumb is not None:
            self.detector.set_reference(thumb, now)
        self.last_call = now
        self.calls[reason.name.lower()] += 1
        return True

    def _where(self, reason: Priority) -> tuple[Endpoint | None, Reservation | None]:
        """Where this call goes, with its budget reservation (None: nowhere, not now).
        A probe is the primary's; while calls go to the fallback, they go there
        unbudgeted; else the budget decides, and what it refuses (spent, or paced so
        that what is left lasts the day) goes to the fallback when ``when`` lists
        ``budget``: a change is never left waiting while a free endpoint is there."""
        fallback = self.fallback
        if reason is not Priority.PROBE and fallback is not None and fallback.takes_all():
            return Endpoint.FALLBACK, None
        reservation = self.budget.reserve(reason)
        if reservation is not None:
            return Endpoint.PRIMARY, reservation
        if reason is not Priority.PROBE and fallback is not None and fallback.takes_spent():
            return Endpoint.FALLBACK, None  # spent, or paced (what is left must last the day)
        return None, None

    def _heartbeat_due(self, now: float) -> bool:
        return self.heartbeat > 0 and (self.last_call is None or now - self.last_call >= self.heartbeat)

    def _wanted(self, thumb: Thumb | np.ndarray | None, now: float) -> bool:
        """A look only (no call could go): would the gate have called? The reference is
        left as it is, so a change stays a change until it is classified."""
        if self._now_wanted.is_set() or thumb is None or self.checking.wants(now):
            return True
        if self._forget:
            return True
        if self.detector.look(thumb, now).changed:
            return True
        return self._heartbeat_due(now)

    def _reason(self, thumb: Thumb | np.ndarray | None, now: float,
                wall: float | None) -> tuple[Priority | None, bool]:
        """Why call, and whether the gate saw the picture change (evidence the decision uses)."""
        if self._now_wanted.is_set():
            return Priority.ON_DEMAND, False
        if self._probe_wanted.is_set():
            return Priority.PROBE, False
        if not self.gate_on or thumb is None:
            return Priority.CHANGE, False  # no gate to ask (off, or no thumbnail): every look is a call
        if self._forget:
            self._forget = False
            self.detector.reset()
        verdict = self.detector.look(thumb, now)
        if verdict is Verdict.STEP:
            log.debug("%s: the whole picture's light stepped (%s)", self.cfg.name, self.detector.light())
        if verdict.changed:
            self.checking.start()
            self.last_change_at = wall if wall is not None else time.time()
            return Priority.CHANGE, True
        if self.checking.wants(now):
            return Priority.CONFIRM, False
        if self._heartbeat_due(now):
            return Priority.HEARTBEAT, False
        return None, False
