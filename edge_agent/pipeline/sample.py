"""The sample stage: each result is offered to the training-data sampler
(``dataset/collect.py``, which sits above the pipeline and is handed in as a
:class:`Sampling`), after the decide stage has said what the decision made of it.
Only when ``dataset.enabled``; the work it starts runs off the loop."""

from __future__ import annotations

from typing import Protocol

from .result import Result


class Sampling(Protocol):
    """What the stage hands each result to (the agent's ``Collection``)."""

    def see(self, result: Result) -> None: ...


class SampleStage:
    name = "sample for training"

    def __init__(self, sampling: Sampling):
        self.sampling = sampling

    def handle(self, r: Result) -> None:
        self.sampling.see(r)
