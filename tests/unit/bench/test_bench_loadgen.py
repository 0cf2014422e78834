"""The load generator against a real simulator on loopback: timing, bounds, errors and conversations."""

import asyncio
import itertools
import statistics
import time

import pytest
from bench_support import free_port
from gpufleet_bench import arrivals, fixtures, loadgen, stats, workload


def _run(target, requests, times, **kwargs):
    return asyncio.run(loadgen.run_requests(target, requests, times, **kwargs))


def test_streams_are_timed_token_by_token_and_ids_reach_the_server(simulator):
    requests = workload.requests(6, [(8, 1.0)], 5, seed=1)
    result = _run(loadgen.Target(simulator.url), requests, arrivals.send_times("concurrency", 0, 6),
                  max_concurrency=6, id_prefix="t")
    assert [record.ok for record in result.records] == [True] * 6
    for record in result.records:
        assert record.output_tokens == 8 and len(record.itl) == 7
        assert 0.030 <= record.ttft < 0.5
        assert 0.005 <= statistics.median(record.itl) < 0.05
        assert record.instance == simulator.instance_id and record.prompt_tokens > 0
    assert sorted(simulator.accepted_ids()) == sorted(f"t-{index}" for index in range(6))


def test_the_model_is_discovered_when_not_given(simulator):
    result = _run(loadgen.Target(simulator.url, model=None), workload.requests(1, [(2, 1.0)], 3, 0), [0.0])
    assert result.records[0].ok


def test_concurrency_caps_requests_in_flight(simulator):
    # 6 requests of ~30 ms + 9 * 10 ms, two at a time: three rounds, never one
    requests = workload.requests(6, [(10, 1.0)], 5, seed=1)
    started = time.perf_counter()
    result = _run(loadgen.Target(simulator.url), requests, [0.0] * 6, max_concurrency=2)
    wall = time.perf_counter() - started
    assert all(record.ok for record in result.records)
    assert wall >= 3 * 0.12
    starts = sorted(record.start for record in result.records)
    assert starts[2] >= 0.1 and starts[4] >= 0.2


def test_requests_go_on_schedule(simulator):
    times = arrivals.send_times("fixed", 10, 5)
    result = _run(loadgen.Target(simulator.url), workload.requests(5, [(2, 1.0)], 3, 0), times)
    for record, planned in zip(result.records, times, strict=True):
        assert planned <= record.start < planned + 0.08


def test_the_duration_bounds_the_run(simulator):
    times = arrivals.send_times("fixed", 20, 1000)
    started = time.perf_counter()
    result = _run(loadgen.Target(simulator.url), workload.requests(1000, [(2, 1.0)], 3, 0), times,
                  max_duration_s=0.5)
    assert 8 <= len(result.records) <= 11
    assert time.perf_counter() - started < 3


def test_errors_are_recorded_not_raised(simulator):
    wrong_model = loadgen.Target(simulator.url, model="no-such-model")
    record = _run(wrong_model, workload.requests(1, [(2, 1.0)], 3, 0), [0.0]).records[0]
    assert (record.status, record.ok, record.error) == (404, False, "HTTP 404")
    nobody = loadgen.Target(f"http://127.0.0.1:{free_port()}", model="m", timeout_s=5)
    record = _run(nobody, workload.requests(1, [(2, 1.0)], 3, 0), [0.0]).records[0]
    assert record.status is None and "Connect" in record.error and not record.ok


def test_whole_responses_when_not_streaming(simulator):
    target = loadgen.Target(simulator.url, stream=False, api="chat")
    record = _run(target, workload.requests(1, [(4, 1.0)], 3, 0), [0.0]).records[0]
    assert record.ok and record.output_tokens == 4 and record.itl == []
    assert record.ttft == pytest.approx(record.e2e, abs=0.01)


def test_conversation_turns_extend_each_other_and_hit_the_prefix_cache(tmp_path):
    settings = {"ttft_ms": 1, "itl_ms": 1, "prefill_ms_per_token": 0, "prefix_cache_blocks": 1000}
    with fixtures.simulators([free_port()], tmp_path, settings) as (server,):
        talks = workload.conversations(2, 3, context_words=200, turn_words=5, reply_words=4, seed=0)
        result = asyncio.run(loadgen.run_conversations(loadgen.Target(server.url), talks, users=2, max_tokens=4))
    assert len(result.records) == 6 and all(record.ok for record in result.records)
    by_session = {}
    for record in result.records:
        by_session.setdefault(record.session, []).append(record)
    for turns in by_session.values():
        assert [r.request_id.rsplit("-", 1)[1] for r in turns] == ["0", "1", "2"]
        assert turns[0].cached_tokens == 0
        assert all(later.prompt_tokens > earlier.prompt_tokens for earlier, later in itertools.pairwise(turns))
        assert all(turn.cached_tokens >= 0.8 * earlier.prompt_tokens for earlier, turn in itertools.pairwise(turns))
    assert stats.summarize(result.records)["prefix_cache_hit_rate"] > 0.4


def test_the_client_reports_its_own_cpu_per_request(simulator):
    # 200 short requests, 8 in flight: the loop spends real CPU on each, never more than the run's wall time
    requests = workload.requests(200, [(1, 1.0)], 3, seed=2)
    result = _run(loadgen.Target(simulator.url, stream=False), requests, arrivals.send_times("concurrency", 0, 200),
                  max_concurrency=8)
    assert all(record.ok for record in result.records)
    assert 0 < result.cpu_s <= result.wall_s * 1.05
    assert 20 < result.cpu_per_request_us < 20_000
    assert 0 < result.core_share <= 1.05
