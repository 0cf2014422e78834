"""Prometheus metrics under vLLM's names, buckets and labels, in a registry owned by one app."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info, generate_latest

# bucket boundaries as in vLLM's v1 metrics logger
TTFT_BUCKETS = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
                20.0, 40.0, 80.0, 160.0, 640.0, 2560.0)
ITL_BUCKETS = (0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0,
               40.0, 80.0)
REQUEST_LATENCY_BUCKETS = (0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0,
                           120.0, 240.0, 480.0, 960.0, 1920.0, 7680.0)
# FINISH_REASON_STRINGS of vllm/v1/engine/__init__.py; vLLM's PrometheusStatLogger creates a request_success
# series for each at start-up, so all five read 0 before the first request
FINISH_REASONS = ("stop", "length", "abort", "error", "repetition")
# vLLM labels every vllm:* series with the index of its engine core; one engine per server here
ENGINE = "0"
# what prometheus_client's own handlers answer a scraper that asks for no particular format
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class Metrics:
    def __init__(self, model: str, instance_id: str, *, running: Callable[[], float],
                 waiting: Callable[[], float], kv_cache_usage: Callable[[], float]) -> None:
        self.registry = CollectorRegistry()
        registry = self.registry
        by_model = ["model_name", "engine"]

        def gauge(name: str, doc: str, read: Callable[[], float]) -> None:
            Gauge(name, doc, by_model, registry=registry).labels(model, ENGINE).set_function(read)

        gauge("vllm:num_requests_running", "Number of requests in model execution batches.", running)
        gauge("vllm:num_requests_waiting", "Number of requests waiting to be processed.", waiting)
        gauge("vllm:kv_cache_usage_perc", "KV-cache usage. 1 means 100 percent usage.", kv_cache_usage)

        def histogram(name: str, doc: str, buckets: tuple[float, ...]):
            return Histogram(name, doc, by_model, buckets=buckets, registry=registry).labels(model, ENGINE)

        self.ttft = histogram("vllm:time_to_first_token_seconds", "Histogram of time to first token in seconds.",
                              TTFT_BUCKETS)
        self.itl = histogram("vllm:inter_token_latency_seconds", "Histogram of inter-token latency in seconds.",
                             ITL_BUCKETS)
        self.e2e = histogram("vllm:e2e_request_latency_seconds", "Histogram of e2e request latency in seconds.",
                             REQUEST_LATENCY_BUCKETS)
        self.queue_time = histogram("vllm:request_queue_time_seconds",
                                    "Histogram of time spent in WAITING phase for request.", REQUEST_LATENCY_BUCKETS)

        def counter(name: str, doc: str):
            return Counter(name, doc, by_model, registry=registry).labels(model, ENGINE)

        self.prompt_tokens = counter("vllm:prompt_tokens", "Number of prefill tokens processed.")
        self.generation_tokens = counter("vllm:generation_tokens", "Number of generation tokens processed.")
        self.prefix_cache_queries = counter("vllm:prefix_cache_queries",
                                            "Prefix cache queries, in terms of number of queried tokens.")
        self.prefix_cache_hits = counter("vllm:prefix_cache_hits",
                                         "Prefix cache hits, in terms of number of cached tokens.")
        success = Counter("vllm:request_success", "Count of successfully processed requests.",
                          [*by_model, "finished_reason"], registry=registry)
        self.request_success = {reason: success.labels(model, ENGINE, reason) for reason in FINISH_REASONS}
        # named and grouped like prometheus-fastapi-instrumentator in front of vLLM: status "2xx", "4xx", ...
        self._http_requests = Counter("http_requests", "Total number of requests by method, status and handler.",
                                      ["method", "status", "handler"], registry=registry)
        self._http_children: dict[tuple[str, str, str], Counter] = {}
        Info("gpufleet_simulator", "Simulator instance serving this endpoint.", registry=registry).info(
            {"instance_id": instance_id, "model_name": model})

    def count_http(self, method: str, status: int, handler: str) -> None:
        key = (method, f"{status // 100}xx", handler)
        child = self._http_children.get(key)
        if child is None:
            child = self._http_children[key] = self._http_requests.labels(*key)
        child.inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)
