"""The ask-first actions (packages, service_started, directory): a module runs only when the host's answer says it
must, and is given what the task asked for.

The answers are real captures from the lab's Debian 12 hosts (fixtures/, each named after the host and what was
asked): dpkg-query with nftables held by `apt-mark hold`, systemctl for an enabled timer, a disabled service, a
static unit and a unit that does not exist, and stat of a directory and of a file.
"""

from pathlib import Path
from unittest.mock import MagicMock

import pytest
from ansible.errors import AnsibleActionFail
from ansible_collections.gpufleet.llm.plugins.action import directory, packages, service_started

FIXTURES = Path(__file__).parent / "fixtures"


def answer(name, rc=0):
    return {"rc": rc, "stdout": (FIXTURES / name).read_text(), "stderr": ""}


def action(module, args, reply):
    """module's ActionModule for a task with args, whose host question gets reply; records the questions and the
    modules it runs."""
    task = MagicMock(args=args, async_val=0, check_mode=False)
    plugin = module.ActionModule(task, MagicMock(), MagicMock(), loader=None, templar=None, shared_loader_obj=None)
    plugin.questions, plugin.modules = [], []

    def ask(command, **_):
        plugin.questions.append(command)
        return reply

    def run_module(module_name, module_args, task_vars):
        plugin.modules.append((module_name, module_args))
        return {"changed": True, "msg": "ran"}

    plugin._low_level_execute_command = ask
    plugin._execute_module = run_module
    return plugin


def test_installed_packages_need_no_apt():
    plugin = action(packages, {"name": ["nginx", "libnginx-mod-http-js"], "cache_valid_time": 3600},
                    answer("dpkg-query-lab-use-lb.txt", rc=1))
    result = plugin.run(task_vars={})
    assert result["changed"] is False and plugin.modules == []
    assert plugin.questions[0].endswith("-- nginx libnginx-mod-http-js")


def test_a_held_package_is_installed():
    plugin = action(packages, {"name": "nftables"}, answer("dpkg-query-lab-use-lb.txt", rc=1))
    assert plugin.run(task_vars={})["changed"] is False and plugin.modules == []


def test_a_missing_package_runs_apt_with_the_task_options():
    plugin = action(packages, {"name": ["python3-venv", "nginx"], "policy_rc_d": 101, "install_recommends": False},
                    answer("dpkg-query-lab-use-gpu1.txt", rc=1))
    assert plugin.run(task_vars={})["msg"] == "ran"
    assert plugin.modules == [("ansible.builtin.apt", {"name": ["python3-venv", "nginx"], "policy_rc_d": 101,
                                                       "install_recommends": False, "state": "present"})]


@pytest.mark.parametrize(("pin", "runs"), [("nginx=1.22.1-9+deb12u9", False), ("nginx=1.22.*", False),
                                           ("nginx=1.24.0-1", True)])
def test_a_pinned_version_must_match(pin, runs):
    plugin = action(packages, {"name": [pin]}, answer("dpkg-query-lab-use-lb.txt", rc=1))
    plugin.run(task_vars={})
    assert bool(plugin.modules) is runs


def test_a_failed_query_runs_apt():
    plugin = action(packages, {"name": ["nginx"]}, {"rc": 127, "stdout": "", "stderr": "dpkg-query: not found"})
    plugin.run(task_vars={})
    assert plugin.modules[0][0] == "ansible.builtin.apt"


@pytest.mark.parametrize("name", ["nginx:amd64", "nginx-*", "nginx=", ""])
def test_what_only_apt_understands_is_refused(name):
    plugin = action(packages, {"name": [name]}, answer("dpkg-query-lab-use-lb.txt"))
    with pytest.raises(AnsibleActionFail, match="name"):
        plugin.run(task_vars={})


@pytest.mark.parametrize(("unit", "runs"), [("gpufleet-gpu-metrics.timer", False), ("nftables.service", True),
                                            ("systemd-journald.service", True), ("no-such.service", True)])
def test_a_unit_not_enabled_and_active_runs_the_module(unit, runs):
    plugin = action(service_started, {"name": unit}, answer(f"systemctl-lab-use-gpu1-{unit}.txt"))
    plugin.run(task_vars={})
    assert plugin.modules == ([("ansible.builtin.systemd_service", {"name": unit, "daemon_reload": False,
                                                                    "enabled": True, "state": "started"})]
                              if runs else [])


def test_a_daemon_reload_always_runs_the_module():
    plugin = action(service_started, {"name": "gpufleet-gpu-metrics.timer", "daemon_reload": "true"},
                    answer("systemctl-lab-use-gpu1-gpufleet-gpu-metrics.timer.txt"))
    plugin.run(task_vars={})
    assert plugin.questions == [] and plugin.modules[0][1]["daemon_reload"] is True


@pytest.mark.parametrize(("args", "runs"), [
    ({"owner": "root", "group": "model-server", "mode": "0750"}, False),
    ({"owner": "0", "group": "997", "mode": "750"}, False),
    ({"mode": "0750"}, False),
    ({"owner": "root", "group": "root", "mode": "0750"}, True),
    ({"mode": "0755"}, True),
])
def test_a_directory_as_wanted_needs_no_module(args, runs):
    plugin = action(directory, {"path": "/etc/gpufleet/model-server", **args},
                    answer("stat-lab-use-gpu1-config-dir.txt"))
    plugin.run(task_vars={})
    assert plugin.modules == ([("ansible.builtin.file", {"path": "/etc/gpufleet/model-server", **args,
                                                         "state": "directory"})] if runs else [])


def test_a_file_where_the_directory_should_be_goes_to_the_module():
    plugin = action(directory, {"path": "/etc/hosts", "mode": "0644"}, answer("stat-lab-use-gpu1-file.txt"))
    plugin.run(task_vars={})
    assert plugin.modules[0][0] == "ansible.builtin.file"


def test_a_missing_directory_goes_to_the_module():
    plugin = action(directory, {"path": "/opt/new", "mode": "0755"},
                    {"rc": 1, "stdout": "", "stderr": "stat: cannot statx '/opt/new': No such file or directory"})
    plugin.run(task_vars={})
    assert plugin.modules[0][0] == "ansible.builtin.file"


def test_a_home_relative_directory_is_left_to_the_module():
    plugin = action(directory, {"path": "~/.gpufleet/fleet-ca", "mode": "0700"}, answer("stat-lab-use-gpu1-file.txt"))
    plugin.run(task_vars={})
    assert plugin.questions == [] and plugin.modules[0][0] == "ansible.builtin.file"


@pytest.mark.parametrize("mode", ["u=rwx", 493])
def test_a_mode_other_than_quoted_octal_is_refused(mode):
    plugin = action(directory, {"path": "/opt/x", "mode": mode}, answer("stat-lab-use-gpu1-file.txt"))
    with pytest.raises(AnsibleActionFail, match="mode"):
        plugin.run(task_vars={})
