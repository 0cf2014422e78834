"""Each contract value has one rule, the roles' defaults count, and a one-host check stays with its host."""

from pathlib import Path

import pytest
import yaml
from ansible_collections.gpufleet.llm.plugins.plugin_utils.fleet import contract_int, validate_fleet
from ansible_collections.gpufleet.llm.plugins.plugin_utils.fleet_defaults import role_defaults
from test_fleet_layout import fleet

ROOT = Path(__file__).resolve().parents[3]


def test_role_defaults_are_read_from_the_roles():
    model_server = yaml.safe_load((ROOT / "roles/model_server/defaults/main.yml").read_text())
    nginx_lb = yaml.safe_load((ROOT / "roles/nginx_lb/defaults/main.yml").read_text())
    model_server_names = ("model_server_base_port", "model_server_tensor_parallel_size", "model_server_engine",
                          "model_server_vllm_model", "model_server_keepalive_timeout")
    nginx_lb_names = ("nginx_lb_listen_port", "nginx_lb_plain_http_port", "nginx_lb_status_port", "nginx_lb_auth",
                      "nginx_lb_api_keys", "nginx_lb_key_rate", "nginx_lb_key_burst", "nginx_lb_key_concurrency",
                      "nginx_lb_keepalive_timeout")
    assert role_defaults() == {**{name: model_server[name] for name in model_server_names},
                               **{name: nginx_lb[name] for name in nginx_lb_names}}


def test_a_port_left_at_its_default_clashes_like_one_set_in_the_inventory():
    # gpu-a is also the load balancer of its region, on the same address; NGINX keeps its default
    # port 80 and its status port 8081. gpu-a's model servers start at 8080: 8080, 8081.
    hostvars, groups = fleet(**{"gpu-a": {"model_server_base_port": 8080}})
    groups["load_balancers"].append("gpu-a")
    assert validate_fleet(hostvars, groups) == [
        "gpu-a: model server port 8081 on 10.0.0.1 is already used by gpu-a (nginx_lb_status_port) "
        "(check model_server_base_port)"]


def test_a_load_balancer_port_set_over_the_model_servers_default_clashes():
    hostvars, groups = fleet(**{"lb-a": {"ansible_host": "10.0.0.1", "nginx_lb_listen_port": 8000}})
    assert validate_fleet(hostvars, groups) == [
        "gpu-a: model server port 8000 on 10.0.0.1 is already used by lb-a (nginx_lb_listen_port) "
        "(check model_server_base_port)"]


def test_a_gpu_node_that_is_a_load_balancer_on_port_80_is_refused_twice_over():
    hostvars, groups = fleet(**{"gpu-a": {"model_server_base_port": 80}})
    groups["load_balancers"].append("gpu-a")
    assert validate_fleet(hostvars, groups) == [
        "gpu-a: model_server_base_port must be an integer from 1024 to 65535, got int 80"]


@pytest.mark.parametrize(("name", "value", "message"), [
    ("model_server_base_port", 80, "model_server_base_port must be an integer from 1024 to 65535, got int 80"),
    ("model_server_base_port", 70000, "model_server_base_port must be an integer from 1024 to 65535, got int 70000"),
    ("nginx_lb_listen_port", 65536, "nginx_lb_listen_port must be an integer from 1 to 65535, got int 65536"),
    ("nginx_lb_listen_port", "eighty", "nginx_lb_listen_port must be an integer from 1 to 65535, got str 'eighty'"),
    ("gpu_count", "two", "gpu_count must be a positive integer, got str 'two'"),
    ("gpu_count", 2.5, "gpu_count must be a positive integer, got float 2.5"),
    ("gpu_count", True, "gpu_count must be a positive integer, got bool True"),
])
def test_one_rule_and_one_wording_per_value(name, value, message):
    with pytest.raises(ValueError, match=f"^{message}$"):
        contract_int(name, value)


def test_strings_of_integers_are_integers():  # an INI inventory gives every value as a string
    assert contract_int("nginx_lb_listen_port", " 8080 ") == 8080


def test_every_value_of_the_wrong_type_is_reported_with_host_and_variable():
    hostvars, groups = fleet(**{
        "lb-a": {"nginx_lb_listen_port": "eighty", "nginx_lb_status_port": "x"},
        "gpu-b": {"gpu_count": "four", "model_server_tensor_parallel_size": "one", "model_server_base_port": []},
    })
    assert validate_fleet(hostvars, groups) == [
        "lb-a: nginx_lb_listen_port must be an integer from 1 to 65535, got str 'eighty'",
        "lb-a: nginx_lb_status_port must be an integer from 1 to 65535, got str 'x'",
        "gpu-b: gpu_count must be a positive integer, got str 'four'",
        "gpu-b: model_server_tensor_parallel_size must be a positive integer, got str 'one'",
        "gpu-b: model_server_base_port must be an integer from 1024 to 65535, got list []",
    ]


def test_a_one_host_check_reads_only_that_hosts_variables():
    hostvars, groups = fleet()

    class OnlyGpuA(dict):
        def __getitem__(self, host):
            assert host == "gpu-a", f"the check of gpu-a read {host}'s variables"
            return super().__getitem__(host)

    assert validate_fleet(OnlyGpuA(hostvars), groups, ["gpu-a"]) == []
    hostvars["gpu-a"]["gpu_count"] = 0
    assert validate_fleet(OnlyGpuA(hostvars), groups, ["gpu-a"]) == [
        "gpu-a: gpu_count must be a positive integer, got int 0"]


def test_an_empty_fleet_is_refused():
    assert validate_fleet({}, {"all": []}) == [
        "the inventory has no host in group gpu_nodes (is an inventory source missing or empty?)",
        "the inventory has no host in group load_balancers (is an inventory source missing or empty?)"]


def test_a_one_host_check_takes_membership_from_the_hosts_group_names():
    # Ansible gives every host its group_names: a preflight then scans none of the fleet's groups.
    hostvars, groups = fleet(**{"gpu-a": {"group_names": ["gpu_nodes", "region_a"], "gpu_count": "two"}})
    assert validate_fleet(hostvars, {}, ["gpu-a"]) == [
        "gpu-a: gpu_count must be a positive integer, got str 'two'"]
    hostvars["gpu-a"]["group_names"] = ["gpu_nodes"]
    assert validate_fleet(hostvars, groups, ["gpu-a"])[0] == (
        "gpu-a: gpufleet_region is 'a' but the host is not in group region_a")
