"""Several choices run as vLLM's child requests: each its own sequence, counted and aborted on its own."""


from sim_support import metric_value, metrics_once_idle, run_server

MODEL = {"model_name": "simulated-llm", "engine": "0"}


def test_each_choice_of_each_prompt_is_one_finished_request(tmp_path):
    # vLLM's OutputProcessor records every child request on its own (_update_stats_from_finished, once per
    # child; IterationStats.update_from_output adds the prompt at each child's prefill)
    with run_server(tmp_path, ttft_ms=1, itl_ms=1, prefill_ms_per_token=0) as server, server.client() as client:
        body = client.post("/v1/completions", json={"prompt": ["a b", "c"], "n": 3, "max_tokens": 2}).json()
        metrics = server.metrics()
    assert len(body["choices"]) == 6 and body["usage"]["prompt_tokens"] == 3
    assert metric_value(metrics, "vllm:request_success_total", finished_reason="length", **MODEL) == 6
    assert metric_value(metrics, "vllm:prompt_tokens_total", **MODEL) == 3 * 2 + 3 * 1
    assert metric_value(metrics, "vllm:generation_tokens_total", **MODEL) == 12


def test_a_client_gone_mid_stream_aborts_every_choice_and_frees_their_slots(tmp_path):
    settings = {"max_num_seqs": 4, "ttft_ms": 20, "itl_ms": 50, "prefill_ms_per_token": 0}
    request = {"prompt": "tell me everything", "n": 3, "max_tokens": 200, "stream": True}  # ~10 s if left running
    with run_server(tmp_path, **settings) as server, server.client() as client:
        with client.stream("POST", "/v1/completions", json=request) as response:
            chunks = response.iter_raw()  # keep a reference: a collected iterator closes the connection
            next(chunks)
            during = server.metrics()
        after = metrics_once_idle(server, MODEL)
    assert metric_value(during, "vllm:num_requests_running", **MODEL) == 3
    assert metric_value(after, "vllm:num_requests_running", **MODEL) == 0
    assert metric_value(after, "vllm:request_success_total", finished_reason="abort", **MODEL) == 3
    assert metric_value(after, "vllm:request_success_total", finished_reason="length", **MODEL) == 0


def test_a_bounded_queue_refuses_a_stream_whose_choices_do_not_fit(tmp_path):
    with run_server(tmp_path, max_num_seqs=2, max_waiting=1, ttft_ms=1, itl_ms=1) as server, \
            server.client() as client:
        refused = client.post("/v1/completions", json={"prompt": "q", "n": 4, "max_tokens": 1, "stream": True})
        fits = client.post("/v1/completions", json={"prompt": "q", "n": 3, "max_tokens": 1, "stream": True})
    assert refused.status_code == 503 and fits.status_code == 200
