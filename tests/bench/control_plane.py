"""Comparison 6: site.yml on the lab fleet with the collection's ansible.cfg against Ansible's defaults.

For each configuration (interleaved over the repetitions): recreate the lab's containers, then time the first
converge of playbooks/site.yml and the idempotent second run, and count changed tasks from the play recap.
The lab is shared with molecule runs, so run this under their lock (make bench-control-plane does):

    flock /tmp/gpufleet-lab.lock .venv/bin/python tests/bench/control_plane.py --out .cache/bench
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
INVENTORY = REPO / "inventories" / "lab"
RUN_TIMEOUT_S = 3600
# what Ansible needs to find the collection at all; everything else stays at Ansible's defaults
DEFAULTS_CFG = "[defaults]\ncollections_path = {collections}\n"
_RECAP = re.compile(r"^(?P<host>\S+)\s*:\s*ok=(?P<ok>\d+)\s+changed=(?P<changed>\d+)\s+unreachable=(?P<unreachable>\d+)"
                    r"\s+failed=(?P<failed>\d+)", re.MULTILINE)


def recap(output: str) -> dict[str, dict[str, int]]:
    """PLAY RECAP lines -> {host: {ok, changed, unreachable, failed}}."""
    return {match["host"]: {key: int(match[key]) for key in ("ok", "changed", "unreachable", "failed")}
            for match in _RECAP.finditer(output)}


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
                       "failed": sum(h["failed"] + h["unreachable"] for h in hosts.values()), "hosts": len(hosts)}
    return result


def markdown(runs: list[dict]) -> str:
    def median(config: str, run: str) -> float:
        values = sorted(r[run]["wall_s"] for r in runs if r["config"] == config)
        middle = len(values) // 2
        return values[middle] if len(values) % 2 else (values[middle - 1] + values[middle]) / 2

    lines = ["| site.yml on the lab | collection's ansible.cfg | Ansible's defaults | defaults ÷ collection |",
             "|---|---:|---:|---:|"]
    for run, label in (("first", "first converge (s)"), ("second", "second run (s)")):
        ours, theirs = median("collection", run), median("defaults", run)
        lines.append(f"| {label} | {ours:.0f} | {theirs:.0f} | {theirs / ours:.2f} |")
    for run in ("first", "second"):
        changed = {config: [r[run]["changed"] for r in runs if r["config"] == config]
                   for config in ("collection", "defaults")}
        lines.append(f"| changed tasks, {run} run | {changed['collection']} | {changed['defaults']} | |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reps", type=int, default=1, choices=range(1, 6), metavar="1..5")
    parser.add_argument("--out", type=Path, default=REPO / ".cache" / "bench")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    log = args.out / "control-plane.log"
    log.write_text("")
    runs = []
    with tempfile.TemporaryDirectory(prefix="gpufleet-control-plane-") as tmp:
        envs = environments(Path(tmp))
        for rep in range(args.reps):
            order = ["collection", "defaults"] if rep % 2 == 0 else ["defaults", "collection"]
            for name in order:
                runs.append(converge(name, envs[name], Path(tmp), log))
                print(json.dumps(runs[-1]), file=sys.stderr, flush=True)
    (args.out / "control-plane.json").write_text(json.dumps({"runs": runs}, indent=2) + "\n")
    table = markdown(runs)
    (args.out / "control-plane.md").write_text(table)
    print(table)
    idempotent = all(run["second"]["changed"] == 0 and run["second"]["rc"] == 0 for run in runs)
    return 0 if idempotent and all(run["first"]["rc"] == 0 for run in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
