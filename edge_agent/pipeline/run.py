"""The stages in order, each result through all of them. A stage that raises is
logged once (per stage) and the others still run: a bug in dataset sampling must
not keep a state from being published."""

from __future__ import annotations

import logging
from typing import Sequence

from ..episode import Episode
from .result import Result, Stage

log = logging.getLogger(__name__)


class Pipeline:
    def __init__(self, stages: Sequence[Stage]):
        self.stages = tuple(stages)
        self._trouble = {stage.name: Episode() for stage in self.stages}

    def run(self, result: Result) -> None:
        for stage in self.stages:
            try:
                stage.handle(result)
            except Exception:
                if self._trouble[stage.name].fail("error"):
                    log.exception("%s: the %s stage failed (logged once)", result.camera.name, stage.name)
