"""Molecule verify for the scaling signals: under load above a pool's capacity (more streams than its instances
run at once), Prometheus asks for more instances, within the pool's bounds, and PoolNeedsMoreInstances fires
with the desired count; every request is still answered. The lab's pools: inventories/lab/group_vars/monitoring.
Load only through the lab's own load balancer, bounded in streams and time."""

from __future__ import annotations

import json
import threading
import time

from conftest import MODEL_A, prom_query, run_playbook, wait_until
from lab_traffic import BODY, PoolStreams

REGION = "us-east"
# The pool's 2 instances run 8 sequences each (the lab's max_num_seqs): 24 streams leave 8 waiting, so the load
# signal asks for ceil(24 / 8) = 3 instances (prometheus_scaling_requests_per_instance 8).
STREAMS = 24
LOAD_LIMIT_S = 90


def _desired(prometheus):
    return {s["metric"]["model_name"]: float(s["value"][1]) for s in prom_query(
        prometheus, f'pool:gpufleet_instances_desired:count{{region="{REGION}"}}')}


def _firing(prometheus):
    return [a for a in prometheus.get("/api/v1/alerts").json()["data"]["alerts"]
            if a["labels"].get("alertname") == "PoolNeedsMoreInstances" and a["labels"].get("region") == REGION
            and a["state"] == "firing"]


def test_a_pool_under_load_asks_for_more_instances_within_its_bounds(fleet, prometheus):
    pool = next(p for p in fleet.hostvars[fleet.groups["monitoring"][0]]["prometheus_scaling_pools"]
                if p["region"] == REGION and p["model"] == MODEL_A)
    assert _desired(prometheus).get(MODEL_A) == pool["min"], "an idle pool wants its min"
    stop, statuses, lock = threading.Event(), [], threading.Lock()
    url = f"{fleet.lb_url(REGION)}/v1/chat/completions"

    def stream():
        with fleet.client(timeout=60) as client:
            deadline = time.monotonic() + LOAD_LIMIT_S
            while not stop.is_set() and time.monotonic() < deadline:
                # 64 tokens 15 ms apart (the lab's simulator): about 1 s a stream.
                with client.stream("POST", url, json=dict(BODY, model=MODEL_A, max_tokens=64)) as response:
                    for _ in response.iter_lines():
                        pass
                with lock:
                    statuses.append(response.status_code)

    threads = [threading.Thread(target=stream, daemon=True) for _ in range(STREAMS)]
    for thread in threads:
        thread.start()
    try:
        wait_until(lambda: _firing(prometheus), LOAD_LIMIT_S - 10,
                   f"PoolNeedsMoreInstances for {MODEL_A} in {REGION} under {STREAMS} streams", interval=2)
        desired = _desired(prometheus)[MODEL_A]
        (alert,) = _firing(prometheus)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=70)
    assert pool["min"] < desired <= pool["max"]
    assert alert["labels"]["model_name"] == MODEL_A and float(alert["annotations"]["desired"]) >= 3
    assert statuses and set(statuses) == {200}, f"{len(statuses)} streams: {sorted(set(statuses))}"


def _scale(to, *extra):
    return run_playbook("playbooks/scale.yml", "-e", f"gpufleet_scale_region={REGION}", "-e",
                        f"gpufleet_scale_model={MODEL_A}", "-e", f"gpufleet_scale_to={to}", *extra)


def _targets(prometheus, host):
    return [t for t in prometheus.get("/api/v1/targets").json()["data"]["activeTargets"]
            if t["labels"].get("job") == "model_servers" and t["labels"].get("host") == host]


def test_scaling_by_hand_brings_the_standby_node_in_and_drains_it_out_without_a_failed_request(
        fleet, lab_host, prometheus):
    (host,) = [h for h in fleet.groups["gpu_nodes"] if fleet.hostvars[h].get("gpufleet_standby")]
    address = fleet.hostvars[host]["ansible_host"]
    lbs = [lb for lb in fleet.groups["load_balancers"] if fleet.region_of(lb) == REGION]
    ports = (8000, 8001)
    assert not any(lab_host(host).service(f"model-server@{p}").is_running for p in ports), "standby serves nothing"

    dry = _scale(4, "-e", "gpufleet_scaling_dry_run=true")
    assert dry.returncode == 0, dry.stdout[-3000:]
    assert not any(lab_host(host).service(f"model-server@{p}").is_running for p in ports), "a dry run changed nothing"

    with PoolStreams(fleet, REGION, MODEL_A) as load:
        time.sleep(2)
        out = _scale(4)
        assert out.returncode == 0, out.stdout[-4000:]
        for port in ports:
            assert lab_host(host).service(f"model-server@{port}").is_running
        for lb in lbs:
            assert address in lab_host(lb).file("/etc/nginx/nginx.conf").content_string
        wait_until(lambda: len(_targets(prometheus, host)) == len(ports)
                   and all(t["health"] == "up" for t in _targets(prometheus, host)), 60, f"Prometheus scrapes {host}")
        state = json.loads(lab_host(host).file("/etc/ansible/facts.d/gpufleet_scaling.fact").content_string)
        assert state == {"in_service": True}
        # A later run of the fleet's playbooks keeps the size scaling chose.
        again = run_playbook("playbooks/load_balancers.yml", "--tags", "nginx_lb")
        assert again.returncode == 0 and "changed=0" in again.stdout.split("PLAY RECAP")[-1], again.stdout[-3000:]
        time.sleep(2)
        back = _scale(2)
        assert back.returncode == 0, back.stdout[-4000:]
        time.sleep(2)
    print(f"scale out and in under load: {dict(load.outcomes)}")
    assert load.outcomes["ok"] > 20 and load.failures == [], load.failures[:10]
    for port in ports:
        unit = lab_host(host).service(f"model-server@{port}")
        assert not unit.is_running and not unit.is_enabled
    for lb in lbs:
        assert address not in lab_host(lb).file("/etc/nginx/nginx.conf").content_string
