"""When each request is sent: fixed rate, Poisson, bursty (gamma) arrivals, or all at once for a fixed concurrency.

Every schedule comes from a seeded generator, so two arms of a comparison can face exactly the same arrivals.
"""

from __future__ import annotations

import itertools
import math
import random

KINDS = ("fixed", "poisson", "bursty", "concurrency")


def intervals(kind: str, rate: float, count: int, seed: int | None = None, burstiness: float = 1.0) -> list[float]:
    """Gaps between consecutive requests, in seconds.

    bursty draws gamma gaps with shape `burstiness` and the same mean 1/rate: below 1 the requests bunch up,
    1 is Poisson, above 1 they come more evenly (as vLLM's benchmark defines it).
    """
    if kind not in KINDS:
        raise ValueError(f"unknown arrival process {kind!r}; use one of {', '.join(KINDS)}")
    if count < 0:
        raise ValueError(f"count must not be negative, got {count}")
    if kind == "concurrency":
        return [0.0] * count
    if not (rate > 0 and math.isfinite(rate)):
        raise ValueError(f"{kind} arrivals need a positive finite rate, got {rate}")
    rng = random.Random(seed)
    if kind == "fixed":
        return [1.0 / rate] * count
    if kind == "poisson":
        return [rng.expovariate(rate) for _ in range(count)]
    if not burstiness > 0:
        raise ValueError(f"burstiness must be positive, got {burstiness}")
    return [rng.gammavariate(burstiness, 1.0 / (rate * burstiness)) for _ in range(count)]


def send_times(kind: str, rate: float, count: int, seed: int | None = None, burstiness: float = 1.0) -> list[float]:
    """Offsets from the start of the run; the first request goes at 0."""
    gaps = intervals(kind, rate, count, seed, burstiness)
    return [0.0, *itertools.accumulate(gaps[:-1])] if count else []
