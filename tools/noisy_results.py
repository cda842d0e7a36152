"""A simulated classifier's results, for the decision rule's test and bench.

The true class changes every ``segment`` seconds among three classes; on a share
``p`` of results the "model" answers a confident wrong class (0.55-0.95), otherwise
the right one (0.7-1.0). Seeded, so a test's count over many seeds is repeatable.
It is not a model: it is the mistakes the decision must survive. ``noisy_answer``
is one such answer, for a fake classifier that looks at the picture for the truth
(``bench/bench_decide.py``'s gate-on cells).
"""

from __future__ import annotations

import random
from typing import Iterator

CLASSES = ("red", "green", "blue")


def noisy_answer(rng: random.Random, p: float, truth: str,
                 classes: tuple[str, ...] = CLASSES) -> tuple[str, float]:
    """One answer for a picture of ``truth``: on a share ``p`` a confident wrong class
    (0.55-0.95, one of the others at random), else ``truth`` (0.7-1.0)."""
    if rng.random() < p:
        return rng.choice([c for c in classes if c != truth]), rng.uniform(0.55, 0.95)
    return truth, rng.uniform(0.7, 1.0)


def noisy_results(p: float, seed: int, *, fps: float, segment: float,
                  count: int) -> Iterator[tuple[float, str, str, float]]:
    """``count`` results at ``fps``: (time, true class, class answered, confidence)."""
    rng = random.Random(seed)
    for i in range(count):
        t = i / fps
        truth = CLASSES[int(t // segment) % len(CLASSES)]
        cls, conf = noisy_answer(rng, p, truth)
        yield t, truth, cls, conf
