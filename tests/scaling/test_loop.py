"""The scaling loop end to end in the lab (make test-scaling; the lab must be up): load above us-east's capacity
makes the queue grow, PoolNeedsMoreInstances fires, Alertmanager posts it to the scaling controller on
lab-monitoring, its rulebook runs gpufleet.llm.scale, and the standby node lab-use-gpu3 joins; when the load stops,
PoolCanGiveBackInstances fires and, after the cooldown, the node is drained and taken out. No request fails over
the whole run. Reports the time from overload to added capacity and the TTFT p95 before and after, in
.cache/bench/scaling.json; with GPUFLEET_SCALING_DOCS (docs/benchmarks.md) and GPUFLEET_SCALING_IMG (docs/img) set
(make bench-scaling), a run that passes also writes its table into section 10 and its plot (scaling_report.py).
Load only through the lab's own load balancer, bounded in streams, requests and time."""

from __future__ import annotations

import importlib.util
import json
import os
import time
from pathlib import Path

_spec = importlib.util.spec_from_file_location(
    "lab_verify", Path(__file__).resolve().parents[2] / "molecule" / "default" / "tests" / "conftest.py")
lab = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(lab)
import scaling_report  # noqa: E402  (beside this test)
from lab_traffic import PoolStreams  # noqa: E402  (on the path lab_verify sets)

REGION, MODEL = "us-east", lab.MODEL_A
LOOP_VARS = Path(__file__).resolve().parent / "lab_loop.yml"
STREAMS = 24  # 2 instances of 8 sequences each: 8 wait, the load asks for ceil(24 / 8) = 3 instances
REQUESTS_MAX = 20000
RUN_LIMIT_S = 900
PORTS = (8000, 8001)  # the standby node's two instances (gpu_count 2)
CALM_STREAMS, TAIL_STREAMS = 2, 2
OUT = Path(__file__).resolve().parents[2] / ".cache" / "bench"

# The lab's fixtures, found by pytest in this module's namespace.
fleet, prometheus, lab_host = lab.fleet, lab.prometheus, lab.lab_host


def _load(fleet_, streams):
    """``streams`` streamed chats of the pool through its region's load balancer, bounded as the run is."""
    return PoolStreams(fleet_, REGION, MODEL, streams=streams, seconds=RUN_LIMIT_S, requests=REQUESTS_MAX)


def _in_service(lab_host_, host):
    fact = lab_host_(host).file("/etc/ansible/facts.d/gpufleet_scaling.fact")
    return fact.exists and json.loads(fact.content_string).get("in_service") is True


def _decisions(lab_host_, monitoring):
    log = lab_host_(monitoring).file("/var/lib/gpufleet-scaling/decisions.jsonl")
    return [json.loads(line) for line in log.content_string.splitlines()] if log.exists else []


def test_the_loop_adds_the_standby_node_under_overload_and_gives_it_back_after_without_a_failed_request(
        fleet, prometheus, lab_host):
    (host,) = [h for h in fleet.groups["gpu_nodes"] if fleet.hostvars[h].get("gpufleet_standby")]
    monitoring = fleet.groups["monitoring"][0]
    settings = scaling_report.loop_settings(fleet.hostvars[monitoring], LOOP_VARS)
    converge = lab.run_playbook("playbooks/site.yml", "--tags", "alertmanager,scaling_controller",
                                "-e", f"@{LOOP_VARS}", timeout=900)
    assert converge.returncode == 0, converge.stdout[-4000:]
    assert lab_host(monitoring).service("gpufleet-scaling").is_running
    assert not _in_service(lab_host, host), "the standby node starts out of service"
    logged = len(_decisions(lab_host, monitoring))

    with _load(fleet, CALM_STREAMS) as calm:
        calm_start = time.monotonic()
        time.sleep(20)
    calm_p95 = calm.ttft_p95(0, float("inf"))

    with _load(fleet, STREAMS) as load:
        overload, overload_wall = time.monotonic(), time.time()
        lab.wait_until(lambda: _in_service(lab_host, host), 420, f"the loop to bring {host} into service",
                       interval=2)
        in_service = time.monotonic()
        lab.wait_until(lambda: all(t["health"] == "up" for t in _scraped(prometheus, host)) and _scraped(
            prometheus, host), 300, f"Prometheus to scrape {host}", interval=2)
        added = time.monotonic()
        time.sleep(30)
        after = time.monotonic()
    before_p95, after_p95 = load.ttft_p95(overload, overload + 30), load.ttft_p95(added, after)

    with _load(fleet, TAIL_STREAMS) as tail:
        # Out of service first (the fact), then drained from the load balancers and stopped.
        lab.wait_until(lambda: not _in_service(lab_host, host) and not any(
            lab_host(host).service(f"model-server@{port}").is_running for port in PORTS), 420,
            f"the loop to drain and stop {host}", interval=2)
        removed = time.monotonic()
        time.sleep(5)
    end = time.monotonic()
    decisions = _decisions(lab_host, monitoring)[logged:]
    acted = [(d["action"], d["hosts"]) for d in decisions if d["action"] != "none"]
    print(f"overload -> added capacity: {added - overload:.0f} s; TTFT p95 calm {calm_p95:.3f} s, overloaded "
          f"before {before_p95} s, after {after_p95} s; taken out {removed - added:.0f} s after it joined; "
          f"load {dict(load.outcomes)}, tail {dict(tail.outcomes)}; decisions {[d['reason'] for d in decisions]}")
    p95 = {"light": calm_p95, "before": before_p95, "after": after_p95}
    result = _result(settings, host, {"calm": calm, "load": load, "tail": tail}, decisions=decisions,
                     overload=(overload, overload_wall), ttft_p95=p95,
                     times={"calm": calm_start, "in_service": in_service, "scraped": added, "load_end": after,
                            "removed": removed, "end": end})
    scaling_report.save(result, OUT)
    assert acted == [("out", [host]), ("in", [host])], decisions
    assert load.failures == [] and calm.failures == [] and tail.failures == [], (load.failures + tail.failures)[:10]
    assert load.outcomes["ok"] > 100
    assert after_p95 is not None and before_p95 is not None and after_p95 < before_p95
    address = fleet.hostvars[host]["ansible_host"]
    for lb in fleet.groups["load_balancers"]:
        assert address not in lab_host(lb).file("/etc/nginx/nginx.conf").content_string
    # Only a run that passed goes into the docs.
    scaling_report.publish(result, *(_env_path(name) for name in ("GPUFLEET_SCALING_DOCS", "GPUFLEET_SCALING_IMG")))


def _env_path(name):
    value = os.environ.get(name)
    return None if not value else Path(__file__).resolve().parents[2] / value


def _result(settings, host, loads, *, decisions, overload, times, ttft_p95):
    """What scaling_report reads, every time in seconds since the overload began: ``overload`` is its monotonic
    and wall-clock time, ``times`` monotonic, the decisions' times wall-clock (the lab's containers share this
    machine's clock)."""
    overload, overload_wall = overload

    def decided(action):
        return next((d["time"] - overload_wall for d in decisions if d["action"] == action), None)

    return {"region": REGION, "model": MODEL, "host": host, "settings": settings, "ttft_p95": ttft_p95,
            "streams": {"calm": CALM_STREAMS, "load": STREAMS, "tail": TAIL_STREAMS},
            "times": {"overload": 0.0, "scale_out_decision": decided("out"), "scale_in_decision": decided("in"),
                      **{name: at - overload for name, at in times.items()}},
            "samples": {name: [(at - overload, ttft) for at, ttft in load.samples] for name, load in loads.items()},
            "outcomes": {name: dict(load.outcomes) for name, load in loads.items()},
            "machine": scaling_report.machine()}


def _scraped(prometheus, host):
    return [t for t in prometheus.get("/api/v1/targets").json()["data"]["activeTargets"]
            if t["labels"].get("job") == "model_servers" and t["labels"].get("host") == host]
