"""The roles' preflight wiring (facts -> plan -> fail/skip messages) on localhost with fixture roots."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[3]
PLAYBOOK = Path(__file__).with_name("preflight.yml")

HOSTS = {
    "hgx_debian": {"test_role": "nvidia_driver", "nvidia_driver_detection_root": "hgx_h100"},
    "hgx_nvidia_repo": {"test_role": "nvidia_driver", "nvidia_driver_detection_root": "hgx_h100",
                        "nvidia_driver_source": "nvidia", "nvidia_driver_branch": "550",
                        "nvidia_driver_version": "550.54.15"},
    "fresh_h200_nvidia_repo": {"test_role": "nvidia_driver",
                               "nvidia_driver_detection_root": "hgx_h200_no_driver",
                               "nvidia_driver_source": "nvidia", "nvidia_driver_flavor": "open",
                               "nvidia_driver_branch": "570", "nvidia_driver_version": "570.124.06"},
    "t4_nouveau": {"test_role": "nvidia_driver", "nvidia_driver_detection_root": "t4_nouveau"},
    "cpu_only": {"test_role": "nvidia_driver", "nvidia_driver_detection_root": "no_gpu"},
    "lab_container": {"test_role": "nvidia_driver", "nvidia_driver_detection_root": "podman_container"},
    "wrong_branch": {"test_role": "nvidia_driver", "nvidia_driver_detection_root": "t4_nouveau",
                     "nvidia_driver_branch": "550", "nvidia_driver_version": "550.54.15"},
    "cuda_too_new": {"test_role": "cuda_toolkit", "cuda_toolkit_detection_root": "no_gpu",
                     "cuda_toolkit_source": "nvidia", "cuda_toolkit_versions": ["12.4.1"],
                     "cuda_toolkit_driver_version": "470.256.02"},
    "cuda_debian": {"test_role": "cuda_toolkit", "cuda_toolkit_detection_root": "no_gpu",
                    "cuda_toolkit_versions": ["11.8.89~11.8.0-5~deb12u1"], "nvidia_driver_version": "535.309.01"},
    "cuda_none": {"test_role": "cuda_toolkit", "cuda_toolkit_detection_root": "no_gpu"},
}


def with_roots(vars_, roots):
    """*_detection_root values in HOSTS name a fixture root; point them at its materialised tree."""
    return {key: str(roots / value) if key.endswith("_detection_root") else value
            for key, value in vars_.items()}


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory, nvidia_roots):
    work = tmp_path_factory.mktemp("preflight")
    inventory = {"all": {"hosts": {name: dict(with_roots(vars_, nvidia_roots), ansible_connection="local",
                                              ansible_python_interpreter=sys.executable)
                                   for name, vars_ in HOSTS.items()},
                         "vars": {"test_output_dir": str(work)}}}
    (work / "hosts.yml").write_text(yaml.safe_dump(inventory))
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(REPO / ".collections"), ANSIBLE_CACHE_PLUGIN="memory",
               ANSIBLE_FORKS="10", ANSIBLE_GATHER_SUBSET="!all,!min,distribution,kernel,architecture")
    result = subprocess.run(
        [str(Path(sys.executable).with_name("ansible-playbook")), "-i", str(work / "hosts.yml"), str(PLAYBOOK)],
        cwd=work, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    return {name: json.loads((work / f"{name}.json").read_text()) for name in HOSTS}


def test_debian_source_refuses_nvswitch_host(outcomes):
    assert outcomes["hgx_debian"]["error"] == (
        "hgx_debian: 4 NVSwitch(es) found but distribution on Debian-12 ships no Fabric Manager; "
        "set nvidia_driver_source: nvidia (nvidia_driver_source=distribution, nvidia_driver_branch=535, "
        "nvidia_driver_version=535.309.01, nvidia_driver_flavor=proprietary)")


def test_nvswitch_host_gets_fabric_manager_at_the_driver_version(outcomes):
    plan = outcomes["hgx_nvidia_repo"]["plan"]
    assert plan["fabricmanager"] is True and plan["kernel_module"] is True
    assert "nvidia-fabricmanager-550=550.54.15-*" in plan["packages"]
    assert plan["repo_dir"] == "debian12"


def test_fresh_host_without_driver_is_planned_from_pci(outcomes):
    plan = outcomes["fresh_h200_nvidia_repo"]["plan"]
    assert plan["packages"][0] == "nvidia-open-570=570.124.06-*"
    assert plan["fabricmanager"] is True


def test_nouveau_host_gets_the_kernel_driver(outcomes):
    plan = outcomes["t4_nouveau"]["plan"]
    assert plan["kernel_module"] is True and plan["skip_reason"] is None
    assert plan["packages"][0] == "nvidia-kernel-dkms=535.309.01-*"


def test_cpu_only_host_is_skipped(outcomes):
    plan = outcomes["cpu_only"]["plan"]
    assert plan["packages"] == [] and plan["kernel_module"] is False
    assert plan["skip_reason"].startswith("no NVIDIA GPU on PCI")


def test_lab_container_defaults_install_nothing(outcomes):
    plan = outcomes["lab_container"]["plan"]
    assert plan["packages"] == [] and plan["repository"] == "none"
    assert plan["skip_reason"].startswith("container: the kernel module belongs to the container host")


def test_branch_missing_from_debian_names_host_and_variables(outcomes):
    error = outcomes["wrong_branch"]["error"]
    assert error.startswith("wrong_branch: driver branch 550 (proprietary) is not available from distribution "
                            "on Debian-12; available: 535")
    assert "nvidia_driver_branch=550" in error


def test_cuda_too_new_for_driver_names_both_versions(outcomes):
    assert outcomes["cuda_too_new"]["error"].startswith(
        "cuda_too_new: CUDA 12.4.1 needs NVIDIA driver >= 525.60.13, but the driver is 470.256.02")


def test_cuda_debian_checked_against_the_planned_driver(outcomes):
    plan = outcomes["cuda_debian"]["plan"]
    assert plan["packages"] == ["nvidia-cuda-toolkit=11.8.89~11.8.0-5~deb12u1"]


def test_cuda_without_versions_is_skipped(outcomes):
    assert outcomes["cuda_none"] == {"plan": None}
