"""Behaviour over HTTP that depends on time: token pacing, queueing, disconnects, prefix cache, start-up."""

import asyncio
import itertools
import statistics
import time

import httpx
import pytest
from sim_support import metric_value, run_server

MODEL = {"model_name": "simulated-llm", "engine": "0"}


def test_stream_chunks_follow_ttft_then_itl(tmp_path):
    with run_server(tmp_path, ttft_ms=300, itl_ms=50, prefill_ms_per_token=0) as server, server.client() as client:
        request = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 10, "stream": True}
        start = time.monotonic()
        arrivals = []
        with client.stream("POST", "/v1/chat/completions", json=request) as response:
            for line in response.iter_lines():
                if line.startswith("data: "):
                    arrivals.append((time.monotonic() - start, line))
    role_at, first_token_at, last_token_at = arrivals[0][0], arrivals[1][0], arrivals[10][0]
    assert '"role":"assistant"' in arrivals[0][1] and arrivals[-1][1] == "data: [DONE]"
    assert 0.3 <= role_at and 0.3 <= first_token_at < 1.3  # the role travels with the first token, as in vLLM
    assert last_token_at >= 0.3 + 9 * 0.05
    gaps = [later[0] - earlier[0] for earlier, later in itertools.pairwise(arrivals[1:11])]
    assert 0.035 <= statistics.median(gaps) <= 0.15


def test_requests_beyond_max_num_seqs_wait_in_fifo_order(tmp_path):
    """Four requests of ~0.55 s on two slots: two run at once, two wait, and the waiting is visible and timed."""
    settings = {"max_num_seqs": 2, "ttft_ms": 100, "itl_ms": 50, "prefill_ms_per_token": 0}

    async def scenario(base_url):
        async with httpx.AsyncClient(base_url=base_url, timeout=30) as client:
            async def timed_request():
                start = time.monotonic()
                response = await client.post("/v1/completions", json={"prompt": "q", "max_tokens": 10})
                return time.monotonic() - start, response.status_code

            requests = [asyncio.ensure_future(timed_request()) for _ in range(4)]
            running = waiting = 0
            deadline = time.monotonic() + 10
            while not all(request.done() for request in requests) and time.monotonic() < deadline:
                text = (await client.get("/metrics")).text
                running = max(running, metric_value(text, "vllm:num_requests_running", **MODEL))
                waiting = max(waiting, metric_value(text, "vllm:num_requests_waiting", **MODEL))
                await asyncio.sleep(0.02)
            return await asyncio.gather(*requests), running, waiting

    with run_server(tmp_path, **settings) as server:
        results, running, waiting = asyncio.run(scenario(server.base_url))
        metrics = server.metrics()
    durations = sorted(duration for duration, _ in results)
    assert [status for _, status in results] == [200] * 4
    assert (running, waiting) == (2, 2)
    assert durations[0] >= 0.55 and durations[1] < 1.0
    assert durations[2] >= 1.1  # started only when a slot came free
    assert metric_value(metrics, "vllm:request_queue_time_seconds_count", **MODEL) == 4
    assert metric_value(metrics, "vllm:request_queue_time_seconds_sum", **MODEL) >= 0.9


def test_bounded_queue_rejects_with_503(tmp_path):
    with run_server(tmp_path, max_num_seqs=1, max_waiting=1, ttft_ms=800, prefill_ms_per_token=0) as server:
        async def scenario():
            async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as client:
                body = {"prompt": "q", "max_tokens": 1}
                held = [asyncio.ensure_future(client.post("/v1/completions", json=body)) for _ in range(2)]
                await asyncio.sleep(0.4)
                rejected = [await client.post("/v1/completions", json={**body, "stream": stream})
                            for stream in (True, False)]
                return rejected, await asyncio.gather(*held)

        rejected, held = asyncio.run(scenario())
        metrics = server.metrics()
    assert metric_value(metrics, "vllm:request_success_total", finished_reason="abort", **MODEL) == 0
    assert [(r.status_code, r.json()["error"]["type"]) for r in rejected] == [(503, "ServiceUnavailableError")] * 2
    assert [response.status_code for response in held] == [200, 200]


def _wait_for_metric(server, name, expected, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = metric_value(server.metrics(), name, **MODEL)
        if value == expected:
            return value
        time.sleep(0.05)
    return value


def test_client_disconnect_frees_the_slot_at_once(tmp_path):
    settings = {"max_num_seqs": 1, "ttft_ms": 50, "itl_ms": 50, "prefill_ms_per_token": 0}
    long_stream = {"prompt": "tell me everything", "max_tokens": 200, "stream": True}  # ~10 s if left running
    with run_server(tmp_path, **settings) as server, server.client() as client:
        with client.stream("POST", "/v1/completions", json=long_stream) as response:
            chunks = response.iter_raw()  # keep a reference: a collected iterator closes the connection
            next(chunks)
            during = server.metrics()
            # a second request queues behind the stream, then gives up
            with pytest.raises(httpx.ReadTimeout):
                httpx.post(server.base_url + "/v1/completions", json={"prompt": "q", "max_tokens": 1}, timeout=0.5)
            waiting_after_timeout = _wait_for_metric(server, "vllm:num_requests_waiting", 0)
        start = time.monotonic()
        after = client.post("/v1/completions", json={"prompt": "q", "max_tokens": 1})
        elapsed = time.monotonic() - start
        metrics = server.metrics()
    assert metric_value(during, "vllm:num_requests_running", **MODEL) == 1
    assert metric_value(during, "vllm:kv_cache_usage_perc", **MODEL) > 0
    assert waiting_after_timeout == 0
    assert after.status_code == 200 and elapsed < 3.0
    assert metric_value(metrics, "vllm:request_success_total", finished_reason="abort", **MODEL) == 2
    assert metric_value(metrics, "vllm:num_requests_running", **MODEL) == 0


def test_prefix_cache_hits_a_repeated_prefix_and_cuts_ttft(tmp_path):
    settings = {"prefix_cache_blocks": 1000, "ttft_ms": 20, "prefill_ms_per_token": 2, "itl_ms": 1}
    prompt = " ".join(f"w{i}" for i in range(200))
    shared_half = " ".join(f"w{i}" for i in range(100)) + " other words entirely"
    with run_server(tmp_path, **settings) as server, server.client() as client:
        def timed(text):
            start = time.monotonic()
            response = client.post("/v1/completions", json={"prompt": text, "max_tokens": 1})
            return time.monotonic() - start, response.json()["usage"]

        cold, cold_usage = timed(prompt)
        warm, warm_usage = timed(prompt)
        _, partial_usage = timed(shared_half)
        metrics = server.metrics()
    assert cold_usage["prompt_tokens_details"] == {"cached_tokens": 0}
    assert warm_usage["prompt_tokens_details"] == {"cached_tokens": 192}  # 12 full blocks; the last token recomputes
    assert partial_usage["prompt_tokens_details"] == {"cached_tokens": 96}
    assert cold >= 0.02 + 200 * 0.002
    assert warm < cold - 0.25
    assert metric_value(metrics, "vllm:prefix_cache_queries_total", **MODEL) == 200 + 200 + 103
    assert metric_value(metrics, "vllm:prefix_cache_hits_total", **MODEL) == 192 + 96


def test_health_is_503_until_the_startup_delay_has_passed(tmp_path):
    with run_server(tmp_path, startup_delay_s=2.0) as server, server.client() as client:
        listening_at = time.monotonic()
        loading = client.get("/health")
        completion_while_loading = client.post("/v1/completions", json={"prompt": "q", "max_tokens": 1})
        deadline = listening_at + 15
        while client.get("/health").status_code != 200 and time.monotonic() < deadline:
            time.sleep(0.05)
        ready_after = time.monotonic() - listening_at
        ready = client.get("/health")
        completion = client.post("/v1/completions", json={"prompt": "q", "max_tokens": 1})
    assert loading.status_code == 503 and completion_while_loading.status_code == 503
    assert ready.status_code == 200 and completion.status_code == 200
    assert 1.0 <= ready_after < 10.0


def test_failure_injection_at_rate_one_returns_the_configured_failure(tmp_path):
    with run_server(tmp_path, failure_rate=1.0, failure_types="rate_limit") as server, server.client() as client:
        responses = [client.post("/v1/completions", json={"prompt": "q", "max_tokens": 1}) for _ in range(5)]
        health = client.get("/health")
        metrics = server.metrics()
    assert {response.status_code for response in responses} == {429}
    assert {response.json()["error"]["type"] for response in responses} == {"RateLimitError"}
    assert health.status_code == 200
    assert metric_value(metrics, "http_requests_total", handler="/v1/completions", method="POST", status="4xx") == 5


def test_failure_injection_mixes_status_codes_at_the_configured_rate(tmp_path):
    settings = {"failure_rate": 0.5, "failure_types": "500,503", "seed": 5, "ttft_ms": 0, "itl_ms": 0}
    with run_server(tmp_path, **settings) as server, server.client() as client:
        statuses = [client.post("/v1/completions", json={"prompt": "q", "max_tokens": 1}).status_code
                    for _ in range(200)]
        metrics = server.metrics()
    failures = [status for status in statuses if status != 200]
    assert set(statuses) == {200, 500, 503}
    assert 60 <= len(failures) <= 140
    assert metric_value(metrics, "http_requests_total", handler="/v1/completions", method="POST",
                        status="5xx") == len(failures)
