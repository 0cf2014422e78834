"""The host firewall's files as the role renders them, checked by the real nft (`nft -c`) and systemd-analyze."""

from __future__ import annotations

import functools
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from ansible_collections.gpufleet.llm.plugins.plugin_utils.fleet import fleet_model_servers
from ansible_collections.gpufleet.llm.plugins.plugin_utils.fleet import host_address as fleet_host_address
from inventory_listing import group_hosts
from test_host_firewall_rules import ALERTMANAGER, GATEWAY_USAGE, NGINX_EXPORTER, NODE_EXPORTER, PROMETHEUS

ROOT = Path(__file__).resolve().parents[3]
HERE = Path(__file__).resolve().parent
LAB = ROOT / "inventories" / "lab"
IPV6 = HERE / "inventory_ipv6"
UNIT = "gpufleet-firewall.service"
ACCEPT = re.compile(r"^\s*tcp dport \{ (?P<ports>[0-9, ]+) \} (?P<family>ip6?) saddr \{ (?P<sources>[^}]+) \} accept$")
REJECT = re.compile(r"^\s*tcp dport \{ (?P<ports>[0-9, ]+) \} reject with tcp reset$")


def render(inventory, out_dir, extra_vars=None):
    """Run render.yml; (returncode, output). Each host's files land in out_dir/<host>/."""
    variables = {"render_dir": str(out_dir), "ansible_connection": "local",
                 "ansible_python_interpreter": sys.executable, **(extra_vars or {})}
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(ROOT / ".collections"), ANSIBLE_NOCOLOR="1",
               ANSIBLE_RETRY_FILES_ENABLED="0", ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"))
    result = subprocess.run(
        [str(Path(sys.executable).with_name("ansible-playbook")), "-i", str(inventory), str(HERE / "render.yml"),
         "-e", json.dumps(variables)],
        capture_output=True, text=True, cwd=ROOT, env=env, timeout=300, check=False)
    return result.returncode, result.stdout + result.stderr


def rendered(inventory, out_dir):
    """{host: directory of its files}; the render must succeed."""
    code, output = render(inventory, out_dir)
    assert code == 0, f"rendering for {inventory} failed:\n{output[-4000:]}"
    return {path.name: path for path in Path(out_dir).iterdir() if path.is_dir()}


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    return rendered(LAB, tmp_path_factory.mktemp("lab"))


@pytest.fixture(scope="module")
def ipv6(tmp_path_factory):
    return rendered(IPV6, tmp_path_factory.mktemp("ipv6"))


@pytest.fixture(scope="session")
def nft():
    """nft, when it can check a rule set here: `nft -c` asks the kernel, which needs CAP_NET_ADMIN (root)."""
    path = shutil.which("nft") or ("/usr/sbin/nft" if Path("/usr/sbin/nft").exists() else None)
    if path is None:
        pytest.skip("nft not found: run `make host-packages` (Debian's nftables)")
    probe = subprocess.run([path, "-c", "table inet gpufleet_probe { }"], capture_output=True, text=True, check=False)
    if probe.returncode != 0:
        pytest.skip(f"nft -c cannot check rule sets here (it needs CAP_NET_ADMIN): {probe.stderr.strip()}")
    return path


def nft_check(nft, path):
    return subprocess.run([nft, "-c", "-f", str(path)], capture_output=True, text=True, check=False)


def rules_of(path):
    """{ports: {"ip": {sources}, "ip6": {sources}, "reject": bool}} of a rendered file."""
    found = {}
    for line in Path(path).read_text().splitlines():
        if m := ACCEPT.match(line):
            entry = found.setdefault(m["ports"], {"ip": set(), "ip6": set(), "reject": False})
            entry[m["family"]] = {s.strip() for s in m["sources"].split(",")}
        elif m := REJECT.match(line):
            found.setdefault(m["ports"], {"ip": set(), "ip6": set(), "reject": False})["reject"] = True
    return found


@functools.cache
def lab_inventory():
    """The lab as `ansible-inventory --list` gives it: each host's address, the groups, the model servers."""
    listed = subprocess.run([str(Path(sys.executable).with_name("ansible-inventory")), "-i", str(LAB), "--list"],
                            capture_output=True, text=True, cwd=ROOT, timeout=120, check=True)
    listing = json.loads(listed.stdout)
    hostvars = listing["_meta"]["hostvars"]
    groups = {group: sorted(group_hosts(listing, group)) for group in ("gpu_nodes", "load_balancers", "monitoring")}
    return hostvars, groups


def lab_addresses():
    hostvars, groups = lab_inventory()
    return {host: fleet_host_address(hostvars, host) for host in hostvars}, groups


def lab_model_server_ports(host):
    """The ports of host's instances as the fleet layout computes them (a standby node's too, in service or
    not: its firewall lets the load balancers in before scaling brings it in), as the template writes a port set."""
    hostvars, _ = lab_inventory()
    return ", ".join(str(s["port"]) for s in fleet_model_servers(hostvars, [host], standby=True))


def test_every_lab_hosts_rule_set_passes_nft_check(lab, nft):
    assert sorted(lab) == sorted(lab_addresses()[0])
    for host, directory in lab.items():
        result = nft_check(nft, directory / "host-firewall.nft")
        assert result.returncode == 0, f"{host}: {result.stderr}"


def test_nft_check_refuses_a_broken_rule_set(lab, nft, tmp_path):
    """The check above can fail: the same file with one address out of range is refused."""
    text = (lab["lab-use-gpu1"] / "host-firewall.nft").read_text()
    broken = tmp_path / "broken.nft"
    broken.write_text(text.replace("10.89.77.10", "10.89.77.300", 1))
    assert broken.read_text() != text
    assert nft_check(nft, broken).returncode != 0


def test_the_lab_model_servers_let_in_the_load_balancers_monitoring_and_the_controller_only(lab):
    addresses, groups = lab_addresses()
    allowed = {addresses[h] for h in groups["load_balancers"] + groups["monitoring"]} | {"10.89.77.1"}
    for node in groups["gpu_nodes"]:
        model_servers = rules_of(lab[node] / "host-firewall.nft")[lab_model_server_ports(node)]
        assert model_servers == {"ip": allowed, "ip6": set(), "reject": True}, node
        assert not {addresses[other] for other in groups["gpu_nodes"]} & model_servers["ip"]


def test_every_lab_exporter_and_prometheus_lets_in_monitoring_and_the_controller_only(lab):
    addresses, groups = lab_addresses()
    scrapers = {addresses[h] for h in groups["monitoring"]} | {"10.89.77.1"}
    expected = {"gpu_nodes": {NODE_EXPORTER}, "load_balancers": {NODE_EXPORTER, NGINX_EXPORTER, GATEWAY_USAGE},
                "monitoring": {NODE_EXPORTER, PROMETHEUS, ALERTMANAGER}}
    for group, ports in expected.items():
        for host in groups[group]:
            found = rules_of(lab[host] / "host-firewall.nft")
            for port in ports:
                assert found[str(port)] == {"ip": scrapers, "ip6": set(), "reject": True}, (host, port)


def test_ssh_and_the_public_load_balancer_port_are_left_alone(lab):
    public = str(yaml.safe_load((ROOT / "roles/nginx_lb/defaults/main.yml").read_text())["nginx_lb_listen_port"])
    for host, directory in lab.items():
        ports = {p.strip() for key in rules_of(directory / "host-firewall.nft") for p in key.split(",")}
        assert not {"22", public} & ports, host


def test_the_file_replaces_only_its_own_table(lab):
    text = (lab["lab-monitoring"] / "host-firewall.nft").read_text()
    statements = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    assert statements[:3] == ["table inet gpufleet {", "}", "delete table inet gpufleet"]
    assert "flush" not in text
    assert re.findall(r"^table (\S+ \S+)", text, re.MULTILINE) == ["inet gpufleet", "inet gpufleet"]


def test_ipv6_fleet_addresses_render_ip6_rules_that_pass_nft_check(ipv6, nft):
    gpu2 = rules_of(ipv6["v6-gpu2"] / "host-firewall.nft")
    assert gpu2["9000, 9001"] == {"ip": {"10.89.77.1", "10.89.77.5"}, "ip6": {"fd00:1::/64", "fd00:89::10"},
                                  "reject": True}
    assert gpu2["9100"] == {"ip": {"10.89.77.1", "10.89.77.5"}, "ip6": {"fd00:1::/64"}, "reject": True}
    for host, directory in ipv6.items():
        result = nft_check(nft, directory / "host-firewall.nft")
        assert result.returncode == 0, f"{host}: {result.stderr}"


def test_the_unit_passes_systemd_analyze_verify(lab):
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze not found (Debian's systemd package)")
    unit = lab["lab-use-lb"] / UNIT
    result = subprocess.run([analyze, "verify", str(unit)], capture_output=True, text=True, check=False)
    assert result.returncode == 0 and UNIT not in result.stderr, result.stderr
    text = unit.read_text()
    assert "ExecReload=/usr/sbin/nft -f /etc/gpufleet/host-firewall.nft" in text
    assert "ExecStop=-/usr/sbin/nft delete table inet gpufleet" in text


def test_an_operator_network_that_is_not_a_cidr_fails_before_anything_is_rendered(tmp_path):
    code, output = render(LAB, tmp_path, {"gpufleet_operator_networks": ["10.89.77.1/32", "bastion"]})
    assert code != 0
    message = ("lab-use-gpu1: gpufleet_operator_networks entries must be networks in CIDR notation "
               "(such as 192.0.2.0/24 or 2001:db8::/32), got 'bastion'")
    assert output.count(message) == 1, output[-4000:]
    assert list(tmp_path.iterdir()) == []
