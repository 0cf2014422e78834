"""Package and repository selection against the roles' real package tables."""

from pathlib import Path

import pytest
import yaml
from ansible_collections.gpufleet.llm.plugins.module_utils.nvidia_plan import (
    PlanError,
    os_key,
    plan_cuda,
    plan_driver,
)

ROLES = Path(__file__).resolve().parents[3] / "roles"
DRIVER = yaml.safe_load((ROLES / "nvidia_driver/vars/main.yml").read_text())["_nvidia_driver_packages"]
CUDA = yaml.safe_load((ROLES / "cuda_toolkit/vars/main.yml").read_text())["_cuda_toolkit_packages"]

BARE_METAL = {"container": False, "pci_gpu_count": 8, "gpu_count": 8, "nvswitch_count": 0}
HGX = dict(BARE_METAL, nvswitch_count=4)
CONTAINER = {"container": True, "pci_gpu_count": 0, "gpu_count": 0, "nvswitch_count": 0}
NO_GPU = {"container": False, "pci_gpu_count": 0, "gpu_count": 0, "nvswitch_count": 0}


def driver(key, source="distribution", **settings):
    settings = {"flavor": "proprietary", "branch": "535", "version": "535.309.01", "host": BARE_METAL} | settings
    return plan_driver(DRIVER, key, source, **settings)


def test_os_key():
    assert os_key("Debian", "12.9") == "Debian-12"
    assert os_key("Ubuntu", "22.04") == "Ubuntu-22.04"


def test_debian_distribution_bare_metal():
    plan = driver("Debian-12")
    assert plan["repository"] == "debian_nonfree"
    assert plan["packages"] == [
        "nvidia-kernel-dkms=535.309.01-*", "firmware-nvidia-gsp=535.309.01-*", "nvidia-smi=535.309.01-*",
        "libcuda1=535.309.01-*", "libnvidia-ml1=535.309.01-*", "nvidia-persistenced"]
    assert plan["hold"][0] == "nvidia-kernel-dkms"
    assert (plan["kernel_module"], plan["persistenced"], plan["fabricmanager"]) == (True, True, False)
    assert (plan["dkms_module"], plan["module_name"]) == ("nvidia-current", "nvidia-current")
    assert plan["pin_version"] == "535.309.01-*"
    assert plan["skip_reason"] is None


def test_debian_distribution_open_module():
    plan = driver("Debian-12", flavor="open", version="535.261.03")
    assert plan["packages"][0] == "nvidia-open-kernel-dkms=535.261.03-*"
    assert plan["dkms_module"] == "nvidia-current-open"


def test_container_without_userspace_installs_nothing():
    plan = driver("Debian-12", host=CONTAINER)
    assert plan["packages"] == [] and plan["repository"] == "none"
    assert plan["kernel_module"] is False
    assert plan["skip_reason"] == ("container: the kernel module belongs to the container host; "
                                   "set nvidia_driver_container_userspace to install user-space packages")


def test_container_with_userspace_installs_libraries_only():
    plan = driver("Debian-12", host=CONTAINER, container_userspace=True)
    assert plan["packages"] == ["nvidia-smi=535.309.01-*", "libcuda1=535.309.01-*", "libnvidia-ml1=535.309.01-*"]
    assert plan["hold"] == ["nvidia-smi", "libcuda1", "libnvidia-ml1"]
    assert (plan["kernel_module"], plan["persistenced"]) == (False, False)
    assert plan["skip_reason"].endswith("installing user-space packages only")


def test_no_gpu_gets_no_driver():
    plan = driver("Debian-12", host=NO_GPU)
    assert plan["packages"] == [] and plan["kernel_module"] is False
    assert plan["skip_reason"] == "no NVIDIA GPU on PCI (vendor 0x10de): no kernel driver installed"


def test_debian_distribution_has_no_fabric_manager_for_nvswitch():
    with pytest.raises(PlanError, match=r"4 NVSwitch.* ships no Fabric Manager; set nvidia_driver_source: nvidia"):
        driver("Debian-12", host=HGX)


@pytest.mark.parametrize("key", ["Ubuntu-22.04", "Ubuntu-24.04"])
def test_ubuntu_distribution_server_packages(key):
    plan = driver(key, branch="550", version="550.127.05", host=HGX)
    assert plan["repository"] == "none"
    assert plan["packages"] == [
        "nvidia-dkms-550-server=550.127.05-*", "nvidia-headless-no-dkms-550-server=550.127.05-*",
        "nvidia-utils-550-server=550.127.05-*", "nvidia-fabricmanager-550=550.127.05-*",
        "libnvidia-nscq-550=550.127.05-*"]
    assert plan["fabricmanager"] is True
    assert plan["dkms_module"] == "nvidia-srv"


def test_ubuntu_open_variant():
    plan = driver("Ubuntu-22.04", flavor="open", branch="570", version="570.133.20")
    assert plan["packages"][:2] == ["nvidia-dkms-570-server-open=570.133.20-*",
                                    "nvidia-headless-no-dkms-570-server-open=570.133.20-*"]


def test_branch_missing_on_the_os_release():
    with pytest.raises(PlanError, match=r"driver branch 470 \(proprietary\) is not available from distribution "
                                        r"on Ubuntu-24.04; available: 535, 550, 570"):
        driver("Ubuntu-24.04", branch="470", version="470.256.02")


def test_version_outside_branch():
    with pytest.raises(PlanError, match=r"nvidia_driver_version 550.54.15 does not belong to nvidia_driver_branch 535"):
        driver("Debian-12", version="550.54.15")


@pytest.mark.parametrize("key,repo_dir", [("Debian-12", "debian12"), ("Ubuntu-22.04", "ubuntu2204"),
                                          ("Ubuntu-24.04", "ubuntu2404")])
def test_nvidia_repository_branch_metapackages(key, repo_dir):
    plan = driver(key, source="nvidia", branch="550", version="550.54.15", host=HGX)
    assert plan["repository"] == "nvidia_cuda" and plan["repo_dir"] == repo_dir
    assert plan["packages"] == ["cuda-drivers-550=550.54.15-*", "nvidia-fabricmanager-550=550.54.15-*",
                                "libnvidia-nscq-550=550.54.15-*"]


def test_nvidia_repository_open_module():
    plan = driver("Ubuntu-22.04", source="nvidia", flavor="open", branch="570", version="570.124.06")
    assert plan["packages"] == ["nvidia-open-570=570.124.06-*"]


def test_nvidia_repository_container_userspace_on_ubuntu():
    plan = driver("Ubuntu-24.04", source="nvidia", branch="570", version="570.124.06", host=CONTAINER,
                  container_userspace=True)
    assert plan["packages"] == ["nvidia-utils-570=570.124.06-*", "libnvidia-compute-570=570.124.06-*"]


def test_unsupported_os_and_source():
    with pytest.raises(PlanError, match="Debian-11 is not supported with nvidia_driver_source=distribution"):
        driver("Debian-11")
    with pytest.raises(PlanError, match="nvidia_driver_source must be one of distribution, nvidia"):
        driver("Debian-12", source="runfile")


def test_cuda_from_debian():
    plan = plan_cuda(CUDA, "Debian-12", "distribution", ["11.8.89~11.8.0-5~deb12u1"], driver_version="535.309.01")
    assert plan["packages"] == ["nvidia-cuda-toolkit=11.8.89~11.8.0-5~deb12u1"]
    assert plan["hold"] == ["nvidia-cuda-toolkit"]
    assert plan["repository"] == "debian_nonfree"
    assert plan["toolkits"][0]["release"] == "11.8"
    assert plan["default_home"] == "/usr/lib/nvidia-cuda-toolkit"


def test_cuda_side_by_side_from_nvidia():
    plan = plan_cuda(CUDA, "Ubuntu-22.04", "nvidia", ["12.4.1", "12.8.1"], default_version="12.4.1",
                     driver_version="570.124.06")
    assert plan["packages"] == ["cuda-toolkit-12-4=12.4.1-*", "cuda-toolkit-12-8=12.8.1-*"]
    assert [t["home"] for t in plan["toolkits"]] == ["/usr/local/cuda-12.4", "/usr/local/cuda-12.8"]
    assert plan["default_home"] == "/usr/local/cuda-12.4"
    assert plan["repo_dir"] == "ubuntu2204"


def test_cuda_default_is_the_last_version():
    plan = plan_cuda(CUDA, "Debian-12", "nvidia", ["12.4.1", "12.6.3"])
    assert plan["default_home"] == "/usr/local/cuda-12.6"


def test_cuda_distribution_ships_one_version():
    with pytest.raises(PlanError, match="ships one CUDA toolkit; several versions need cuda_toolkit_source: nvidia"):
        plan_cuda(CUDA, "Debian-12", "distribution", ["11.8.89~11.8.0-5~deb12u1", "11.8.89~11.8.0-4"])


def test_cuda_release_not_in_distribution():
    with pytest.raises(PlanError, match=r"CUDA 12.4.1 is not available from distribution on Debian-12 \(available: 11"):
        plan_cuda(CUDA, "Debian-12", "distribution", ["12.4.1"])


def test_cuda_too_new_for_driver():
    with pytest.raises(PlanError, match=r"CUDA 13.0.1 needs NVIDIA driver >= 580.65.06, but the driver is 570.124.06"):
        plan_cuda(CUDA, "Ubuntu-24.04", "nvidia", ["13.0.1"], driver_version="570.124.06")


def test_cuda_default_must_be_listed():
    with pytest.raises(PlanError, match=r"cuda_toolkit_default_version 12.1.1 is not in cuda_toolkit_versions"):
        plan_cuda(CUDA, "Debian-12", "nvidia", ["12.4.1"], default_version="12.1.1")


def test_no_cuda_versions_is_an_empty_plan():
    plan = plan_cuda(CUDA, "Debian-12", "distribution", [])
    assert plan["packages"] == [] and plan["repository"] == "none" and plan["default_home"] is None
