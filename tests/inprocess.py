"""The agent in-process, with fakes at its edges: a scene played frame by frame
on a fake clock, a fake classifier, and an output that records what it is given.

Frames go in lock-step: the next frame is grabbed only once every frame taken
before it was classified and applied, so a 100-s scene runs in a few seconds,
with no sleeps in the test and the same outcome every run. What is exercised is
the real thing: the capture thread, admission (rate, change gate, budget,
in-flight), the agent's ordering, deciding and publishing.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import cv2
import numpy as np

from edge_agent.agent import Agent
from edge_agent.classify import Reply
from edge_agent.config import Config, parse_config
from edge_agent.messages import ConfidenceMessage, ResultMessage, StateMessage, StatusMessage
from edge_agent.outputs.dispatch import OutputHealth
from edge_agent.reply import Classification, Prediction
from edge_agent.sources import FrameSource
from tools.scenes import Scene, dominant


class FakeClock:
    """Monotonic seconds that move only when a frame is grabbed."""

    def __init__(self) -> None:
        self.now = time.monotonic()

    def __call__(self) -> float:
        return self.now


class SceneSource(FrameSource):
    """A :class:`~edge_agent.sources.FrameSource` playing a Scene, frame by frame."""

    is_file = False
    jpeg = False
    error: str | None = None

    def __init__(self, scene: Scene, clock: FakeClock, quiet: Callable[[], bool], done: threading.Event):
        self.scene, self.clock, self.quiet, self.done = scene, clock, quiet, done
        self.i = 0
        self.start = clock.now
        self.opened = False
        self.hook: Callable[[int], None] | None = None  # called with the frame index before it is grabbed

    def open(self) -> str | None:
        if self.opened:  # reopened after the end: nothing more to play
            self.done.set()
            return "scene over"
        self.opened = True
        return None

    def grab(self) -> bool:
        deadline = time.monotonic() + 10
        while not self.quiet():  # lock-step: what was taken is classified and applied first
            if time.monotonic() > deadline:
                raise AssertionError("the agent did not settle within 10 s")
            time.sleep(0.0005)
        if self.i >= self.scene.frames:
            self.done.set()
            time.sleep(0.05)
            self.error = "scene over"
            return False
        if self.hook is not None:
            self.hook(self.i)
        self.clock.now = self.start + self.i / self.scene.fps
        self.i += 1
        return True

    def retrieve(self) -> np.ndarray:
        return self.scene.frame(self.i - 1)

    def holds(self, image: np.ndarray) -> bool:
        return False  # a new array per frame

    def frame_rate(self) -> float | None:
        return None

    def position(self) -> float | None:
        return None

    def size(self) -> tuple[int, int]:
        return self.scene.width, self.scene.height

    def info(self) -> str:
        return "a generated scene"

    def close(self) -> None:
        pass

    def interrupt(self) -> None:
        pass

    def describe(self) -> str:
        return "scene"


class FakeClassifier:
    """Answers like the stand-in API (the dominant colour), confidence 0.9, and bills
    0.0002 credits a call; records what it was sent."""

    def __init__(self, credits: float | None = 0.0002):
        self.calls: list[str] = []
        self.credits = credits

    async def classify(self, jpeg: bytes, model: str | None = None) -> Reply:
        image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
        top, _ = dominant(image)
        self.calls.append(top)
        preds = (Prediction(top, 0.9),) + tuple(Prediction(c, 0.05) for c in ("red", "green", "blue") if c != top)
        return Reply({"top": top}, Classification(top, 0.9, preds), latency_ms=1.0, credits=self.credits)


@dataclass
class Published:
    topic: str
    payload: bytes
    retain: bool


@dataclass
class RecordingOutput:
    """An output that keeps everything the agent gives it, as (topic, payload, retain)
    on the topics the MQTT output would use, serialised as the MQTT output does."""

    name: str = "mqtt"
    connected: bool = True
    messages_dropped: int = 0
    disconnects: int = 0
    pending: int = 0
    prefix: str = "edge_agent/t"
    messages: list[Published] = field(default_factory=list)

    def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass

    def health(self) -> OutputHealth:
        return OutputHealth(self.name, self.connected, self.messages_dropped, self.disconnects, self.pending)

    def _add(self, camera: str, kind: str, payload: bytes, retain: bool) -> None:
        self.messages.append(Published(f"{self.prefix}/{camera}/{kind}", payload, retain))

    def result(self, camera: str, msg: ResultMessage) -> None:
        self._add(camera, "result", msg.payload(), False)

    def state(self, camera: str, msg: StateMessage) -> None:
        self._add(camera, "state", msg.payload(), True)

    def status(self, camera: str, msg: StatusMessage) -> None:
        self._add(camera, "status", msg.payload(), True)

    def snapshot(self, camera: str, jpeg: bytes) -> None:
        self._add(camera, "snapshot", jpeg, True)

    def confidence(self, camera: str, msg: ConfidenceMessage) -> None:
        self._add(camera, "confidence", msg.payload(), True)

    def event(self, event: Any) -> None:
        self._add(event.camera, "event", json.dumps(event.payload()).encode(), False)

    def states(self, camera: str = "cam") -> list[str]:
        return [json.loads(m.payload)["class"] for m in self.messages if m.topic.endswith(f"/{camera}/state")]

    def events(self, camera: str = "cam") -> list[dict[str, Any]]:
        return [json.loads(m.payload) for m in self.messages if m.topic.endswith(f"/{camera}/event")]

    def last_status(self, camera: str = "cam") -> dict[str, Any]:
        return [json.loads(m.payload) for m in self.messages if m.topic.endswith(f"/{camera}/status")][-1]


def control(agent: Agent, topic: str, payload: bytes) -> None:
    """A control message as the MQTT output routes it (topic parsing, then the agent)."""
    from edge_agent.outputs.control import parse_command
    from edge_agent.outputs.topics import Topics

    parsed = Topics("edge_agent/t").parse_control(topic)
    assert parsed is not None, topic
    agent.commands.command(parse_command(parsed[0], parsed[1], payload))


def config(tmp: Path, camera: dict[str, Any] | None = None, **top: Any) -> Config:
    cam = {"name": "cam", "source": "rtsp://fake/scene", "fps": 2, **(camera or {})}
    data = {"device_id": "t", "api": {"url": "http://127.0.0.1:9", "model": "colours/1", "max_in_flight": 2},
            "mqtt": {"topic_prefix": "edge_agent/t"}, "status": {"enabled": False},
            "homeassistant": {"discovery": False}, "log_summary_interval": 0,
            "decide": {"min_confidence": 0.5, "confirm": 2}, "state_dir": str(tmp / "state"),
            "cameras": [cam], **top}
    return parse_config(data, {})


@dataclass
class Run:
    agent: Agent
    out: RecordingOutput
    api: FakeClassifier
    source: SceneSource


async def play(cfg: Config, scene: Scene, api: FakeClassifier | None = None,
               hook: Callable[[Agent, int], None] | None = None) -> Run:
    """Play ``scene`` through an in-process agent to its end; return what happened."""
    api = api or FakeClassifier()
    out = RecordingOutput()
    clock = FakeClock()
    done = threading.Event()
    holder: dict[str, Agent] = {}
    sources: list[SceneSource] = []

    def quiet() -> bool:
        agent = holder["agent"]
        return agent.inflight.count == 0 and not agent.busy

    src = SceneSource(scene, clock, quiet, done)
    if hook is not None:
        src.hook = lambda i: hook(holder["agent"], i)
    sources.append(src)

    agent = Agent(cfg, classifier=lambda c: (api, None), outputs=lambda ctx: [out],
                  worker_seams=lambda cam_cfg: {"source": lambda: src, "clock": clock})
    holder["agent"] = agent
    task = asyncio.create_task(agent.run())
    deadline = time.monotonic() + 120
    while not done.is_set():
        assert time.monotonic() < deadline, "the scene did not finish playing"
        assert not task.done(), task.exception() if task.done() else ""
        await asyncio.sleep(0.01)
    while agent.busy:
        await asyncio.sleep(0.01)
    agent.request_stop()
    assert await asyncio.wait_for(task, 10) == 0
    return Run(agent, out, api, sources[0])


def on_loop(agent: Agent, fn: Callable[..., Any], *args: Any) -> Any:
    """From the capture thread (a source hook): run ``fn`` on the agent's loop and wait for it."""
    async def call() -> Any:
        return fn(*args)

    assert agent._loop is not None
    return asyncio.run_coroutine_threadsafe(call(), agent._loop).result(5)
