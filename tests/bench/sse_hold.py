"""Which NGINX configurations hold server-sent events back: the naive config with one change at a time, on loopback.

One simulator (TTFT 50 ms, ITL 20 ms), the bench's own client (it accepts gzip, as aiohttp does by default), the same
concurrent streams through each configuration, one run each; prints a markdown table of TTFT and ITL per
configuration (docs/benchmarks.md, 'What the numbers say', 1):

    .venv/bin/python tests/bench/sse_hold.py [--streams 64] [--tokens 128] [--port-base 27100] [--role]

--role adds the nginx_lb role's own config with TLS (as its gateway serves), buffering off (its default) and on.

A configuration holds events when its first token comes late and its gaps collapse (ITL p50 near 0): the events
arrive in bursts. Comparison 1 keeps one of them, naive-gzip, as an arm; this script is how it was chosen.
"""

from __future__ import annotations

import argparse
import asyncio
import ssl
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from gpufleet_bench import arrivals, fixtures, loadgen, stats, workload

TLS = ("ssl_certificate {workdir}/tls/gpufleet.crt;", "ssl_certificate_key {workdir}/tls/gpufleet.key;")
# (label, directives added to the naive config's http block, whether it listens with TLS)
VARIANTS = [
    ("naive (buffering on)", (), False),
    ("+ `gzip on; gzip_types text/event-stream;` (naive-gzip)", fixtures.GZIP_EVENT_STREAMS, False),
    ("+ the same and `gzip_min_length 1k` (chatgpt-web's lines)", (*fixtures.GZIP_EVENT_STREAMS, "gzip_min_length 1k;"),
     False),
    ("+ gzip and `proxy_buffering off`", (*fixtures.GZIP_EVENT_STREAMS, "proxy_buffering off;"), False),
    # POST is not cached (proxy_cache_methods GET HEAD), so this only shows that the cache path changes nothing
    ("+ `proxy_cache`", ("proxy_cache_path {workdir}/cache-{port} keys_zone=sse-{port}:1m;", "proxy_cache sse-{port};"),
     False),
    ("+ `postpone_output 64k`", ("postpone_output 64k;",), False),
    ("+ `proxy_buffer_size 64k; proxy_buffers 8 64k; proxy_busy_buffers_size 128k;`",
     ("proxy_buffer_size 64k;", "proxy_buffers 8 64k;", "proxy_busy_buffers_size 128k;"), False),
    ("+ TLS (`listen ... ssl`)", TLS, True),
    ("+ TLS and `ssl_buffer_size 4k`", (*TLS, "ssl_buffer_size 4k;"), True),
    ("+ TLS and `proxy_buffering off`", (*TLS, "proxy_buffering off;"), True),
]


def render(workdir: Path, port: int, sim_port: int, directives: tuple[str, ...], tls: bool) -> Path:
    extra = [directive.format(workdir=workdir, port=port) for directive in directives]
    path = fixtures.naive_config(workdir / f"variant-{port}.conf", workdir, port, [sim_port], extra=extra)
    if tls:  # the listen line is the template's own; TLS needs its ssl parameter
        listen = f"listen {fixtures.LOOPBACK}:{port};"
        path.write_text(path.read_text().replace(listen, listen.replace(";", " ssl;")))
    return path


def render_role(workdir: Path, port_base: int, sim_port: int) -> dict[str, tuple[Path, int]]:
    """The role's config with TLS and without keys, buffering off and on: label -> (config, port)."""
    gpu_nodes = {"sse-gpu": {"gpufleet_region": "here", "gpu_count": 1, "gpu_model": "sim",
                             "gpufleet_address": fixtures.LOOPBACK, "model_server_base_port": sim_port}}
    lbs, labels = {}, {}
    for offset, buffering in ((0, False), (10, True)):
        name, port = f"role-buffering-{'on' if buffering else 'off'}", port_base + offset
        labels[name] = (f"the role with TLS, `nginx_lb_proxy_buffering: {str(buffering).lower()}`", port)
        lbs[name] = {"region": "here", "settings": fixtures.loopback_lb_settings(
            workdir, name, port, nginx_lb_tls=True, nginx_lb_tls_dir=str(workdir / "tls"), nginx_lb_plain_http="off",
            nginx_lb_proxy_buffering=buffering)}
    confs = fixtures.render_lb_configs(workdir, gpu_nodes, lbs)
    return {label: (confs[name], port) for name, (label, port) in labels.items()}


def measure(url: str, streams: int, tokens: int, context: ssl.SSLContext | None) -> dict:
    requests = workload.requests(streams, [(tokens, 1.0)], 32, 0)
    target = loadgen.Target(url, api="completions", model=fixtures.SIMULATOR_MODEL, stream=True, timeout_s=60,
                            tls=context)
    result = asyncio.run(loadgen.run_requests(target, requests, arrivals.send_times("concurrency", 0, streams),
                                              max_concurrency=streams, max_duration_s=60))
    summary = stats.summarize(result.records)
    return {"failed": summary["failed"], **{f"ttft_{q}": summary["ttft_ms"][q] for q in ("p50", "p99")},
            **{f"itl_{q}": summary["itl_ms"][q] for q in ("p50", "p99", "max")}}


def row(label: str, figures: dict) -> str:
    values = [figures[key] for key in ("ttft_p50", "ttft_p99", "itl_p50", "itl_p99", "itl_max")]
    return f"| {label} | " + " | ".join(f"{value:.1f}" for value in values) + f" | {figures['failed']} |"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", type=int, default=64, help="concurrent streams per configuration (default 64)")
    parser.add_argument("--tokens", type=int, default=128, help="tokens per stream (default 128)")
    parser.add_argument("--port-base", type=int, default=27100, help="loopback ports used: base .. base+49")
    parser.add_argument("--role", action="store_true", help="also the role's config with TLS, buffering off and on "
                        "(rendered by ansible-playbook)")
    args = parser.parse_args()
    print(f"{args.streams} concurrent streams of {args.tokens} tokens, simulator TTFT 50 ms and ITL 20 ms, one run "
          "each.\n\n| configuration | TTFT p50 (ms) | TTFT p99 (ms) | ITL p50 (ms) | ITL p99 (ms) | ITL max (ms) | "
          "failed |\n|---|---:|---:|---:|---:|---:|---:|", flush=True)
    with tempfile.TemporaryDirectory(prefix="gpufleet-sse-hold-") as tmp:
        workdir = Path(tmp)
        context = ssl.create_default_context(cafile=str(fixtures.tls_files(workdir / "tls")))
        sim_port = args.port_base
        settings = {"ttft_ms": 50, "itl_ms": 20, "output_tokens": args.tokens, "prefill_ms_per_token": 0}
        with fixtures.simulators([sim_port], workdir, settings):
            print(row("direct", measure(f"http://{fixtures.LOOPBACK}:{sim_port}", args.streams, args.tokens, None)),
                  flush=True)
            for index, (label, directives, tls) in enumerate(VARIANTS, start=1):
                port = args.port_base + index
                with fixtures.nginx(render(workdir, port, sim_port, directives, tls), port, workdir) as server:
                    url = server.url.replace("http://", "https://") if tls else server.url
                    figures = measure(url, args.streams, args.tokens, context if tls else None)
                print(row(label, figures), flush=True)
            for label, (conf, port) in (render_role(workdir, args.port_base + 30, sim_port) if args.role
                                        else {}).items():
                with fixtures.nginx(conf, port, workdir) as server:
                    figures = measure(server.url.replace("http://", "https://"), args.streams, args.tokens, context)
                print(row(label, figures), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
