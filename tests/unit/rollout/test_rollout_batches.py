"""Rollout batches keep every region serving, and a drained instance is idle only when vLLM's gauges say so."""

import pytest
from ansible_collections.gpufleet.llm.plugins.plugin_utils.rollout import (
    RolloutError,
    batch_size,
    endpoints,
    fleet_rollout_batches,
    in_flight,
    rollout_batches,
)


def _pending(region, host, ports, action="restart", batch=1):
    return [{"host": host, "region": region, "address": f"{host}.lab", "port": p, "action": action, "batch": batch}
            for p in ports]


def _servers(region, host, ports):
    return [{"host": host, "region": region, "address": f"{host}.lab", "port": p} for p in ports]


def test_default_batch_takes_one_instance_per_region_and_regions_roll_in_parallel():
    pending = _pending("us", "u1", [8000, 8001]) + _pending("us", "u2", [8000, 8001]) + _pending("eu", "e1", [8000])
    batches = rollout_batches(pending, {"us": 4, "eu": 2}, {"us": 1, "eu": 1})
    assert [[(i["host"], i["port"]) for i in b] for b in batches] == [
        [("e1", 8000), ("u1", 8000)], [("u1", 8001)], [("u2", 8000)], [("u2", 8001)]]
    for batch in batches:
        for region, size in {"us": 4, "eu": 2}.items():
            assert sum(i["region"] == region for i in batch) <= size - 1


@pytest.mark.parametrize(("spec", "size", "expected"), [(1, 4, 1), ("2", 4, 2), ("25%", 8, 2), ("10%", 4, 1),
                                                        ("50%", 3, 1), (1, 1, 1)])
def test_batch_size_from_count_or_percentage(spec, size, expected):
    assert batch_size(spec, size) == expected


@pytest.mark.parametrize("spec", [0, 4, 5, "0%", "100%", "-1", "many", "", True])
def test_batch_that_would_take_a_region_down_or_is_not_a_number_is_refused(spec):
    with pytest.raises(RolloutError, match="model_server_rollout_batch"):
        batch_size(spec, 4)


def test_a_region_of_one_instance_rolls_it_alone():
    assert len(rollout_batches(_pending("solo", "s1", [8000]), {"solo": 1}, {"solo": 1})) == 1


def test_fleet_batches_count_instances_to_stop_in_the_region_size():
    # A retired host's two instances are gone from the layout but still serve until they are drained.
    servers = _servers("us", "u1", [8000, 8001])
    pending = _pending("us", "u2", [8000, 8001], action="stop", batch="50%")
    batches = fleet_rollout_batches(pending, servers)
    assert [[i["port"] for i in b] for b in batches] == [[8000, 8001]]


def test_unknown_action_is_refused():
    with pytest.raises(RolloutError, match="unknown rollout action"):
        rollout_batches(_pending("us", "u1", [8000], action="reboot-now"), {"us": 2}, {})


# The exposition lines of vLLM 0.33's gauges as its /metrics prints them (labels engine and model_name).
METRICS = """# HELP vllm:num_requests_running Number of requests in model execution batches.
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{engine="0",model_name="simulated-llm"} 3.0
# HELP vllm:num_requests_waiting Number of requests waiting to be processed.
# TYPE vllm:num_requests_waiting gauge
vllm:num_requests_waiting{engine="0",model_name="simulated-llm"} 2.0
vllm:num_requests_running_total_bogus 9.0
vllm:num_preemptions_total{engine="0",model_name="simulated-llm"} 7.0
"""


def test_in_flight_sums_running_and_waiting_only():
    assert in_flight(METRICS) == 5
    assert in_flight(METRICS.replace(" 3.0", " 0.0").replace(" 2.0", " 0.0")) == 0
    assert in_flight("") == 0


def test_endpoints_are_what_the_load_balancers_list():
    assert endpoints(_pending("us", "u1", [8000, 8001])) == ["u1.lab:8000", "u1.lab:8001"]
