"""Comparison 7: a change that restarts every model server, under streaming load, rolled against all at once.

Both arms run on the lab fleet (make lab first), one after the other in one run, with the same load: streamed
chats through each region's load balancer (lab addresses and loopback only, bounded in count and time).
- rolling: `site.yml -e <changed simulator setting>`, which drains, restarts and readmits batch by batch;
- all at once: what site.yml did before, the same new environment written and every instance restarted in one go.
The change gives the simulator a model load of `--load-s` seconds (a real engine's takes minutes), during which an
instance answers 503. Per arm: failed requests, TTFT p99 during the change over the steady state before it, the
change's wall time, and a plot of requests served and instances ready over time.

    flock /tmp/gpufleet-lab.lock .venv/bin/python tests/bench/rollout.py --out .cache/bench --img docs/img \
        [--docs docs/benchmarks.md]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from lab_traffic import Background, answers_models, lab_client, published_url, stream_chat

REPO = Path(__file__).resolve().parents[2]
INVENTORY = REPO / "inventories" / "lab"
BIN = Path(sys.executable).parent
STREAMS_PER_REGION = 3
STEADY_S = 20
ARM_TIMEOUT_S = 600
REQUESTS_MAX = 20000


def _inventory() -> dict:
    out = subprocess.run([str(BIN / "ansible-inventory"), "-i", str(INVENTORY), "--list"], cwd=REPO, check=True,
                         capture_output=True, text=True, timeout=120).stdout
    return json.loads(out)


class Fleet:
    def __init__(self):
        inventory = _inventory()
        sys.path.insert(0, str(REPO / ".collections"))
        from ansible_collections.gpufleet.llm.plugins.plugin_utils.fleet import fleet_model_servers

        self.hostvars = inventory["_meta"]["hostvars"]
        self.gpu_nodes = sorted(inventory["gpu_nodes"]["hosts"])
        self.lbs = sorted(inventory["load_balancers"]["hosts"])
        self.servers = fleet_model_servers(self.hostvars, self.gpu_nodes)

    def lb_url(self, lb: str) -> str:
        return published_url(self.hostvars[lb], 443, "https")

    def server_url(self, server: dict) -> str:
        return f"http://{self.hostvars[server['host']]['ansible_host']}:{server['port']}"

    def settings(self, load_s: float) -> dict:
        return dict(self.hostvars[self.gpu_nodes[0]]["model_server_simulator_settings"], startup_delay_s=load_s)


class Recorder(Background):
    """Streams through every load balancer, and every 0.5 s how many instances answer /v1/models."""

    def __init__(self, fleet: Fleet):
        super().__init__()
        self.fleet = fleet
        self.t0 = time.monotonic()
        self.deadline = self.t0 + ARM_TIMEOUT_S + STEADY_S * 2
        self.requests: list[tuple[float, bool, float | None]] = []  # (end time, ok, ttft)
        self.ready: list[tuple[float, int]] = []
        for lb in fleet.lbs:
            for _ in range(STREAMS_PER_REGION):
                self.run(self._stream, lb)
        self.run(self._sample)

    def _stream(self, lb: str) -> None:
        with lab_client(self.fleet.hostvars[lb], timeout=60) as client:
            while not self.stop.is_set() and time.monotonic() < self.deadline and len(self.requests) < REQUESTS_MAX:
                outcome = stream_chat(client, self.fleet.lb_url(lb))
                with self.lock:
                    self.requests.append((time.monotonic() - self.t0, outcome.ok, outcome.ttft_s))

    def _sample(self) -> None:
        with httpx.Client(timeout=2) as client:
            while not self.stop.is_set() and time.monotonic() < self.deadline:
                ready = sum(answers_models(client, self.fleet.server_url(s)) for s in self.fleet.servers)
                self.ready.append((time.monotonic() - self.t0, ready))
                time.sleep(0.5)


def _all_ready(fleet: Fleet, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    with httpx.Client(timeout=2) as client:
        while time.monotonic() < deadline:
            if all(answers_models(client, fleet.server_url(s)) for s in fleet.servers):
                return
            time.sleep(0.5)
    raise RuntimeError("instances not ready after the change")


def rolling(fleet: Fleet, load_s: float) -> None:
    extra = json.dumps({"model_server_simulator_settings": fleet.settings(load_s)})
    result = subprocess.run([str(BIN / "ansible-playbook"), "-i", str(INVENTORY), "playbooks/site.yml", "-e", extra],
                            cwd=REPO, capture_output=True, text=True, timeout=ARM_TIMEOUT_S, check=False)
    if result.returncode:
        raise RuntimeError(result.stdout[-3000:])


def all_at_once(fleet: Fleet, load_s: float) -> None:
    """Before the rollout: the new environment on every instance, then every instance restarted in one loop."""
    for host in fleet.gpu_nodes:
        container = host
        ports = [s["port"] for s in fleet.servers if s["host"] == host]
        if not ports:
            continue  # a standby node out of service runs no instance to restart
        script = " && ".join(
            [f"sed -i 's/^GPUFLEET_SIM_STARTUP_DELAY_S=.*$/GPUFLEET_SIM_STARTUP_DELAY_S={load_s}/' "
             f"/etc/gpufleet/model-server/{p}.env" for p in ports]
            + ["systemctl restart " + " ".join(f"model-server@{p}.service" for p in ports)])
        subprocess.Popen(["podman", "exec", container, "sh", "-c", script])
    time.sleep(1)
    _all_ready(fleet, ARM_TIMEOUT_S)


def measure(fleet: Fleet, name: str, change, load_s: float) -> dict:
    with Recorder(fleet) as rec:
        time.sleep(STEADY_S)
        began = time.monotonic() - rec.t0
        change(fleet, load_s)
        ended = time.monotonic() - rec.t0
        time.sleep(5)
    steady = [t for end, ok, t in rec.requests if end < began and ok and t is not None]
    during = [t for end, ok, t in rec.requests if began <= end <= ended + 5 and ok and t is not None]

    def p99(xs):
        return statistics.quantiles(xs, n=100)[98] if len(xs) >= 2 else float("nan")

    return {"arm": name, "requests": len(rec.requests), "failed": sum(not ok for _, ok, _ in rec.requests),
            "failed_during": sum(not ok for end, ok, _ in rec.requests if began <= end <= ended + 5),
            "ttft_p99_steady_ms": p99(steady) * 1000, "ttft_p99_during_ms": p99(during) * 1000,
            "ttft_p99_ratio": p99(during) / p99(steady), "change_s": ended - began,
            "fewest_ready": min((n for t, n in rec.ready if began <= t <= ended), default=None),
            "instances": len(fleet.servers), "began": began, "ended": ended,
            "timeline": {"requests": rec.requests, "ready": rec.ready}}


def plot(results: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(results), 1, figsize=(9, 3.2 * len(results)), sharex=True)
    for ax, result in zip(axes, results, strict=True):
        reqs = result["timeline"]["requests"]
        end = int(max(t for t, _, _ in reqs)) + 1
        ok = [sum(1 for t, good, _ in reqs if s <= t < s + 1 and good) for s in range(end)]
        bad = [sum(1 for t, good, _ in reqs if s <= t < s + 1 and not good) for s in range(end)]
        ax.bar(range(end), ok, width=1.0, color="tab:green", label="requests served / s")
        ax.bar(range(end), bad, bottom=ok, width=1.0, color="tab:red", label="requests failed / s")
        ax.axvspan(result["began"], result["ended"], color="grey", alpha=0.15, label="change")
        twin = ax.twinx()
        twin.step([t for t, _ in result["timeline"]["ready"]], [n for _, n in result["timeline"]["ready"]],
                  color="tab:blue", where="post", label="instances ready")
        twin.set_ylim(0, result["instances"] + 1)
        twin.set_ylabel("instances ready")
        ax.set_ylabel("requests / s")
        ax.set_title(f"{result['arm']}: {result['failed']} failed, change {result['change_s']:.0f} s")
        ax.legend(loc="lower left", fontsize=7)
    axes[-1].set_xlabel("seconds")
    fig.tight_layout()
    fig.savefig(path, dpi=90)


MARK_START = "<!-- bench:rollout:start -->"
MARK_END = "<!-- bench:rollout:end -->"


def markdown(results: list[dict], load_s: float) -> str:
    """Both arms side by side, then the ratios, as docs/benchmarks.md quotes them."""
    rolling_, at_once = results
    lines = [f"`tests/bench/rollout.py`, {time.strftime('%Y-%m-%d', time.gmtime())}, load average "
             f"{' '.join(f'{value:.2f}' for value in os.getloadavg())} at the end; a model load of about "
             f"{load_s:g} s per instance.", "",
             "| arm | requests | failed | failed during the change | TTFT p99 during / steady | change wall time | "
             "fewest instances ready |", "| --- | --- | --- | --- | --- | --- | --- |"]
    for r in results:
        lines.append(f"| {r['arm']} | {r['requests']} | {r['failed']} | {r['failed_during']} | "
                     f"{r['ttft_p99_ratio']:.2f}x ({r['ttft_p99_during_ms']:.0f} / {r['ttft_p99_steady_ms']:.0f} ms) | "
                     f"{r['change_s']:.0f} s | {r['fewest_ready']} of {r['instances']} |")
    lines += ["", f"Rolling ÷ all at once: wall time {rolling_['change_s'] / at_once['change_s']:.1f}x, failed "
                  f"requests {rolling_['failed']} against {at_once['failed']}."]
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / ".cache" / "bench")
    parser.add_argument("--img", type=Path, default=None)
    parser.add_argument("--load-s", type=float, default=3.0)
    parser.add_argument("--docs", type=Path, help="fill the rollout section of this markdown file")
    args = parser.parse_args(argv)
    fleet = Fleet()
    # Each arm sets another load time than the one running, so that it changes every instance.
    running = subprocess.run(["podman", "exec", fleet.gpu_nodes[0], "cat",
                              f"/etc/gpufleet/model-server/{fleet.servers[0]['port']}.env"],
                             capture_output=True, text=True, check=True).stdout
    load_s = args.load_s + 0.5 if f"GPUFLEET_SIM_STARTUP_DELAY_S={args.load_s}\n" in running else args.load_s
    results = [measure(fleet, "rolling (site.yml)", rolling, load_s),
               measure(fleet, "all at once (before)", all_at_once, load_s + 1)]
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "rollout.json").write_text(json.dumps(results))
    if args.img:
        plot(results, args.img / "bench-rollout.png")
    table = markdown(results, load_s)
    print(table)
    if args.docs:
        sys.path.insert(0, str(REPO / "tests" / "bench"))
        from gpufleet_bench.suite import update_docs

        update_docs(args.docs, table, MARK_START, MARK_END)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
