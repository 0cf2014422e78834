"""The host firewall (roles/host_firewall) in the lab: the fleet's internal ports answer the fleet hosts that use
them and the operator network (this machine, 10.89.77.1), and refuse everyone else with a reset, not a hang."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[3]
LAB_DEFAULTS = yaml.safe_load((ROOT / "roles" / "lab" / "defaults" / "main.yml").read_text())
# A lab-network address that is no fleet host and not the controller (inventories/lab/hosts.yml uses .5 to .22).
STRANGER_ADDRESS = "10.89.77.99"
# Prints {"address:port": "open" | "refused" | "timeout" | error} for each argument; a reset is "refused".
PROBE = """
import json, socket, sys
result = {}
for target in sys.argv[1:]:
    address, _, port = target.rpartition(":")
    try:
        socket.create_connection((address, int(port)), timeout=5).close()
        result[target] = "open"
    except ConnectionRefusedError:
        result[target] = "refused"
    except socket.timeout:
        result[target] = "timeout"
    except OSError as exc:
        result[target] = repr(exc)
print(json.dumps(result))
"""


def address(fleet, host):
    return fleet.hostvars[host].get("gpufleet_address") or fleet.hostvars[host]["ansible_host"]


def listen_port(fleet, host, variable, role):
    value = fleet.hostvars[host].get(variable)
    if value is None:
        value = yaml.safe_load((ROOT / "roles" / role / "defaults" / "main.yml").read_text())[variable]
    return int(str(value).rpartition(":")[2])


def probe_from(lab_host, host, targets):
    """Connect from a lab container to each target."""
    result = lab_host(host).run(f"python3 -c '{PROBE}' {' '.join(targets)}")
    assert result.rc == 0, result.stderr
    return json.loads(result.stdout)


def probe_from_a_stranger(targets):
    """Connect from a throwaway container of the lab image on the lab network, at an address no rule lets in."""
    image = f"{LAB_DEFAULTS['lab_image_name']}:latest"
    result = subprocess.run(
        ["podman", "run", "--rm", "--network", LAB_DEFAULTS["lab_network"], "--ip", STRANGER_ADDRESS, image,
         "python3", "-c", PROBE, *targets],
        capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def targets(fleet):
    """One port of each restricted kind, on the lab hosts that serve it, plus two that must stay open."""
    gpu, lb, monitoring = fleet.groups["gpu_nodes"][0], fleet.groups["load_balancers"][0], fleet.groups["monitoring"][0]
    server = next(s for s in fleet.servers if s["host"] == gpu)
    restricted = {
        "model server": f"{address(fleet, gpu)}:{server['port']}",
        "node exporter": f"{address(fleet, gpu)}:"
                         f"{listen_port(fleet, gpu, 'node_exporter_listen_address', 'node_exporter')}",
        "NGINX exporter": f"{address(fleet, lb)}:"
                          f"{listen_port(fleet, lb, 'nginx_exporter_listen_address', 'nginx_exporter')}",
        "Prometheus": f"{address(fleet, monitoring)}:"
                      f"{listen_port(fleet, monitoring, 'prometheus_listen_address', 'prometheus')}",
    }
    public = {
        "load balancer": f"{address(fleet, lb)}:{listen_port(fleet, lb, 'nginx_lb_listen_port', 'nginx_lb')}",
        "SSH": f"{address(fleet, gpu)}:22",
    }
    return restricted, public


def test_every_host_runs_the_firewall_unit_with_its_table(fleet, lab_host):
    for name in fleet.groups["all"]:
        host = lab_host(name)
        unit = host.service("gpufleet-firewall")
        assert unit.is_enabled, name
        assert host.run("systemctl is-active gpufleet-firewall.service").stdout.strip() == "active", name
        table = host.run("nft list table inet gpufleet")
        assert table.rc == 0 and "reject with tcp reset" in table.stdout, (name, table.stderr)


def test_a_stranger_on_the_lab_network_is_refused_by_every_restricted_port(targets):
    restricted, public = targets
    found = probe_from_a_stranger([*restricted.values(), *public.values()])
    # Refused, not a timeout: the client learns at once that the port is closed to it.
    assert {kind: found[target] for kind, target in restricted.items()} == dict.fromkeys(restricted, "refused")
    # The same client reaches what the firewall leaves alone, so the refusals are the firewall's.
    assert {kind: found[target] for kind, target in public.items()} == dict.fromkeys(public, "open")


def test_the_controller_reaches_every_restricted_port_as_the_operator_network(targets):
    restricted, _ = targets
    result = subprocess.run([sys.executable, "-c", PROBE, *restricted.values()], capture_output=True, text=True,
                            timeout=60, check=True)
    assert json.loads(result.stdout) == dict.fromkeys(restricted.values(), "open")


def test_a_load_balancer_reaches_the_model_servers(fleet, lab_host):
    for lb in fleet.groups["load_balancers"]:
        urls = [f"http://{address(fleet, s['host'])}:{s['port']}/health" for s in fleet.servers]
        result = lab_host(lb).run(
            "python3 -c \"import sys, urllib.request as u; print([u.urlopen(url, timeout=10).status for url in "
            "sys.argv[1:]])\" " + " ".join(urls))
        assert result.rc == 0, (lb, result.stderr)
        assert result.stdout.strip() == str([200] * len(urls)), lb


def test_monitoring_reaches_every_exporter(fleet, lab_host, targets):
    restricted, _ = targets
    monitoring = fleet.groups["monitoring"][0]
    found = probe_from(lab_host, monitoring, restricted.values())
    assert set(found.values()) == {"open"}, found


def test_a_gpu_node_is_refused_by_another_gpu_nodes_model_server_and_exporter(fleet, lab_host):
    first, second = fleet.groups["gpu_nodes"][:2]
    server = next(s for s in fleet.servers if s["host"] == second)
    node_exporter = listen_port(fleet, second, "node_exporter_listen_address", "node_exporter")
    targets = [f"{address(fleet, second)}:{server['port']}", f"{address(fleet, second)}:{node_exporter}"]
    assert probe_from(lab_host, first, targets) == dict.fromkeys(targets, "refused")
    # Its own model server, over loopback, still answers.
    own = next(s for s in fleet.servers if s["host"] == first)
    assert probe_from(lab_host, first, [f"127.0.0.1:{own['port']}"]) == {f"127.0.0.1:{own['port']}": "open"}
