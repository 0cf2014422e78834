"""Pure latency math, kept free of I/O so it can be tested without a server."""

from __future__ import annotations

import random


def load_factor(running: int, max_num_seqs: int, time_factor_under_load: float) -> float:
    """Linear from 1x with one running sequence to time_factor_under_load at max_num_seqs (llm-d's model)."""
    if max_num_seqs <= 1 or running <= 1:
        return 1.0
    running = min(running, max_num_seqs)
    return 1.0 + (time_factor_under_load - 1.0) * (running - 1) / (max_num_seqs - 1)


def sample_ms(rng: random.Random, mean_ms: float, stddev_ms: float) -> float:
    """Normal sample truncated to mean +- 2 stddev and to >= 0, in seconds."""
    if stddev_ms <= 0:
        return mean_ms / 1000.0
    value = rng.gauss(mean_ms, stddev_ms)
    value = min(max(value, mean_ms - 2 * stddev_ms), mean_ms + 2 * stddev_ms)
    return max(value, 0.0) / 1000.0


def first_token_delay(ttft_s: float, prefill_s_per_token: float, uncached_tokens: int, factor: float) -> float:
    """Seconds from admission to the first token; cached prompt tokens cost no prefill."""
    return factor * (ttft_s + prefill_s_per_token * uncached_tokens)


def next_deadline(previous_deadline: float, itl_s: float, factor: float) -> float:
    """Deadlines chain from the previous deadline, not from when a token was sent, so delays never accumulate."""
    return previous_deadline + itl_s * factor
