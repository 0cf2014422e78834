"""The project's benchmark: each comparison runs its arms interleaved on loopback, repeated, and quotes medians.

Arms alternate order from one repetition to the next (A B, B A, ...) so that a machine shared with other work
slows both alike; every ratio is the median of the per-repetition ratios of the two arms.
"""

from __future__ import annotations

import argparse
import json
import math
import shlex
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from . import comparisons, peer, report
from .fixtures import REPO, SIMULATOR_SRC
from .outcome import Check, Outcome


def _fmt(value: float, unit: str = "") -> str:
    if value is None or not math.isfinite(value):
        return "n/a"
    text = f"{value:.3g}" if abs(value) < 100 else f"{value:.0f}"
    return f"{text}{unit}"


def _target(check: Check, signs: tuple[str, str] = ("≥", "≤")) -> str:
    """The bound with its side, or a dash for a figure shown as measured."""
    if check.target is None:
        return "—"
    return f"{signs[0] if check.higher_is_better else signs[1]} {_fmt(check.target, check.unit)}"


def _met(check: Check) -> str:
    return "**no**" if check.verdict == "no" else check.verdict


def markdown(outcomes: Sequence[Outcome], machine: dict, command: str, reps: int) -> str:
    lines = [f"Run: `{command}` ({reps} repetitions per arm, arms interleaved), "
             f"{time.strftime('%Y-%m-%d', time.gmtime())}.",
             f"Machine: {machine['cpu']}, {machine['cpus']} CPUs, {machine['memory_gib']} GiB, {machine['os']}, "
             f"kernel {machine['kernel']}, Python {machine['python']}, {machine['nginx']}; "
             f"load average {' '.join(machine['loadavg_at_start'])} at the start (the machine was shared).", ""]
    for outcome in outcomes:
        arms = list(outcome.arms)
        lines += [f"### {outcome.title}", "", outcome.setup, ""]
        lines += ["| median of the repetitions | " + " | ".join(arms) + " |",
                  "|---|" + "---:|" * len(arms)]
        for label, key in outcome.rows:
            lines.append(f"| {label} | " + " | ".join(_fmt(outcome.median(arm, key)) for arm in arms) + " |")
        lines += ["", "| check | measured (median of paired repetitions) | target | met |", "|---|---:|---:|:---:|"]
        for check in outcome.checks:
            per_rep = ", ".join(_fmt(value) for value in check.per_rep)
            lines.append(f"| {check.label} | {_fmt(check.value, check.unit)} ({per_rep}) | {_target(check)} | "
                         f"{_met(check)} |")
        for note in outcome.notes:
            lines += ["", note]
        if outcome.plot:
            lines += ["", f"![{outcome.title}](img/{Path(outcome.plot).name})"]
        lines += ["", f"Wall time of this comparison: {outcome.wall_s:.0f} s.", ""]
    return "\n".join(lines)


def summary_markdown(outcomes: Sequence[Outcome], machine: dict, command: str, reps: int) -> str:
    """One row per check of every comparison: the summary that README.md and docs/benchmarks.md quote."""
    lines = [f"`{command}`, {time.strftime('%Y-%m-%d', time.gmtime())}, {machine['cpus']} CPUs, load average "
             f"{' '.join(machine['loadavg_at_start'])} at the start; medians of {reps} paired repetitions.", "",
             "| comparison | check | measured | target | met |", "| --- | --- | ---: | ---: | :---: |"]
    for outcome in outcomes:
        for check in outcome.checks:
            lines.append(f"| {outcome.title} | {check.label} | {_fmt(check.value, check.unit)} | {_target(check)} | "
                         f"{_met(check)} |")
    return "\n".join(lines)


PEER_COMPARISONS = ("streaming", "heterogeneous")  # the ones that run the peer client beside their own
MARK_START = "<!-- bench:results:start -->"
MARK_END = "<!-- bench:results:end -->"
SUMMARY_START = "<!-- bench:summary:start -->"
SUMMARY_END = "<!-- bench:summary:end -->"


def update_docs(path: Path, results_md: str, start: str = MARK_START, end: str = MARK_END) -> None:
    text = path.read_text()
    if start not in text or end not in text:
        raise RuntimeError(f"{path} has no {start} ... {end} section to fill")
    head, rest = text.split(start, 1)
    _, tail = rest.split(end, 1)
    path.write_text(f"{head}{start}\n{results_md}\n{end}{tail}")


def _profile_names() -> list[str]:
    """The simulator's GPU profiles (profiles.py), read from its source as the bench starts it."""
    if str(SIMULATOR_SRC) not in sys.path:
        sys.path.insert(0, str(SIMULATOR_SRC))
    from gpufleet_simulator.profiles import PROFILES

    return sorted(PROFILES)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--only", default=",".join(comparisons.ALL),
                        help=f"comma-separated comparisons to run (default: all of {', '.join(comparisons.ALL)})")
    parser.add_argument("--reps", type=int, default=3, help="repetitions per arm (default 3)")
    parser.add_argument("--quick", action="store_true", help="short runs, for a smoke test (numbers are noisy)")
    parser.add_argument("--port-base", type=int, default=18000, help="loopback ports used: base+100 .. base+509")
    parser.add_argument("--out", type=Path, default=REPO / ".cache" / "bench", help="results.json, results.md")
    parser.add_argument("--img", type=Path, help="write the plots here (default: OUT/img)")
    parser.add_argument("--docs", type=Path, help="fill the results section of this markdown file")
    parser.add_argument("--summary", type=Path, action="append", default=[],
                        help="fill the summary section of this markdown file (repeatable; only after every "
                             "comparison ran)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--profile", default=comparisons.DEFAULT_PROFILE, choices=_profile_names(),
                        help="the simulator's GPU profile for the comparisons that model batching (affinity; "
                             f"default {comparisons.DEFAULT_PROFILE})")
    parser.add_argument("--no-peer", dest="peer", action="store_false",
                        help=f"skip the peer client ({peer.NAME}, from {peer.VENV.relative_to(REPO)}: make "
                             "bench-peer-venv) in the streaming and heterogeneous comparisons")


def main(args: argparse.Namespace) -> int:
    selected = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = sorted(set(selected) - set(comparisons.ALL))
    if unknown or not 1 <= args.reps <= 20:
        print(f"gpufleet-bench suite: unknown comparison(s) {unknown} or --reps outside 1..20", file=sys.stderr)
        return 2
    if args.peer and set(selected) & set(PEER_COMPARISONS) and not peer.available():
        print(f"gpufleet-bench suite: no peer client at {peer.executable()}: run make bench-peer-venv, or pass "
              "--no-peer", file=sys.stderr)
        return 2
    img = args.img or args.out / "img"
    command = "gpufleet-bench suite " + shlex.join(sys.argv[2:]) if len(sys.argv) > 2 else "gpufleet-bench suite"
    machine = report.machine()
    started = time.monotonic()
    outcomes: list[Outcome] = []
    with tempfile.TemporaryDirectory(prefix="gpufleet-bench-") as tmp:
        bench = comparisons.Bench(Path(tmp), args.port_base, reps=args.reps, quick=args.quick, seed=args.seed, img=img,
                                  peer=args.peer, profile=args.profile)
        bench.render()
        for name in selected:
            run: Callable[[comparisons.Bench], Outcome] = comparisons.ALL[name]
            begun = time.monotonic()
            print(f"gpufleet-bench: {name} ...", file=sys.stderr, flush=True)
            outcome = run(bench)
            outcome.wall_s = time.monotonic() - begun
            outcomes.append(outcome)
            for check in outcome.checks:
                verdict = ("(shown, no target)" if check.met is None else
                           f"(target {_target(check, ('>=', '<='))}) {'met' if check.met else 'MISSED'}")
                print(f"  {check.label}: {_fmt(check.value, check.unit)} {verdict}", file=sys.stderr, flush=True)
    results_md = markdown(outcomes, machine, command, args.reps)
    document = {"command": command, "machine": machine, "reps": args.reps, "quick": args.quick,
                "wall_s": time.monotonic() - started,
                "comparisons": {outcome.key: outcome.as_dict() for outcome in outcomes}}
    report.write_json(args.out / "results.json", document)
    (args.out / "results.md").write_text(results_md)
    if args.docs:
        update_docs(args.docs, results_md)
    if args.summary and set(selected) != set(comparisons.ALL):
        print("gpufleet-bench: summaries left as they were: they quote every comparison, and --only ran some",
              file=sys.stderr)
    elif args.summary:
        summary_md = summary_markdown(outcomes, machine, command, args.reps)
        for path in args.summary:
            update_docs(path, summary_md, SUMMARY_START, SUMMARY_END)
    print(json.dumps({outcome.key: {check.label: [_fmt(check.value), check.met] for check in outcome.checks}
                      for outcome in outcomes}, indent=1, ensure_ascii=False))
    print(f"gpufleet-bench: {time.monotonic() - started:.0f} s; results in {args.out}", file=sys.stderr)
    return 0
