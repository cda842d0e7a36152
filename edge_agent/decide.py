"""Turn a stream of classifications into a decided state (pure).

Real models are now and then confidently wrong on a single frame, and the
retained state is what automations act on. So a new class must win twice:

* ``confirm``: the newest ``confirm`` confident results agree on it (consecutive),
  as before; a result below ``min_confidence`` never changes the state and breaks
  such a run;
* ``votes`` of ``window``: at least ``votes`` of the last ``window`` results are it
  (a result below ``min_confidence`` is in the window but votes for nothing).

Staying needs nothing: that asymmetry is the hysteresis. With the change gate
on there is a faster path: when the gate saw the picture change, the picture
is evidence of its own, and the results since that change are all about the new
picture, so a class that has ``confirm`` of them and leads every other class (the
state's included) by ``CHANGE_LEAD`` is decided, once ``confirm`` looks after the
change found the picture as it stayed: a flicker of a look or two (a coat
passing) decides nothing, and a mistake is outvoted by the looks that follow it.
A state so decided is still checked until it wins the votes
(:attr:`Debouncer.settled`), and a fast mistake is undone as any other state is.
A class change on a picture the gate calls still (a model flip-flopping) needs
``votes`` of ``window`` (against every result since the change, it cannot lead).
With the defaults
(confirm 2, 4 of 5) a single mistake, or two mistakes of the same class close
together, never change the state. Measured by ``bench/bench_decide.py`` on six 5-s
segments at fps 3 with confident mistakes (0.55-0.95) on a random share of
results: see the README ("Deciding") for the figures and what they cost in lag.
``window: 1, votes: 1`` is the old rule (``confirm`` alone).

An event is a change. After a restart the state starts undecided and is decided
afresh from results; :meth:`Debouncer.remember` tells it the state decided before
(kept by the caller: the event store). A first state of that same class is
:attr:`Kind.RESUMED`: no event, and its ``since`` is the old one. Every other
decided state is :attr:`Kind.CHANGE`.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from enum import Enum

from .config import DecideConfig


CHANGE_LEAD = 2  # votes a class must lead by, since a change the gate saw, to be decided on them
MAX_CHANGED_VOTES = 100  # votes kept per class since a change (a still picture classified for hours)


class Kind(Enum):
    """What a decided state is to the one before it."""

    CHANGE = "change"  # another class than before (or the very first state): an event
    RESUMED = "resumed"  # the first state after a restart, the class decided before it: no event, old ``since``


@dataclass(frozen=True)
class State:
    cls: str
    confidence: float
    since: float  # epoch seconds of the capture of the first result that voted for it
    votes: int = 0  # how many of the window voted for it when it was decided
    window: int = 0  # the results looked at
    confidences: tuple[float, ...] = field(default=())  # of the votes, oldest first
    kind: Kind = Kind.CHANGE


class Debouncer:
    def __init__(self, cfg: DecideConfig):
        self.cfg = cfg
        self.state: State | None = None
        self._window: deque[tuple[str | None, float, float]] = deque(maxlen=max(1, cfg.window))
        self._run_cls: str | None = None
        self._run = 0
        self._run_start = 0.0
        self._since_change: int | None = None  # results since the gate last saw the picture change
        self._changed_votes: dict[str, list[tuple[float, float]]] = {}  # since the change: class -> (conf, at)
        self.settled = False  # the decided state holds the votes since the check began
        self._lead_open = False  # the votes since the change decide (from a change the gate saw until settled)
        self._before: tuple[str, float] | None = None  # (class, since) decided before a restart

    def remember(self, cls: str, since: float) -> None:
        """The state decided before a restart (the caller keeps it). It is not the state
        now: the state is still decided from results. A first state of this class is
        the same state resumed (:attr:`Kind.RESUMED`, ``since`` kept); another is a change."""
        if self.state is None and isinstance(cls, str) and cls and isinstance(since, (int, float)) \
                and math.isfinite(since):
            self._before = (cls, float(since))

    @property
    def pending(self) -> bool:
        """The newest result disagrees with the state: more results are needed to know
        whether it is a change or a mistake (the change gate keeps calling)."""
        if not self._window:
            return False
        cls = self._window[-1][0]
        return cls is not None and (self.state is None or cls != self.state.cls)

    def _settle(self) -> bool:
        """Is the decided state held on evidence as strong as the votes ask for? Of the
        results since the gate last saw the picture change (what the picture before it
        said is no evidence for this one), at most the newest ``window``, at least
        ``votes`` name it, or every one of them and ``votes - 1``. Until then the gate
        keeps checking: a state decided on a lead must still win the votes, and one
        decided on mistakes is undone."""
        if self.state is None or not self._window:
            return False
        recent = list(self._window)
        if self._since_change is not None:
            recent = recent[-(self._since_change + 1):]
        votes = sum(1 for c, _, _ in recent if c == self.state.cls)
        need = min(self.cfg.votes, self.cfg.window)
        # Every look since the change agreeing: one vote fewer will do (checking.py verifies
        # a settled check once more, later): a clean change costs three results, not four.
        return votes >= need or (votes == len(recent) and votes >= max(1, need - 1))

    def _leads_since_change(self, cls: str) -> bool:
        """The gate saw the picture change and the check is not settled yet, and since
        the change (the looks on the picture as it stayed: at least ``confirm`` after
        it, so a flicker of a look or two decides nothing) ``cls`` has ``confirm`` votes
        and leads every other class, the state's included, by ``CHANGE_LEAD``."""
        if self._since_change is None or self._since_change < self.cfg.confirm or not self._lead_open:
            return False  # no change seen, a flicker yet, or the check settled since: the votes decide
        mine = len(self._changed_votes.get(cls, ()))
        others = max((len(v) for c, v in self._changed_votes.items() if c != cls), default=0)
        return mine >= self.cfg.confirm and mine - others >= CHANGE_LEAD

    def feed(self, cls: str, confidence: float, captured_at: float, picture_changed: bool = False) -> State | None:
        """Apply one result; return the new state if it changed, else None. ``picture_changed``:
        the change gate saw this frame differ from the last classified one."""
        if picture_changed:
            self._since_change = 0
            self._changed_votes.clear()
            self.settled = False
            self._lead_open = True  # until the check settles: every vote since the change counts
        else:
            if self._since_change is not None:
                self._since_change += 1
        state = self._feed(cls, confidence, captured_at)
        self.settled = self._settle()
        self._lead_open = self._lead_open and not self.settled
        return state

    def _feed(self, cls: str, confidence: float, captured_at: float) -> State | None:
        confident = confidence >= self.cfg.min_confidence
        self._window.append((cls if confident else None, confidence, captured_at))
        if not confident:
            self._run_cls, self._run = None, 0
            return None
        if self._since_change is not None:
            votes = self._changed_votes.setdefault(cls, [])
            if len(votes) < MAX_CHANGED_VOTES:
                votes.append((confidence, captured_at))
        if cls == self._run_cls:
            self._run += 1
        else:
            self._run_cls, self._run, self._run_start = cls, 1, captured_at
        if self.state is not None and cls == self.state.cls:
            return None
        voters = [(conf, at) for c, conf, at in self._window if c == cls]
        if self._run >= self.cfg.confirm and len(voters) >= min(self.cfg.votes, self.cfg.window):
            since = min(voters[0][1], self._run_start)  # the votes of the window
        elif self._leads_since_change(cls):
            voters = self._changed_votes[cls]
            since = voters[0][1]
        else:
            return None
        kind = Kind.CHANGE
        if self.state is None and self._before is not None and self._before[0] == cls:
            since, kind = self._before[1], Kind.RESUMED
        self._before = None  # only the first state after a restart is compared with the one before it
        self.state = State(cls=cls, confidence=confidence, since=since, votes=len(voters),
                           window=len(self._window), confidences=tuple(round(c, 4) for c, _ in voters), kind=kind)
        return self.state
