"""Comparison 2 (keepalive) across a real round trip: the load balancer and the model server on either side of
the delay line (gpufleet_bench/delayline.py), at each one-way delay, beside the loopback lower bound.

The client and NGINX share the `client` namespace (client to load balancer stays loopback), the simulator runs
in the `server` namespace, so every connection the load balancer opens upstream pays the delay, as between a
load balancer and a GPU node. Needs root (namespaces, TUN):

    .venv/bin/python tests/bench/round_trip.py --out .cache/bench [--delays-ms 0.5,2] [--reps 3]
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

from gpufleet_bench import comparisons, report
from gpufleet_bench.delayline import DelayedLink


def keepalive_at(one_way_s: float | None, args: argparse.Namespace, workdir: Path) -> dict:
    """One keepalive comparison; one_way_s None is plain loopback."""
    def run(bench: comparisons.Bench) -> dict:
        bench.render()
        outcome = comparisons.keepalive(bench, args.concurrency)
        return {"arms": outcome.arms, "checks": [{"label": c.label, "per_rep": c.per_rep, "target": c.target,
                                                  "value": c.value, "met": c.met} for c in outcome.checks]}

    common = {"reps": args.reps, "quick": args.quick, "seed": 0, "img": workdir / "img"}
    if one_way_s is None:
        return run(comparisons.Bench(workdir / "loopback", args.port_base, **common))
    with DelayedLink(one_way_s, tag=f"k{int(one_way_s * 1e4)}") as link:
        server_ns = ["ip", "netns", "exec", link.namespaces["server"]]
        bench = comparisons.Bench(workdir / f"delay-{one_way_s}", args.port_base, upstream_host=link.address("server"),
                                  simulator_prefix=server_ns, **common)
        with link.inside("client"):
            return run(bench)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--delays-ms", default="0.5,2")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--quick", action="store_true")
    # 16 (comparison 2's own) keeps both cores busy, so CPU, not the round trip, sets the pace; 2 is latency-bound
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--port-base", type=int, default=23000)
    args = parser.parse_args()
    delays = [None] + [float(value) / 1000 for value in args.delays_ms.split(",")]
    started = time.monotonic()
    results = {"machine": report.machine(), "reps": args.reps, "quick": args.quick, "concurrency": args.concurrency,
               "runs": {}}
    with tempfile.TemporaryDirectory(prefix="gpufleet-rtt-") as tmp:
        for one_way_s in delays:
            name = "loopback" if one_way_s is None else f"{one_way_s * 1000:g} ms one way"
            (Path(tmp) / ("loopback" if one_way_s is None else f"delay-{one_way_s}")).mkdir()
            results["runs"][name] = keepalive_at(one_way_s, args, Path(tmp))
            arms = results["runs"][name]["arms"]
            medians = {arm: statistics.median(rep["req_s"] for rep in reps) for arm, reps in arms.items()}
            checks = "; ".join(f"{c['label']} {c['value']:.2f} (target {c['target']:g}, "
                               f"{'met' if c['met'] else 'MISSED'})" for c in results["runs"][name]["checks"])
            print(f"{name}: requests/s median {medians}; {checks}", file=sys.stderr, flush=True)
    results["wall_s"] = time.monotonic() - started
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"round_trip-c{args.concurrency}.json").write_text(json.dumps(results, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
