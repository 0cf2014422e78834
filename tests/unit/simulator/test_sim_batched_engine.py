"""The simulator on a GPU profile, through HTTP: the batch sets the pace, a full KV cache holds requests back,
a repeated prefix is served from the cache, and a client that leaves frees its blocks at once."""

import concurrent.futures
import itertools
import json
import time

import pytest
from gpufleet_simulator.config import ConfigError, SimConfig
from gpufleet_simulator.profiles import PROFILES
from sim_support import metric_value, metrics_once_idle, run_server, sse_events

MODEL = {"model_name": "simulated-llm", "engine": "0"}
PROFILE = "gpt-oss-20b-h100-pcie"


def words(tag: str, count: int) -> str:
    return " ".join(f"{tag}{index}" for index in range(count))


def stream(client, prompt: str, max_tokens: int) -> tuple[list[float], dict]:
    """Arrival times of each token's event, and the usage the server reports."""
    started, times, usage = time.perf_counter(), [], {}
    body = {"model": "simulated-llm", "prompt": prompt, "max_tokens": max_tokens, "stream": True,
            "stream_options": {"include_usage": True}}
    with client.stream("POST", "/v1/completions", json=body) as response:
        assert response.status_code == 200
        for line in response.iter_lines():
            if line.startswith("data: {"):
                event = json.loads(line[len("data: "):])
                if event["choices"]:
                    times.append(time.perf_counter() - started)
                if event.get("usage"):
                    usage = event["usage"]
    return times, usage


def test_the_profile_sets_the_pace_and_a_repeated_prefix_is_served_from_the_cache(tmp_path):
    step = PROFILES[PROFILE].step_time
    with run_server(tmp_path, profile=PROFILE, instance_id="batched") as server, server.client() as client:
        times, cold = stream(client, words("p", 1000), 100)
        assert len(times) == 100
        # one decoding sequence: a step each token (base + one sequence + attention over ~1000 tokens)
        decode_s = step.seconds(1, 0, 1050)
        gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
        assert sum(gaps) / len(gaps) == pytest.approx(decode_s, rel=0.25)
        assert times[0] >= step.seconds(0, 1000, 1000)  # the prefill of 1000 tokens
        _, warm = stream(client, words("p", 1000) + " and more", 5)
        assert cold["prompt_tokens_details"] == {"cached_tokens": 0}
        assert warm["prompt_tokens_details"]["cached_tokens"] >= 992
        metrics = server.metrics()
    assert metric_value(metrics, "vllm:prefix_cache_hits_total", **MODEL) >= 992
    assert metric_value(metrics, "vllm:generation_tokens_total", **MODEL) == 105


def test_a_full_kv_cache_holds_requests_back_until_blocks_free(tmp_path):
    # 80 blocks = 1280 tokens; each request holds 40 + 30 blocks by its end, so two cannot run side by side
    settings = {"profile": PROFILE, "kv_cache_blocks": 80, "max_model_len": 1280}
    with run_server(tmp_path, **settings) as server, server.client() as client, \
            concurrent.futures.ThreadPoolExecutor(3) as pool:
        futures = [pool.submit(stream, client, words(tag, 640), 480) for tag in "abc"]
        deadline, waiting, usage = time.monotonic() + 10, 0.0, 0.0
        while time.monotonic() < deadline and not all(future.done() for future in futures):
            metrics = server.metrics()
            waiting = max(waiting, metric_value(metrics, "vllm:num_requests_waiting", **MODEL))
            usage = max(usage, metric_value(metrics, "vllm:kv_cache_usage_perc", **MODEL))
            time.sleep(0.05)
        results = [future.result(timeout=30) for future in futures]
    assert all(len(times) == 480 for times, _ in results)
    assert waiting >= 1 and 0.5 < usage <= 1.0


def test_a_client_that_leaves_frees_its_blocks(tmp_path):
    with run_server(tmp_path, profile=PROFILE) as server, server.client() as client:
        body = {"model": "simulated-llm", "prompt": words("x", 500), "max_tokens": 2000, "stream": True}
        with client.stream("POST", "/v1/completions", json=body) as response:
            for index, _line in enumerate(response.iter_lines()):
                if index == 10:
                    during = server.metrics()
                    break
        after = metrics_once_idle(server, MODEL)
    assert metric_value(during, "vllm:kv_cache_usage_perc", **MODEL) > 0
    assert metric_value(after, "vllm:kv_cache_usage_perc", **MODEL) == 0
    assert metric_value(after, "vllm:request_success_total", finished_reason="abort", **MODEL) == 1


def test_non_streamed_requests_and_several_choices_run_in_the_batch(tmp_path):
    with run_server(tmp_path, profile=PROFILE) as server, server.client() as client:
        answer = client.post("/v1/completions", json={"model": "simulated-llm", "prompt": "hello", "max_tokens": 7,
                                                      "n": 3})
        streamed = client.post("/v1/chat/completions", json={
            "model": "simulated-llm", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4, "n": 2,
            "stream": True})
    assert answer.status_code == 200
    assert [choice["finish_reason"] for choice in answer.json()["choices"]] == ["length"] * 3
    assert answer.json()["usage"]["completion_tokens"] == 21
    events = sse_events(streamed.text)
    assert events[-1] == "[DONE]"
    finishes = [choice["finish_reason"] for event in events[:-1] for choice in json.loads(event)["choices"]
                if choice.get("finish_reason")]
    assert finishes == ["length", "length"]


@pytest.mark.parametrize(("environ", "message"), [
    ({"GPUFLEET_SIM_PROFILE": "a100"}, r"^GPUFLEET_SIM_PROFILE: unknown profile 'a100'; known: gpt-oss-20b-h100"),
    ({"GPUFLEET_SIM_PROFILE": PROFILE, "GPUFLEET_SIM_PREFIX_CACHE_BLOCKS": "600"},
     r"^GPUFLEET_SIM_PREFIX_CACHE_BLOCKS: a profile's KV cache is its prefix cache"),
    ({"GPUFLEET_SIM_KV_CACHE_BLOCKS": "600"}, r"^GPUFLEET_SIM_KV_CACHE_BLOCKS: only a profile's batching engine"),
    ({"GPUFLEET_SIM_MAX_NUM_BATCHED_TOKENS": "512"}, r"^GPUFLEET_SIM_MAX_NUM_BATCHED_TOKENS: only a profile's"),
])
def test_profile_settings_that_contradict_each_other_fail_naming_the_variable(environ, message):
    with pytest.raises(ConfigError, match=message):
        SimConfig.from_env(environ)


def test_a_kv_cache_too_small_for_one_request_stops_the_start(tmp_path):
    with pytest.raises(RuntimeError, match="GPUFLEET_SIM_KV_CACHE_BLOCKS: 10 blocks of 16 tokens cannot hold one "
                                           "request of max_model_len 4096"), \
            run_server(tmp_path, profile=PROFILE, kv_cache_blocks=10):
        pass
