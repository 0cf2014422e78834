"""The inventory GPU check of model_server and the driver/CUDA compatibility table."""

import pytest
from ansible_collections.gpufleet.llm.plugins.module_utils.nvidia import (
    check_cuda_driver,
    check_inventory_gpus,
    minimum_driver_for_cuda,
)


@pytest.mark.parametrize("declared,found", [(2, 2), (1, 8), ("4", 4)])
def test_inventory_gpus_fit(declared, found):
    assert check_inventory_gpus(declared, found, "gpu1") is None


def test_inventory_claims_more_gpus_than_found():
    assert check_inventory_gpus(4, 2, "gpu1") == (
        "gpu1: the inventory sets gpu_count=4 but only 2 NVIDIA GPU(s) were found; "
        "lower gpu_count or check the host (nvidia-smi, lspci -d 10de:)")


@pytest.mark.parametrize("declared", ["two", None, True, 0, -1])
def test_inventory_gpu_count_must_be_a_positive_integer(declared):
    message = check_inventory_gpus(declared, 8, "gpu1")
    assert message.startswith("gpu1: gpu_count must be")


@pytest.mark.parametrize("cuda,minimum", [
    ("11.8", "450.80.02"), ("12.0", "525.60.13"), ("12.4.1", "525.60.13"),
    ("11.8.89~11.8.0-5~deb12u1", "450.80.02"), ("13.0", "580.65.06"),
])
def test_minimum_driver_per_major_release(cuda, minimum):
    assert minimum_driver_for_cuda(cuda) == minimum


def test_strict_minimum_is_the_toolkit_release_driver():
    assert minimum_driver_for_cuda("12.4.1", strict=True) == "550.54.14"


def test_cuda_12_on_a_525_60_13_driver_is_fine():
    assert check_cuda_driver("12.4", "525.60.13") is None
    assert check_cuda_driver("11.8.89~11.8.0-5~deb12u1", "535.309.01") is None


def test_cuda_12_on_a_470_driver_names_both_versions():
    assert check_cuda_driver("12.2", "470.223.02") == (
        "CUDA 12.2 needs NVIDIA driver >= 525.60.13, but the driver is 470.223.02: "
        "upgrade the driver (nvidia_driver_version) or choose an older CUDA version")


def test_strict_check_refuses_minor_version_compatibility():
    assert check_cuda_driver("12.4", "535.309.01") is None
    assert "needs NVIDIA driver >= 550.54.14" in check_cuda_driver("12.4", "535.309.01", strict=True)


def test_version_comparison_is_numeric_not_textual():
    assert check_cuda_driver("12.0", "1000.1") is None
    assert check_cuda_driver("13.0", "580.9") is not None


def test_unknown_cuda_release_is_an_error():
    assert "CUDA 10.2 is not in the driver compatibility table" in check_cuda_driver("10.2", "535.309.01")
