"""The fleet layout and the inventory contract check (plugins/plugin_utils/fleet.py)."""

from pathlib import Path

import pytest
import yaml
from ansible_collections.gpufleet.llm.plugins.plugin_utils.fleet import (
    DEFAULT_BASE_PORT,
    DEFAULT_TENSOR_PARALLEL_SIZE,
    FleetLayoutError,
    fleet_model_servers,
    model_server_instances,
    nginx_seconds,
    validate_fleet,
)
from ansible_collections.gpufleet.llm.plugins.plugin_utils.gpu_fleet_names import region_group

ROOT = Path(__file__).resolve().parents[3]


def test_one_instance_per_gpu_on_consecutive_ports():
    instances = model_server_instances(4)
    assert [i["port"] for i in instances] == [8000, 8001, 8002, 8003]
    assert [i["cuda_visible_devices"] for i in instances] == ["0", "1", "2", "3"]


def test_one_instance_per_tensor_parallel_group():
    instances = model_server_instances(8, 4, 9000)
    assert [(i["port"], i["gpus"]) for i in instances] == [(9000, [0, 1, 2, 3]), (9001, [4, 5, 6, 7])]
    assert instances[1]["cuda_visible_devices"] == "4,5,6,7"


@pytest.mark.parametrize(("args", "message"), [
    ((3, 2), "not divisible"),
    ((0,), "gpu_count must be a positive integer"),
    (("two",), "gpu_count must be a positive integer"),
    ((True,), "gpu_count must be a positive integer"),
    ((2, 0), "model_server_tensor_parallel_size must be a positive integer"),
    ((2, 1, 65535), "leaves no room"),
])
def test_impossible_layouts_are_refused(args, message):
    with pytest.raises(FleetLayoutError, match=message):
        model_server_instances(*args)


def test_the_layout_defaults_match_the_role_defaults():
    defaults = yaml.safe_load((ROOT / "roles/model_server/defaults/main.yml").read_text())
    assert defaults["model_server_base_port"] == DEFAULT_BASE_PORT
    assert defaults["model_server_tensor_parallel_size"] == DEFAULT_TENSOR_PARALLEL_SIZE


def test_region_groups_are_sanitized():
    assert region_group("us-east") == "region_us_east"
    assert region_group("europe-west4") == "region_europe_west4"


def fleet(**overrides):
    """A valid two-region inventory; overrides replace host variables ({host: {var: value or None}})."""
    hostvars = {
        "lb-a": {"gpufleet_region": "a"},
        "gpu-a": {"gpufleet_region": "a", "gpu_count": 2, "gpu_model": "h100", "ansible_host": "10.0.0.1"},
        "lb-b": {"gpufleet_region": "b"},
        "gpu-b": {"gpufleet_region": "b", "gpu_count": 4, "gpu_model": "l4", "ansible_host": "10.0.0.2"},
    }
    for host, values in overrides.items():
        hostvars.setdefault(host, {})
        for key, value in values.items():
            if value is None:
                hostvars[host].pop(key, None)
            else:
                hostvars[host][key] = value
    groups = {
        "all": list(hostvars),
        "gpu_nodes": [h for h in hostvars if h.startswith("gpu")],
        "load_balancers": [h for h in hostvars if h.startswith("lb")],
        "region_a": [h for h in hostvars if h.endswith("-a")],
        "region_b": [h for h in hostvars if h.endswith("-b")],
    }
    return hostvars, groups


def test_a_valid_inventory_has_no_problems():
    hostvars, groups = fleet()
    assert validate_fleet(hostvars, groups) == []
    servers = fleet_model_servers(hostvars, groups["gpu_nodes"])
    assert [(s["host"], s["address"], s["port"], s["region"]) for s in servers][:3] == [
        ("gpu-a", "10.0.0.1", 8000, "a"), ("gpu-a", "10.0.0.1", 8001, "a"), ("gpu-b", "10.0.0.2", 8000, "b")]


@pytest.mark.parametrize(("overrides", "expected"), [
    ({"gpu-a": {"gpu_count": None}}, "gpu-a: gpu_count is not set"),
    ({"gpu-a": {"gpu_model": None}}, "gpu-a: gpu_model must be a non-empty string"),
    ({"gpu-b": {"model_server_tensor_parallel_size": 3}},
     "gpu-b: gpu_count 4 is not divisible by model_server_tensor_parallel_size 3"),
    ({"gpu-a": {"model_server_engine": "tgi"}}, "gpu-a: model_server_engine must be one of vllm, simulator"),
    ({"gpu-b": {"ansible_host": "10.0.0.1", "model_server_base_port": 8001}},
     "gpu-b: model server port 8001 on 10.0.0.1 is already used by gpu-a"),
    ({"lb-a": {"gpufleet_region": None}}, "lb-a: gpufleet_region must be a non-empty string"),
    ({"gpu-a": {"gpufleet_region": "b"}}, "gpu-a: gpufleet_region is 'b' but the host is not in group region_b"),
])
def test_each_problem_names_the_host_and_the_variable(overrides, expected):
    hostvars, groups = fleet(**overrides)
    problems = validate_fleet(hostvars, groups)
    assert any(p.startswith(expected) for p in problems), problems


def test_a_load_balancer_whose_region_has_no_gpu_nodes_is_refused():
    hostvars, groups = fleet(**{"lb-c": {"gpufleet_region": "c"}})
    groups["region_c"] = ["lb-c"]
    groups["load_balancers"].append("lb-c")
    assert validate_fleet(hostvars, groups) == [
        "lb-c: load balancer of gpufleet_region 'c', which has no host in gpu_nodes"]


def test_a_model_server_may_not_take_a_load_balancer_port_on_the_same_address():
    hostvars, groups = fleet(**{"lb-a": {"ansible_host": "10.0.0.1", "nginx_lb_listen_port": 8001}})
    assert validate_fleet(hostvars, groups) == [
        "gpu-a: model server port 8001 on 10.0.0.1 is already used by lb-a (nginx_lb_listen_port) "
        "(check model_server_base_port)"]


def test_checks_can_be_limited_to_some_hosts():
    hostvars, groups = fleet(**{"gpu-a": {"gpu_count": None}})
    assert validate_fleet(hostvars, groups, ["gpu-b"]) == []


def test_a_retired_node_drops_out_of_the_layout():
    from ansible_collections.gpufleet.llm.plugins.plugin_utils.fleet import fleet_model_servers

    hostvars = {"a": {"gpufleet_region": "r", "gpu_count": 2}, "b": {"gpufleet_region": "r", "gpu_count": 2,
                                                                     "gpufleet_retired": True}}
    assert {s["host"] for s in fleet_model_servers(hostvars, ["a", "b"])} == {"a"}
    hostvars["b"]["gpufleet_retired"] = False
    assert {s["host"] for s in fleet_model_servers(hostvars, ["a", "b"])} == {"a", "b"}


def test_a_standby_node_serves_only_once_scaling_brought_it_in():
    from ansible_collections.gpufleet.llm.plugins.plugin_utils.fleet import fleet_model_servers

    hostvars = {"a": {"gpufleet_region": "r", "gpu_count": 2},
                "s": {"gpufleet_region": "r", "gpu_count": 2, "gpufleet_standby": True}}
    # Facts not read, or read before scale.yml ever ran: out of service, but part of the capacity.
    assert {s["host"] for s in fleet_model_servers(hostvars, ["a", "s"])} == {"a"}
    hostvars["s"]["ansible_facts"] = {"local": {}}
    assert {s["host"] for s in fleet_model_servers(hostvars, ["a", "s"])} == {"a"}
    capacity = fleet_model_servers(hostvars, ["a", "s"], standby=True)
    assert [(s["host"], s["in_service"], s["standby"]) for s in capacity] == [
        ("a", True, False), ("a", True, False), ("s", False, True), ("s", False, True)]
    hostvars["s"]["ansible_facts"] = {"local": {"gpufleet_scaling": {"in_service": True}}}
    assert [s["host"] for s in fleet_model_servers(hostvars, ["a", "s"])] == ["a", "a", "s", "s"]
    hostvars["s"]["gpufleet_retired"] = True  # retired wins over in service
    assert fleet_model_servers(hostvars, ["a", "s"], standby=True) == fleet_model_servers(hostvars, ["a"], standby=True)


def test_the_fleet_flags_must_be_booleans():
    hostvars, groups = fleet(**{"gpu-a": {"gpufleet_standby": "maybe"}, "gpu-b": {"gpufleet_retired": "no"}})
    assert validate_fleet(hostvars, groups) == ["gpu-a: gpufleet_standby must be true or false, got str 'maybe'"]


@pytest.mark.parametrize(("overrides", "expected"), [
    ({"lb-a": {"nginx_lb_keepalive_timeout": "75s"}},
     "lb-a: nginx_lb_keepalive_timeout 75s is not below model_server_keepalive_timeout 75 of gpu-a"),
    ({"lb-b": {"nginx_lb_keepalive_timeout": "1m30s"}},
     "lb-b: nginx_lb_keepalive_timeout 1m30s is not below model_server_keepalive_timeout 75 of gpu-a"),
    ({"gpu-b": {"model_server_keepalive_timeout": 5}},
     "lb-a: nginx_lb_keepalive_timeout 60s is not below model_server_keepalive_timeout 5 of gpu-b"),
], ids=["equal", "nginx-units", "vllm-default-on-one-node"])
def test_nginx_must_close_an_idle_upstream_connection_before_the_model_server_does(overrides, expected):
    hostvars, groups = fleet(**overrides)
    problems = validate_fleet(hostvars, groups)
    assert any(p.startswith(expected) for p in problems), problems
    assert validate_fleet(*fleet(**{"lb-a": {"nginx_lb_keepalive_timeout": "74500ms"}})) == []


def test_nginx_times_are_read_as_nginx_reads_them():
    assert [nginx_seconds(v) for v in ("60s", "1m30s", "1m 30s", "500ms", "2h", 45, "60x", "")] == [
        60, 90, 90, 0.5, 7200, 45, None, None]
