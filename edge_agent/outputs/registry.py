"""The outputs the agent sends to, built from the config: the one place a new
output (a webhook, a second broker, a file) is added, as a class that keeps the
``Output`` protocol (``dispatch.py``) and a factory in :data:`OUTPUTS` that reads
its own config section and returns None when that section is absent. MQTT is
always there: its control topics are how a running agent is steered."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Callable

from ..config import Config
from ..storage.reader import EventReader
from .dispatch import Output
from .mqtt import Controls, MqttOutput


@dataclass(frozen=True)
class OutputContext:
    """What an output may be built with."""

    cfg: Config
    loop: asyncio.AbstractEventLoop
    controls: Controls  # what control messages may do to the agent
    events: EventReader | None  # the durable event log; None without one


def _mqtt(ctx: OutputContext) -> Output:
    return MqttOutput(ctx.cfg, ctx.loop, ctx.controls, ctx.events)


# Each output's factory, in the order messages reach them; None: not configured.
OUTPUTS: tuple[Callable[[OutputContext], Output | None], ...] = (_mqtt,)


def build_outputs(ctx: OutputContext) -> list[Output]:
    return [out for make in OUTPUTS if (out := make(ctx)) is not None]
