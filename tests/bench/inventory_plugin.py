"""Benchmark: `ansible-inventory --list` through gpufleet.llm.gpu_fleet against a plain YAML inventory.

Generates, in a temporary directory, a static gpu_fleet spec of N GPU hosts (default 10,000) in
R regions (default 8), plus two load balancers and a monitoring host per region, and two plain
YAML inventories that hold the same hosts, vars and groups: one entry per host (`plain`), and
YAML host patterns (`plain_ranges`, the fastest plain form). Checks that all three give the same
contract vars and groups, then runs `ansible-inventory --list` on each in rotating order and
reports median wall time, the ratios plugin/plain (target <= 1.5), CPU time and each run's peak
RSS (both from os.wait4, so they are that one process's, not a maximum over earlier children).

    .venv/bin/python tests/bench/inventory_plugin.py [--hosts 10000] [--regions 8] [--repeat 5]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / ".collections"))

from ansible_collections.gpufleet.llm.plugins.plugin_utils.gpu_fleet_names import (  # noqa: E402
    gpu_model_group,
    region_group,
)

MODELS = [  # (gpu_model, gpu_count, gpu_memory_mib)
    ("NVIDIA H100 80GB HBM3", 8, 81559),
    ("NVIDIA A100-SXM4-80GB", 8, 81920),
    ("NVIDIA L4", 4, 23034),
    ("NVIDIA H200", 8, 143771),
]
RANGES_PER_REGION = 4
CONTRACT_VARS = ("gpufleet_region", "gpu_count", "gpu_model", "gpu_memory_mib")
# plugin: the gpu_fleet spec; plain: one YAML entry per host; plain_ranges: YAML host patterns.
KINDS = ("plugin", "plain", "plain_ranges")


def fleet(hosts, regions):
    """[(region, [(range_pattern, first, last, digits, model)]...)] covering ``hosts`` GPU hosts."""
    layout = []
    per_region = [hosts // regions + (1 if index < hosts % regions else 0) for index in range(regions)]
    for index, count in enumerate(per_region):
        region = f"region{index + 1}-{['east', 'west'][index % 2]}"
        ranges, start = [], 1
        for part in range(RANGES_PER_REGION):
            size = count // RANGES_PER_REGION + (1 if part < count % RANGES_PER_REGION else 0)
            if size:
                ranges.append((start, start + size - 1, MODELS[(index + part) % len(MODELS)]))
                start += size
        layout.append((region, ranges))
    return layout


def write_spec(path, layout):
    regions = {}
    for region, ranges in layout:
        hosts = [
            {"names": f"gpu[{first:05d}:{last:05d}].{region}.example.com", "role": "gpu_node",
             "gpu_model": model, "gpu_count": count, "gpu_memory_mib": memory}
            for first, last, (model, count, memory) in ranges
        ]
        hosts.append({"names": f"lb[1:2].{region}.example.com", "role": "load_balancer"})
        hosts.append({"names": f"mon.{region}.example.com", "role": "monitoring"})
        regions[region] = {"hosts": hosts}
    spec = {"plugin": "gpufleet.llm.gpu_fleet", "sources": [{"source": "static", "regions": regions}]}
    path.write_text(yaml.safe_dump(spec, sort_keys=False))


def write_plain(path, layout, ranges_as_patterns=False):
    """The same inventory as a person or a CMDB export writes it: vars per group, and either one
    entry per host or (``ranges_as_patterns``) YAML inventory host patterns such as gpu[00001:00313]."""
    children = {"gpu_nodes": {"hosts": {}}, "load_balancers": {"hosts": {}}, "monitoring": {"hosts": {}}}
    for region, ranges in layout:
        region_hosts = {}
        for first, last, (model, count, memory) in ranges:
            # gpu_count differs between models, never within one, so it can be a model group var.
            group = children.setdefault(gpu_model_group(model), {
                "hosts": {}, "vars": {"gpu_model": model, "gpu_count": count, "gpu_memory_mib": memory}})
            if ranges_as_patterns:
                names = [f"gpu[{first:05d}:{last:05d}].{region}.example.com"]
            else:
                names = [f"gpu{number:05d}.{region}.example.com" for number in range(first, last + 1)]
            for name in names:
                region_hosts[name] = None
                children["gpu_nodes"]["hosts"][name] = None
                group["hosts"][name] = None
        for name in (f"lb1.{region}.example.com", f"lb2.{region}.example.com"):
            region_hosts[name] = None
            children["load_balancers"]["hosts"][name] = None
        region_hosts[f"mon.{region}.example.com"] = None
        children["monitoring"]["hosts"][f"mon.{region}.example.com"] = None
        children[region_group(region)] = {"hosts": region_hosts, "vars": {"gpufleet_region": region}}
    path.write_text(yaml.safe_dump({"all": {"children": children}}, sort_keys=False))


def run_once(source, env, out_path):
    """(wall seconds, CPU seconds, peak RSS in KiB) of one `ansible-inventory --list`."""
    with open(out_path, "wb") as out:
        started = time.perf_counter()
        process = subprocess.Popen([str(ROOT / ".venv/bin/ansible-inventory"), "-i", str(source), "--list"],
                                   stdout=out, stderr=subprocess.PIPE, env=env)
        _, status, usage = os.wait4(process.pid, 0)
        elapsed = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    stderr = process.stderr.read().decode()
    process.stderr.close()
    if process.returncode != 0 or "WARNING" in stderr or "ERROR" in stderr:
        raise SystemExit(f"ansible-inventory -i {source} failed ({process.returncode}):\n{stderr}")
    return elapsed, usage.ru_utime + usage.ru_stime, usage.ru_maxrss


def contract_view(listing):
    """Hosts' contract vars and the members (direct or through children) of every group."""
    def members(group):
        node = listing.get(group, {})
        found = set(node.get("hosts", []))
        for child in node.get("children", []):
            found |= members(child)
        return found

    groups = {group: sorted(members(group)) for group in listing if group not in ("_meta", "all", "ungrouped")}
    hostvars = {host: {key: hv[key] for key in CONTRACT_VARS if key in hv}
                for host, hv in listing["_meta"]["hostvars"].items()}
    return groups, hostvars


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--hosts", type=int, default=10000, help="GPU hosts (default 10000)")
    parser.add_argument("--regions", type=int, default=8, help="regions (default 8)")
    parser.add_argument("--repeat", type=int, default=5, help="timed runs of each (default 5)")
    parser.add_argument("--output", type=Path, default=ROOT / ".cache/bench/inventory_plugin.json",
                        help="JSON results (default .cache/bench/inventory_plugin.json)")
    args = parser.parse_args()
    if not 1 <= args.repeat <= 50 or args.hosts < args.regions:
        parser.error("need 1 <= --repeat <= 50 and --hosts >= --regions")

    with tempfile.TemporaryDirectory(prefix="gpu-fleet-bench-") as tmp_name:
        tmp = Path(tmp_name)
        (tmp / "ansible.cfg").write_text(
            f"[defaults]\ncollections_path = {ROOT / '.collections'}\nfact_caching = memory\n"
            "[inventory]\ncache = false\n")
        env = dict(os.environ, ANSIBLE_CONFIG=str(tmp / "ansible.cfg"), ANSIBLE_NOCOLOR="1")
        layout = fleet(args.hosts, args.regions)
        sources = {kind: tmp / kind / "hosts.yml" for kind in KINDS}
        sources["plugin"] = tmp / "plugin" / "bench.gpu_fleet.yml"
        for path in sources.values():
            path.parent.mkdir()
        write_spec(sources["plugin"], layout)
        write_plain(sources["plain"], layout)
        write_plain(sources["plain_ranges"], layout, ranges_as_patterns=True)

        # Warm-up, and proof that the two inventories are the same.
        views = {}
        for kind, source in sources.items():
            run_once(source, env, tmp / f"{kind}.json")
            views[kind] = contract_view(json.loads((tmp / f"{kind}.json").read_text()))
        if not views["plugin"] == views["plain"] == views["plain_ranges"]:
            raise SystemExit("the spec and the plain inventories differ; the benchmark would compare different things")
        host_count = len(views["plain"][1])

        runs = {kind: [] for kind in KINDS}
        for repetition in range(args.repeat):
            # Rotate the order so that no inventory always runs first (or last) in a round.
            shift = repetition % len(KINDS)
            for kind in KINDS[shift:] + KINDS[:shift]:
                seconds, cpu, rss_kib = run_once(sources[kind], env, tmp / f"{kind}.json")
                runs[kind].append({"seconds": round(seconds, 3), "cpu_seconds": round(cpu, 3),
                                   "peak_rss_mib": round(rss_kib / 1024, 1)})
        sizes = {kind: source.stat().st_size for kind, source in sources.items()}

    summary = {}
    for kind, measured in runs.items():
        summary[kind] = {
            "median_seconds": round(statistics.median(run["seconds"] for run in measured), 3),
            "min_seconds": min(run["seconds"] for run in measured),
            "max_seconds": max(run["seconds"] for run in measured),
            "median_cpu_seconds": round(statistics.median(run["cpu_seconds"] for run in measured), 3),
            "median_peak_rss_mib": round(statistics.median(run["peak_rss_mib"] for run in measured), 1),
            "source_bytes": sizes[kind],
            "runs": measured,
        }
    ratio = round(summary["plugin"]["median_seconds"] / summary["plain"]["median_seconds"], 3)
    ratio_ranges = round(summary["plugin"]["median_seconds"] / summary["plain_ranges"]["median_seconds"], 3)
    # CPU time (user + sys of the one process) hardly moves when other work shares the machine; wall time does.
    cpu_ratios = {kind: round(summary["plugin"]["median_cpu_seconds"] / summary[kind]["median_cpu_seconds"], 3)
                  for kind in ("plain", "plain_ranges")}
    result = {
        "benchmark": "ansible-inventory --list, gpu_fleet static spec vs plain YAML",
        "gpu_hosts": args.hosts, "hosts": host_count, "regions": args.regions, "repeat": args.repeat,
        "time_ratio_plugin_over_plain": ratio, "time_ratio_plugin_over_plain_ranges": ratio_ranges,
        "cpu_ratio_plugin_over_plain": cpu_ratios["plain"],
        "cpu_ratio_plugin_over_plain_ranges": cpu_ratios["plain_ranges"],
        "load_average_1m_at_end": round(os.getloadavg()[0], 2),
        "target_ratio": 1.5, "within_target": ratio <= 1.5 and ratio_ranges <= 1.5,
        "python": platform.python_version(), "cpus": os.cpu_count(), "machine": platform.machine(),
        **summary,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")

    print(f"{host_count} hosts ({args.hosts} GPU hosts) in {args.regions} regions, "
          f"{args.repeat} runs each, rotating order")
    print(f"{'inventory':<13} {'source bytes':>12} {'median s':>9} {'min s':>7} {'max s':>7} {'CPU s':>6} "
          f"{'peak RSS MiB':>13}")
    for kind in KINDS:
        row = summary[kind]
        print(f"{kind:<13} {row['source_bytes']:>12} {row['median_seconds']:>9.2f} {row['min_seconds']:>7.2f} "
              f"{row['max_seconds']:>7.2f} {row['median_cpu_seconds']:>6.2f} {row['median_peak_rss_mib']:>13.1f}")
    for name, value in (("plain", ratio), ("plain_ranges", ratio_ranges)):
        print(f"time ratio plugin/{name}: {value:.2f} (target <= 1.5: {'met' if value <= 1.5 else 'MISSED'}); "
              f"CPU time ratio {cpu_ratios[name]:.2f}")
    print(f"load average (1 min) at the end: {result['load_average_1m_at_end']} on {os.cpu_count()} CPUs")
    print(f"JSON: {args.output}")
    return 0 if result["within_target"] else 1


if __name__ == "__main__":
    sys.exit(main())
