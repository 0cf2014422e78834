"""The scrape configuration is derived from the inventory: every expected target, labelled, and nothing else."""

from __future__ import annotations

import subprocess

import pytest
import yaml
from ansible_collections.gpufleet.llm.plugins.plugin_utils.fleet import fleet_model_servers, host_address
from inventory_listing import group_hosts
from monitoring_support import (
    FIXTURE_INVENTORY,
    LAB_INVENTORY,
    RENDERED_INVENTORIES,
    ROLES,
    collection_copy,
    inventory_data,
    render,
)


def owner_default(name, roles=ROLES):
    """The default of the role that owns ``name``, read here without the collection's filters."""
    role = max((path.name for path in roles.iterdir() if name.startswith(f"{path.name}_")), key=len)
    return yaml.safe_load((roles / role / "defaults" / "main.yml").read_text())[name]


def test_prometheus_repeats_no_exporter_port():
    """Each port has one owner, the exporter's role; Prometheus reads it through gpufleet.llm.fleet_var."""
    prometheus = yaml.safe_load((ROLES / "prometheus" / "defaults" / "main.yml").read_text())
    assert not [name for name in prometheus if name.endswith("_port")]
    template = (ROLES / "prometheus" / "templates" / "prometheus.yml.j2").read_text()
    assert "default(" not in template


def scrape_targets(config):
    """{job: {(target, frozenset(labels))}} of a rendered prometheus.yml."""
    jobs = {}
    for job in config["scrape_configs"]:
        jobs[job["job_name"]] = {
            (target, frozenset(group.get("labels", {}).items()))
            for group in job.get("static_configs") or [] for target in group["targets"]}
    return jobs


def labels(hostvars, host, **extra):
    found = {"host": host, **extra}
    if "gpufleet_region" in hostvars[host]:
        found["region"] = hostvars[host]["gpufleet_region"]
    return frozenset(found.items())


def port_of(hostvars, host, variable, roles):
    return int(str(hostvars[host].get(variable, owner_default(variable, roles))).rsplit(":", 1)[-1])


def expected_targets(data, roles=ROLES):
    hostvars = data["_meta"]["hostvars"]
    for host in group_hosts(data, "all"):
        hostvars.setdefault(host, {})
    gpu_nodes = sorted(group_hosts(data, "gpu_nodes"))
    address = {host: host_address(hostvars, host) for host in hostvars}
    return {
        "node": {(f"{address[h]}:{port_of(hostvars, h, 'node_exporter_listen_address', roles)}", labels(hostvars, h))
                 for h in group_hosts(data, "all")},
        "model_servers": {(f"{s['address']}:{s['port']}", labels(hostvars, s["host"], port=str(s["port"])))
                          for s in fleet_model_servers(hostvars, gpu_nodes)},
        "nginx": {(f"{address[h]}:{port_of(hostvars, h, 'nginx_exporter_listen_address', roles)}", labels(hostvars, h))
                  for h in group_hosts(data, "load_balancers")},
        "gateway_usage": {(f"{address[h]}:{port_of(hostvars, h, 'gateway_usage_port', roles)}",
                           labels(hostvars, h)) for h in group_hosts(data, "load_balancers")},
        "gpu": {(f"{address[h]}:{port_of(hostvars, h, 'gpu_exporter_dcgm_port', roles)}", labels(hostvars, h))
                for h in gpu_nodes
                if hostvars[h].get("gpu_exporter_method", owner_default("gpu_exporter_method", roles)) == "dcgm"},
    }


@pytest.mark.parametrize("inventory", RENDERED_INVENTORIES, ids=lambda path: path.name)
def test_every_inventory_target_is_scraped_and_nothing_else(rendered, inventory):
    expected = expected_targets(inventory_data(inventory))
    assert rendered[inventory], f"{inventory} has no monitoring host"
    for host, directory in rendered[inventory].items():
        jobs = scrape_targets(yaml.safe_load((directory / "prometheus.yml").read_text()))
        assert set(jobs) == {"prometheus", *expected}, host
        for job, targets in expected.items():
            assert jobs[job] == targets, f"{host}: job {job}"


@pytest.mark.parametrize("inventory", RENDERED_INVENTORIES, ids=lambda path: path.name)
def test_promtool_accepts_the_rendered_configuration_and_its_rules(rendered, inventory, promtool):
    for directory in rendered[inventory].values():
        result = subprocess.run([promtool, "check", "config", str(directory / "prometheus.yml")],
                                capture_output=True, text=True, timeout=60, check=False)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "2 rule files found" in result.stdout


def test_fixture_fleet_layout_reaches_the_targets(fixture_render):
    """Spot checks that do not go through fleet.py, so a shared mistake there cannot hide."""
    jobs = scrape_targets(yaml.safe_load((fixture_render / "prometheus.yml").read_text()))
    model_servers = {target for target, _ in jobs["model_servers"]}
    # 8 GPUs at tensor parallel size 2 -> 4 servers; 1 GPU on base port 9000; 2 GPUs by fleet address; the
    # standby aps-gpu-b in service; not the standby use-gpu-c, out of service (its node exporter is scraped).
    assert model_servers == {"10.0.1.21:8000", "10.0.1.21:8001", "10.0.1.21:8002", "10.0.1.21:8003",
                             "use-gpu-b:9000", "aps-gpu-a.internal.example:8000", "aps-gpu-a.internal.example:8001",
                             "aps-gpu-b:8000", "aps-gpu-b:8001"}
    assert "use-gpu-c:9100" in {target for target, _ in jobs["node"]}
    assert ("use-gpu-b:9400", frozenset({"host": "use-gpu-b", "region": "us-east"}.items())) in jobs["gpu"]
    assert len(jobs["gpu"]) == 1
    assert "use-gpu-b:9200" in {target for target, _ in jobs["node"]}
    assert "aps-lb1:9313" in {target for target, _ in jobs["nginx"]}
    assert {target for target, _ in jobs["gateway_usage"]} == {"10.0.1.10:3903", "aps-lb1:3913"}
    # The monitoring host belongs to no region: no empty region label.
    assert ("mon1:9100", frozenset({"host": "mon1"}.items())) in jobs["node"]


def test_adding_a_gpu_node_adds_its_targets(tmp_path, fixture_render):
    """The promise of the issue: a host added to hosts.yml is scraped, with no other change."""
    inventory = yaml.safe_load((FIXTURE_INVENTORY / "hosts.yml").read_text())
    inventory["all"]["children"]["region_ap_south_1"]["hosts"]["aps-gpu-new"] = {"gpu_count": 3}
    inventory["all"]["children"]["gpu_nodes"]["hosts"]["aps-gpu-new"] = None
    (tmp_path / "inventory").mkdir()
    (tmp_path / "inventory" / "hosts.yml").write_text(yaml.safe_dump(inventory))
    code, output = render(tmp_path / "inventory", tmp_path / "out")
    assert code == 0, output[-3000:]
    before = scrape_targets(yaml.safe_load((fixture_render / "prometheus.yml").read_text()))
    after = scrape_targets(yaml.safe_load((tmp_path / "out" / "mon1" / "prometheus.yml").read_text()))
    new = frozenset({"host": "aps-gpu-new", "region": "ap-south-1"}.items())
    assert after["node"] - before["node"] == {("aps-gpu-new:9100", new)}
    assert {target for target, _ in after["model_servers"] - before["model_servers"]} == {
        "aps-gpu-new:8000", "aps-gpu-new:8001", "aps-gpu-new:8002"}


# Every exporter port moved in its owning role's defaults, and Alertmanager's listen address.
MOVED_DEFAULTS = {
    "node_exporter": {"node_exporter_listen_address": ":9191"},
    "nginx_exporter": {"nginx_exporter_listen_address": ":9114"},
    "gateway_usage": {"gateway_usage_port": 3904},
    "gpu_exporter": {"gpu_exporter_dcgm_port": 9401},
    "alertmanager": {"alertmanager_listen_address": "0.0.0.0:9094"},
}


def test_a_role_s_default_port_moves_its_scrape_targets(tmp_path, fixture_render):
    """A port changed where it is owned, the exporter role's defaults, changes the targets with nothing else changed;
    hosts that set their own port keep it."""
    copy = collection_copy(tmp_path / "collections", MOVED_DEFAULTS)
    code, output = render(FIXTURE_INVENTORY, tmp_path / "out", collections=copy)
    assert code == 0, output[-3000:]
    config = yaml.safe_load((tmp_path / "out" / "mon1" / "prometheus.yml").read_text())
    jobs = scrape_targets(config)
    roles = copy / "ansible_collections" / "gpufleet" / "llm" / "roles"
    expected = expected_targets(inventory_data(FIXTURE_INVENTORY), roles)
    for job, targets in expected.items():
        assert jobs[job] == targets, f"job {job}"
    before = scrape_targets(yaml.safe_load((fixture_render / "prometheus.yml").read_text()))
    assert ("mon1:9191", frozenset({"host": "mon1"}.items())) in jobs["node"] - before["node"]
    assert "use-gpu-b:9200" in {target for target, _ in jobs["node"]}  # its own setting
    assert {target for target, _ in jobs["nginx"]} == {"10.0.1.10:9114", "aps-lb1:9313"}
    assert {target for target, _ in jobs["gateway_usage"]} == {"10.0.1.10:3904", "aps-lb1:3913"}
    assert {target for target, _ in jobs["gpu"]} == {"use-gpu-b:9401"}
    assert config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] == ["127.0.0.1:9094"]


def test_prometheus_alerts_the_alertmanager_beside_it(fixture_render):
    config = yaml.safe_load((fixture_render / "prometheus.yml").read_text())
    address = owner_default("alertmanager_listen_address")
    assert config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] == [address] == ["127.0.0.1:9093"]


def test_lab_timing_lets_an_alert_fire_within_seconds(rendered):
    (directory,) = rendered[LAB_INVENTORY].values()
    config = yaml.safe_load((directory / "prometheus.yml").read_text())
    assert config["global"]["scrape_interval"] == "5s"
    alerts = yaml.safe_load((directory / "rules" / "gpufleet-alerts.yml").read_text())
    rule = next(rule for group in alerts["groups"] for rule in group["rules"] if rule.get("alert") == "ModelServerDown")
    assert rule["for"] == "10s"
