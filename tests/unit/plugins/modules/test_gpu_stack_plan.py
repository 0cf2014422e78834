"""gpu_stack_plan as the roles call it: errors come back as data, plans as the module_utils make them."""

import json
from pathlib import Path
from unittest import mock

import pytest
import yaml
from ansible.module_utils.testing import patch_module_args
from ansible_collections.gpufleet.llm.plugins.modules import gpu_stack_plan

ROLES = Path(__file__).resolve().parents[4] / "roles"
DRIVER = yaml.safe_load((ROLES / "nvidia_driver/vars/main.yml").read_text())["_nvidia_driver_packages"]
CUDA = yaml.safe_load((ROLES / "cuda_toolkit/vars/main.yml").read_text())["_cuda_toolkit_packages"]
LAB_NODE = {"container": True, "pci_gpu_count": 0, "gpu_count": 0, "nvswitch_count": 0, "secure_boot": False}


def run(args):
    with patch_module_args(args), mock.patch("sys.stdout.write") as write, pytest.raises(SystemExit):
        gpu_stack_plan.main()
    return json.loads("".join(call.args[0] for call in write.call_args_list))


def test_driver_plan_for_the_lab_container():
    out = run({"component": "driver", "table": DRIVER, "distribution": "Debian", "distribution_version": "12.11",
               "source": "distribution", "branch": "535", "version": "535.309.01", "host": LAB_NODE,
               "container_userspace": True, "_ansible_check_mode": True})
    assert out["changed"] is False and out["error"] is None
    assert out["plan"]["hold"] == ["nvidia-smi", "libcuda1", "libnvidia-ml1"]


def test_driver_error_is_returned_not_raised():
    out = run({"component": "driver", "table": DRIVER, "distribution": "Ubuntu", "distribution_version": "20.04",
               "source": "distribution", "branch": "535", "version": "535.309.01", "host": LAB_NODE})
    assert out["error"].startswith("Ubuntu-20.04 is not supported with nvidia_driver_source=distribution")
    assert "plan" not in out


def test_driver_needs_branch_and_version():
    out = run({"component": "driver", "table": DRIVER, "distribution": "Debian", "distribution_version": "12",
               "source": "distribution", "host": LAB_NODE})
    assert out["failed"] is True and "branch, version" in out["msg"]


def test_cuda_plan_checks_the_driver():
    out = run({"component": "cuda", "table": CUDA, "distribution": "Ubuntu", "distribution_version": "22.04",
               "source": "nvidia", "versions": ["12.8.1"], "driver_version": "470.256.02"})
    assert out["error"] == ("CUDA 12.8.1 needs NVIDIA driver >= 525.60.13, but the driver is 470.256.02: "
                            "upgrade the driver (nvidia_driver_version) or choose an older CUDA version")


def test_cuda_plan_for_debian():
    out = run({"component": "cuda", "table": CUDA, "distribution": "Debian", "distribution_version": "12.11",
               "source": "distribution", "versions": ["11.8.89~11.8.0-5~deb12u1"], "driver_version": "535.309.01"})
    assert out["plan"]["packages"] == ["nvidia-cuda-toolkit=11.8.89~11.8.0-5~deb12u1"]
