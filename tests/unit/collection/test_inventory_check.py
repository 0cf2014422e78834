"""site.yml refuses a bad inventory in its first play, before it connects to any host."""

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[3]
BIN = Path(sys.executable).parent


def inventory(tmp_path, edit):
    """The lab's topology at unreachable addresses, edited by ``edit(hosts)``."""
    hosts = yaml.safe_load((ROOT / "inventories/lab/hosts.yml").read_text())
    for group in hosts["all"]["children"].values():
        for values in (group.get("hosts") or {}).values():
            if values and "ansible_host" in values:
                # TEST-NET-1: nothing answers there.
                values["ansible_host"] = values["ansible_host"].replace("10.89.77.", "192.0.2.")
    edit(hosts["all"]["children"])
    path = tmp_path / "hosts.yml"
    path.write_text(yaml.safe_dump(hosts))
    return path


def site(inventory_path):
    return subprocess.run([str(BIN / "ansible-playbook"), "-i", str(inventory_path), "playbooks/site.yml"],
                          capture_output=True, text=True, cwd=ROOT, timeout=300, check=False)


def set_var(group, host, name, value):
    def edit(children):
        children[group]["hosts"][host] = {**(children[group]["hosts"][host] or {}), name: value}
    return edit


def set_scaling_pools(pools):
    """The pools on the monitoring host; auth off, so that only the pools break the copy of the lab (its API
    keys live in group_vars, which the copy leaves behind)."""
    def edit(children):
        children["load_balancers"]["vars"] = {**(children["load_balancers"].get("vars") or {}), "nginx_lb_auth": False}
        set_var("monitoring", "lab-monitoring", "prometheus_scaling_pools", pools)(children)
    return edit


def add_lonely_load_balancer(children):
    children["region_ap_south"] = {"hosts": {"lab-aps-lb": {"ansible_host": "192.0.2.2"}},
                                   "vars": {"gpufleet_region": "ap-south"}}
    children["load_balancers"]["hosts"]["lab-aps-lb"] = None


def drop_gpu_count(children):
    del children["gpu_nodes"]["vars"]["gpu_count"]
    children["gpu_nodes"]["hosts"]["lab-use-gpu1"] = {"gpu_count": 2}
    children["gpu_nodes"]["hosts"]["lab-use-gpu2"] = {"gpu_count": 2}
    children["gpu_nodes"]["hosts"]["lab-euw-gpu1"] = {"gpu_count": 2}


def share_the_load_balancers_address(children):
    """lab-use-gpu1 on lab-use-lb's address, its model servers on 8080 and 8081; the load balancer sets
    no port, so it has nginx_lb's defaults: 80, and 8081 for stub_status."""
    set_var("region_us_east", "lab-use-gpu1", "ansible_host", "192.0.2.10")(children)
    set_var("gpu_nodes", "lab-use-gpu1", "model_server_base_port", 8080)(children)


@pytest.mark.parametrize(("edit", "message"), [
    (drop_gpu_count, "lab-euw-gpu2: gpu_count is not set"),
    (set_var("gpu_nodes", "lab-use-gpu1", "model_server_tensor_parallel_size", 4),
     "lab-use-gpu1: gpu_count 2 is not divisible by model_server_tensor_parallel_size 4"),
    (set_var("region_us_east", "lab-use-gpu2", "ansible_host", "192.0.2.11"),
     "lab-use-gpu2: model server port 8000 on 192.0.2.11 is already used by lab-use-gpu1"),
    (add_lonely_load_balancer,
     "lab-aps-lb: load balancer of gpufleet_region 'ap-south', which has no host in gpu_nodes"),
    (set_var("gpu_nodes", "lab-euw-gpu1", "model_server_engine", "tgi"),
     "lab-euw-gpu1: model_server_engine must be one of vllm, simulator, got 'tgi'"),
    (set_var("load_balancers", "lab-use-lb", "nginx_lb_listen_port", "eighty"),
     "lab-use-lb: nginx_lb_listen_port must be an integer from 1 to 65535, got str 'eighty'"),
    (share_the_load_balancers_address,
     "lab-use-gpu1: model server port 8081 on 192.0.2.10 is already used by lab-use-lb (nginx_lb_status_port)"),
    (set_var("gpu_nodes", "lab-euw-gpu1", "model_server_base_port", 443),
     "lab-euw-gpu1: model_server_base_port must be an integer from 1024 to 65535, got int 443"),
    (set_scaling_pools([{"region": "us-east", "model": "simulated-llm", "min": 3, "max": 2}]),
     "prometheus_scaling_pools[0]: min 3 is above max 2"),
    (set_scaling_pools([{"region": "eu-west", "model": "simulated-llm-large", "min": 1, "max": 2}]),
     "prometheus_scaling_pools[0]: no GPU node of region 'eu-west' serves model 'simulated-llm-large'"),
], ids=["no-gpu-count", "tensor-parallel", "port-clash", "lonely-lb", "unknown-engine", "wrong-type",
        "default-port-clash", "privileged-port", "scaling-min-above-max", "scaling-pool-without-instances"])
def test_a_bad_inventory_fails_before_any_host_changes(tmp_path, edit, message):
    result = site(inventory(tmp_path, edit))
    assert result.returncode != 0
    assert message in result.stdout, result.stdout[-3000:]
    # The check is the first play; no later play started, so no host was reached.
    assert "PLAY [Provision" not in result.stdout
    assert "UNREACHABLE" not in result.stdout


def test_the_lab_inventory_meets_the_contract():
    result = subprocess.run([str(BIN / "ansible-playbook"), "-i", "inventories/lab", "playbooks/validate.yml"],
                            capture_output=True, text=True, cwd=ROOT, timeout=300, check=False)
    assert result.returncode == 0, result.stdout[-3000:]
    assert "failed=0" in result.stdout
