"""The decide stage: a result becomes the camera's newest result, is fed to its
debouncer, and tells the change gate whether the decision still wants
confirming results. It says in the log when the state changes; what is published
is the publish stage's (no I/O here)."""

from __future__ import annotations

import logging
import time

from ..camera import Latest
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
        r.state = cam.debouncer.feed(reply.result.top, reply.result.confidence, frame.captured_at,
                                     picture_changed=r.picture_changed)
        r.decided = decided = cam.debouncer.state
        r.in_state = None if decided is None else next(
            (p.confidence for p in reply.result.predictions if p.cls == decided.cls), 0.0)
        r.was_stale = cam.stale_since is not None
        cam.admission.mark_checked()
        cam.stale_since = None
        # The change gate keeps calling until a started change is confirmed.
        cam.admission.note_result(agrees=not cam.debouncer.pending, decided=r.state is not None)
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
