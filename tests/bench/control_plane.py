"""Comparison 6: site.yml on the lab fleet with the collection's ansible.cfg against Ansible's defaults.

For each configuration (interleaved over the repetitions): recreate the lab's containers, then time the first
converge of playbooks/site.yml and the idempotent second run, and count changed tasks from the play recap.
Both runs carry ansible.posix's profile_roles callback, so the table also says which roles the second run
still spends its time in (issue 12, point 8: the second run should cost at most 0.3x the first).
The lab is shared with molecule runs, so run this under their lock (make bench-control-plane does):

    flock /tmp/gpufleet-lab.lock .venv/bin/python tests/bench/control_plane.py --docs docs/benchmarks.md
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
INVENTORY = REPO / "inventories" / "lab"
RUN_TIMEOUT_S = 3600
CONFIGS = ("collection", "defaults")
CONFIG_LABELS = {"collection": "collection's ansible.cfg", "defaults": "Ansible's defaults"}
RERUN_TARGET = 0.3
MARK_START = "<!-- bench:control-plane:start -->"
MARK_END = "<!-- bench:control-plane:end -->"
# what Ansible needs to find the collection at all; everything else stays at Ansible's defaults
DEFAULTS_CFG = "[defaults]\ncollections_path = {collections}\n"
_RECAP = re.compile(r"^(?P<host>\S+)\s*:\s*ok=(?P<ok>\d+)\s+changed=(?P<changed>\d+)\s+unreachable=(?P<unreachable>\d+)"
                    r"\s+failed=(?P<failed>\d+)", re.MULTILINE)


def recap(output: str) -> dict[str, dict[str, int]]:
    """PLAY RECAP lines -> {host: {ok, changed, unreachable, failed}}."""
    return {match["host"]: {key: int(match[key]) for key in ("ok", "changed", "unreachable", "failed")}
            for match in _RECAP.finditer(output)}


# profile_roles' summary: "gpufleet.llm.model_server ------ 33.42s"; "total" is the sum, not a role.
_ROLE_TIME = re.compile(r"^(?P<role>[\w.]+) -+ (?P<seconds>[\d.]+)s$", re.MULTILINE)


def role_seconds(output: str) -> dict[str, float]:
    """profile_roles' per-role wall time, without its total."""
    return {match["role"].removeprefix("gpufleet.llm."): float(match["seconds"])
            for match in _ROLE_TIME.finditer(output) if match["role"] != "total"}


def _playbook(env: dict[str, str], log: Path, *args: str) -> tuple[float, str, int]:
    command = [str(Path(sys.executable).with_name("ansible-playbook")), "-i", str(INVENTORY), *args]
    started = time.monotonic()
    result = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=RUN_TIMEOUT_S,
                            check=False)
    wall = time.monotonic() - started
    with log.open("a") as out:
        out.write(f"$ {' '.join(command)}  # {wall:.1f} s, rc {result.returncode}\n{result.stdout}{result.stderr}\n")
    return wall, result.stdout, result.returncode


def environments(workdir: Path) -> dict[str, dict[str, str]]:
    defaults_cfg = workdir / "ansible-defaults.cfg"
    defaults_cfg.write_text(DEFAULTS_CFG.format(collections=REPO / ".collections"))
    base = {key: value for key, value in os.environ.items() if not key.startswith("ANSIBLE_")}
    # the same callback in both configurations, so that it costs both the same
    base["ANSIBLE_CALLBACKS_ENABLED"] = "ansible.posix.profile_roles"
    return {
        # a fresh fact cache per run, so the first converge starts cold as on a new controller
        "collection": dict(base, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"),
                           ANSIBLE_CACHE_PLUGIN_CONNECTION=str(workdir / "facts")),
        "defaults": dict(base, ANSIBLE_CONFIG=str(defaults_cfg)),
    }


def converge(name: str, env: dict[str, str], workdir: Path, log: Path) -> dict:
    env = dict(env)
    if "ANSIBLE_CACHE_PLUGIN_CONNECTION" in env:
        env["ANSIBLE_CACHE_PLUGIN_CONNECTION"] = tempfile.mkdtemp(prefix="facts-", dir=workdir)
    for args in (("playbooks/lab.yml", "-e", "lab_state=absent"), ("playbooks/lab.yml",)):
        _, _, code = _playbook(env, log, *args)
        if code != 0:
            raise RuntimeError(f"{name}: ansible-playbook {' '.join(args)} failed; see {log}")
    result = {"config": name}
    for run in ("first", "second"):
        wall, output, code = _playbook(env, log, "playbooks/site.yml")
        hosts = recap(output)
        result[run] = {"wall_s": wall, "rc": code, "changed": sum(h["changed"] for h in hosts.values()),
                       "failed": sum(h["failed"] + h["unreachable"] for h in hosts.values()), "hosts": len(hosts),
                       "roles_s": role_seconds(output)}
    return result


def markdown(runs: list[dict]) -> str:
    """Both configurations side by side, the rerun ratio against its target, and where the rerun spends its time."""
    configs = [config for config in CONFIGS if any(r["config"] == config for r in runs)]

    def median(config: str, run: str) -> float:
        return statistics.median([r[run]["wall_s"] for r in runs if r["config"] == config])

    def walls(config: str, run: str) -> str:
        return ", ".join(f"{r[run]['wall_s']:.0f}" for r in runs if r["config"] == config)

    reps = len(runs) // len(configs)
    lines = [f"`tests/bench/control_plane.py`, {time.strftime('%Y-%m-%d', time.gmtime())}, {os.cpu_count()} CPUs, "
             f"load average {' '.join(f'{value:.2f}' for value in os.getloadavg())} at the end; {reps} run(s) per "
             "configuration, medians.", "",
             "| site.yml on the lab | " + " | ".join(CONFIG_LABELS[c] for c in configs) + " |",
             "|---|" + "---:|" * len(configs)]
    for run, label in (("first", "first converge (s)"), ("second", "second run (s)")):
        lines.append(f"| {label} | " + " | ".join(f"{median(c, run):.0f} ({walls(c, run)})" for c in configs) + " |")
    lines.append("| **second ÷ first** | " + " | ".join(
        f"**{median(c, 'second') / median(c, 'first'):.2f}**" for c in configs) + " |")
    for run in ("first", "second"):
        lines.append(f"| changed tasks, {run} run | " + " | ".join(
            ", ".join(str(r[run]["changed"]) for r in runs if r["config"] == c) for c in configs) + " |")
    ours = [r for r in runs if r["config"] == configs[0]]
    ratio = median(configs[0], "second") / median(configs[0], "first")
    lines += ["", f"Second run ÷ first converge with the {CONFIG_LABELS[configs[0]]}: {ratio:.2f} against a target "
              f"of at most {RERUN_TARGET} ({'met' if ratio <= RERUN_TARGET else '**missed**'}).", ""]
    roles = sorted({role for r in ours for role in r["second"]["roles_s"]},
                   key=lambda role: -statistics.median([r["second"]["roles_s"].get(role, 0.0) for r in ours]))
    lines += [f"Where the time goes, {CONFIG_LABELS[configs[0]]} (profile_roles, s, median):", "",
              "| role | first converge | second run | second ÷ first |", "|---|---:|---:|---:|"]
    for role in roles:
        first = statistics.median([r["first"]["roles_s"].get(role, 0.0) for r in ours])
        second = statistics.median([r["second"]["roles_s"].get(role, 0.0) for r in ours])
        lines.append(f"| {role} | {first:.1f} | {second:.1f} | {second / first if first else float('nan'):.2f} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reps", type=int, default=1, choices=range(1, 6), metavar="1..5")
    parser.add_argument("--out", type=Path, default=REPO / ".cache" / "bench")
    parser.add_argument("--configs", nargs="+", choices=CONFIGS, default=list(CONFIGS),
                        help="the collection's ansible.cfg alone measures the rerun ratio in half the time")
    parser.add_argument("--docs", type=Path, help="fill the control-plane section of this markdown file")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    log = args.out / "control-plane.log"
    log.write_text("")
    runs = []
    with tempfile.TemporaryDirectory(prefix="gpufleet-control-plane-") as tmp:
        envs = environments(Path(tmp))
        for rep in range(args.reps):
            order = list(args.configs) if rep % 2 == 0 else list(reversed(args.configs))
            for name in order:
                runs.append(converge(name, envs[name], Path(tmp), log))
                print(json.dumps(runs[-1]), file=sys.stderr, flush=True)
    (args.out / "control-plane.json").write_text(json.dumps({"runs": runs}, indent=2) + "\n")
    table = markdown(runs)
    (args.out / "control-plane.md").write_text(table)
    print(table)
    if args.docs:
        sys.path.insert(0, str(REPO / "tests" / "bench"))
        from gpufleet_bench.suite import update_docs

        update_docs(args.docs, table, MARK_START, MARK_END)
    idempotent = all(run["second"]["changed"] == 0 and run["second"]["rc"] == 0 for run in runs)
    return 0 if idempotent and all(run["first"]["rc"] == 0 for run in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
