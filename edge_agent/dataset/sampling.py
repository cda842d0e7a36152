"""Which results become training frames, and why (pure: no I/O, no clock, rng injected).

A result is worth labelling for one or more :class:`Reason`:

* ``uncertain``: its top confidence is below ``below``, or its top two
  predictions are within ``margin`` of each other (a difference of exactly
  ``margin`` is within it). A result the decision never counted (below
  ``decide.min_confidence``) is never ``overruled``; with the defaults
  (min_confidence 0.5 < below 0.6) it is always ``uncertain``.
* ``change``: the result that decided a new state (:attr:`Kind.CHANGE`; a state
  resumed after a restart is no change).
* ``random``: a share ``random`` of all results (one draw of the injected rng
  per result, only when the share is above 0).
* ``on_demand``: asked for from outside (:func:`requested`), never sampled.
* ``overruled``: a confident result the decision did not follow: "a confident
  mistake the votes filtered out".

What can be known of ``overruled`` when a result arrives: only that it is a
*candidate*: it counted (confidence >= min_confidence), a state is decided, its
class is not that state's, and it did not itself decide a change. Whether the
decision followed it is known only later, so the :class:`Sampler` holds the
candidate (with the caller's item, e.g. the Result) until one of:

* a change to its class is decided while it is a voter of that decision (one of
  the debouncer's last ``window`` results, or in the deciding run of ``confirm``
  agreeing results, or any result since a new picture while the decision after it
  is not yet settled: the debouncer counts all of those, decide.py): it was *part
  of the change*, not overruled;
* no such decision is possible any more: it is not a vote since a new picture
  still being decided, and the earliest result that could decide its class (the
  current run of that class needs ``max(1, confirm - run)`` more results; the
  next one while votes since a new picture decide) would come when it has left
  the window and is not in that run: it is *overruled*. With the defaults (confirm 2, window 5) that is known 3 results
  after a lone mistake. With the change gate on, a still picture stops the calls
  once the mistake is outvoted, so the verdict may wait for the next call (a
  heartbeat);
* :meth:`Sampler.close` (the agent stops): a restart empties the debouncer's
  window, so no held candidate can be followed any more: all are overruled.

A result is given out once, with all its reasons, most valuable first (the
order of :class:`Reason`). A held candidate's other reasons (uncertain, random)
wait with it. Held candidates are at most ``max_held`` (beyond: the oldest is
given out with its other reasons only, and counted in :attr:`Sampler.dropped`).

The label: ``overruled`` is labelled with the class the decision kept (a guess,
the user reviews it); the others with the model's top class (a guess), and an
on-demand request with a person's class when it names one.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import TYPE_CHECKING, Generic, TypeVar

from ..collection_view import Reason  # the outside's word for it (metrics labels)
from ..decide import Kind
from ..reply import Prediction

if TYPE_CHECKING:
    from ..pipeline.result import Result

T = TypeVar("T")

EPS = 1e-9  # confidences are floats: 0.55 - 0.45 is 0.10000000000000003, which is "within 0.1"
MAX_HELD = 16


ORDER = {r: i for i, r in enumerate(Reason)}


@dataclass(frozen=True)
class SamplingRules:
    """The rules of one camera (the ``dataset.sampling`` config fields, next session)."""

    below: float = 0.6  # uncertain: top confidence below this ...
    margin: float = 0.1  # ... or the top two predictions within this
    overruled: bool = True  # sample the confident results the decision did not follow
    change: bool = True  # sample the result that decided a new state
    random: float = 0.0  # a share of all results, 0..1

    def __post_init__(self) -> None:
        for name in ("below", "margin", "random"):
            value = getattr(self, name)
            if not 0 <= value <= 1:
                raise ValueError(f"{name} must be within 0..1, not {value!r}")


@dataclass(frozen=True)
class Facts:
    """What the rules look at in one result (plain values, so they are testable alone)."""

    top: str
    confidence: float
    predictions: tuple[Prediction, ...]  # highest confidence first
    counted: bool  # confidence >= decide.min_confidence: the debouncer counted its vote
    decided: str | None  # the camera's decided class after this result (None: none yet)
    changed: bool = False  # this result decided a new state (Kind.CHANGE)
    new_picture: bool = False  # the first look at a new picture (the debouncer counts the votes since)
    settled: bool = False  # after it, the decision is settled (the votes since the change agree)


def facts_of(result: "Result") -> Facts:
    """The facts of a Result after the decide stage set ``state`` and ``decided``."""
    c = result.reply.result
    min_confidence = result.camera.debouncer.cfg.min_confidence
    return Facts(top=c.top, confidence=c.confidence, predictions=c.predictions,
                 counted=c.confidence >= min_confidence,
                 decided=None if result.decided is None else result.decided.cls,
                 changed=result.state is not None and result.state.kind is Kind.CHANGE,
                 new_picture=result.new_picture, settled=result.camera.debouncer.settled)


def uncertain(facts: Facts, rules: SamplingRules) -> bool:
    if facts.confidence < rules.below:
        return True
    p = facts.predictions
    return len(p) >= 2 and p[0].confidence - p[1].confidence <= rules.margin + EPS


def reasons(facts: Facts, rules: SamplingRules, rng: random.Random) -> tuple[Reason, ...]:
    """The reasons known as the result arrives (all but ``overruled``, which needs the
    results after it: :class:`Sampler`), most valuable first. Draws from ``rng`` once
    when ``rules.random`` is above 0, else never."""
    out = []
    if rules.change and facts.changed:
        out.append(Reason.CHANGE)
    if uncertain(facts, rules):
        out.append(Reason.UNCERTAIN)
    if rules.random > 0 and rng.random() < rules.random:
        out.append(Reason.RANDOM)
    return tuple(out)


def candidate(facts: Facts) -> bool:
    """An ``overruled`` candidate: counted, a state decided, not its class, and no change of its own."""
    return facts.counted and facts.decided is not None and facts.top != facts.decided and not facts.changed


@dataclass(frozen=True)
class Sample(Generic[T]):
    """One result to label: the caller's item, why, and with what."""

    item: T
    facts: Facts
    reasons: tuple[Reason, ...]  # most valuable first
    label: str | None  # the class to label it with
    guess: bool = True  # the label is the model's or the decision's guess (uploaded as a prediction)

    @property
    def reason(self) -> Reason:
        """The most valuable reason: the one its limits, tags and duplicates go by."""
        return self.reasons[0]


def requested(item: T, facts: Facts, label: str | None = None) -> Sample[T]:
    """An on-demand sample: labelled by a person with ``label``, else with the model's guess."""
    if label:
        return Sample(item, facts, (Reason.ON_DEMAND,), label, guess=False)
    return Sample(item, facts, (Reason.ON_DEMAND,), facts.top, guess=True)


@dataclass
class _Held(Generic[T]):
    index: int
    item: T
    facts: Facts
    reasons: tuple[Reason, ...]  # the ones known at arrival


class Sampler(Generic[T]):
    """One camera's sampling: :meth:`see` each result after the decide stage, in order.

    ``window`` and ``confirm`` are the camera's ``decide`` settings (the debouncer
    this follows). Deterministic for a given ``rng``; no I/O, no clock.
    """

    def __init__(self, rules: SamplingRules, *, window: int, confirm: int,
                 rng: random.Random | None = None, max_held: int = MAX_HELD):
        self.rules = rules
        self.window = max(1, window)
        self.confirm = max(1, confirm)
        self.rng = rng if rng is not None else random.Random()
        self.max_held = max(1, max_held)
        self.dropped = 0  # candidates given out before their verdict (the hold was full)
        self._n = 0  # results seen
        self._run_cls: str | None = None
        self._run = 0
        self._held: list[_Held[T]] = []
        self._change_at: int | None = None  # the latest new picture's result
        self._lead_open = False  # from a new picture until the decision settles: its votes all count

    @property
    def held(self) -> int:
        return len(self._held)

    def holding(self, item: T) -> bool:
        """``item`` waits for its verdict (a candidate held by the last :meth:`see`)."""
        return any(h.item is item for h in self._held)

    def see(self, facts: Facts, item: T) -> list[Sample[T]]:
        """The samples this result settles: earlier held candidates now judged, then
        this result unless it is held; oldest first."""
        self._n += 1
        n = self._n
        if facts.new_picture:
            self._change_at, self._lead_open = n, True
        if facts.counted:
            if facts.top == self._run_cls:
                self._run += 1
            else:
                self._run_cls, self._run = facts.top, 1
        else:
            self._run_cls, self._run = None, 0
        now = reasons(facts, self.rules, self.rng)
        out: list[tuple[int, Sample[T]]] = []
        keep: list[_Held[T]] = []
        lead_open = self._lead_open  # as the debouncer decided this result (settled after the one before)
        self._lead_open = lead_open and not facts.settled
        for h in self._held:
            if facts.changed and h.facts.top == facts.top and \
                    (self._part_of_decision(h.index) or (lead_open and self._since_change(h.index))):
                out.extend(self._plain(h))  # a voter of the change: followed after all
            elif self._still_open(h):
                keep.append(h)
            else:
                out.append(self._overruled(h))
        self._held = keep
        if self.rules.overruled and candidate(facts):
            h = _Held(n, item, facts, now)
            if self._still_open(h):
                self._held.append(h)
                if len(self._held) > self.max_held:
                    self.dropped += 1
                    out.extend(self._plain(self._held.pop(0)))
            else:
                out.append(self._overruled(h))
        elif now:
            out.append((n, Sample(item, facts, now, facts.top)))
        return [s for _, s in sorted(out, key=lambda pair: pair[0])]

    def close(self) -> list[Sample[T]]:
        """At a stop: the held candidates, all overruled (a restart empties the debouncer's
        window, so none can be followed any more)."""
        out = [self._overruled(h)[1] for h in self._held]
        self._held = []
        return out

    # -- the window arithmetic -----------------------------------------------------------

    def _in_run(self, index: int, cls: str) -> bool:
        """The current run of agreeing counted results is of ``cls`` and began at or before ``index``."""
        return self._run_cls == cls and self._run >= self._n - index + 1

    def _part_of_decision(self, index: int) -> bool:
        """A decision at this result counts the result ``index`` (of the decided class):
        a voter in the window, or in the deciding run."""
        return self._n - index < self.window or self._run >= self._n - index + 1

    def _since_change(self, index: int) -> bool:
        return self._change_at is not None and index >= self._change_at

    def _still_open(self, h: _Held[T]) -> bool:
        """A change to ``h``'s class that counts it can still be decided: in the window or
        the run, or a vote since a new picture while the decision is not settled (the
        debouncer counts every one of those, decide.py)."""
        cls = h.facts.top
        if self._in_run(h.index, cls) or (self._lead_open and self._since_change(h.index)):
            return True
        run = self._run if self._run_cls == cls else 0
        # The votes since a new picture may decide at the very next result (no run needed).
        earliest = self._n + (1 if self._lead_open else max(1, self.confirm - run))
        return earliest - h.index < self.window

    def _plain(self, h: _Held[T]) -> list[tuple[int, Sample[T]]]:
        return [(h.index, Sample(h.item, h.facts, h.reasons, h.facts.top))] if h.reasons else []

    def _overruled(self, h: _Held[T]) -> tuple[int, Sample[T]]:
        why = tuple(sorted({Reason.OVERRULED, *h.reasons}, key=ORDER.__getitem__))
        return h.index, Sample(h.item, h.facts, why, h.facts.decided, guess=True)
