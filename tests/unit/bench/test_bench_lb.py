"""The nginx_lb role's template as the benchmark renders it: default unchanged, the affinity mode, and routing."""

import json
import os
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import httpx
import pytest
import yaml
from bench_support import REPO, free_port
from gpufleet_bench import fixtures

pytestmark = pytest.mark.skipif(shutil.which("nginx", path="/usr/sbin:/usr/bin:/usr/local/sbin") is None,
                                reason="needs nginx: `make host-packages` installs it")


def _render(tmp_path, sim_ports, **variants):
    gpu = {"bench-gpu": {"gpufleet_region": "here", "gpu_count": len(sim_ports), "gpu_model": "sim",
                         "gpufleet_address": "127.0.0.1", "model_server_base_port": sim_ports[0]},
           "other-gpu": {"gpufleet_region": "there", "gpu_count": 1, "gpu_model": "sim",
                         "gpufleet_address": "127.0.0.2", "model_server_base_port": 9000}}
    lbs = {}
    for name, settings in variants.items():
        lbs[name] = {"region": "here", "settings": {
            "nginx_lb_pid_file": str(tmp_path / f"{name}.pid"), "nginx_lb_error_log": str(tmp_path / "error.log"),
            "nginx_lb_access_log": str(tmp_path / f"access-{name}.log"), **settings}}
    return {name: path.read_text() for name, path in fixtures.render_lb_configs(tmp_path, gpu, lbs).items()}


# Simulators that answer at once: these tests count where requests go, not how long they take.
INSTANT = {"ttft_ms": 0, "itl_ms": 0, "prefill_ms_per_token": 0, "output_tokens": 1}


def _render_one_lb(tmp_path, gpu_nodes, lb_port, **settings):
    """One load balancer of region `here` on loopback at lb_port, with the role's template and these settings."""
    return fixtures.render_lb_configs(tmp_path, gpu_nodes, {"lb": {"region": "here", "settings": {
        "nginx_lb_listen_address": "127.0.0.1", "nginx_lb_listen_port": lb_port, "nginx_lb_status_port": free_port(),
        "nginx_lb_pid_file": str(tmp_path / "lb.pid"), "nginx_lb_error_log": str(tmp_path / "error.log"),
        "nginx_lb_access_log": str(tmp_path / "access.log"), "nginx_lb_debug_headers": True, **settings}}})


def test_default_render_keeps_the_role_behaviour_and_affinity_adds_a_hash_upstream(tmp_path):
    confs = _render(tmp_path, [19001, 19002], default={},
                    affinity={"nginx_lb_session_affinity": True, "nginx_lb_session_header": "X-Conversation",
                              "nginx_lb_listen_address": "127.0.0.1", "nginx_lb_listen_port": 19080})
    default, affinity = confs["default"], confs["affinity"]
    assert "listen 443 default_server;" in default  # the benchmark's plain arm: TLS off
    assert "proxy_pass http://gpufleet_pool_0;" in default
    assert "hash " not in default and "_affinity" not in default
    assert "server 127.0.0.2:9000 max_fails=3 fail_timeout=10s backup;" in default
    assert "listen 127.0.0.1:19080 default_server;" in affinity
    assert "proxy_pass http://gpufleet_pool_0_affinity;" in affinity
    assert "map $http_x_conversation $gpufleet_affinity {" in affinity
    hash_upstream = affinity.split("upstream gpufleet_pool_0_affinity {", 1)[1].split("}", 1)[0]
    assert "hash $http_x_conversation consistent;" in hash_upstream
    assert "127.0.0.1:19001" in hash_upstream and "127.0.0.1:19002" in hash_upstream
    assert "backup" not in hash_upstream and "127.0.0.2" not in hash_upstream  # hash forbids backup servers
    # the least_conn upstream with its cross-region backup is still there for requests without the header
    assert "least_conn;" in affinity and "server 127.0.0.2:9000 max_fails=3 fail_timeout=10s backup;" in affinity


def test_affinity_mode_pins_a_session_and_balances_the_rest(tmp_path):
    ports = [free_port(), free_port(), free_port()]
    lb_port = free_port()
    gpu_nodes = {f"gpu-{index}": {"gpufleet_region": "here", "gpu_count": 1, "gpu_model": "sim",
                                  "gpufleet_address": "127.0.0.1", "model_server_base_port": port}
                 for index, port in enumerate(ports)}
    confs = _render_one_lb(tmp_path, gpu_nodes, lb_port, nginx_lb_session_affinity=True)
    with fixtures.simulators(ports, tmp_path, INSTANT), fixtures.nginx(confs["lb"], lb_port, tmp_path) as lb, \
            httpx.Client(base_url=lb.url, timeout=10) as client:
        def instance(session=None):
            headers = {"X-Session-ID": session} if session else {}
            response = client.post("/v1/completions", headers=headers,
                                   json={"model": "simulated-llm", "prompt": "hi", "max_tokens": 1})
            assert response.status_code == 200
            return response.headers["x-gpufleet-instance"]

        pinned = {instance("chat-42") for _ in range(20)}
        sessions = {instance(f"chat-{index}") for index in range(30)}
        anonymous = Counter(instance() for _ in range(30))
    assert len(pinned) == 1
    assert len(sessions) == 3  # 30 sessions land on every server of the ring
    assert len(anonymous) == 3  # without the header: least_conn over all servers


@pytest.mark.parametrize(("header", "passes"), [("X-Session-ID", True), ("X Session", False), ("X_Session", False)])
def test_preflight_accepts_only_a_header_name_for_the_affinity_mode(tmp_path, header, passes):
    gpu_a = {"gpufleet_region": "here", "gpu_count": 2, "gpu_model": "sim"}
    inventory = {"all": {"vars": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable},
                         "children": {"gpu_nodes": {"hosts": {"gpu-a": gpu_a}},
                                      "load_balancers": {"hosts": {"lb-a": {"gpufleet_region": "here"}}},
                                      "region_here": {"hosts": {"gpu-a": {}, "lb-a": {}}}}}}
    playbook = [{"name": "Preflight", "hosts": "load_balancers", "gather_facts": False, "tasks": [
        {"name": "Run the role's preflight", "ansible.builtin.include_role": {
            "name": "gpufleet.llm.nginx_lb", "tasks_from": "preflight.yml"}}]}]
    (tmp_path / "hosts.yml").write_text(yaml.safe_dump(inventory))
    (tmp_path / "preflight.yml").write_text(yaml.safe_dump(playbook))
    extra = json.dumps({"nginx_lb_session_affinity": True, "nginx_lb_session_header": header,
                        "nginx_lb_auth": False, "nginx_lb_tls": False})
    result = subprocess.run([str(Path(sys.executable).with_name("ansible-playbook")), "-i", str(tmp_path / "hosts.yml"),
                             str(tmp_path / "preflight.yml"), "-e", extra],
                            env=dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(REPO / ".collections")),
                            capture_output=True, text=True, timeout=120, check=False)
    assert (result.returncode == 0) == passes, result.stdout[-2000:]
    if not passes:
        assert "lb-a: nginx_lb_session_header must be a header name" in result.stdout


def test_a_drained_instance_gets_no_new_requests_and_a_drained_backup_stays_down(tmp_path):
    ports = [free_port(), free_port()]
    lb_port = free_port()
    gpu_nodes = {**{f"gpu-here-{i}": {"gpufleet_region": "here", "gpu_count": 1, "gpu_model": "sim",
                                      "gpufleet_address": "127.0.0.1", "model_server_base_port": port}
                    for i, port in enumerate(ports)},
                 "gpu-there": {"gpufleet_region": "there", "gpu_count": 1, "gpu_model": "sim",
                               "gpufleet_address": "127.0.0.2", "model_server_base_port": 9000}}
    drained = [f"127.0.0.1:{ports[0]}", "127.0.0.2:9000"]
    confs = _render_one_lb(tmp_path, gpu_nodes, lb_port, nginx_lb_drained_instances=drained)
    conf = confs["lb"].read_text()
    assert f"server 127.0.0.1:{ports[0]} max_fails=3 fail_timeout=10s down;" in conf
    assert "server 127.0.0.2:9000 max_fails=3 fail_timeout=10s backup down;" in conf
    assert f"server 127.0.0.1:{ports[1]} max_fails=3 fail_timeout=10s;" in conf
    with fixtures.simulators(ports, tmp_path, INSTANT), fixtures.nginx(confs["lb"], lb_port, tmp_path) as lb, \
            httpx.Client(base_url=lb.url, timeout=10) as client:
        served = Counter()
        for _ in range(20):
            response = client.post("/v1/completions", json={"model": "simulated-llm", "prompt": "hi", "max_tokens": 1})
            assert response.status_code == 200
            served[response.headers["x-gpufleet-instance"]] += 1
    assert len(served) == 1 and sum(served.values()) == 20
    assert str(ports[0]) not in next(iter(served))
