"""The facts source: gpu_facts results in Ansible's fact cache override declared GPU count and model."""

from __future__ import annotations

import json

import pytest
from gpu_fleet_testlib import COLLECTIONS, inventory_list, run_ansible, write_config

SPEC = {"sources": [
    {"source": "static", "regions": {"us-east": {"hosts": [
        {"names": "gpu[1:3]", "role": "gpu_node", "gpu_model": "NVIDIA L4", "gpu_count": 4, "gpu_memory_mib": 23034},
        {"names": "lb1", "role": "load_balancer"},
    ]}}},
    {"source": "facts"},
]}

H100 = {"name": "NVIDIA H100 80GB HBM3", "memory_total_mib": 81559}
FACTS = {  # what gpu_facts found on each host
    "gpu1": {"gpus": [dict(H100, index=index) for index in range(8)], "nvidia_gpu_count": 8,
             "nvidia_gpu_model": "NVIDIA H100 80GB HBM3"},
    # No GPU seen (driver not loaded): keep the declared values.
    "gpu2": {"gpus": [], "nvidia_gpu_count": 0, "nvidia_gpu_model": None},
    "lb1": {"gpus": [dict(H100, index=0)], "nvidia_gpu_count": 1, "nvidia_gpu_model": "NVIDIA H100 80GB HBM3"},
}


@pytest.fixture
def fact_cache_env(tmp_path, ansible_env):
    config = tmp_path / "facts.cfg"
    config.write_text(f"[defaults]\ncollections_path = {COLLECTIONS}\nfact_caching = jsonfile\n"
                      f"fact_caching_connection = {tmp_path / 'facts'}\nfact_caching_timeout = 3600\n"
                      "[inventory]\nany_unparsed_is_failed = true\n")
    return dict(ansible_env, ANSIBLE_CONFIG=str(config))


def test_cached_gpu_facts_override_declared_gpus(tmp_path, fact_cache_env):
    inventory = write_config(tmp_path, SPEC)
    # Let Ansible itself write its fact cache, as it does after gpu_facts runs.
    (tmp_path / "facts.json").write_text(json.dumps({"found": FACTS}))
    playbook = tmp_path / "facts.yml"
    playbook.write_text("- hosts: gpu1,gpu2,lb1\n  gather_facts: false\n  tasks:\n"
                        "    - ansible.builtin.set_fact:\n"
                        "        gpus: \"{{ found[inventory_hostname].gpus }}\"\n"
                        "        nvidia_gpu_count: \"{{ found[inventory_hostname].nvidia_gpu_count }}\"\n"
                        "        nvidia_gpu_model: \"{{ found[inventory_hostname].nvidia_gpu_model }}\"\n"
                        "        cacheable: true\n")
    run_ansible("ansible-playbook", "-i", inventory, playbook, "-e", f"@{tmp_path / 'facts.json'}",
                env=fact_cache_env)

    listing = inventory_list(inventory, fact_cache_env)
    hostvars = listing["_meta"]["hostvars"]
    # ansible-inventory shows cached facts as host vars too, so read what the plugin did from the groups
    # and from gpu3 (no facts) and lb1 (no declared GPUs).
    assert sorted(listing["gpu_nvidia_h100_80gb_hbm3"]["hosts"]) == ["gpu1"]
    assert sorted(listing["gpu_nvidia_l4"]["hosts"]) == ["gpu2", "gpu3"]
    assert (hostvars["gpu3"]["gpu_count"], hostvars["gpu3"]["gpu_model"]) == (4, "NVIDIA L4")
    assert "gpu_nvidia_h100_80gb_hbm3" not in [g for g, node in listing.items() if "lb1" in node.get("hosts", [])]

    without_facts_source = write_config(tmp_path, {"sources": SPEC["sources"][:1]}, name="plain.gpu_fleet.yml")
    listing = inventory_list(without_facts_source, fact_cache_env)
    assert sorted(listing["gpu_nvidia_l4"]["hosts"]) == ["gpu1", "gpu2", "gpu3"]


def test_plugin_values_after_facts(tmp_path, parse_inventory, monkeypatch):
    """In process, where no fact is merged in as a host var: the plugin's own vars for each host."""
    from ansible.plugins.loader import cache_loader

    fact_cache = cache_loader.get("ansible.builtin.jsonfile", _uri=str(tmp_path / "facts"))
    for host, facts in FACTS.items():
        fact_cache.set(host, facts)
    monkeypatch.setattr(cache_loader, "get", lambda name, *args, **kwargs: fact_cache)  # the configured fact cache

    parsed = parse_inventory(write_config(tmp_path, SPEC))
    gpu1 = parsed.hostvars("gpu1")
    assert (gpu1["gpu_count"], gpu1["gpu_model"], gpu1["gpu_memory_mib"]) == (8, "NVIDIA H100 80GB HBM3", 81559)
    gpu2 = parsed.hostvars("gpu2")
    assert (gpu2["gpu_count"], gpu2["gpu_model"], gpu2["gpu_memory_mib"]) == (4, "NVIDIA L4", 23034)
    assert "gpu_count" not in parsed.hostvars("lb1")
    assert parsed.group_hosts("gpu_nodes") == ["gpu1", "gpu2", "gpu3"]


def test_memory_fact_cache_is_a_warning(tmp_path, parse_inventory, monkeypatch):
    from ansible import constants as C

    monkeypatch.setattr(C, "CACHE_PLUGIN", "ansible.builtin.memory")
    parsed = parse_inventory(write_config(tmp_path, SPEC))
    assert parsed.hostvars("gpu1")["gpu_count"] == 4
    assert any("keeps nothing between runs" in warning for warning in parsed.warnings)


@pytest.mark.parametrize(("facts", "expected"), [
    ({"gpus": [{"name": "NVIDIA A100-SXM4-80GB", "memory_total_mib": 81920}] * 4}, (4, "NVIDIA A100-SXM4-80GB", 81920)),
    ({"nvidia_gpu_count": 2, "nvidia_gpu_model": "NVIDIA L4"}, (2, "NVIDIA L4", None)),
    ({"ansible_gpus": [{"name": "Tesla T4"}]}, (1, "Tesla T4", None)),
    ({"gpus": [], "nvidia_gpu_count": 0}, None),
    ({"nvidia_gpu_count": True, "nvidia_gpu_model": "x"}, None),
    ({"ansible_hostname": "gpu1"}, None),
    (None, None),
])
def test_gpus_from_facts_shapes(collection_loader, facts, expected):
    from ansible_collections.gpufleet.llm.plugins.plugin_utils.gpu_fleet_spec import gpus_from_facts

    assert gpus_from_facts(facts) == expected
