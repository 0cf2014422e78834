"""The report tables of the benchmarks outside the suite: the round trip (both comparisons, per path), the rollout."""

import round_trip
from gpufleet_bench.outcome import Check


def _run(scale: float) -> dict:
    keepalive = {"arms": {arm: [{"req_s": value * scale}] for arm, value in
                          (("direct", 1000.0), ("lb", 900.0), ("naive", 500.0))},
                 "checks": [Check("requests/s, LB ÷ naive", [1.8], 2.0, True).as_dict(),
                            Check("requests/s, LB ÷ direct", [0.9], 0.8, True).as_dict()]}
    streaming = {"arms": {arm: [{"ttft_p99": value}] for arm, value in
                          (("direct", 70.0), ("lb", 80.0), ("naive", 95.0))},
                 "checks": [Check("output tokens/s, LB ÷ direct", [0.99], 0.97, True).as_dict(),
                            Check("ITL p99, LB - direct", [1.5], 5.0, False, " ms").as_dict(),
                            Check("TTFT p99, LB - direct", [10.0], 20.0, False, " ms").as_dict(),
                            Check("TTFT p99, naive-gzip - direct: misses the 20 ms bound", [2500.0], 20.0, True,
                                  " ms").as_dict(),
                            Check.shown("ITL p99, naive (buffering on, no gzip) - direct", [2.0], " ms").as_dict()]}
    return {"keepalive": keepalive, "streaming": streaming}


def test_the_table_has_a_row_per_path_with_each_check_and_whether_it_was_met():
    results = {"machine": {"cpus": 2, "loadavg_at_start": ["0.5", "0.4", "0.3"]}, "reps": 1, "quick": True,
               "concurrency": 2, "runs": {"loopback": _run(2.0), "2 ms one way": _run(1.0)}}
    lines = round_trip.markdown(results, "tests/bench/round_trip.py --quick").splitlines()
    assert "load average 0.5 0.4 0.3" in lines[0] and "(quick)" in lines[0]
    assert "| loopback | 2000 | 1800 | 1000 | **1.80** (1.80) | ≥ 2 | **no** | 0.90 |" in lines
    assert "| 2 ms one way | 1000 | 900 | 500 | **1.80** (1.80) | ≥ 2 | **no** | 0.90 |" in lines
    assert "| 2 ms one way | 0.990 | +1.5 | +10.0 | +2.0 | 70 / 80 / 95 |" in lines


def test_the_rollout_table_puts_both_arms_side_by_side_with_their_ratio():
    import rollout

    def arm(name, requests, failed, change_s, ready):
        return {"arm": name, "requests": requests, "failed": failed, "failed_during": failed, "ttft_p99_ratio": 1.5,
                "ttft_p99_during_ms": 102.0, "ttft_p99_steady_ms": 68.0, "change_s": change_s, "fewest_ready": ready,
                "instances": 8}

    lines = rollout.markdown([arm("rolling (site.yml)", 2100, 0, 77.0, 6),
                              arm("all at once (before)", 13462, 13042, 6.0, 0)], 3.0).splitlines()
    assert "a model load of about 3 s per instance" in lines[0]
    assert lines[4] == "| rolling (site.yml) | 2100 | 0 | 0 | 1.50x (102 / 68 ms) | 77 s | 6 of 8 |"
    assert lines[-1] == "Rolling ÷ all at once: wall time 12.8x, failed requests 0 against 13042."
