"""The model server's unit name has one owner, model_server_service: the role's own tasks, the rollout items and
cuda_toolkit's drop-in all follow it."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[3]
BIN = Path(sys.executable).parent


def evaluate(tmp_path, extra_vars):
    """model_server's unit-derived vars and cuda_toolkit's drop-in default, as Ansible templates them."""
    out = tmp_path / "out.json"
    names = ["_model_server_unit", "_model_server_enabled_ports", "_model_server_serving_ports",
             "cuda_toolkit_unit_dropins"]
    files = ["model_server/defaults/main.yml", "model_server/vars/main.yml", "cuda_toolkit/defaults/main.yml"]
    play = [{"name": "Evaluate", "hosts": "localhost", "gather_facts": False,
             "vars_files": [str(ROOT / "roles" / name) for name in files],
             "tasks": [{"name": "Write", "ansible.builtin.copy": {
                 "dest": str(out), "mode": "0644",
                 "content": "{{ {" + ", ".join(f"'{name}': {name}" for name in names) + "} | to_json }}"}}]}]
    (tmp_path / "play.yml").write_text(yaml.safe_dump(play))
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(ROOT / ".collections"),
               ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_NOCOLOR="1")
    result = subprocess.run(
        [str(BIN / "ansible-playbook"), "-i", "localhost,", "-c", "local", str(tmp_path / "play.yml"),
         "-e", json.dumps({"ansible_python_interpreter": sys.executable, **extra_vars})],
        capture_output=True, text=True, env=env, timeout=180, check=False)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return json.loads(out.read_text())


@pytest.mark.parametrize("service", [None, "llm.serve"])
def test_the_units_follow_model_server_service(tmp_path, service):
    defaults = yaml.safe_load((ROOT / "roles/model_server/defaults/main.yml").read_text())
    name = service or defaults["model_server_service"]
    # what the role's one read of the instances prints (tasks/service.yml), enabled, running and stale ports
    extra = {"__model_server_instance_state": {"stdout": '{"enabled": [8000, 8001], "serving": [8000], "stale": []}'}}
    if service:
        extra["model_server_service"] = service
    assert evaluate(tmp_path, extra) == {
        "_model_server_unit": f"{name}@.service", "_model_server_enabled_ports": [8000, 8001],
        "_model_server_serving_ports": [8000], "cuda_toolkit_unit_dropins": [f"{name}@.service"]}
