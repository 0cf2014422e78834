"""Each role of site.yml runs alone by its tag: `--tags nginx_lb` selects the nginx_lb role and the
validation that must always run, nothing else. Checked with --list-tasks, which contacts no host."""

import functools
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[3]
ANSIBLE_PLAYBOOK = Path(sys.executable).parent / "ansible-playbook"
# Ansible tags the argument spec check of every role `always`: it runs whichever tags are chosen.
ARG_SPEC = "Validating arguments against arg spec"
TASK = re.compile(r"^\s{6}(?:(?P<role>[\w.]+) : )?(?P<name>.+?)\tTAGS: \[(?P<tags>[^\]]*)\]$")
TAGGED_PLAYBOOKS = ["gpu_nodes.yml", "load_balancers.yml", "monitoring.yml", "host_firewall.yml"]


@functools.cache
def listed(tags: str) -> list[tuple[str, str, frozenset[str]]]:
    """(role without namespace or "", task name, tags) of each task site.yml runs with --tags."""
    env = {**os.environ, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg")}
    out = subprocess.run([str(ANSIBLE_PLAYBOOK), "playbooks/site.yml", "-i", "inventories/lab", "--list-tasks",
                          "--tags", tags], cwd=ROOT, env=env, check=True, capture_output=True, text=True).stdout
    tasks, role = [], ""
    for line in out.splitlines():
        if line.startswith("  play #"):
            role = ""
        elif m := TASK.match(line):
            # A task of an included role (monitoring_common's archive install) is listed without a prefix,
            # inside the role that includes it; a play's own tasks (validate.yml) keep "".
            role = (m["role"] or "").rpartition(".")[2] or role
            tasks.append((role, m["name"], frozenset(t.strip() for t in m["tags"].split(",") if t.strip())))
    return tasks


def _roles_with_work(tags: str) -> set[str]:
    """The roles whose own tasks run; the argument spec checks and the plays' own tasks are not counted."""
    return {role for role, name, _ in listed(tags) if role and not name.startswith(ARG_SPEC)}


@pytest.mark.parametrize("tag", ["nginx_lb", "prometheus", "grafana", "node_exporter", "gateway_usage",
                                 "host_firewall"])
def test_a_role_tag_selects_that_role_alone(tag):
    assert _roles_with_work(tag) == {tag}


def test_nginx_lb_tag_lists_its_tasks():
    names = {name for role, name, _ in listed("nginx_lb") if role == "nginx_lb"}
    assert {"Install NGINX and its JavaScript module", "Render the load balancer's configuration",
            "Start and enable NGINX"} <= names


def test_monitoring_tag_selects_every_monitoring_role_and_no_load_balancer():
    assert _roles_with_work("monitoring") == {"node_exporter", "nginx_exporter", "gpu_exporter", "gateway_usage",
                                              "prometheus", "alertmanager", "grafana"}


def test_inventory_validation_runs_whatever_the_tags():
    assert any(name.startswith("Check every host, variable and port") for _, name, _ in listed("nginx_lb"))


@pytest.mark.parametrize("playbook", TAGGED_PLAYBOOKS)
def test_every_role_is_tagged_by_its_name_and_a_concern(playbook):
    for play in yaml.safe_load((ROOT / "playbooks" / playbook).read_text()):
        for entry in play.get("roles", []):
            name = entry["role"].rpartition(".")[2]
            assert name in entry["tags"] and len(entry["tags"]) >= 2, (playbook, entry)
