"""The contract check's cost at fleet sizes: the whole check once, plus one per-host preflight per host.

Plain dicts stand in for Ansible's hostvars and groups, so this times fleet.py's own work, not Ansible's
variable manager. Before issue 11 each preflight re-ran the whole check (quadratic: about 265 s at 4,000
GPU nodes); now a preflight reads only its own host. Target: linear, 4,000 GPU nodes in at most 1 s.

    .venv/bin/python tests/bench/contract_check.py               # --sizes 1000 4000 10000 --repeat 3
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / ".collections"))

from ansible_collections.gpufleet.llm.plugins.plugin_utils.fleet import validate_fleet  # noqa: E402
from ansible_collections.gpufleet.llm.plugins.plugin_utils.fleet_defaults import role_defaults  # noqa: E402

REGIONS = 8
TARGET_S = {4000: 1.0}


def fleet(gpu_nodes, regions=REGIONS):
    """A valid inventory: ``gpu_nodes`` 8-GPU nodes spread over ``regions``, 2 load balancers per region."""
    hostvars, groups = {}, {"gpu_nodes": [], "load_balancers": [], "monitoring": []}
    for index in range(gpu_nodes):
        region = f"r{index % regions}"
        host = f"gpu{index:05d}.{region}"
        hostvars[host] = {"gpufleet_region": region, "gpu_count": 8, "gpu_model": "NVIDIA H100",
                          "ansible_host": f"10.{index // 65536}.{index // 256 % 256}.{index % 256}"}
        groups["gpu_nodes"].append(host)
        groups.setdefault(f"region_{region}", []).append(host)
    for region in range(regions):
        for lb in range(2):
            host = f"lb{lb}.r{region}"
            hostvars[host] = {"gpufleet_region": f"r{region}", "ansible_host": f"10.255.{region}.{lb}"}
            groups["load_balancers"].append(host)
            groups[f"region_r{region}"].append(host)
    groups["all"] = list(hostvars)
    own = {}
    for name, members in groups.items():
        for host in members if name != "all" else ():
            own.setdefault(host, []).append(name)
    for host, hv in hostvars.items():  # as Ansible's hostvars give it (inventory/host.py, magic vars)
        hv["group_names"] = sorted(own[host])
    return hostvars, groups


def run(gpu_nodes):
    """Seconds for the whole check, and for one preflight per GPU node and load balancer."""
    hostvars, groups = fleet(gpu_nodes)
    defaults = role_defaults()
    start = time.perf_counter()
    assert validate_fleet(hostvars, groups, defaults=defaults) == []
    whole = time.perf_counter() - start
    start = time.perf_counter()
    for host in groups["gpu_nodes"] + groups["load_balancers"]:
        assert validate_fleet(hostvars, groups, [host], defaults=defaults) == []
    return whole, time.perf_counter() - start


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 4000, 10000])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    print("| GPU nodes | whole check s | all preflights s | total s | total per 1,000 nodes s |")
    print("|----------:|--------------:|-----------------:|--------:|------------------------:|")
    failed = False
    for size in args.sizes:
        runs = [run(size) for _ in range(args.repeat)]
        whole = statistics.median(r[0] for r in runs)
        preflights = statistics.median(r[1] for r in runs)
        total = whole + preflights
        print(f"| {size:,} | {whole:.3f} | {preflights:.3f} | {total:.3f} | {total / size * 1000:.3f} |")
        if size in TARGET_S and total > TARGET_S[size]:
            print(f"  over the target of {TARGET_S[size]} s at {size:,} GPU nodes", file=sys.stderr)
            failed = True
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
