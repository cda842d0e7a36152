"""A simulated classifier's results, for the decision rule's test and bench.

The true class changes every ``segment`` seconds among three classes; on a share
``p`` of results the "model" answers a confident wrong class (0.55-0.95), otherwise
the right one (0.7-1.0). Seeded, so a test's count over many seeds is repeatable.
It is not a model: it is the mistakes the decision must survive.
"""

from __future__ import annotations

import random
from typing import Iterator

CLASSES = ("red", "green", "blue")


def noisy_results(p: float, seed: int, *, fps: float, segment: float,
                  count: int) -> Iterator[tuple[float, str, str, float]]:
    """``count`` results at ``fps``: (time, true class, class answered, confidence)."""
    rng = random.Random(seed)
    for i in range(count):
        t = i / fps
        truth = CLASSES[int(t // segment) % len(CLASSES)]
        if rng.random() < p:
            cls, conf = rng.choice([c for c in CLASSES if c != truth]), rng.uniform(0.55, 0.95)
        else:
            cls, conf = truth, rng.uniform(0.7, 1.0)
        yield t, truth, cls, conf
