"""`python -m gpufleet_bench run` drives any OpenAI-compatible endpoint; `suite` runs the project's comparisons."""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import sys
from pathlib import Path

from . import __version__, arrivals, loadgen, report, stats, workload


def _positive(kind):
    def parse(raw: str):
        value = kind(raw)
        if not value > 0 or not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"must be positive, got {raw}")
        return value
    return parse


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gpufleet-bench", description=__doc__)
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="load one endpoint and report latencies, throughput and goodput")
    run.add_argument("--base-url", required=True, help="e.g. http://127.0.0.1:8000 (the /v1/... paths are added)")
    run.add_argument("--api", choices=("completions", "chat"), default="completions")
    run.add_argument("--model", help="model name (default: the first one /v1/models lists)")
    run.add_argument("--no-stream", dest="stream", action="store_false", help="ask for whole responses")
    run.add_argument("--ignore-eos", action="store_true", help="vLLM: always generate max_tokens")
    run.add_argument("--api-key-env", metavar="VAR", help="send 'Authorization: Bearer $VAR'")
    run.add_argument("--arrivals", choices=arrivals.KINDS, default="poisson")
    run.add_argument("--rate", type=_positive(float), help="requests per second (fixed, poisson, bursty)")
    run.add_argument("--burstiness", type=_positive(float), default=1.0,
                     help="gamma shape for bursty arrivals: <1 bunches requests up, 1 is Poisson")
    run.add_argument("--concurrency", type=_positive(int), help="most requests in flight (required for concurrency)")
    run.add_argument("--num-requests", type=_positive(int), default=200)
    run.add_argument("--duration", type=_positive(float), default=600.0, help="stop sending after this many seconds")
    run.add_argument("--timeout", type=_positive(float), default=300.0, help="per-request timeout in seconds")
    run.add_argument("--max-tokens", type=_positive(int), default=128)
    run.add_argument("--length-mix", help="output lengths and weights, e.g. 16:0.8,512:0.2 (overrides --max-tokens)")
    run.add_argument("--prompt-words", type=_positive(int), default=32)
    run.add_argument("--conversations", type=_positive(int),
                     help="multi-turn mode: this many conversations, each turn extending the last (chat API)")
    run.add_argument("--turns", type=_positive(int), default=5)
    run.add_argument("--context-words", type=_positive(int), default=1000)
    run.add_argument("--users", type=_positive(int), default=8, help="multi-turn mode: concurrent users")
    run.add_argument("--think-time", type=float, default=0.0, help="multi-turn mode: seconds between turns")
    run.add_argument("--session-header", default="X-Session-ID")
    run.add_argument("--goodput", action="append", default=[], metavar="METRIC:MS",
                     help="SLO for goodput, repeatable: ttft, tpot, itl (worst gap) or e2e in milliseconds")
    run.add_argument("--seed", type=int, default=0)
    run.add_argument("--json", type=Path, help="write the results here")
    run.add_argument("--records", action="store_true", help="include every request in the JSON")
    run.add_argument("--plot", type=Path, help="write a PNG of latency CDFs and progress here")

    from .suite import add_arguments

    add_arguments(commands.add_parser("suite", help="the project's comparisons on loopback (make bench)"))
    return parser


def _target(args: argparse.Namespace) -> loadgen.Target:
    headers = {}
    if args.api_key_env:
        key = os.environ.get(args.api_key_env)
        if not key:
            raise SystemExit(f"gpufleet-bench: {args.api_key_env} is not set")
        headers["Authorization"] = f"Bearer {key}"
    return loadgen.Target(args.base_url, api=args.api, model=args.model, stream=args.stream, headers=headers,
                          session_header=args.session_header, timeout_s=args.timeout, ignore_eos=args.ignore_eos)


def run_command(args: argparse.Namespace) -> dict:
    slos = stats.parse_slos(args.goodput)
    target = _target(args)
    if args.conversations:
        conversations = workload.conversations(args.conversations, args.turns, context_words=args.context_words,
                                               turn_words=24, reply_words=args.max_tokens, seed=args.seed)
        result = asyncio.run(loadgen.run_conversations(target, conversations, users=args.users,
                                                       max_tokens=args.max_tokens, think_time_s=args.think_time,
                                                       max_duration_s=args.duration))
    else:
        if args.arrivals == "concurrency" and not args.concurrency:
            raise SystemExit("gpufleet-bench: --arrivals concurrency needs --concurrency")
        if args.arrivals != "concurrency" and not args.rate:
            raise SystemExit(f"gpufleet-bench: --arrivals {args.arrivals} needs --rate")
        mix = workload.parse_mix(args.length_mix) if args.length_mix else [(args.max_tokens, 1.0)]
        requests = workload.requests(args.num_requests, mix, args.prompt_words, args.seed)
        times = arrivals.send_times(args.arrivals, args.rate or math.inf, args.num_requests, args.seed,
                                    args.burstiness)
        result = asyncio.run(loadgen.run_requests(target, requests, times, max_concurrency=args.concurrency,
                                                  max_duration_s=args.duration))
    document = {
        "tool": f"gpufleet-bench {__version__}",
        "settings": {key: str(value) if isinstance(value, Path) else value for key, value in vars(args).items()
                     if key not in ("func", "api_key_env")},
        "machine": report.machine(),
        "summary": stats.summarize(result.records, slos),
    }
    if args.records:
        document["records"] = [report.record_dict(record) for record in result.records]
    if args.json:
        report.write_json(args.json, document)
    if args.plot:
        from .plots import plot_run

        plot_run(result.records, args.plot, f"{args.base_url} ({args.arrivals})")
    return document


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "run":
        try:
            document = run_command(args)
        except ValueError as exc:
            print(f"gpufleet-bench: {exc}", file=sys.stderr)
            return 2
        summary = document["summary"]
        keys = ("requests", "completed", "failed", "duration_s", "request_throughput", "output_throughput",
                "goodput", "ttft_ms", "itl_ms", "e2e_ms")
        print(json.dumps({key: summary[key] for key in keys}, indent=1, default=str))
        return 0 if summary["completed"] else 1
    from .suite import main as suite_main

    return suite_main(args)
