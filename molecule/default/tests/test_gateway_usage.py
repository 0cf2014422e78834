"""Molecule verify for the gateway usage metrics (gateway_usage role): requests through each load balancer
appear in Prometheus as gpufleet_gateway_requests_total of that load balancer's mtail, per key and status.
Tests here take no `host` fixture, so they run once."""

from __future__ import annotations

import time

import httpx
import pytest
from ansible_collections.gpufleet.llm.plugins.module_utils.fleet import host_address

REQUESTS = 4
HTTP_TIMEOUT = 30
# Scrapes every 5 s in the lab (inventories/lab/group_vars/monitoring), mtail reads the log every 250 ms.
WAIT_S = 60


def _published(hostvars, host, container_port):
    """URL where the lab publishes the host's container_port on this machine (lab_publish)."""
    for entry in hostvars[host].get("lab_publish", []):
        address, host_port, port = entry.rsplit(":", 2)
        if int(port) == int(container_port):
            return f"{'https' if int(port) == 443 else 'http'}://{address}:{host_port}"
    pytest.fail(f"{host} publishes no port {container_port} (lab_publish) for the verify tests to reach")


def _api_key(hostvars, lb):
    keys = hostvars[lb].get("nginx_lb_api_keys") or []
    return (keys[0]["name"], keys[0]["key"]) if keys else ("-", None)


@pytest.fixture(scope="module")
def prometheus(fleet):
    monitoring = fleet.groups["monitoring"][0]
    port = str(fleet.hostvars[monitoring].get("prometheus_listen_address", ":9090")).rsplit(":", 1)[1]
    with httpx.Client(base_url=_published(fleet.hostvars, monitoring, port), timeout=HTTP_TIMEOUT) as client:
        yield client


def _query(prometheus, expr):
    body = prometheus.get("/api/v1/query", params={"query": expr}).json()
    assert body.get("status") == "success", f"{expr}: {body}"
    return body["data"]["result"]


def _count_by_instance(prometheus, key, status):
    result = _query(prometheus, f'sum by (instance) (gpufleet_gateway_requests_total'
                                f'{{job="gateway_usage",key="{key}",status="{status}"}})')
    return {series["metric"]["instance"]: float(series["value"][1]) for series in result}


def test_requests_through_each_load_balancer_are_counted_by_its_mtail(fleet, prometheus):
    hostvars = fleet.hostvars
    lbs = fleet.groups["load_balancers"]
    instance = {lb: f"{host_address(hostvars, lb)}:{hostvars[lb].get('gateway_usage_port', 3903)}" for lb in lbs}
    model = hostvars[fleet.groups["gpu_nodes"][0]].get("gpufleet_model",
                                                       hostvars[fleet.groups["gpu_nodes"][0]].get(
                                                           "model_server_served_model_name", "default"))
    keys = {lb: _api_key(hostvars, lb) for lb in lbs}
    before = {key: _count_by_instance(prometheus, key, "200") for key, _ in keys.values()}
    for lb in lbs:
        secret = keys[lb][1]
        headers = {"Authorization": f"Bearer {secret}"} if secret else {}
        port = hostvars[lb].get("nginx_lb_listen_port", 443 if secret else 80)
        with httpx.Client(base_url=_published(hostvars, lb, port), timeout=HTTP_TIMEOUT, verify=False) as client:
            for n in range(REQUESTS):
                response = client.post("/v1/chat/completions", headers=headers, json={
                    "model": model, "max_tokens": 8, "messages": [{"role": "user", "content": f"usage {n}"}]})
                assert response.status_code == 200, f"{lb}: {response.status_code} {response.text[:300]}"

    def counted():
        now = {key: _count_by_instance(prometheus, key, "200") for key, _ in keys.values()}
        return all(now[keys[lb][0]].get(instance[lb], 0) - before[keys[lb][0]].get(instance[lb], 0) >= REQUESTS
                   for lb in lbs), now

    deadline = time.monotonic() + WAIT_S
    done, now = counted()
    while not done and time.monotonic() < deadline:
        time.sleep(2)
        done, now = counted()
    assert done, f"expected {REQUESTS} more 200s per load balancer's mtail {instance}: before {before}, now {now}"
    up = {s["metric"]["instance"] for s in _query(prometheus, 'up{job="gateway_usage"} == 1')}
    assert up == set(instance.values())
