"""Latency math without a server: load factor, sampling, deadline chaining."""

import random
import statistics

import pytest
from gpufleet_simulator import timing


@pytest.mark.parametrize(("running", "expected"), [(0, 1.0), (1, 1.0), (2, 1.5), (3, 2.0), (5, 3.0), (9, 3.0)])
def test_load_factor_is_linear_from_one_to_the_factor_at_max_num_seqs(running, expected):
    assert timing.load_factor(running, max_num_seqs=5, time_factor_under_load=3.0) == pytest.approx(expected)


def test_load_factor_is_one_with_a_single_slot():
    assert timing.load_factor(1, max_num_seqs=1, time_factor_under_load=4.0) == 1.0


def test_sample_without_stddev_is_exact_and_in_seconds():
    assert timing.sample_ms(random.Random(1), 20.0, 0.0) == 0.02


def test_sample_with_stddev_is_truncated_and_never_negative():
    rng = random.Random(1)
    samples = [timing.sample_ms(rng, 10.0, 5.0) for _ in range(2000)]
    assert min(samples) >= 0.0 and max(samples) <= 0.020
    assert statistics.mean(samples) == pytest.approx(0.010, abs=0.001)
    assert statistics.stdev(samples) > 0.002


def test_cached_prompt_tokens_cost_no_prefill():
    assert timing.first_token_delay(0.05, 0.001, 100, 1.0) == pytest.approx(0.15)
    assert timing.first_token_delay(0.05, 0.001, 0, 2.0) == pytest.approx(0.10)


def test_deadlines_chain_from_the_schedule_not_from_send_time():
    deadline = 100.0
    for _ in range(50):
        deadline = timing.next_deadline(deadline, 0.02, 1.0)
    assert deadline == pytest.approx(101.0)
