"""One owner per shared fact: a role reads another role's variable through its owner's default, never a copy."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from ansible_collections.gpufleet.llm.plugins.plugin_utils.fleet_defaults import (
    RoleDefaultError,
    host_value,
    owning_role,
    role_default,
)

ROOT = Path(__file__).resolve().parents[3]
BIN = Path(sys.executable).parent


def defaults(role):
    return yaml.safe_load((ROOT / "roles" / role / "defaults" / "main.yml").read_text())


def test_the_owner_is_the_longest_role_prefix():
    assert owning_role("nginx_lb_status_port") == "nginx_lb"
    assert owning_role("nginx_exporter_listen_address") == "nginx_exporter"
    assert owning_role("gpu_exporter_dcgm_port") == "gpu_exporter"


def test_a_default_is_read_from_its_role():
    assert role_default("gateway_usage_port") == defaults("gateway_usage")["gateway_usage_port"]
    assert role_default("node_exporter_textfile_dir") == defaults("node_exporter")["node_exporter_textfile_dir"]


def test_a_host_s_own_value_wins():
    hostvars = {"lb1": {"gateway_usage_port": 3913}, "lb2": {}}
    assert host_value(hostvars, "lb1", "gateway_usage_port") == 3913
    assert host_value(hostvars, "lb2", "gateway_usage_port") == defaults("gateway_usage")["gateway_usage_port"]


@pytest.mark.parametrize(("name", "message"), [
    ("gpufleet_region", "no role of the collection owns"),
    ("nginx_lb_no_such_variable", "gives 'nginx_lb_no_such_variable' no default"),
    ("nginx_exporter_scrape_uri", "is a template"),
])
def test_what_has_no_plain_owner_default_is_refused(name, message):
    with pytest.raises(RoleDefaultError, match=message):
        role_default(name)


# Defaults of one role that follow another role's variable, on the same host.
FOLLOWERS = {
    ("nginx_exporter", "nginx_exporter_scrape_uri"): ("nginx_lb_status_port", "http://127.0.0.1:{}/stub_status"),
    ("gateway_usage", "gateway_usage_log_path"): ("nginx_lb_usage_log", "{}"),
    ("gpu_exporter", "gpu_exporter_textfile_dir"): ("node_exporter_textfile_dir", "{}"),
    ("grafana", "grafana_prometheus_scrape_interval"): ("prometheus_scrape_interval", "{}"),
}


def rendered_followers(tmp_path, extra_vars):
    """The followers' values as Ansible templates them from their roles' defaults, without the owners' roles."""
    out = tmp_path / "out.json"
    names = [name for _, name in FOLLOWERS]
    play = [{"name": "Render", "hosts": "localhost", "gather_facts": False,
             "vars_files": [str(ROOT / "roles" / role / "defaults" / "main.yml") for role, _ in FOLLOWERS],
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


def test_followers_take_the_owner_s_default_or_its_setting(tmp_path):
    owners = {owner: defaults(owning_role(owner))[owner] for owner, _ in FOLLOWERS.values()}
    assert rendered_followers(tmp_path, {}) == {
        name: shape.format(owners[owner]) for (_, name), (owner, shape) in FOLLOWERS.items()}
    moved = {"nginx_lb_status_port": 8181, "nginx_lb_usage_log": "/srv/log/gateway.log",
             "node_exporter_textfile_dir": "/srv/textfile", "prometheus_scrape_interval": "7s"}
    assert rendered_followers(tmp_path, moved) == {
        name: shape.format(moved[owner]) for (_, name), (owner, shape) in FOLLOWERS.items()}
