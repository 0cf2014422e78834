"""Molecule verify for monitoring: run against the lab after converge (playbooks/site.yml).

Every expected scrape target is up (counted from the inventory), every query of every dashboard and
every recording and alerting rule returns data once traffic went through the load balancers, and a
stopped model server fires ModelServerDown within its window. Tests here take no `host` fixture, so
they run once, not once per host. Set GPUFLEET_INVENTORY to verify another inventory laid out like
the lab's (hosts publish ports with lab_publish: ADDRESS:HOST_PORT:CONTAINER_PORT).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import testinfra

ROOT = Path(__file__).resolve().parents[3]
INVENTORY = Path(os.environ.get("GPUFLEET_INVENTORY", ROOT / "inventories" / "lab"))
sys.path.insert(0, str(ROOT / ".collections"))
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "tests" / "unit" / "monitoring"))

from ansible_collections.gpufleet.llm.plugins.plugin_utils.fleet import (  # noqa: E402
    fleet_model_servers,
    host_address,
)
from inventory_listing import group_hosts  # noqa: E402
from lab_traffic import lab_client, published_url  # noqa: E402
from monitoring_support import (  # noqa: E402
    DASHBOARDS,
    boolify,
    dashboard_queries,
    grafana_substitute,
    metric_names,
)

GPU_METRICS = re.compile(r"^(host_gpu:|gpufleet_gpu_|DCGM_)")
REQUESTS_PER_LOAD_BALANCER = 24
HTTP_TIMEOUT = 30


def _ansible_tool(name):
    return str(Path(sys.executable).parent / name) if (Path(sys.executable).parent / name).exists() \
        else shutil.which(name)


def _published(hostvars, host, container_port):
    """http://ADDRESS:HOST_PORT where the lab publishes the host's container_port on this machine."""
    for entry in hostvars[host].get("lab_publish", []):
        address, host_port, port = entry.rsplit(":", 2)
        if container_port is None or int(port) == int(container_port):
            return f"http://{address}:{host_port}"
    pytest.fail(f"{host} publishes no port {container_port} (lab_publish) for the verify tests to reach")


@pytest.fixture(scope="module", autouse=True)
def ansible_on_path():
    """testinfra's ansible backend runs `ansible` by name: find the one next to this Python."""
    saved = os.environ["PATH"]
    os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{saved}"
    yield
    os.environ["PATH"] = saved


@pytest.fixture(scope="module")
def fleet():
    result = subprocess.run([_ansible_tool("ansible-inventory"), "-i", str(INVENTORY), "--list"],
                            capture_output=True, text=True, timeout=120, check=True, cwd=ROOT)
    data = json.loads(result.stdout)
    hostvars = data["_meta"]["hostvars"]
    for host in group_hosts(data, "all"):
        hostvars.setdefault(host, {})
    groups = {name: sorted(group_hosts(data, name)) for name in ("all", "gpu_nodes", "load_balancers", "monitoring")}
    return {"data": data, "hostvars": hostvars, **groups}


@pytest.fixture(scope="module")
def prometheus(fleet):
    (monitoring,) = fleet["monitoring"][:1]
    port = str(fleet["hostvars"][monitoring].get("prometheus_listen_address", ":9090")).rsplit(":", 1)[1]
    with httpx.Client(base_url=_published(fleet["hostvars"], monitoring, port), timeout=HTTP_TIMEOUT) as client:
        yield client


def query(prometheus, expr):
    response = prometheus.get("/api/v1/query", params={"query": expr})
    body = response.json()
    assert body.get("status") == "success", f"{expr}: {body.get('error', response.text)}"
    return body["data"]["result"]


def wait_for(check, timeout, interval=2.0):
    """Poll check() until it returns a truthy value or timeout seconds pass; return its last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)


def seconds(duration):
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
    return sum(float(n) * units[u] for n, u in re.findall(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)", duration))


def expected_instances(fleet):
    hostvars = fleet["hostvars"]

    def port(host, variable, default):
        return str(hostvars[host].get(variable, f":{default}")).rsplit(":", 1)[1]

    return {
        "node": {f"{host_address(hostvars, h)}:{port(h, 'node_exporter_listen_address', 9100)}" for h in fleet["all"]},
        "model_servers": {f"{s['address']}:{s['port']}" for s in fleet_model_servers(hostvars, fleet["gpu_nodes"])},
        "nginx": {f"{host_address(hostvars, h)}:{port(h, 'nginx_exporter_listen_address', 9113)}"
                  for h in fleet["load_balancers"]},
        "gpu": {f"{host_address(hostvars, h)}:{hostvars[h].get('gpu_exporter_dcgm_port', 9400)}"
                for h in fleet["gpu_nodes"] if hostvars[h].get("gpu_exporter_method") == "dcgm"},
    }


def test_every_expected_target_is_up(fleet, prometheus):
    expected = expected_instances(fleet)
    assert expected["model_servers"] and expected["node"] and expected["nginx"]

    def targets():
        found = {job: set() for job in expected}
        for series in query(prometheus, 'up{job=~"node|model_servers|nginx|gpu"} == 1'):
            found[series["metric"]["job"]].add(series["metric"]["instance"])
        return found if found == expected else None

    found = wait_for(targets, timeout=60)
    up = query(prometheus, 'up{job=~"node|model_servers|nginx|gpu"}')
    assert found == expected, f"up targets differ from the inventory: {json.dumps(up)[:3000]}"
    for series in up:
        labels = series["metric"]
        assert labels["host"] in fleet["hostvars"], labels
        assert labels.get("region") == fleet["hostvars"][labels["host"]].get("gpufleet_region"), labels
        if labels["job"] == "model_servers":
            assert labels["instance"].endswith(":" + labels["port"]), labels


@pytest.fixture(scope="module")
def traffic(fleet):
    """Chat completions through every load balancer, every other one streamed; returns {load balancer: status
    codes}."""
    hostvars = fleet["hostvars"]
    statuses = {}
    for lb in fleet["load_balancers"]:
        model = next((hostvars[g].get("gpufleet_model") for g in fleet["gpu_nodes"]
                      if hostvars[g].get("gpufleet_model")), "default")
        with lab_client(hostvars[lb], base_url=published_url(hostvars[lb], 443, "https"),
                        timeout=HTTP_TIMEOUT) as client:
            statuses[lb] = [client.post("/v1/chat/completions", json={
                "model": model, "max_tokens": 16, "stream": n % 2 == 1,
                "messages": [{"role": "user", "content": f"verify request {n}"}]}).status_code
                for n in range(REQUESTS_PER_LOAD_BALANCER)]
    return statuses


def test_traffic_goes_through_every_load_balancer(traffic):
    for lb, codes in traffic.items():
        assert codes.count(200) == len(codes), f"{lb}: {codes}"


def _rules(prometheus):
    body = prometheus.get("/api/v1/rules").json()
    assert body["status"] == "success"
    return [rule for group in body["data"]["groups"] for rule in group["rules"]]


def test_every_rule_evaluates_without_error(prometheus):
    rules = _rules(prometheus)
    assert len(rules) > 50
    broken = [(rule["name"], rule.get("lastError")) for rule in rules if rule["health"] != "ok"]
    assert not broken


def test_every_dashboard_query_and_rule_returns_data(fleet, prometheus, traffic):
    queries = [(where, grafana_substitute(expr)) for path in DASHBOARDS
               for where, expr in dashboard_queries(json.loads(path.read_text()))]
    for rule in _rules(prometheus):
        if rule["type"] == "recording":
            queries.append((f"record {rule['name']}", rule["query"]))
        else:
            queries.append((f"alert {rule['name']}", boolify(rule["query"])))
    has_gpus = bool(query(prometheus, "count(gpufleet_gpu_info) or count(DCGM_FI_DEV_GPU_TEMP)"))

    def empty():
        missing = []
        for where, expr in queries:
            gpu_only = all(GPU_METRICS.match(name) for name in metric_names(expr))
            if not query(prometheus, expr) and (has_gpus or not gpu_only):
                missing.append((where, expr))
        return missing

    # Rates need two scrapes after the traffic, and recordings of recordings one more evaluation each.
    missing = empty()
    deadline = time.monotonic() + 90
    while missing and time.monotonic() < deadline:
        time.sleep(5)
        missing = empty()
    assert not missing, f"no data for: {missing}"
    if not has_gpus:
        # The lab has no GPU: the textfile collector must write nothing rather than zeros.
        assert not query(prometheus, '{__name__=~"gpufleet_gpu_.+"}')


def _alert(prometheus, host, port):
    body = prometheus.get("/api/v1/alerts").json()
    return [alert for alert in body["data"]["alerts"] if alert["labels"].get("alertname") == "ModelServerDown"
            and alert["labels"].get("host") == host and alert["labels"].get("port") == str(port)]


def test_a_stopped_model_server_fires_model_server_down_in_its_window(fleet, prometheus):
    server = fleet_model_servers(fleet["hostvars"], fleet["gpu_nodes"])[0]
    rule = next(rule for rule in _rules(prometheus) if rule["name"] == "ModelServerDown")
    config = prometheus.get("/api/v1/status/config").json()["data"]["yaml"]
    scrape = seconds(re.search(r"scrape_interval: (\S+)", config).group(1))
    evaluation = seconds(re.search(r"evaluation_interval: (\S+)", config).group(1))
    window = rule["duration"] + 2 * scrape + 2 * evaluation + 10
    assert window < 60, "the lab's alert window should be short (inventories/lab/group_vars/monitoring)"
    assert not _alert(prometheus, server["host"], server["port"])
    node = testinfra.get_host(f"ansible://{server['host']}?force_ansible=True", ansible_inventory=str(INVENTORY))
    unit = f"model-server@{server['port']}"
    started = time.monotonic()
    try:
        node.run_test(f"systemctl stop {unit}")
        firing = wait_for(lambda: [a for a in _alert(prometheus, server["host"], server["port"])
                                   if a["state"] == "firing"], timeout=window, interval=1)
        elapsed = time.monotonic() - started
        assert firing, f"ModelServerDown for {server['host']}:{server['port']} not firing after {elapsed:.0f}s"
        assert elapsed >= rule["duration"], "fired before its `for` window"
    finally:
        node.run(f"systemctl start {unit}")
        # Leave a healthy fleet to the verify tests that follow.
        wait_for(lambda: query(prometheus, f'up{{job="model_servers",host="{server["host"]}",'
                                           f'port="{server["port"]}"}} == 1'), timeout=60)


def test_grafana_files_are_provisioned_on_the_monitoring_host(fleet):
    monitoring = fleet["monitoring"][0]
    hostvars = fleet["hostvars"][monitoring]
    host = testinfra.get_host(f"ansible://{monitoring}?force_ansible=True", ansible_inventory=str(INVENTORY))
    config_dir = hostvars.get("grafana_config_dir", "/etc/grafana")
    dashboards_dir = hostvars.get("grafana_dashboards_dir", "/var/lib/grafana/dashboards/gpufleet")
    # One command for all files: each testinfra call through ansible costs seconds.
    provisioning = f"{config_dir}/provisioning"
    result = host.run(f"cat {provisioning}/datasources/gpufleet.yml {provisioning}/dashboards/gpufleet.yml && "
                      f"cd {dashboards_dir} && sha256sum " + " ".join(path.name for path in DASHBOARDS))
    assert result.rc == 0, result.stderr
    assert "type: prometheus" in result.stdout and dashboards_dir in result.stdout
    sums = dict(line.split()[::-1] for line in result.stdout.splitlines() if re.fullmatch(r"[0-9a-f]{64}  \S+", line))
    assert sums == {path.name: hashlib.sha256(path.read_bytes()).hexdigest() for path in DASHBOARDS}
    if str(hostvars.get("grafana_install_package", True)).lower() in {"false", "no", "0"}:
        assert not host.package("grafana").is_installed
    else:
        assert host.service("grafana-server").is_running
