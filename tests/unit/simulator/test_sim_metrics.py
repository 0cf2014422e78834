"""/metrics after known traffic: vLLM's names, labels, buckets and values, plus the instrumentator's counter."""

import json

import pytest
from gpufleet_simulator.metrics import ITL_BUCKETS, REQUEST_LATENCY_BUCKETS, TTFT_BUCKETS
from sim_support import parse_metrics, run_server, sse_events

MODEL = {"model_name": "m-test"}
VLLM_LABELS = {**MODEL, "engine": "0"}


@pytest.fixture(scope="module")
def traffic(tmp_path_factory):
    """Two completions, one streamed chat, one bad request, one unknown path; returns usages and metrics text."""
    settings = {"model": "m-test", "instance_id": "metrics-1", "ttft_ms": 5, "itl_ms": 2}
    with run_server(tmp_path_factory.mktemp("metrics"), **settings) as server, server.client() as client:
        usages = [client.post("/v1/completions", json={"prompt": text, "max_tokens": tokens}).json()["usage"]
                  for text, tokens in (("one two three", 4), ("Hello, world!", 6))]
        chat = client.post("/v1/chat/completions", json={
            "messages": [{"role": "user", "content": "hi"}], "max_tokens": 3, "stream": True,
            "stream_options": {"include_usage": True}})
        usages.append(json.loads(sse_events(chat.text)[-2])["usage"])
        assert client.post("/v1/completions", json={"prompt": "x", "model": "other"}).status_code == 404
        assert client.get("/nowhere").status_code == 404
        client.get("/health")
        response = client.get("/metrics")
        yield usages, response


def samples(traffic):
    return parse_metrics(traffic[1].text)


def value(traffic, name, **labels):
    return samples(traffic)[(name, frozenset({**VLLM_LABELS, **labels}.items()))]


def test_exposition_format_and_instance_info(traffic):
    response = traffic[1]
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    assert response.headers["x-gpufleet-instance"] == "metrics-1"
    info = samples(traffic)[("gpufleet_simulator_info", frozenset({"instance_id": "metrics-1", **MODEL}.items()))]
    assert info == 1.0


def test_token_counters_match_the_usage_returned(traffic):
    usages = traffic[0]
    assert value(traffic, "vllm:prompt_tokens_total") == sum(usage["prompt_tokens"] for usage in usages)
    assert value(traffic, "vllm:generation_tokens_total") == sum(usage["completion_tokens"] for usage in usages) == 13


def test_request_outcomes_and_latency_histograms(traffic):
    assert value(traffic, "vllm:request_success_total", finished_reason="length") == 3
    assert value(traffic, "vllm:request_success_total", finished_reason="stop") == 0
    assert value(traffic, "vllm:request_success_total", finished_reason="abort") == 0
    assert value(traffic, "vllm:request_success_total", finished_reason="error") == 0
    assert value(traffic, "vllm:request_success_total", finished_reason="repetition") == 0
    for histogram in ("time_to_first_token", "e2e_request_latency", "request_queue_time"):
        assert value(traffic, f"vllm:{histogram}_seconds_count") == 3
    assert value(traffic, "vllm:time_to_first_token_seconds_sum") >= 3 * 0.005
    assert value(traffic, "vllm:inter_token_latency_seconds_count") == (4 - 1) + (6 - 1) + (3 - 1)
    assert value(traffic, "vllm:e2e_request_latency_seconds_sum") >= value(
        traffic, "vllm:time_to_first_token_seconds_sum")


@pytest.mark.parametrize(("name", "buckets"), [
    ("vllm:time_to_first_token_seconds", TTFT_BUCKETS),
    ("vllm:inter_token_latency_seconds", ITL_BUCKETS),
    ("vllm:e2e_request_latency_seconds", REQUEST_LATENCY_BUCKETS),
    ("vllm:request_queue_time_seconds", REQUEST_LATENCY_BUCKETS),
])
def test_histograms_use_vllms_bucket_boundaries(traffic, name, buckets):
    bounds = {dict(labels)["le"] for metric, labels in samples(traffic) if metric == name + "_bucket"}
    assert bounds == {str(float(bound)) for bound in buckets} | {"+Inf"}
    assert len(TTFT_BUCKETS) == 22 and len(ITL_BUCKETS) == 19 and len(REQUEST_LATENCY_BUCKETS) == 21


def test_gauges_are_idle_after_traffic(traffic):
    for gauge in ("num_requests_running", "num_requests_waiting", "kv_cache_usage_perc"):
        assert value(traffic, f"vllm:{gauge}") == 0.0
    assert value(traffic, "vllm:prefix_cache_queries_total") == 0.0  # cache off


def test_http_requests_total_groups_status_like_vllms_instrumentator(traffic):
    counts = {dict(labels)["handler"] + " " + dict(labels)["method"] + " " + dict(labels)["status"]: count
              for (metric, labels), count in samples(traffic).items() if metric == "http_requests_total"}
    assert counts == {
        "/v1/completions POST 2xx": 2.0,
        "/v1/completions POST 4xx": 1.0,
        "/v1/chat/completions POST 2xx": 1.0,
        "none GET 4xx": 1.0,
    }


def test_every_vllm_series_names_its_engine_as_vllm_does(traffic):
    vllm = [dict(labels) for metric, labels in samples(traffic) if metric.startswith("vllm:")]
    assert vllm and all(labels["engine"] == "0" and labels["model_name"] == "m-test" for labels in vllm)
    reasons = {labels.get("finished_reason") for labels in vllm} - {None}
    assert reasons == {"stop", "length", "abort", "error", "repetition"}
