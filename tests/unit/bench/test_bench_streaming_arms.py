"""The streaming comparison's arms on loopback: naive-gzip holds an event stream back, the role's config does not.

Comparison 1's binding check ("naive-gzip misses the 20 ms TTFT bound") proves that the LB's bounds catch a proxy
that buffers only while naive-gzip really buffers; this test fails as soon as it stops (an NGINX whose gzip filter
flushes every buffer, a client that no longer asks for gzip, a config that lost its gzip lines).
"""

import asyncio
import shutil

import pytest
from bench_support import free_port
from gpufleet_bench import arrivals, fixtures, loadgen, stats, workload

pytestmark = pytest.mark.skipif(shutil.which("nginx", path="/usr/sbin:/usr/bin:/usr/local/sbin") is None,
                                reason="needs nginx: `make host-packages` installs it")

TTFT_MS, ITL_MS, TOKENS, STREAMS = 20, 20, 24, 4
STREAM_MS = TTFT_MS + (TOKENS - 1) * ITL_MS  # when the simulator sends the last token


def _role_config(tmp_path, sim_port: int, lb_port: int):
    gpu_nodes = {"bench-gpu": {"gpufleet_region": "here", "gpu_count": 1, "gpu_model": "sim",
                               "gpufleet_address": "127.0.0.1", "model_server_base_port": sim_port}}
    return fixtures.render_lb_configs(tmp_path, gpu_nodes, {"lb": {"region": "here", "settings": {
        "nginx_lb_listen_address": "127.0.0.1", "nginx_lb_listen_port": lb_port, "nginx_lb_status_port": free_port(),
        "nginx_lb_pid_file": str(tmp_path / "lb.pid"), "nginx_lb_error_log": str(tmp_path / "error.log"),
        "nginx_lb_access_log": str(tmp_path / "access.log")}}})["lb"]


def _streams(url: str) -> dict:
    """TTFT and ITL (ms) of a few concurrent streams, read by the bench's own client (which accepts gzip)."""
    requests = workload.requests(STREAMS, [(TOKENS, 1.0)], 8, 0)
    target = loadgen.Target(url, api="completions", model=fixtures.SIMULATOR_MODEL, stream=True, timeout_s=30)
    result = asyncio.run(loadgen.run_requests(target, requests, arrivals.send_times("concurrency", 0, STREAMS),
                                              max_concurrency=STREAMS, max_duration_s=30))
    summary = stats.summarize(result.records)
    assert summary["failed"] == 0 and all(record.output_tokens == TOKENS for record in result.records)
    return {"ttft_min": min(record.ttft for record in result.records) * 1000,
            "ttft_p99": summary["ttft_ms"]["p99"], "itl_p50": summary["itl_ms"]["p50"]}


def test_naive_gzip_holds_each_stream_to_its_end_and_the_role_passes_every_event_on(tmp_path):
    sim_port, lb_port, gzip_port = free_port(), free_port(), free_port()
    role_conf = _role_config(tmp_path, sim_port, lb_port)
    gzip_conf = fixtures.naive_config(tmp_path / "naive-gzip.conf", tmp_path, gzip_port, [sim_port],
                                      extra=fixtures.GZIP_EVENT_STREAMS)
    settings = {"ttft_ms": TTFT_MS, "itl_ms": ITL_MS, "output_tokens": TOKENS, "prefill_ms_per_token": 0}
    with fixtures.simulators([sim_port], tmp_path, settings), fixtures.nginx(role_conf, lb_port, tmp_path) as lb, \
            fixtures.nginx(gzip_conf, gzip_port, tmp_path) as naive_gzip:
        role, held = _streams(lb.url), _streams(naive_gzip.url)
    # the role's config: each token as the simulator sends it, 20 ms apart
    assert role["ttft_p99"] < TTFT_MS + 5 * ITL_MS, role
    assert abs(role["itl_p50"] - ITL_MS) < 5, role
    # naive-gzip: even the earliest first token waits for (nearly) the whole answer, then all come in one burst
    assert held["ttft_min"] > 0.8 * STREAM_MS, held
    assert held["itl_p50"] < 5, held
