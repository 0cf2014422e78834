"""The suite end to end in its quick form, and the parts of its report."""

import json
import subprocess
import sys

import pytest
from bench_support import REPO
from gpufleet_bench import suite
from gpufleet_bench.outcome import Check, interleaved


def test_arms_alternate_their_order_between_repetitions():
    assert interleaved(["a", "b", "c"], 3) == [(0, "a"), (0, "b"), (0, "c"), (1, "c"), (1, "b"), (1, "a"),
                                               (2, "a"), (2, "b"), (2, "c")]


def test_a_check_takes_the_median_of_the_repetitions():
    assert Check("ratio", [0.9, 2.5, 2.1], 2.0, True).met
    assert not Check("delta", [1.0, 9.0, 7.0], 5.0, False).met
    assert Check("nan ignored", [float("nan"), 1.0, 3.0], 2.0, True).value == 2.0


def test_a_figure_shown_as_measured_is_neither_met_nor_missed():
    shown = Check.shown("ITL p99, naive - direct", [0.1, -0.2, 0.3], " ms")
    assert shown.value == 0.1 and shown.met is None and shown.verdict == "shown"
    assert shown.as_dict()["target"] is None and shown.as_dict()["met"] is None
    assert [Check("c", [1.0], 2.0, True).verdict, Check("c", [3.0], 2.0, True).verdict] == ["no", "yes"]


def test_docs_section_is_replaced_between_the_markers(tmp_path):
    doc = tmp_path / "bench.md"
    doc.write_text(f"intro\n{suite.MARK_START}\nold\n{suite.MARK_END}\noutro\n")
    suite.update_docs(doc, "new table")
    assert doc.read_text() == f"intro\n{suite.MARK_START}\nnew table\n{suite.MARK_END}\noutro\n"
    (tmp_path / "plain.md").write_text("no markers")
    with pytest.raises(RuntimeError, match="no <!-- bench:results:start -->"):
        suite.update_docs(tmp_path / "plain.md", "x")


def _suite(tmp_path, only):
    base = 23000  # base+100 .. base+409, apart from make bench's 18000
    return subprocess.run([sys.executable, "-m", "gpufleet_bench", "suite", "--only", only, "--quick", "--reps", "1",
                           "--port-base", str(base), "--out", str(tmp_path)], cwd=REPO / "tests" / "bench",
                          capture_output=True, text=True, timeout=240, check=False)


def test_quick_failover_proves_no_request_ran_twice(tmp_path):
    result = _suite(tmp_path, "failover")
    assert result.returncode == 0, result.stderr[-3000:]
    failover = json.loads((tmp_path / "results.json").read_text())["comparisons"]["failover"]
    for arm in ("lb", "naive"):
        run = failover["arms"][arm][0]
        assert run["executed_twice"] == 0 and run["failed_elsewhere"] == 0 and run["cut_elsewhere"] == 0
        assert run["running_on_killed"] >= 1  # the kill did hit requests in flight
        assert run["failed_on_killed"] >= run["running_on_killed"]
        assert run["not_logged"] == 0
    assert (tmp_path / "img" / "bench-failover.png").read_bytes()[:4] == b"\x89PNG"
    assert "### 4. Failover" in (tmp_path / "results.md").read_text()


def test_the_summary_quotes_every_check_with_its_target_and_whether_it_was_met():
    from gpufleet_bench.outcome import Outcome

    machine = {"cpus": 2, "loadavg_at_start": ["1.0", "0.9", "0.8"]}
    outcome = Outcome("streaming", "1. Streaming overhead", "setup", {}, [], [
        Check("ITL p99, LB - direct", [0.3, 0.5, 0.1], 5.0, False, " ms"),
        Check("TTFT p99, naive-gzip - direct: misses the 20 ms bound", [10.0, 12.0, 11.0], 20.0, True, " ms"),
        Check.shown("ITL p99, naive (buffering on, no gzip) - direct", [1.0, 2.0, 3.0], " ms")])
    table = suite.summary_markdown([outcome], machine, "gpufleet-bench suite", 3).splitlines()
    assert table[-3:] == ["| 1. Streaming overhead | ITL p99, LB - direct | 0.3 ms | ≤ 5 ms | yes |",
                          "| 1. Streaming overhead | TTFT p99, naive-gzip - direct: misses the 20 ms bound | 11 ms | "
                          "≥ 20 ms | **no** |",
                          "| 1. Streaming overhead | ITL p99, naive (buffering on, no gzip) - direct | 2 ms | — | "
                          "shown |"]
    assert "load average 1.0 0.9 0.8" in table[0]
    details = suite.markdown([outcome], dict(machine, cpu="cpu", memory_gib=1, os="os", kernel="k", python="3",
                                             nginx="nginx"), "gpufleet-bench suite", 3)
    assert "| ITL p99, naive (buffering on, no gzip) - direct | 2 ms (1, 2, 3) | — | shown |" in details


def _fake_affinity_metrics(hit_rate: float, ttft_p90: float) -> dict:
    return {"hit_rate": hit_rate, "server_hit_rate": hit_rate, "ttft_p50": ttft_p90 / 2, "ttft_p90": ttft_p90,
            "ttft_p99": ttft_p90 * 2, "share_max_min": 1.0, "share_max": 0.34, "requests": 10, "failed": 0}


def test_affinity_runs_on_the_named_profile_and_sweeps_the_cache_size(tmp_path, monkeypatch):
    from gpufleet_bench import comparisons

    runs = []

    def fake_run(bench, arm, rep, settings, **_):
        runs.append((arm, dict(settings)))
        blocks = settings.get("kv_cache_blocks", 50_000)
        near = arm == "affinity"
        return _fake_affinity_metrics(0.9 if near or blocks > 1000 else 0.3, 30.0 if near else 200.0), [30.0]

    monkeypatch.setattr(comparisons, "_affinity_run", fake_run)
    bench = comparisons.Bench(tmp_path, 23000, reps=1, quick=True, seed=0, img=tmp_path / "img",
                              profile="gpt-oss-20b-h200")
    outcome = comparisons.affinity(bench)
    assert all(settings["profile"] == "gpt-oss-20b-h200" for _, settings in runs)
    swept = [settings["kv_cache_blocks"] for _, settings in runs if "kv_cache_blocks" in settings]
    assert sorted(set(swept)) == sorted(comparisons.AFFINITY_CACHE_SWEEP) and len(swept) == 2 * len(set(swept))
    table = outcome.notes[0].splitlines()
    assert table[4].startswith("| 350 | 0.90 | 0.30 | 30 | 200 | 0.15 |")
    assert (tmp_path / "img" / "bench-affinity-cache-sweep.png").read_bytes()[:4] == b"\x89PNG"
    assert [check.met for check in outcome.checks] == [False, True]  # 0.9 - 0.9 at the profile's size


def test_the_client_note_says_when_the_load_generator_may_have_set_the_pace():
    from gpufleet_bench.comparisons import _client_note
    from gpufleet_bench.outcome import Outcome

    calm = Outcome("keepalive", "2. Keepalive", "", {"lb": [{"client_core_share": 0.4}]}, [], [])
    busy = Outcome("keepalive", "2. Keepalive", "", {"lb": [{"client_core_share": 0.4}],
                                                       "naive": [{"client_core_share": 0.97}]}, [], [])
    _client_note(calm)
    _client_note(busy)
    assert "at most 0.40 of one core" in calm.notes[0] and "not the bottleneck" in calm.notes[0]
    assert "0.97" in busy.notes[0] and "may have set the pace" in busy.notes[0]
