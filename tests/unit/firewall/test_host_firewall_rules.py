"""Which ports each fleet host's firewall restricts and to whom (plugins/plugin_utils/host_firewall.py)."""

from pathlib import Path

import pytest
import yaml
from ansible_collections.gpufleet.llm.plugins.plugin_utils.fleet import model_server_instances
from ansible_collections.gpufleet.llm.plugins.plugin_utils.fleet_defaults import (
    exposed_port_defaults,
)
from ansible_collections.gpufleet.llm.plugins.plugin_utils.host_firewall import (
    HostFirewallError,
    host_firewall_check,
    host_firewall_rules,
)

ROOT = Path(__file__).resolve().parents[3]


def role_default(role, name):
    return yaml.safe_load((ROOT / "roles" / role / "defaults" / "main.yml").read_text())[name]


def listen_port(address):
    return int(str(address).rpartition(":")[2])


# The ports as the roles' own defaults files give them, read here independently of fleet_defaults.
NODE_EXPORTER = listen_port(role_default("node_exporter", "node_exporter_listen_address"))
NGINX_EXPORTER = listen_port(role_default("nginx_exporter", "nginx_exporter_listen_address"))
PROMETHEUS = listen_port(role_default("prometheus", "prometheus_listen_address"))
ALERTMANAGER = listen_port(role_default("alertmanager", "alertmanager_listen_address"))
DCGM = role_default("gpu_exporter", "gpu_exporter_dcgm_port")
MODEL_SERVERS_OF_2_GPUS = [i["port"] for i in model_server_instances(
    2, role_default("model_server", "model_server_tensor_parallel_size"),
    role_default("model_server", "model_server_base_port"))]
GATEWAY_USAGE = role_default("gateway_usage", "gateway_usage_port")


def fleet(**overrides):
    """The lab's shape (inventories/lab/hosts.yml) in one region; overrides update host variables."""
    hostvars = {
        "lb": {"ansible_host": "10.89.77.10"},
        "gpu1": {"ansible_host": "10.89.77.11", "gpu_count": 2},
        "gpu2": {"ansible_host": "10.89.77.12", "gpu_count": 2},
        "mon": {"ansible_host": "10.89.77.5"},
    }
    for host, values in overrides.items():
        hostvars.setdefault(host, {}).update(values)
    groups = {"all": list(hostvars), "gpu_nodes": ["gpu1", "gpu2"], "load_balancers": ["lb"], "monitoring": ["mon"]}
    return hostvars, groups


def no_dns(name):
    raise AssertionError(f"{name} looked up: every address of this fleet is an IP address")


def rules(hostvars, groups, host, resolve=no_dns):
    return {rule["service"]: rule for rule in host_firewall_rules(hostvars, groups, host, resolve)}


def test_a_gpu_node_lets_load_balancers_and_monitoring_reach_its_model_servers_and_monitoring_its_exporter():
    found = rules(*fleet(), "gpu1")
    assert list(found) == ["model servers", "node exporter"]  # textfile GPU metrics listen on no port
    assert found["model servers"]["ports"] == MODEL_SERVERS_OF_2_GPUS
    assert found["model servers"]["ipv4"] == ["10.89.77.5", "10.89.77.10"]
    assert found["node exporter"]["ports"] == [NODE_EXPORTER]
    assert found["node exporter"]["ipv4"] == ["10.89.77.5"]
    # The other GPU node is no client of this one.
    assert all("10.89.77.12" not in rule["ipv4"] for rule in found.values())


def test_a_load_balancer_restricts_its_exporters_to_monitoring_and_leaves_its_public_port_alone():
    found = rules(*fleet(), "lb")
    assert {service: rule["ports"] for service, rule in found.items()} == {
        "node exporter": [NODE_EXPORTER], "NGINX exporter": [NGINX_EXPORTER],
        "gateway usage exporter": [GATEWAY_USAGE]}
    assert all(rule["ipv4"] == ["10.89.77.5"] and rule["ipv6"] == [] for rule in found.values())
    public = {role_default("nginx_lb", "nginx_lb_listen_port")}
    assert not public & {port for rule in found.values() for port in rule["ports"]}


def test_monitoring_restricts_prometheus_and_alertmanager_to_monitoring_hosts():
    found = rules(*fleet(), "mon")
    assert {service: rule["ports"] for service, rule in found.items()} == {
        "node exporter": [NODE_EXPORTER], "Prometheus": [PROMETHEUS], "Alertmanager": [ALERTMANAGER]}
    assert found["Prometheus"]["ipv4"] == ["10.89.77.5"]


def test_operator_networks_reach_every_restricted_port_and_overlaps_are_merged():
    hostvars, groups = fleet()
    for hv in hostvars.values():  # fleet-wide, as group_vars/all sets it
        hv["gpufleet_operator_networks"] = ["10.89.77.1/32", "192.0.2.0/24", "192.0.2.7", "2001:db8::/32"]
    for host in hostvars:
        for rule in host_firewall_rules(hostvars, groups, host, no_dns):
            assert "10.89.77.1" in rule["ipv4"] and "192.0.2.0/24" in rule["ipv4"], (host, rule)
            assert "192.0.2.7" not in rule["ipv4"]  # inside 192.0.2.0/24: one element per network
            assert rule["ipv6"] == ["2001:db8::/32"]


def test_ports_follow_the_hosts_own_settings():
    hostvars, groups = fleet(
        gpu1={"gpu_count": 4, "model_server_tensor_parallel_size": 2, "model_server_base_port": 9000,
              "node_exporter_listen_address": "10.89.77.11:9200", "gpu_exporter_method": "dcgm"},
        lb={"nginx_exporter_listen_address": ":9114", "gateway_usage_port": "3904"},  # an INI inventory's string
        mon={"prometheus_listen_address": "[::]:9091", "alertmanager_listen_address": "127.0.0.1:9094"})
    assert {s: r["ports"] for s, r in rules(hostvars, groups, "gpu1").items()} == {
        "model servers": [9000, 9001], "DCGM exporter": [DCGM], "node exporter": [9200]}
    assert {s: r["ports"] for s, r in rules(hostvars, groups, "lb").items()} == {
        "node exporter": [NODE_EXPORTER], "NGINX exporter": [9114], "gateway usage exporter": [3904]}
    assert {s: r["ports"] for s, r in rules(hostvars, groups, "mon").items()} == {
        "node exporter": [NODE_EXPORTER], "Prometheus": [9091], "Alertmanager": [9094]}
    # The other node keeps the defaults.
    assert rules(hostvars, groups, "gpu2")["model servers"]["ports"] == MODEL_SERVERS_OF_2_GPUS


def test_the_dcgm_port_is_restricted_to_monitoring():
    hostvars, groups = fleet(gpu1={"gpu_exporter_method": "dcgm", "gpu_exporter_dcgm_port": 9500})
    dcgm = rules(hostvars, groups, "gpu1")["DCGM exporter"]
    assert dcgm["ports"] == [9500] and dcgm["ipv4"] == ["10.89.77.5"]


def test_ipv6_fleet_addresses_are_ipv6_sources():
    hostvars, groups = fleet(lb={"gpufleet_address": "fd00:89::10"}, mon={"ansible_host": "fd00:89::5"},
                             gpu1={"gpufleet_operator_networks": ["10.89.77.1/32", "fd00:1::/64"]})
    found = rules(hostvars, groups, "gpu1")
    assert found["model servers"]["ipv6"] == ["fd00:1::/64", "fd00:89::5", "fd00:89::10"]
    assert found["model servers"]["ipv4"] == ["10.89.77.1"]
    assert found["node exporter"]["ipv6"] == ["fd00:1::/64", "fd00:89::5"]


def test_a_host_that_is_load_balancer_and_monitoring_gets_both_sets_and_lets_itself_in():
    hostvars, groups = fleet()
    groups["monitoring"] = ["lb"]
    found = rules(hostvars, groups, "lb")
    assert list(found) == ["node exporter", "NGINX exporter", "gateway usage exporter", "Prometheus", "Alertmanager"]
    assert all(rule["ipv4"] == ["10.89.77.10"] for rule in found.values())
    assert rules(hostvars, groups, "gpu1")["model servers"]["ipv4"] == ["10.89.77.10"]


def test_a_load_balancer_added_later_is_let_in_by_every_gpu_node():
    hostvars, groups = fleet(lb2={"ansible_host": "10.89.77.30"})
    groups["load_balancers"].append("lb2")
    for node in groups["gpu_nodes"]:
        assert "10.89.77.30" in rules(hostvars, groups, node)["model servers"]["ipv4"]


def test_a_retired_node_keeps_its_rules_while_its_instances_drain():
    hostvars, groups = fleet(gpu1={"gpufleet_retired": True})
    assert rules(hostvars, groups, "gpu1")["model servers"]["ports"] == MODEL_SERVERS_OF_2_GPUS


def test_names_are_resolved_on_the_controller():
    hostvars, groups = fleet(lb={"ansible_host": "lb.example.com"})
    answers = {"lb.example.com": ("192.0.2.10", "2001:db8::10")}
    found = rules(hostvars, groups, "gpu1", resolve=lambda name: answers.get(name, ()))
    assert found["model servers"]["ipv4"] == ["10.89.77.5", "192.0.2.10"]
    assert found["model servers"]["ipv6"] == ["2001:db8::10"]


@pytest.mark.parametrize(("overrides", "host", "message"), [
    ({"gpu1": {"gpufleet_operator_networks": ["10.0.0.0/8", "bastion", "10.1.2.3/33", 7]}}, "gpu1",
     "gpu1: gpufleet_operator_networks entries must be networks in CIDR notation (such as 192.0.2.0/24 or "
     "2001:db8::/32), got 'bastion', '10.1.2.3/33', 7"),
    ({"mon": {"gpufleet_operator_networks": "10.0.0.0/8"}}, "mon",
     "mon: gpufleet_operator_networks must be a list of networks in CIDR notation (such as 192.0.2.0/24 or "
     "2001:db8::/32), got str '10.0.0.0/8'"),
    ({"lb": {"nginx_exporter_listen_address": "9113"}}, "lb",
     "lb: nginx_exporter_listen_address must be [address]:port, got str '9113'"),
    ({"lb": {"gateway_usage_port": 70000}}, "lb",
     "lb: gateway_usage_port must be a port from 1 to 65535, got int 70000"),
    ({"gpu1": {"gpu_count": 3, "model_server_tensor_parallel_size": 2}}, "gpu1",
     "gpu1: gpu_count 3 is not divisible by model_server_tensor_parallel_size 2"),
    ({"lb": {"nginx_exporter_listen_address": f":{GATEWAY_USAGE}"}}, "lb",
     f"lb: port {GATEWAY_USAGE} would serve both the NGINX exporter (nginx_exporter_listen_address) and the "
     "gateway usage exporter (gateway_usage_port); give each its own port"),
    ({"mon": {"ansible_host": "mon.invalid"}}, "gpu1",
     "mon: fleet address 'mon.invalid' (gpufleet_address, else ansible_host, else the inventory name) is neither an "
     "IP address nor a name the controller resolves, so the firewall of gpu1 cannot let mon in: set "
     "gpufleet_address to its IP address"),
])
def test_bad_input_fails_with_one_message_naming_host_and_variable(overrides, host, message):
    hostvars, groups = fleet(**overrides)
    with pytest.raises(HostFirewallError) as caught:
        host_firewall_rules(hostvars, groups, host, resolve=lambda name: ())
    assert str(caught.value) == message
    assert host_firewall_check(hostvars, groups, host, resolve=lambda name: ()) == {"rules": [], "error": message}


def test_the_ports_are_read_from_the_roles_defaults():
    defaults = exposed_port_defaults()
    assert listen_port(defaults["node_exporter_listen_address"]) == NODE_EXPORTER
    assert listen_port(defaults["nginx_exporter_listen_address"]) == NGINX_EXPORTER
    assert listen_port(defaults["prometheus_listen_address"]) == PROMETHEUS
    assert listen_port(defaults["alertmanager_listen_address"]) == ALERTMANAGER
    assert defaults["gpu_exporter_dcgm_port"] == DCGM
    assert defaults["gateway_usage_port"] == GATEWAY_USAGE


