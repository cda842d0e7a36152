"""The sample stage: each result is offered to the camera's training-data sampler
(``dataset/collect.py``), after the decide stage has said what the decision made
of it. Only when ``dataset.enabled``; the work it starts runs off the loop."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .result import Result

if TYPE_CHECKING:
    from ..dataset.collect import Collection


class SampleStage:
    name = "sample for training"

    def __init__(self, collection: "Collection"):
        self.collection = collection

    def handle(self, r: Result) -> None:
        self.collection.see(r)
