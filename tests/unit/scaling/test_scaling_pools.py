"""The scaling pools (prometheus_scaling_pools): each a model served in a region, with bounds a count can meet;
every problem refused with the entry named, before any host changes (validate.yml runs the same check)."""

import pytest
from ansible_collections.gpufleet.llm.plugins.plugin_utils.scaling import (
    ScalingError,
    scaling_pool_problems,
    scaling_pools,
)

SERVERS = [{"region": "east", "model": "chat", "host": "g1", "port": 8000},
           {"region": "east", "model": "chat", "host": "g1", "port": 8001},
           {"region": "east", "model": "small", "host": "g2", "port": 8000},
           {"region": "west", "model": "chat", "host": "g3", "port": 8000},
           # g4: standby capacity, out of service.
           {"region": "east", "model": "chat", "host": "g4", "port": 8000, "in_service": False},
           {"region": "east", "model": "chat", "host": "g4", "port": 8001, "in_service": False}]


def test_good_pools_get_their_bounds_as_numbers_and_their_instances():
    pools = scaling_pools([{"region": "east", "model": "chat", "min": "1", "max": 4},
                           {"region": "west", "model": "chat", "min": 1, "max": 1}], SERVERS)
    assert pools == [{"region": "east", "model": "chat", "min": 1, "max": 4, "instances": 2, "capacity": 4},
                     {"region": "west", "model": "chat", "min": 1, "max": 1, "instances": 1, "capacity": 1}]
    assert scaling_pools([], SERVERS) == []


@pytest.mark.parametrize(("pool", "problem"), [
    ({"region": "east", "model": "chat", "min": 3, "max": 2}, "prometheus_scaling_pools[0]: min 3 is above max 2"),
    ({"region": "east", "model": "chat", "min": 0, "max": 2},
     "prometheus_scaling_pools[0]: min must be at least 1 (a pool never scales to zero), got 0"),
    ({"region": "west", "model": "small", "min": 1, "max": 2},
     "prometheus_scaling_pools[0]: no GPU node of region 'west' serves model 'small', so the pool names no instances"),
    ({"region": "east", "model": "chat", "min": 1, "max": "many"},
     "prometheus_scaling_pools[0]: max must be a whole number of instances, got 'many'"),
    ({"region": "east", "model": "chat", "min": True, "max": 2},
     "prometheus_scaling_pools[0]: min must be a whole number of instances, got True"),
    ({"region": "east", "model": "chat", "min": 1, "max": 5},
     "prometheus_scaling_pools[0]: max 5 is beyond the pool's capacity of 4 instances (its GPU nodes', standby ones "
     "included: declare more with gpufleet_standby, or give the pool an autoscaling_group)"),
    ({"region": "east", "model": "chat", "min": 1, "max": 2, "cooldown": 45},
     "prometheus_scaling_pools[0]: unknown keys cooldown (allowed: region, model, min, max, autoscaling_group)"),
    ({"region": "east", "model": "chat", "min": 1, "max": 2, "autoscaling_group": {"name": "g", "region": "us-east-1"}},
     "prometheus_scaling_pools[0].autoscaling_group: instances_per_vm must be a whole number of instances, got None"),
    ({"region": "east", "model": "chat", "min": 1, "max": 2,
      "autoscaling_group": {"name": "", "region": "us-east-1", "instances_per_vm": 1}},
     "prometheus_scaling_pools[0].autoscaling_group.name must be a non-empty string, got ''"),
    ({"region": "east", "model": "chat", "min": 1, "max": 2,
      "autoscaling_group": {"name": "g", "region": "us-east-1", "instances_per_vm": 1, "zone": "a"}},
     "prometheus_scaling_pools[0].autoscaling_group: unknown keys zone (allowed: name, region, instances_per_vm)"),
    ("east/chat", "prometheus_scaling_pools[0] must be a mapping with region, model, min and max, got 'east/chat'"),
], ids=["min-above-max", "min-zero", "no-instances", "max-not-a-number", "min-a-bool", "beyond-capacity",
                 "unknown-key", "group-without-instances-per-vm", "group-without-name", "group-unknown-key",
                 "not-a-mapping"])
def test_a_bad_pool_is_refused_with_its_entry_named(pool, problem):
    assert scaling_pool_problems([pool], SERVERS) == [problem]
    with pytest.raises(ScalingError, match=r"^prometheus_scaling_pools\[0\]"):
        scaling_pools([pool], SERVERS)


def test_every_problem_is_reported_not_only_the_first():
    problems = scaling_pool_problems([{"region": "east", "model": "chat", "min": 1, "max": 2},
                                      {"region": "east", "model": "chat", "min": 1, "max": 3},
                                      {"region": "west", "model": "chat", "min": 2, "max": 1}], SERVERS)
    assert problems == ["prometheus_scaling_pools[1]: region 'east' and model 'chat' are already a pool",
                        "prometheus_scaling_pools[2]: min 2 is above max 1"]


def test_pools_that_are_not_a_list_are_refused():
    assert scaling_pool_problems({"region": "east"}, SERVERS) == [
        "prometheus_scaling_pools must be a list of {region, model, min, max}, got dict"]


def test_a_cloud_pool_may_name_no_host_yet_and_its_group_bounds_it_when_scale_yml_runs():
    group = {"name": "chat-west", "region": "us-west-2", "instances_per_vm": "2"}
    (pool,) = scaling_pools([{"region": "west", "model": "small", "min": 1, "max": 40, "autoscaling_group": group}],
                            SERVERS)
    assert pool == {"region": "west", "model": "small", "min": 1, "max": 40, "instances": 0, "capacity": None,
                    "autoscaling_group": {"name": "chat-west", "region": "us-west-2", "instances_per_vm": 2}}
