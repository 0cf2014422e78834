"""Comparisons 1 (streaming) and 2 (keepalive) across a real round trip: the load balancer and the model server on
either side of the delay line (gpufleet_bench/delayline.py), at each one-way delay, beside the loopback lower bound.

The client and NGINX share the `client` namespace (client to load balancer stays loopback), the simulator runs
in the `server` namespace, so every connection the load balancer opens upstream pays the delay, as between a
load balancer and a GPU node. Needs root (namespaces, TUN):

    .venv/bin/python tests/bench/round_trip.py --out .cache/bench [--delays-ms 0.5,2] [--reps 3] [--docs FILE]

--docs fills the section between the round-trip markers of FILE with the run's table (make bench-round-trip
writes docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from gpufleet_bench import comparisons, report, suite
from gpufleet_bench.delayline import DelayedLink

MARK_START = "<!-- bench:round-trip:start -->"
MARK_END = "<!-- bench:round-trip:end -->"


def comparisons_at(one_way_s: float | None, args: argparse.Namespace, workdir: Path) -> dict:
    """Keepalive and streaming at one delay; one_way_s None is plain loopback."""
    def run(bench: comparisons.Bench) -> dict:
        bench.render()
        outcomes = [comparisons.keepalive(bench, args.concurrency), comparisons.streaming(bench)]
        return {outcome.key: {"arms": outcome.arms, "checks": [check.as_dict() for check in outcome.checks]}
                for outcome in outcomes}

    common = {"reps": args.reps, "quick": args.quick, "seed": 0, "img": workdir / "img"}
    if one_way_s is None:
        return run(comparisons.Bench(workdir / "loopback", args.port_base, **common))
    with DelayedLink(one_way_s, tag=f"k{int(one_way_s * 1e4)}") as link:
        server_ns = ["ip", "netns", "exec", link.namespaces["server"]]
        bench = comparisons.Bench(workdir / f"delay-{one_way_s}", args.port_base, upstream_host=link.address("server"),
                                  simulator_prefix=server_ns, **common)
        with link.inside("client"):
            return run(bench)


def _median(reps: list[dict], key: str) -> float:
    return statistics.median(rep[key] for rep in reps)


def _check(run: dict, label_start: str) -> dict:
    return next(check for check in run["checks"] if check["label"].startswith(label_start))


def markdown(results: dict, command: str) -> str:
    """One row per path for each comparison, the checks' medians and whether they were met."""
    machine = results["machine"]
    lines = [f"`{command}`, {time.strftime('%Y-%m-%d', time.gmtime())}, {machine['cpus']} CPUs, load average "
             f"{' '.join(machine['loadavg_at_start'])} at the start; {results['reps']} paired repetitions per arm"
             f"{' (quick)' if results['quick'] else ''}.", "",
             f"Keepalive (1-token requests, {results['concurrency']} in flight):", "",
             "| path | direct req/s | LB req/s | naive req/s | LB ÷ naive (per repetition) | target | met | "
             "LB ÷ direct |", "|---|---:|---:|---:|---|---:|:---:|---:|"]
    for path, run in results["runs"].items():
        arms = run["keepalive"]["arms"]
        versus_naive, versus_direct = _check(run["keepalive"], "requests/s, LB ÷ naive"), \
            _check(run["keepalive"], "requests/s, LB ÷ direct")
        per_rep = ", ".join(f"{value:.2f}" for value in versus_naive["per_rep"])
        lines.append(f"| {path} | {_median(arms['direct'], 'req_s'):.0f} | {_median(arms['lb'], 'req_s'):.0f} | "
                     f"{_median(arms['naive'], 'req_s'):.0f} | **{versus_naive['value']:.2f}** ({per_rep}) | "
                     f"≥ {versus_naive['target']:g} | {'yes' if versus_naive['met'] else '**no**'} | "
                     f"{versus_direct['value']:.2f} |")
    lines += ["", "Streaming (64 streams of 128 tokens, ITL 20 ms):", "",
              "| path | tokens/s LB ÷ direct | ITL p99 LB - direct (ms) | TTFT p99 LB - direct (ms) | "
              "ITL p99 naive - direct (ms) | TTFT p99 direct / LB / naive (ms) |", "|---|---:|---:|---:|---:|---|"]
    for path, run in results["runs"].items():
        arms = run["streaming"]["arms"]
        values = [_check(run["streaming"], label)["value"] for label in (
            "output tokens/s, LB ÷ direct", "ITL p99, LB - direct", "TTFT p99, LB - direct", "ITL p99, naive")]
        ttfts = " / ".join(f"{_median(arms[arm], 'ttft_p99'):.0f}" for arm in ("direct", "lb", "naive"))
        lines.append(f"| {path} | {values[0]:.3f} | {values[1]:+.1f} | {values[2]:+.1f} | {values[3]:+.1f} | "
                     f"{ttfts} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--delays-ms", default="0.5,2")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--quick", action="store_true")
    # 2 in flight is latency-bound, what a round trip changes; at 16 (comparison 2's own on loopback) both cores
    # are busy, so CPU, not the round trip, sets the pace
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--port-base", type=int, default=23000)
    parser.add_argument("--docs", type=Path, help="fill the round-trip section of this markdown file")
    args = parser.parse_args()
    delays = [None] + [float(value) / 1000 for value in args.delays_ms.split(",")]
    started = time.monotonic()
    command = "tests/bench/round_trip.py " + " ".join(sys.argv[1:])
    results = {"machine": report.machine(), "reps": args.reps, "quick": args.quick, "concurrency": args.concurrency,
               "runs": {}}
    with tempfile.TemporaryDirectory(prefix="gpufleet-rtt-") as tmp:
        for one_way_s in delays:
            name = "loopback" if one_way_s is None else f"{one_way_s * 1000:g} ms one way"
            (Path(tmp) / ("loopback" if one_way_s is None else f"delay-{one_way_s}")).mkdir()
            results["runs"][name] = comparisons_at(one_way_s, args, Path(tmp))
            checks = "; ".join(f"{c['label']} {c['value']:.2f} " + ("(shown, no target)" if c["met"] is None else
                                                                     f"(target {c['target']:g}, "
                                                                     f"{'met' if c['met'] else 'MISSED'})")
                               for run in results["runs"][name].values() for c in run["checks"])
            print(f"{name}: {checks}", file=sys.stderr, flush=True)
    results["wall_s"] = time.monotonic() - started
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"round_trip-c{args.concurrency}.json").write_text(json.dumps(results, indent=1, default=str))
    table = markdown(results, command)
    (args.out / f"round_trip-c{args.concurrency}.md").write_text(table + "\n")
    if args.docs:
        suite.update_docs(args.docs, table, MARK_START, MARK_END)
    return 0


if __name__ == "__main__":
    sys.exit(main())
