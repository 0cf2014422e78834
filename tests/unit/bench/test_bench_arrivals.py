"""Arrival schedules: repeatable from a seed, with the mean and spread each process promises."""

import statistics

import pytest
from gpufleet_bench import arrivals


def test_the_same_seed_gives_the_same_schedule_and_another_seed_another():
    first = arrivals.send_times("poisson", 10, 50, seed=7)
    assert first == arrivals.send_times("poisson", 10, 50, seed=7)
    assert first != arrivals.send_times("poisson", 10, 50, seed=8)


def test_send_times_start_at_zero_and_accumulate_the_gaps():
    assert arrivals.send_times("fixed", 4, 4) == [0.0, 0.25, 0.5, 0.75]
    gaps = arrivals.intervals("poisson", 5, 6, seed=1)
    times = arrivals.send_times("poisson", 5, 6, seed=1)
    assert times[0] == 0.0 and times[3] == pytest.approx(sum(gaps[:3]))
    assert arrivals.send_times("poisson", 5, 0) == []


def test_poisson_gaps_have_mean_one_over_rate_and_unit_coefficient_of_variation():
    gaps = arrivals.intervals("poisson", 20, 20000, seed=3)
    assert statistics.mean(gaps) == pytest.approx(1 / 20, rel=0.03)
    assert statistics.stdev(gaps) / statistics.mean(gaps) == pytest.approx(1.0, rel=0.05)


def test_bursty_keeps_the_rate_but_bunches_requests_up():
    gaps = arrivals.intervals("bursty", 20, 20000, seed=3, burstiness=0.25)
    assert statistics.mean(gaps) == pytest.approx(1 / 20, rel=0.05)
    assert statistics.stdev(gaps) / statistics.mean(gaps) == pytest.approx(2.0, rel=0.1)  # 1/sqrt(shape)
    even = arrivals.intervals("bursty", 20, 20000, seed=3, burstiness=4)
    assert statistics.stdev(even) / statistics.mean(even) == pytest.approx(0.5, rel=0.1)


def test_concurrency_sends_everything_at_once_and_needs_no_rate():
    assert arrivals.send_times("concurrency", 0, 3) == [0.0, 0.0, 0.0]


@pytest.mark.parametrize(("kind", "rate", "burstiness", "message"), [
    ("gaussian", 1, 1, "unknown arrival process"),
    ("poisson", 0, 1, "positive finite rate"),
    ("fixed", float("inf"), 1, "positive finite rate"),
    ("bursty", 1, 0, "burstiness must be positive"),
])
def test_bad_settings_are_refused_with_a_reason(kind, rate, burstiness, message):
    with pytest.raises(ValueError, match=message):
        arrivals.intervals(kind, rate, 3, burstiness=burstiness)
