"""The result pipeline and the output dispatcher: order, typed messages, and one
failing part never silencing the others (pure: no sockets, no threads)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest

from edge_agent.admission import Admission, InFlight
from edge_agent.budget import Budget
from edge_agent.camera import CameraRuntime
from edge_agent.capture import Frame
from edge_agent.classify import Reply
from edge_agent.decide import State
from edge_agent.messages import ConfidenceMessage, StateMessage
from edge_agent.outputs.dispatch import Dispatcher, OutputHealth
from edge_agent.pipeline import Pipeline, Result
from edge_agent.pipeline.decide import DecideStage
from edge_agent.pipeline.publish import PublishStage
from edge_agent.reply import Classification, Prediction
from tests.inprocess import RecordingOutput, config


class Broken:
    name = "broken"

    def __getattr__(self, method: str) -> Any:  # every message raises
        def fail(*args: Any) -> None:
            raise RuntimeError("a bug in this output")
        return fail

    def health(self) -> OutputHealth:
        raise RuntimeError("a bug in this output's figures")


def test_a_failing_output_is_logged_once_and_the_others_still_get_every_message(caplog: pytest.LogCaptureFixture):
    good = RecordingOutput()
    out = Dispatcher([Broken(), good])  # type: ignore[list-item]
    state = State("red", 0.9, 1.0)
    with caplog.at_level(logging.ERROR):
        for _ in range(3):
            out.state("cam", StateMessage(state))
            out.confidence("cam", ConfidenceMessage("red", 0.9, 1.0))
    assert [m.topic.rsplit("/", 1)[-1] for m in good.messages] == ["state", "confidence"] * 3
    failures = [r for r in caplog.records if "output broken failed" in r.getMessage()]
    assert len(failures) == 2  # once per kind of message, not once per message
    good.messages_dropped = 3
    with caplog.at_level(logging.ERROR):
        assert out.messages_dropped() == 3 and out.messages_dropped() == 3  # each output's own figures, summed
        # the broken one's figures fail: it reads as disconnected, logged once
        assert out.health_of("broken") == OutputHealth("broken", connected=False)
    assert sum("output broken failed in health" in r.getMessage() for r in caplog.records) == 1
    assert out.health_of("mqtt") == good.health() and out.health_of("nope") is None


@dataclass
class Recorder:
    name: str
    seen: list[str] = field(default_factory=list)
    fail: bool = False

    def handle(self, r: Result) -> None:
        self.seen.append(r.reply.result.top)
        if self.fail:
            raise ValueError("a bug in this stage")


def camera(tmp_path: Any) -> CameraRuntime:
    cfg = config(tmp_path)
    cam_cfg = cfg.cameras[0]
    budget = Budget(cfg.api.budget, None)
    return CameraRuntime.create(cam_cfg, Admission(cam_cfg, inflight=InFlight(2), budget=budget,
                                                   api_ready=lambda now: True))


def result(cam: CameraRuntime, top: str, at: float) -> Result:
    preds = (Prediction(top, 0.9), Prediction("other", 0.1))
    frame = Frame(cam.name, 1, at, 0.0, b"jpeg", 64, 48, np.zeros((48, 64, 3), np.uint8))
    return Result(cam, frame, Reply({"top": top}, Classification(top, 0.9, preds), latency_ms=5.0), started=0.0)


def test_stages_run_in_order_and_a_failing_stage_keeps_the_rest_running(tmp_path: Any,
                                                                         caplog: pytest.LogCaptureFixture):
    first, broken, last = Recorder("first"), Recorder("broken", fail=True), Recorder("last")
    cam = camera(tmp_path)
    pipe = Pipeline([first, broken, last])
    with caplog.at_level(logging.ERROR):
        for top in ("a", "b", "c"):
            pipe.run(result(cam, top, 1.0))
    assert first.seen == broken.seen == last.seen == ["a", "b", "c"]
    assert sum("the broken stage failed" in r.getMessage() for r in caplog.records) == 1


def test_decide_then_publish_sends_typed_messages_the_state_only_when_decided(tmp_path: Any):
    cam = camera(tmp_path)  # confirm 2: the second agreeing result decides
    out = RecordingOutput()
    pipe = Pipeline([DecideStage(), PublishStage(Dispatcher([out]), "colours/1")])
    results = []
    while not results or results[-1].state is None:
        assert len(results) < 6, "red was never decided"
        results.append(result(cam, "red", 10.0 + len(results)))
        pipe.run(results[-1])
        if results[-1].state is None:
            assert results[-1].decided is None and out.states() == []
    decided = results[-1]
    assert decided.state is not None and decided.state.cls == "red" and decided.in_state == 0.9
    kinds = [m.topic.rsplit("/", 1)[-1] for m in out.messages]
    assert kinds == ["result"] * len(results) + ["state", "snapshot", "confidence"]
    assert out.states() == ["red"] and cam.results.snapshot is not None
    pipe.run(result(cam, "red", 20.0))  # no change: a result and the confidence, no state
    assert [m.topic.rsplit("/", 1)[-1] for m in out.messages][len(kinds):] == ["result", "confidence"]
