"""The one place the stages after a classification are listed, in the order
each result goes through them. A new stage is a class with ``name`` and
``handle(result)``, added here (as the training-data sampler was, #20)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Coroutine

from ..outputs.dispatch import Dispatcher
from ..storage.eventlog import EventLog
from .decide import DecideStage
from .publish import PublishStage
from .record import RecordEventStage
from .result import Stage
from .sample import SampleStage, Sampling


@dataclass(frozen=True)
class StageContext:
    """What stages may be built with."""

    model: str
    outputs: Dispatcher
    events: EventLog
    spawn: Callable[[Coroutine[Any, Any, None]], None]  # slow work, waited for at the stop
    sampling: Sampling | None = None  # training data (dataset.enabled)


def build_stages(ctx: StageContext) -> list[Stage]:
    stages: list[Stage] = [
        DecideStage(),
        PublishStage(ctx.outputs, ctx.model),
        RecordEventStage(ctx.events, ctx.outputs, ctx.spawn),
    ]
    if ctx.sampling is not None:
        stages.append(SampleStage(ctx.sampling))
    return stages
