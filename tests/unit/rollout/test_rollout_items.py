"""What a GPU node reports to the rollout, rendered by Ansible from the role's vars, then batched and planned."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from ansible_collections.gpufleet.llm.plugins.plugin_utils.rollout import fleet_rollout_batches, fleet_rollout_plan

REPO = Path(__file__).resolve().parents[3]
PENDING = {"driver_version": "550.163.01", "reboot_timeout": 1800, "detection_root": "/"}
ITEM = {"host": "{{ inventory_hostname }}", "region": "us", "address": "{{ inventory_hostname }}.lab",
        "model": "m", "config_dir": "/etc/gpufleet/model-server", "batch": 1, "drain_timeout": 300,
        "ready_timeout": 900}
# Each host: wanted ports 8000-8001, 8000 and 8002 (no longer wanted) serving, 8000 changed.
STATE = {"_model_server_ports": [8000, 8001], "_model_server_serving_ports": [8000, 8002],
         "_model_server_unwanted_ports": [8002], "_model_server_changed_ports": [8000],
         "_model_server_rollout_item": ITEM}
HOSTS = {"restarting": STATE, "rebooting": {**STATE, "_nvidia_driver_reboot_pending": PENDING}}


@pytest.fixture(scope="module")
def items(tmp_path_factory):
    work = tmp_path_factory.mktemp("items")
    inventory = {"all": {"vars": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable},
                         "hosts": {name: {"render_vars": state} for name, state in HOSTS.items()}}}
    (work / "hosts.yml").write_text(yaml.safe_dump(inventory))
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(REPO / ".collections"),
               ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_NOCOLOR="1", ANSIBLE_CACHE_PLUGIN="memory",
               ANSIBLE_LOCAL_TEMP=str(work / "ansible-tmp"))
    result = subprocess.run(
        [str(Path(sys.executable).with_name("ansible-playbook")), "-i", str(work / "hosts.yml"),
         str(Path(__file__).with_name("rollout_items.yml")), "-e", json.dumps({"render_dir": str(work)})],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    return {name: json.loads((work / f"{name}.json").read_text()) for name in HOSTS}


def test_without_a_reboot_only_changed_serving_instances_restart(items):
    assert [(i["port"], i["action"]) for i in items["restarting"]] == [(8000, "restart"), (8002, "stop")]
    assert "driver_version" not in items["restarting"][0]


def test_a_pending_reboot_takes_every_wanted_instance_with_its_driver_settings(items):
    assert [(i["port"], i["action"]) for i in items["rebooting"]] == [(8000, "reboot"), (8001, "reboot"),
                                                                       (8002, "stop")]
    assert all(i["driver_version"] == "550.163.01" and int(i["reboot_timeout"]) == 1800
               for i in items["rebooting"] if i["action"] == "reboot")
    assert "driver_version" not in items["rebooting"][2]


def test_the_rendered_items_batch_with_the_host_whole_and_the_plan_names_the_reboot(items):
    pending = items["restarting"] + items["rebooting"]
    servers = [{"host": h, "region": "us", "address": f"{h}.lab", "port": p} for h in HOSTS for p in (8000, 8001)]
    batches = fleet_rollout_batches(pending, servers)
    rebooting = [b for b in batches if any(i["host"] == "rebooting" for i in b)]
    assert len(rebooting) == 1 and {i["host"] for i in rebooting[0]} == {"rebooting"}
    plan = fleet_rollout_plan(pending, servers)
    assert any("reboot host rebooting into driver 550.163.01" in line and "rolls alone in this batch" in line
               for line in plan), plan
