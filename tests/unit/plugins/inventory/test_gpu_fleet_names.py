"""The one rule for contract group names (plugins/plugin_utils/gpu_fleet_names.py)."""

from __future__ import annotations

import pytest


@pytest.mark.parametrize(("region", "group"), [
    ("us-east", "region_us_east"),
    ("eu-west", "region_eu_west"),
    ("us-central1", "region_us_central1"),
    ("Frankfurt DC.2", "region_Frankfurt_DC_2"),
    ("ap_south", "region_ap_south"),
])
def test_region_group(collection_loader, region, group):
    from ansible_collections.gpufleet.llm.plugins.plugin_utils.gpu_fleet_names import region_group

    assert region_group(region) == group


@pytest.mark.parametrize(("model", "group"), [
    ("NVIDIA H100 80GB HBM3", "gpu_nvidia_h100_80gb_hbm3"),
    ("NVIDIA A100-SXM4-80GB", "gpu_nvidia_a100_sxm4_80gb"),
    ("simulated-h100", "gpu_simulated_h100"),
    ("Tesla T4", "gpu_tesla_t4"),
])
def test_gpu_model_group(collection_loader, model, group):
    from ansible_collections.gpufleet.llm.plugins.plugin_utils.gpu_fleet_names import gpu_model_group

    assert gpu_model_group(model) == group


def test_every_group_name_is_a_valid_ansible_group(collection_loader):
    from ansible.inventory.group import to_safe_group_name
    from ansible_collections.gpufleet.llm.plugins.plugin_utils.gpu_fleet_names import gpu_model_group, region_group

    for name in (region_group("us-east/1 (new)"), gpu_model_group("GeForce RTX 4090 24GB+")):
        assert to_safe_group_name(name, force=True, silent=True) == name
