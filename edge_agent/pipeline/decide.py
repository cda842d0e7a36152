"""The decide stage: a result becomes the camera's newest result, is fed to its
debouncer, and tells the change gate whether the decision is settled (checking.py:
the gate keeps calling until the votes since the change agree; a result on demand
or a heartbeat's that disagrees starts checking as a change does). When checking
gives up unsettled, the state is marked stale at once (``unsettled``). It says in
the log when the state changes; what is published is the publish stage's (no I/O
here)."""

from __future__ import annotations

import logging
import time

from ..budget import Priority
from ..camera import Latest
from ..checking import Outcome, Why
from ..decide import Kind
from .result import Result

log = logging.getLogger(__name__)


class DecideStage:
    name = "decide"

    def handle(self, r: Result) -> None:
        cam, frame, reply = r.camera, r.frame, r.reply
        cam.figures.requests_ok += 1
        cam.results.latest = Latest(frame.seq, frame.preview, reply.result, frame.captured_at, reply.latency_ms)
        cam.results.recent.append((frame.captured_at, reply.result.top, reply.result.confidence))
        before = cam.debouncer.state
        # Not the checking's own (on demand, a heartbeat, a re-check after it gave up), and
        # another class: a change to check, as one the gate saw.
        checking = cam.admission.checking
        unasked = r.reason in (Priority.ON_DEMAND, Priority.HEARTBEAT) or \
            (r.reason is Priority.CONFIRM and (checking.gave_up or checking.verifying))
        disagreed = unasked and before is not None and reply.result.top != before.cls \
            and reply.result.confidence >= cam.cfg.decide.min_confidence
        r.new_picture = r.picture_changed or disagreed
        r.state = cam.debouncer.feed(reply.result.top, reply.result.confidence, frame.captured_at,
                                     picture_changed=r.new_picture)
        r.decided = decided = cam.debouncer.state
        r.in_state = None if decided is None else next(
            (p.confidence for p in reply.result.predictions if p.cls == decided.cls), 0.0)
        r.was_stale = cam.stale_since is not None
        cam.admission.mark_checked()
        # The change gate keeps calling until the decision is settled on the votes.
        outcome = cam.admission.note_result(cam.debouncer.settled, disagreed=disagreed)
        if outcome is Outcome.GAVE_UP and decided is not None:
            cam.stale_since, cam.stale_reason = time.time(), Why.UNSETTLED
            log.warning("%s: the results since the change do not agree on %s: marked stale, re-checked on "
                        "a backoff", cam.name, decided.cls)
        elif not checking.gave_up:
            cam.stale_since, cam.stale_reason = None, None
        r.stale_changed = r.was_stale != (cam.stale_since is not None)
        state = r.state
        if state is None:
            if r.was_stale and decided is not None:
                log.info("%s: the state is checked again (no longer stale)", cam.name)
        elif state.kind is Kind.RESUMED:
            log.info("%s: state -> %s as before the restart (since %s; confidence %.2f, %d of %d results): "
                     "no event", cam.name, state.cls,
                     time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(state.since)), state.confidence,
                     state.votes, state.window)
        else:
            log.info("%s: state -> %s (confidence %.2f, %d of %d results)", cam.name, state.cls,
                     state.confidence, state.votes, state.window)
