"""Molecule verify for the gateway usage metrics (gateway_usage role): requests through each load balancer
appear in Prometheus as gpufleet_gateway_requests_total of that load balancer's mtail, by key and status.
Written against main's conftest (Fleet.client, lb_url, chat, wait_until: the gateway's TLS and API keys).
Tests here take no `host` fixture, so they run once."""

from __future__ import annotations

import httpx
import pytest
from ansible_collections.gpufleet.llm.plugins.plugin_utils.fleet import host_address
from conftest import chat, wait_until
from lab_traffic import ADMIN_KEY

REQUESTS = 4
# Scrapes every 5 s in the lab (inventories/lab/group_vars/monitoring); mtail reads the log every 250 ms.
WAIT_S = 60


@pytest.fixture(scope="module")
def prometheus(fleet):
    monitoring = fleet.groups["monitoring"][0]
    port = str(fleet.hostvars[monitoring].get("prometheus_listen_address", ":9090")).rsplit(":", 1)[1]
    address, host_port = next(entry.rsplit(":", 2)[:2] for entry in fleet.hostvars[monitoring]["lab_publish"]
                              if entry.rsplit(":", 1)[1] == port)
    with httpx.Client(base_url=f"http://{address}:{host_port}", timeout=30) as client:
        yield client


def _query(prometheus, expr):
    body = prometheus.get("/api/v1/query", params={"query": expr}).json()
    assert body.get("status") == "success", f"{expr}: {body}"
    return body["data"]["result"]


def _counted(prometheus, status):
    """{instance: requests of the admin key with this status}, from each load balancer's mtail."""
    result = _query(prometheus, f'sum by (instance) (gpufleet_gateway_requests_total'
                                f'{{job="gateway_usage",key="{ADMIN_KEY}",status="{status}"}})')
    return {series["metric"]["instance"]: float(series["value"][1]) for series in result}


def test_requests_through_each_load_balancer_are_counted_by_its_mtail(fleet, prometheus):
    instance = {region: f"{host_address(fleet.hostvars, lb)}:{fleet.hostvars[lb].get('gateway_usage_port', 3903)}"
                for region in fleet.regions for lb in [fleet.load_balancer(region)]}
    up = {s["metric"]["instance"] for s in _query(prometheus, 'up{job="gateway_usage"} == 1')}
    assert up == set(instance.values())
    before = _counted(prometheus, "200")
    with fleet.client() as client:
        for region in fleet.regions:
            for _ in range(REQUESTS):
                response = chat(client, fleet.lb_url(region))
                assert response.status_code == 200, f"{region}: {response.status_code} {response.text[:300]}"

    def counted():
        now = _counted(prometheus, "200")
        return all(now.get(i, 0) - before.get(i, 0) >= REQUESTS for i in instance.values())

    wait_until(counted, WAIT_S, f"{REQUESTS} more 200s of key {ADMIN_KEY} on each mtail {instance}", interval=2)
    tokens = _query(prometheus, f'gpufleet_gateway_completion_tokens_total{{job="gateway_usage",key="{ADMIN_KEY}"}}')
    assert {series["metric"]["instance"] for series in tokens} == set(instance.values())
