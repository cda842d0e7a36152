"""The agent's start and stop: whatever was started is stopped, in the reverse
order, even when the start fails half way (teardown tied to creation)."""

from __future__ import annotations

import asyncio
import logging
import socket
from pathlib import Path

import pytest

from edge_agent.agent import Agent
from tests.helpers import free_port
from tests.inprocess import FakeClassifier, config


class Session:
    """Stands in for the classifier's aiohttp session: records its close."""

    def __init__(self) -> None:
        self.closed = False

    async def close(self) -> None:
        self.closed = True


def port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


async def test_a_start_that_fails_half_way_stops_what_it_had_started(tmp_path: Path,
                                                                   caplog: pytest.LogCaptureFixture):
    port = free_port()
    cfg = config(tmp_path, status={"enabled": True, "listen": f"127.0.0.1:{port}"})
    session = Session()

    def broken_outputs(ctx: object) -> list:
        assert not port_free(port)  # the status server listens by now
        raise RuntimeError("an output that cannot be built")

    agent = Agent(cfg, classifier=lambda c: (FakeClassifier(), session), outputs=broken_outputs)
    with caplog.at_level(logging.INFO), pytest.raises(RuntimeError, match="cannot be built"):
        await asyncio.wait_for(agent.run(), 10)
    assert session.closed  # the HTTP session
    assert port_free(port)  # the status server
    assert agent.events.store is not None and agent.events.store._conn is None  # the event log, closed
    assert "stopped" in [r.getMessage() for r in caplog.records]
    assert all(cam.worker is None for cam in agent.cameras.values())  # no capture thread was started


async def test_a_stop_closes_everything_in_the_reverse_order_of_its_start(tmp_path: Path):
    order: list[str] = []

    class Session:
        async def close(self) -> None:
            order.append("session")

    class Out:
        name = "mqtt"

        def start(self) -> None:
            order.append("outputs started")

        async def stop(self) -> None:
            order.append("outputs")

        def status(self, camera: str, msg: object) -> None:
            order.append("status")

        def health(self) -> object:
            from edge_agent.outputs.dispatch import OutputHealth
            return OutputHealth(self.name, True)

    cfg = config(tmp_path, camera={"source": str(tmp_path / "missing.mp4")})
    agent = Agent(cfg, classifier=lambda c: (FakeClassifier(), Session()), outputs=lambda ctx: [Out()])
    closing = agent.events.close

    async def close_events() -> None:
        order.append("events")
        await closing()

    agent.events.close = close_events  # type: ignore[method-assign]
    task = asyncio.create_task(agent.run())
    await asyncio.sleep(0.5)
    agent.request_stop()
    assert await asyncio.wait_for(task, 10) == 0
    # the last status of each camera goes out before the outputs stop; then the event
    # log, then the HTTP session
    last = order.index("outputs")
    assert order[0] == "outputs started" and order[last - 1] == "status"
    assert order[last:] == ["outputs", "events", "session"]
