"""Both roles run in check mode against localhost: no failure, and nothing written."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[3]
PLAYBOOK = Path(__file__).with_name("check_mode.yml")
WRITTEN_BY_THE_ROLES = [
    "/etc/modprobe.d/gpufleet-blacklist-nouveau.conf",
    "/etc/apt/sources.list.d/gpufleet-debian-nonfree.sources",
    "/etc/apt/preferences.d/gpufleet-nvidia-driver",
    "/etc/ansible/facts.d/gpufleet_nvidia_driver.fact",
    "/etc/profile.d/gpufleet-cuda.sh",
]
HOSTS = {
    "lab_defaults": {"nvidia_driver_detection_root": "podman_container"},
    "lab_userspace_and_cuda": {"nvidia_driver_detection_root": "podman_container",
                               "nvidia_driver_container_userspace": True,
                               "cuda_toolkit_versions": ["11.8.89~11.8.0-5~deb12u1"]},
    "t4_with_nouveau": {"nvidia_driver_detection_root": "t4_nouveau"},
}


def with_roots(vars_, roots):
    """*_detection_root values in HOSTS name a fixture root; point them at its materialised tree."""
    return {key: str(roots / value) if key.endswith("_detection_root") else value
            for key, value in vars_.items()}


@pytest.mark.skipif(not Path("/usr/bin/apt-get").exists() or any(Path(p).exists() for p in WRITTEN_BY_THE_ROLES),
                    reason="needs a Debian-family controller the roles have not been applied to")
def test_roles_in_check_mode_change_nothing(tmp_path, nvidia_roots):
    inventory = {"all": {"hosts": {name: dict(with_roots(vars_, nvidia_roots), ansible_connection="local",
                                              ansible_python_interpreter="/usr/bin/python3")
                                   for name, vars_ in HOSTS.items()}}}
    (tmp_path / "hosts.yml").write_text(yaml.safe_dump(inventory))
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(REPO / ".collections"), ANSIBLE_CACHE_PLUGIN="memory",
               ANSIBLE_FORKS="10", ANSIBLE_GATHER_SUBSET="!all,!min,distribution,kernel,architecture")
    result = subprocess.run(
        [str(Path(sys.executable).with_name("ansible-playbook")), "--check", "-i", str(tmp_path / "hosts.yml"),
         str(PLAYBOOK)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300, check=False)
    # The T4 host needs the kernel module: on a controller whose kernel has no headers package (a VM's own
    # kernel, as on this project's machines) that is a real error, which check mode must report, not hide.
    kernel = os.uname().release
    headers = subprocess.run(["apt-cache", "show", "--no-all-versions", f"linux-headers-{kernel}"],
                             capture_output=True, check=False).returncode == 0
    recap = result.stdout[result.stdout.index("PLAY RECAP"):]
    assert "lab_defaults " in recap and all("failed=0" in line for line in recap.splitlines()
                                            if line.startswith("lab_")), recap
    if headers:
        assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    else:
        assert result.returncode == 2 and "t4_with_nouveau: no package linux-headers-" + kernel in result.stdout
    assert "NVIDIA kernel driver skipped: container" in result.stdout
    assert "CUDA toolkit skipped: cuda_toolkit_versions is empty" in result.stdout
    assert [p for p in WRITTEN_BY_THE_ROLES if Path(p).exists()] == []
