"""The systemd units the roles write are sandboxed, checked by the real systemd-analyze on the rendered units.

Each unit is rendered from its role's template with the role's defaults (render_units.yml), then scored by
`systemd-analyze security --offline=true` (README: "systemd-analyze security per unit") and checked by
`systemd-analyze verify` inside a scratch root that holds the host's own system units and a stub for each
command the unit runs, so that verify, which refuses a unit whose ExecStart= binary is missing, can run here.
"""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[3]
PLAYBOOK = Path(__file__).with_name("render_units.yml")
CEILING = 3.0
# Rendered host -> role, units, values over the role's defaults, the unit systemd-analyze verify loads.
CASES = {
    "model_server_vllm": {"role": "model_server", "units": ["model-server@.service"], "vars": {},
                          "verify": ["model-server@8000.service"]},
    "model_server_simulator": {"role": "model_server", "units": ["model-server@.service"],
                               "vars": {"model_server_engine": "simulator"},
                               "verify": ["model-server@8000.service"]},
    "model_server_vllm_hf_home": {"role": "model_server", "units": ["model-server@.service"],
                                  "vars": {"model_server_read_write_paths": ["/srv/hf-home"]},
                                  "verify": ["model-server@8000.service"]},
    "gpu_exporter": {"role": "gpu_exporter", "units": ["gpufleet-gpu-metrics.service", "gpufleet-gpu-metrics.timer"],
                     "vars": {}, "verify": ["gpufleet-gpu-metrics.service", "gpufleet-gpu-metrics.timer"]},
    "prometheus": {"role": "prometheus", "units": ["prometheus.service"], "vars": {},
                   "verify": ["prometheus.service"]},
}
SERVICES = [(host, unit) for host, case in CASES.items() for unit in case["units"] if unit.endswith(".service")]
# Settings with which systemd v252 refuses to start a unit where it may not create a mount namespace (an
# unprivileged container, as the lab's), instead of ignoring the sandbox: insist_on_sandboxing() in
# src/core/execute.c (BindPaths= only where source and destination differ, kept out all the same), and
# PrivateUsers=, whose failure to set up a user namespace is fatal there (EXIT_USER in exec_child()).
INSISTING = {"TemporaryFileSystem", "RootDirectory", "RootImage", "MountImages", "DynamicUser", "ExtensionImages",
             "ExtensionDirectories", "BindPaths", "BindReadOnlyPaths", "LogNamespace", "PrivateUsers"}
OVERALL = re.compile(r"Overall exposure level for \S+: (\d+\.\d+) ")


def systemd_analyze():
    tool = shutil.which("systemd-analyze")
    if not tool:
        pytest.fail("systemd-analyze not found: install systemd (Debian 12 ships v252)")
    return tool


@pytest.fixture(scope="session")
def rendered(tmp_path_factory):
    out = tmp_path_factory.mktemp("units")
    hosts = {host: {"render_role": case["role"], "render_units": case["units"], "render_vars": case["vars"]}
             for host, case in CASES.items()}
    inventory = out / "hosts.yml"
    inventory.write_text(yaml.safe_dump({"all": {"hosts": hosts}}))
    variables = {"render_dir": str(out), "ansible_connection": "local", "ansible_python_interpreter": sys.executable}
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(REPO / ".collections"),
               ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_NOCOLOR="1", ANSIBLE_CACHE_PLUGIN="memory",
               ANSIBLE_LOCAL_TEMP=str(out / "ansible-tmp"))
    result = subprocess.run(
        [str(Path(sys.executable).with_name("ansible-playbook")), "-i", str(inventory), str(PLAYBOOK),
         "-e", json.dumps(variables)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    return out


def settings(path):
    """[Service] key -> list of values, continuation lines joined (systemd allows a key more than once)."""
    text = re.sub(r"\\\n", " ", Path(path).read_text())
    found, section = {}, None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line
        elif section == "[Service]":
            key, _, value = line.partition("=")
            found.setdefault(key, []).append(value)
    return found


def exposure(unit_file):
    result = subprocess.run([systemd_analyze(), "security", "--offline=true", "--threshold=30", str(unit_file)],
                            capture_output=True, text=True, timeout=60, check=False)
    match = OVERALL.search(result.stdout + result.stderr)
    assert match, result.stdout + result.stderr
    return float(match.group(1)), result


@pytest.mark.parametrize(("host", "unit"), SERVICES)
def test_unit_exposure_is_at_most_the_ceiling(rendered, host, unit):
    level, result = exposure(rendered / host / unit)
    assert level <= CEILING, result.stdout
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(("host", "unit"), SERVICES)
def test_the_sandbox_is_what_brings_the_exposure_down(rendered, host, unit, tmp_path):
    """Without the settings after the sandbox comment the same unit is rated far worse: the score measures them."""
    text = (rendered / host / unit).read_text()
    start = text.index("\n# Sandbox")
    end = text.find("\n[", start)
    (tmp_path / unit).write_text(text[:start] + (text[end:] if end >= 0 else "\n"))
    level, result = exposure(tmp_path / unit)
    assert level > 6.0, result.stdout
    assert result.returncode != 0


@pytest.mark.parametrize("host", CASES)
def test_units_verify(rendered, host, tmp_path):
    """systemd-analyze verify reports nothing: every key known, every value parsed, every command there."""
    root = tmp_path / "root"
    shutil.copytree("/usr/lib/systemd/system", root / "usr/lib/systemd/system", symlinks=True)
    (root / "etc/systemd/system").mkdir(parents=True)
    for unit in CASES[host]["units"]:
        shutil.copy(rendered / host / unit, root / "etc/systemd/system" / unit)
        for key, values in settings(rendered / host / unit).items():
            for value in values if key.startswith("Exec") else []:
                command = root / value.split()[0].lstrip("-+!@:").lstrip("/")
                command.parent.mkdir(parents=True, exist_ok=True)
                command.write_text("#!/bin/sh\n")
                command.chmod(0o755)
    result = subprocess.run([systemd_analyze(), "verify", "--man=no", f"--root={root}", *CASES[host]["verify"]],
                            capture_output=True, text=True, timeout=60, check=False)
    assert (result.returncode, result.stdout + result.stderr) == (0, "")


def test_verify_reports_a_misspelt_setting(rendered, tmp_path):
    """The check above can fail: verify names an unknown key even though it exits 0 for it."""
    root = tmp_path / "root"
    shutil.copytree("/usr/lib/systemd/system", root / "usr/lib/systemd/system", symlinks=True)
    (root / "etc/systemd/system").mkdir(parents=True)
    text = (rendered / "prometheus" / "prometheus.service").read_text()
    (root / "etc/systemd/system/prometheus.service").write_text(text.replace("ProtectClock=", "ProtectClok="))
    command = root / "usr/bin/prometheus"
    command.parent.mkdir(parents=True, exist_ok=True)
    command.write_text("#!/bin/sh\n")
    command.chmod(0o755)
    result = subprocess.run([systemd_analyze(), "verify", "--man=no", f"--root={root}", "prometheus.service"],
                            capture_output=True, text=True, timeout=60, check=False)
    assert "Unknown key 'ProtectClok'" in result.stdout + result.stderr


@pytest.mark.parametrize(("host", "unit"), SERVICES)
def test_no_setting_makes_systemd_insist_on_namespaces(rendered, host, unit):
    assert set(settings(rendered / host / unit)) & INSISTING == set()


def test_vllm_reaches_the_gpus_and_the_simulator_none(rendered):
    vllm = settings(rendered / "model_server_vllm" / "model-server@.service")
    simulator = settings(rendered / "model_server_simulator" / "model-server@.service")
    assert vllm["DevicePolicy"] == ["closed"] and vllm["DeviceAllow"] == ["char-nvidia* rw"]
    assert "PrivateDevices" not in vllm and "MemoryDenyWriteExecute" not in vllm
    assert "AF_NETLINK" in vllm["RestrictAddressFamilies"][0].split()
    assert simulator["PrivateDevices"] == ["true"] and simulator["MemoryDenyWriteExecute"] == ["true"]
    gpu = settings(rendered / "gpu_exporter" / "gpufleet-gpu-metrics.service")
    assert gpu["DeviceAllow"] == ["char-nvidia* rw"] and "PrivateDevices" not in gpu


def test_model_server_writes_its_home_and_extra_paths_only(rendered):
    default = settings(rendered / "model_server_vllm" / "model-server@.service")
    extra = settings(rendered / "model_server_vllm_hf_home" / "model-server@.service")
    assert default["ProtectSystem"] == ["strict"]
    assert default["ReadWritePaths"] == ["/opt/gpufleet/model-server"]
    assert default["ReadOnlyPaths"] == ["/opt/gpufleet/model-server/venv"]
    assert extra["ReadWritePaths"] == ["/opt/gpufleet/model-server", "-/srv/hf-home"]


@pytest.mark.parametrize("host", ["model_server_vllm", "model_server_simulator"])
def test_model_server_keeps_its_rollout_settings(rendered, host):
    unit = settings(rendered / host / "model-server@.service")
    assert unit["KillSignal"] == ["SIGTERM"] and unit["TimeoutStopSec"] == ["70"]
    assert unit["Restart"] == ["on-failure"] and unit["RestartSec"] == ["5"]
    assert unit["EnvironmentFile"] == ["/etc/gpufleet/model-server/%i.env"]
    if host == "model_server_simulator":
        assert "--timeout-graceful-shutdown 60" in unit["ExecStart"][0]


def test_model_server_refuses_a_relative_read_write_path(tmp_path):
    """systemd would only warn about a relative ReadWritePaths= and leave the instance unable to write there."""
    inventory = {"all": {"vars": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable},
                         "children": {
                             "gpu_nodes": {"hosts": {"gpu1": {
                                 "gpufleet_region": "lab", "gpu_count": 1, "gpu_model": "simulated",
                                 "model_server_engine": "simulator",
                                 "model_server_read_write_paths": ["/srv/hf-home", "hf-home"]}}},
                             "load_balancers": {"hosts": {"lb1": {"gpufleet_region": "lab"}}},
                             "region_lab": {"hosts": {"gpu1": {}, "lb1": {}}}}}}
    (tmp_path / "hosts.yml").write_text(yaml.safe_dump(inventory))
    (tmp_path / "preflight.yml").write_text(yaml.safe_dump([{
        "name": "Model server preflight", "hosts": "gpu_nodes", "gather_facts": False,
        "tasks": [{"ansible.builtin.include_role": {"name": "gpufleet.llm.model_server",
                                                    "tasks_from": "preflight.yml"}}]}]))
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(REPO / ".collections"),
               ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_NOCOLOR="1", ANSIBLE_CACHE_PLUGIN="memory",
               ANSIBLE_LOCAL_TEMP=str(tmp_path / "ansible-tmp"))
    result = subprocess.run(
        [str(Path(sys.executable).with_name("ansible-playbook")), "-i", str(tmp_path / "hosts.yml"),
         str(tmp_path / "preflight.yml")],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 2, result.stdout[-4000:]
    assert "gpu1: model_server_read_write_paths must be absolute paths without spaces (got hf-home)" in result.stdout
