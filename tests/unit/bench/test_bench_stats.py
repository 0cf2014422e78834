"""Percentiles, throughput, goodput and the per-instance view of a run."""

import math

import pytest
from gpufleet_bench import stats
from gpufleet_bench.client import Record


def _record(index, *, start=0.0, ttft=0.1, e2e=1.0, tokens=10, status=200, completed=True, instance="a",
            prompt=100, cached=None, itl=None):
    return Record(f"r{index}", start, status=status, completed=completed, ttft=ttft, e2e=e2e, output_tokens=tokens,
                  prompt_tokens=prompt, cached_tokens=cached, instance=instance,
                  itl=itl if itl is not None else [(e2e - ttft) / max(tokens - 1, 1)] * (tokens - 1))


@pytest.mark.parametrize(("q", "expected"), [(0, 1.0), (50, 2.5), (90, 3.7), (99, 3.97), (100, 4.0)])
def test_percentile_interpolates_linearly_between_ranks_like_numpy(q, expected):
    assert stats.percentile([4.0, 1.0, 3.0, 2.0], q) == pytest.approx(expected)


def test_percentile_of_nothing_is_nan_and_out_of_range_is_refused():
    assert math.isnan(stats.percentile([], 50))
    assert stats.percentile([7.0], 99) == 7.0
    with pytest.raises(ValueError):
        stats.percentile([1.0], 101)


def test_distribution_is_in_milliseconds():
    result = stats.distribution([0.010, 0.020, 0.030])
    assert (result["count"], result["mean"], result["p50"], result["max"]) == (3, pytest.approx(20.0),
                                                                               pytest.approx(20.0), 30.0)


def test_tpot_excludes_the_first_token():
    record = _record(0, ttft=0.2, e2e=1.1, tokens=10)
    assert record.tpot == pytest.approx(0.1)
    assert _record(1, tokens=1, itl=[]).tpot is None


def test_summary_counts_throughput_over_the_wall_time_of_the_run():
    records = [_record(0, start=0.0, e2e=1.0), _record(1, start=1.0, e2e=1.0),
               _record(2, start=0.5, status=503, completed=False, tokens=0, itl=[]),
               _record(3, start=0.5, completed=False, e2e=0.5)]  # cut off mid-stream
    summary = stats.summarize(records)
    assert (summary["requests"], summary["completed"], summary["failed"]) == (4, 2, 2)
    assert summary["duration_s"] == pytest.approx(2.0)
    assert summary["request_throughput"] == pytest.approx(1.0)
    assert summary["output_throughput"] == pytest.approx(10.0)
    assert summary["errors"] == {"HTTP 503": 1, "HTTP 200": 1}
    assert summary["goodput"] is None


def test_goodput_counts_only_requests_within_every_slo():
    records = [_record(0, ttft=0.1, e2e=1.0), _record(1, ttft=0.6, e2e=1.0), _record(2, ttft=0.1, e2e=3.0)]
    slos = stats.parse_slos(["ttft:500", "tpot:200"])
    summary = stats.summarize(records, slos)
    assert summary["slo_attainment"] == pytest.approx(1 / 3)  # 1 is late to start, 2 too slow per token
    assert summary["goodput"] == pytest.approx(1 / 3.0)


def test_the_itl_slo_judges_the_worst_gap():
    record = _record(0, itl=[0.01, 0.2, 0.01], tokens=4)
    assert stats.meets_slos(record, {"itl": 250}) and not stats.meets_slos(record, {"itl": 100})


@pytest.mark.parametrize("bad", ["ttft", "latency:100", "ttft:fast", "e2e:-5"])
def test_bad_slos_are_refused(bad):
    with pytest.raises(ValueError):
        stats.parse_slos([bad])


def test_prefix_cache_hit_rate_is_token_weighted_and_instances_are_counted():
    records = [_record(0, prompt=100, cached=80, instance="a"), _record(1, prompt=300, cached=0, instance="b"),
               _record(2, prompt=100, cached=20, instance="a")]
    summary = stats.summarize(records)
    assert summary["prefix_cache_hit_rate"] == pytest.approx(100 / 500)
    assert summary["per_instance"] == {"a": 2, "b": 1}
    assert summary["instance_imbalance"] == 2.0
    assert stats.summarize([_record(0)])["prefix_cache_hit_rate"] is None
