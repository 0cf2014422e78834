"""The serving path of the lab fleet: model servers, load balancers, failover, and safe config changes."""

from __future__ import annotations

import json
import time

import httpx
import pytest
from conftest import MODEL_A, chat, run_playbook, wait_until
from prometheus_client.parser import text_string_to_metric_families

CHAT_HANDLER = "/v1/chat/completions"


def served_chats(fleet, server) -> float:
    """Chat completions an instance answered, from its own /metrics."""
    text = httpx.get(f"{fleet.server_url(server)}/metrics", timeout=10).text
    return sum(sample.value
               for family in text_string_to_metric_families(text)
               for sample in family.samples
               if sample.name == "http_requests_total" and sample.labels.get("handler") == CHAT_HANDLER)


def healthy(fleet, server) -> bool:
    try:
        return httpx.get(f"{fleet.server_url(server)}/health", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.fixture
def stopped(fleet, lab_host):
    """Stops model server instances for one test, and starts them again whatever happens."""
    taken = []

    def stop(servers):
        for server in servers:
            lab_host(server["host"]).run_test(f"systemctl stop model-server@{server['port']}.service")
            taken.append(server)

    yield stop
    for server in taken:
        lab_host(server["host"]).run(f"systemctl start model-server@{server['port']}.service")
    for server in taken:
        wait_until(lambda s=server: healthy(fleet, s), 60, f"{server['host']}:{server['port']} to be healthy again")


def test_every_model_server_unit_is_active_and_listening(fleet, lab_host):
    for server in fleet.servers:
        host = lab_host(server["host"])
        unit = host.service(f"model-server@{server['port']}")
        if not unit.is_running:
            journal = host.run(f"journalctl -u model-server@{server['port']} -n 40 --no-pager").stdout
            pytest.fail(f"model-server@{server['port']} on {server['host']} is not running:\n{journal}")
        assert unit.is_enabled
        assert host.socket(f"tcp://0.0.0.0:{server['port']}").is_listening
        env = host.file(f"/etc/gpufleet/model-server/{server['port']}.env")
        assert env.mode == 0o600
        assert f"CUDA_VISIBLE_DEVICES={server['cuda_visible_devices']}" in env.content_string


def test_model_servers_run_as_an_unprivileged_user(fleet, lab_host):
    for server in fleet.servers:
        host = lab_host(server["host"])
        pid = host.check_output(f"systemctl show --property=MainPID --value model-server@{server['port']}")
        assert pid != "0", f"model-server@{server['port']} on {server['host']} has no main process"
        assert host.check_output(f"ps -o user= -p {pid}") == "model-server", (server["host"], server["port"])
    # A standby node out of service (lab-use-gpu3) is provisioned but runs no model server.
    serving = {server["host"] for server in fleet.servers}
    for host_name in sorted(set(fleet.groups["gpu_nodes"]) - serving):
        running = lab_host(host_name).check_output(
            "systemctl list-units --plain --no-legend --state=running 'model-server@*'")
        assert running == "", f"{host_name}: {running}"


def test_model_servers_serve_on_vllms_http_stack(fleet, lab_host):
    # vLLM's server runs on uvloop and httptools; the simulator's CLI loads both (its maps are readable by its
    # own user only: the lab's root has no CAP_SYS_PTRACE).
    for server in fleet.servers:
        host = lab_host(server["host"])
        pid = host.check_output(f"systemctl show --property=MainPID --value model-server@{server['port']}")
        maps = host.check_output(f"runuser -u model-server -- cat /proc/{pid}/maps")
        assert "/uvloop/loop." in maps and "/httptools/parser/parser." in maps, (server["host"], server["port"])


@pytest.mark.parametrize("region", ["us-east", "eu-west"])
def test_a_streamed_chat_arrives_through_each_region_as_chunks_over_time(fleet, region):
    arrivals, events = [], []
    start = time.monotonic()
    body = {"model": "simulated-llm", "stream": True, "max_tokens": 24,
            "messages": [{"role": "user", "content": "Stream me a story."}]}
    with fleet.client(timeout=60) as client, \
            client.stream("POST", f"{fleet.lb_url(region)}/v1/chat/completions", json=body) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        served_by = response.headers["x-gpufleet-instance"]
        for line in response.iter_lines():
            if line.startswith("data: "):
                arrivals.append(time.monotonic() - start)
                events.append(line[len("data: "):])
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    content = [c for c in chunks if c["choices"][0]["delta"].get("content")]
    assert len(content) == 24
    assert chunks[-1]["choices"][0]["finish_reason"] == "length"
    # Tokens arrive as they are generated (inter-token latency 15 ms in the lab), not in one buffered burst.
    assert arrivals[-1] - arrivals[1] > 0.2, arrivals
    assert served_by.split(":")[0] in {s["host"] for s in fleet.servers_of(region, "simulated-llm")}


@pytest.mark.parametrize("model", ["simulated-llm", "simulated-llm-small"])
def test_requests_for_a_model_reach_every_instance_of_that_model_in_the_region_and_no_other(fleet, model):
    region = "us-east"
    servers = fleet.servers_of(region)
    before = {(s["host"], s["port"]): served_chats(fleet, s) for s in servers}
    with fleet.client() as client:
        for _ in range(40):
            response = chat(client, fleet.lb_url(region), model=model)
            assert response.status_code == 200, response.text
            assert response.json()["model"] == model
    # Counted by each instance's own metrics, not by anything the load balancer says.
    deltas = {(s["host"], s["port"], s["model"]): served_chats(fleet, s) - before[(s["host"], s["port"])]
              for s in servers}
    assert all(delta >= 1 for (_, _, served), delta in deltas.items() if served == model), deltas
    assert all(delta == 0 for (_, _, served), delta in deltas.items() if served != model), deltas
    assert sum(deltas.values()) == 40, deltas


def test_requests_succeed_with_one_instance_stopped(fleet, stopped):
    region = "us-east"
    victim = fleet.servers_of(region, MODEL_A)[0]
    stopped([victim])
    with fleet.client() as client:
        responses = [chat(client, fleet.lb_url(region)) for _ in range(20)]
    assert [r.status_code for r in responses] == [200] * 20
    assert f"{victim['host']}:{victim['port']}" not in {r.headers["x-gpufleet-instance"] for r in responses}


def test_a_model_with_every_instance_of_a_region_down_is_served_by_the_other_region(fleet, stopped):
    stopped(fleet.servers_of("us-east", MODEL_A))
    other_region_hosts = {s["host"] for s in fleet.servers_of("eu-west", MODEL_A)}
    with fleet.client() as client:
        responses = [chat(client, fleet.lb_url("us-east")) for _ in range(10)]
        small = chat(client, fleet.lb_url("us-east"), model="simulated-llm-small")
    assert [r.status_code for r in responses] == [200] * 10
    assert {r.headers["x-gpufleet-instance"].split(":")[0] for r in responses} <= other_region_hosts
    # The other model of the region is untouched and still served at home.
    assert small.status_code == 200
    assert small.headers["x-gpufleet-instance"].split(":")[0] in {s["host"] for s in fleet.servers_of("us-east")}


def test_a_broken_nginx_config_fails_the_play_and_the_running_nginx_keeps_serving(fleet, lab_host):
    lb = fleet.load_balancer("us-east")
    config = lab_host(lb).file("/etc/nginx/nginx.conf")
    checksum_before = config.sha256sum
    result = run_playbook("playbooks/load_balancers.yml", "--limit", lb, "-e", "nginx_lb_proxy_read_timeout=banana")
    assert result.returncode != 0
    # NGINX's own words, from `nginx -t` on the candidate file.
    assert "[emerg]" in result.stdout and 'proxy_read_timeout\\" directive invalid value' in result.stdout, \
        result.stdout[-3000:]
    assert "PLAY RECAP" in result.stdout and "failed=1" in result.stdout
    assert lab_host(lb).file("/etc/nginx/nginx.conf").sha256sum == checksum_before
    assert lab_host(lb).service("nginx").is_running
    with fleet.client() as client:
        assert chat(client, fleet.lb_url("us-east")).status_code == 200


def test_check_mode_on_the_converged_fleet_reports_no_change():
    result = run_playbook("playbooks/site.yml", "--check", "--diff")
    assert result.returncode == 0, result.stdout[-3000:]
    recap = result.stdout[result.stdout.index("PLAY RECAP"):]
    changed = {line.split()[0]: line for line in recap.splitlines() if "changed=" in line}
    assert changed and all("changed=0" in line for line in changed.values()), recap
    assert "--- before" not in result.stdout, "check mode showed a diff on a converged fleet"


def test_the_load_balancer_answers_its_own_health_and_keeps_stub_status_local(fleet, lab_host):
    for region in fleet.regions:
        with fleet.client(key=None, timeout=5) as client:
            assert client.get(f"{fleet.lb_url(region)}/health").text == "ok\n"
            # From outside, /stub_status is a path the gateway does not serve.
            outside = client.get(f"{fleet.lb_url(region)}/stub_status")
            assert outside.status_code == 404 and "Active connections" not in outside.text
        local = lab_host(fleet.load_balancer(region)).run(
            "python3 -c \"import urllib.request as u; print(u.urlopen('http://127.0.0.1:8081/stub_status').read().decode())\"")
        assert "Active connections" in local.stdout, local.stderr
