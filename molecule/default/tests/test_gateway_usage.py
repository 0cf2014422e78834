"""Molecule verify for the gateway usage metrics (gateway_usage role): requests through each load balancer
appear in Prometheus as gpufleet_gateway_requests_total of that load balancer's mtail, by key and status.
Written against main's conftest (Fleet.client, lb_url, chat, wait_until: the gateway's TLS and API keys).
Tests here take no `host` fixture, so they run once."""

from __future__ import annotations

from ansible_collections.gpufleet.llm.plugins.plugin_utils.fleet import host_address
from conftest import MODEL_A, chat, prom_query, wait_until
from lab_traffic import ADMIN_KEY

REQUESTS = 4
# Scrapes every 5 s in the lab (inventories/lab/group_vars/monitoring); mtail reads the log every 250 ms.
WAIT_S = 60


def _counted(prometheus, status):
    """{instance: requests of the admin key with this status}, from each load balancer's mtail."""
    result = prom_query(prometheus, f'sum by (instance) (gpufleet_gateway_requests_total'
                                f'{{job="gateway_usage",key="{ADMIN_KEY}",status="{status}"}})')
    return {series["metric"]["instance"]: float(series["value"][1]) for series in result}


def test_requests_through_each_load_balancer_are_counted_by_its_mtail(fleet, prometheus):
    instance = {region: f"{host_address(fleet.hostvars, lb)}:{fleet.hostvars[lb].get('gateway_usage_port', 3903)}"
                for region in fleet.regions for lb in [fleet.load_balancer(region)]}
    up = {s["metric"]["instance"] for s in prom_query(prometheus, 'up{job="gateway_usage"} == 1')}
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
    tokens = prom_query(prometheus,
                        f'gpufleet_gateway_completion_tokens_total{{job="gateway_usage",key="{ADMIN_KEY}"}}')
    assert {series["metric"]["instance"] for series in tokens} == set(instance.values())


def _streams(prometheus, end):
    """{region: streams of the admin key that ended ``end``}, summed over each region's load balancers."""
    result = prom_query(prometheus, f'sum by (region) (gpufleet_gateway_streams_total'
                                f'{{job="gateway_usage",key="{ADMIN_KEY}",end="{end}"}})')
    return {series["metric"]["region"]: float(series["value"][1]) for series in result}


def _whole_and_cut_streams(fleet):
    """Through each region's load balancer: one stream read to its end, one the client leaves mid-way."""
    body = {"model": MODEL_A, "stream": True, "max_tokens": 8,
            "messages": [{"role": "user", "content": "Say something about load balancers."}]}
    with fleet.client() as client:
        for region in fleet.regions:
            url = f"{fleet.lb_url(region)}/v1/chat/completions"
            with client.stream("POST", url, json=body, timeout=60) as whole:
                assert whole.status_code == 200 and [line for line in whole.iter_lines() if line][-1] == "data: [DONE]"
            # An answer of about 1 s (the lab's simulators: 64 tokens, 15 ms apart), left after its first event.
            with client.stream("POST", url, json=dict(body, max_tokens=400), timeout=60) as left:
                assert left.status_code == 200
                next(line for line in left.iter_lines() if line.startswith("data: {"))


def test_a_stream_cut_mid_way_counts_as_an_error_at_the_front_door(fleet, prometheus):
    """NGINX logs a stream the client left mid-way as the 200 it began with; the usage log's stream=cut reaches
    mtail, Prometheus and the front door's error ratio, while a whole stream counts as done."""
    # mtail creates a series at its first increment, which rate() cannot see (the series starts at 1): the first
    # round makes the series, the second is what the recorded ratios must show.
    for round_ in ("first", "second"):
        before = {end: _streams(prometheus, end) for end in ("done", "cut")}
        _whole_and_cut_streams(fleet)

        def counted(before=before):
            now = {end: _streams(prometheus, end) for end in ("done", "cut")}
            return all(now[end].get(region, 0) - before[end].get(region, 0) >= 1
                       for end in ("done", "cut") for region in fleet.regions)

        wait_until(counted, WAIT_S, f"{round_} round: a whole and a cut stream of key {ADMIN_KEY} counted in each "
                   "region", interval=2)

    def recorded():
        ratios = {s["metric"]["region"]: float(s["value"][1])
                  for s in prom_query(prometheus, "region:gpufleet_gateway_streams_cut:ratio")}
        errors = {s["metric"]["region"]: float(s["value"][1])
                  for s in prom_query(prometheus, "region:gpufleet_gateway_errors:ratio")}
        return all(ratios.get(region, 0) > 0 and errors.get(region, 0) > 0 for region in fleet.regions)

    wait_until(recorded, WAIT_S, "the cut streams in each region's recorded error ratio", interval=2)
