from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest

from tests.helpers import Broker, Recorder, make_split_video, make_video
from tools.standin_api import StandinApi, ThreadedStandin


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    b = Broker(tmp_path).start()
    yield b
    b.stop()


@pytest.fixture
def recorder(broker: Broker) -> Iterator[Recorder]:
    r = Recorder(broker.port, "edge_agent/test")
    yield r
    r.close()


@pytest.fixture
def standin() -> Iterator[StandinApi]:
    with ThreadedStandin(StandinApi(api_key="test-key")) as api:
        yield api


@pytest.fixture(scope="session")
def videos(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("videos")
    return {
        "rgb": make_video(d / "rgb.mp4", [("red", 3), ("blue", 3), ("green", 3)]),
        "red_long": make_video(d / "red.mp4", [("red", 4)]),
        "red_blue_split": make_split_video(d / "split.mp4", "red", "blue"),
    }
