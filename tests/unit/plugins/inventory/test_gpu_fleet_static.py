"""The static (bare-metal) source, end to end through ansible-inventory, and constructed features."""

from __future__ import annotations

import pytest
from gpu_fleet_testlib import ROOT, inventory_list, run_ansible, write_config
from inventory_listing import group_hosts

SPEC = {
    "sources": [{
        "source": "static",
        "regions": {
            "us-east": {
                "vars": {"ansible_user": "deploy"},
                "hosts": [
                    {"names": "gpu[01:03].iad.example.com", "ansible_host": "10.1.0.[11:13]", "role": "gpu_node",
                     "gpu_model": "NVIDIA H100 80GB HBM3", "gpu_count": 8, "gpu_memory_mib": 81559,
                     "vars": {"rack": "iad-a1"}},
                    {"names": ["lb1.iad.example.com", "lb2.iad.example.com"], "role": "load_balancer"},
                    {"names": "mon.iad.example.com:2222", "role": "monitoring"},
                ],
            },
            "eu-west.2": {
                "hosts": [
                    {"names": "gpu[a:b].ams.example.com", "role": "gpu_node", "gpu_model": "NVIDIA L4",
                     "gpu_count": 4, "vars": {"rack": "ams-b2"}},
                ],
            },
        },
    }],
}


def test_list_gives_contract_vars_and_groups(tmp_path, ansible_env):
    listing = inventory_list(write_config(tmp_path, SPEC), ansible_env)
    hostvars = listing["_meta"]["hostvars"]

    assert sorted(hostvars) == sorted([
        "gpu01.iad.example.com", "gpu02.iad.example.com", "gpu03.iad.example.com", "lb1.iad.example.com",
        "lb2.iad.example.com", "mon.iad.example.com", "gpua.ams.example.com", "gpub.ams.example.com"])
    assert hostvars["gpu02.iad.example.com"] == {
        "ansible_host": "10.1.0.12", "ansible_user": "deploy", "gpu_count": 8, "gpu_memory_mib": 81559,
        "gpu_model": "NVIDIA H100 80GB HBM3", "gpufleet_region": "us-east", "rack": "iad-a1"}
    assert hostvars["lb1.iad.example.com"] == {"ansible_user": "deploy", "gpufleet_region": "us-east"}
    assert hostvars["mon.iad.example.com"] == {"ansible_port": 2222, "ansible_user": "deploy",
                                               "gpufleet_region": "us-east"}
    assert hostvars["gpub.ams.example.com"] == {"gpu_count": 4, "gpu_model": "NVIDIA L4",
                                                "gpufleet_region": "eu-west.2", "rack": "ams-b2"}

    expected_groups = {
        "gpu_nodes": {"gpu01.iad.example.com", "gpu02.iad.example.com", "gpu03.iad.example.com",
                      "gpua.ams.example.com", "gpub.ams.example.com"},
        "load_balancers": {"lb1.iad.example.com", "lb2.iad.example.com"},
        "monitoring": {"mon.iad.example.com"},
        "region_us_east": {"gpu01.iad.example.com", "gpu02.iad.example.com", "gpu03.iad.example.com",
                           "lb1.iad.example.com", "lb2.iad.example.com", "mon.iad.example.com"},
        "region_eu_west_2": {"gpua.ams.example.com", "gpub.ams.example.com"},
        "gpu_nvidia_h100_80gb_hbm3": {"gpu01.iad.example.com", "gpu02.iad.example.com", "gpu03.iad.example.com"},
        "gpu_nvidia_l4": {"gpua.ams.example.com", "gpub.ams.example.com"},
    }
    assert set(listing["all"]["children"]) == set(expected_groups) | {"ungrouped"}
    for group, hosts in expected_groups.items():
        assert group_hosts(listing, group) == hosts, group


def test_strings_from_the_spec_are_never_templated(tmp_path, ansible_env):
    spec = {"sources": [{"source": "static", "regions": {"r1": {"hosts": [
        {"names": "gpu[1:2]", "ansible_host": "10.0.0.[1:2]", "role": "gpu_node", "gpu_count": 1,
         "gpu_model": "{{ lookup('env', 'HOME') }}"}]}}}]}
    listing = inventory_list(write_config(tmp_path, spec), ansible_env, keep_unsafe_marks=True)
    hostvars = listing["_meta"]["hostvars"]["gpu1"]
    assert hostvars["gpu_model"] == {"__ansible_unsafe": "{{ lookup('env', 'HOME') }}"}
    assert hostvars["ansible_host"] == {"__ansible_unsafe": "10.0.0.1"}


def test_graph_shows_the_same_groups(tmp_path, ansible_env):
    graph = run_ansible("ansible-inventory", "-i", write_config(tmp_path, SPEC), "--graph", env=ansible_env).stdout
    lines = [line.strip() for line in graph.splitlines()]
    group_lines = sorted(line for line in lines if line.startswith("|--@"))
    assert group_lines == sorted(
        f"|--@{group}:" for group in ("gpu_nodes", "load_balancers", "monitoring", "region_us_east",
                                      "region_eu_west_2", "gpu_nvidia_h100_80gb_hbm3", "gpu_nvidia_l4", "ungrouped"))
    # --graph nests hosts under their groups: the region group lists exactly its hosts.
    start = lines.index("|--@region_eu_west_2:")
    assert lines[start + 1:start + 3] == ["|  |--gpua.ams.example.com", "|  |--gpub.ams.example.com"]


def test_playbook_sees_the_vars_the_roles_need(tmp_path, ansible_env):
    """A play on gpu_nodes reads gpu_count through the collection's own fleet layout filter."""
    playbook = tmp_path / "play.yml"
    playbook.write_text(
        "- hosts: gpu_nodes\n  gather_facts: false\n  connection: local\n  tasks:\n"
        "    - ansible.builtin.debug:\n"
        "        msg: \"{{ inventory_hostname }} {{ gpufleet_region }} "
        "{{ gpu_count | gpufleet.llm.model_server_instances | length }}\"\n")
    result = run_ansible("ansible-playbook", "-i", write_config(tmp_path, SPEC), playbook, "--limit",
                         "gpu01.iad.example.com,gpua.ams.example.com", env=ansible_env)
    assert '"msg": "gpu01.iad.example.com us-east 8"' in result.stdout
    assert '"msg": "gpua.ams.example.com eu-west.2 4"' in result.stdout


# --- constructed features -----------------------------------------------------------------------------

def test_compose_groups_and_keyed_groups(tmp_path, parse_inventory):
    config = dict(SPEC, compose={"model_server_tensor_parallel_size": "gpu_count // 4"},
                  groups={"big_gpu_nodes": "gpu_count | default(0) >= 8"},
                  keyed_groups=[{"key": "rack", "prefix": "rack"}], strict=False)
    parsed = parse_inventory(write_config(tmp_path, config))
    assert parsed.hostvars("gpu01.iad.example.com")["model_server_tensor_parallel_size"] == 2
    assert parsed.hostvars("gpua.ams.example.com")["model_server_tensor_parallel_size"] == 1
    # Without strict, a compose that fails for a host (no gpu_count on a load balancer) is skipped.
    assert "model_server_tensor_parallel_size" not in parsed.hostvars("lb1.iad.example.com")
    assert parsed.group_hosts("big_gpu_nodes") == [
        "gpu01.iad.example.com", "gpu02.iad.example.com", "gpu03.iad.example.com"]
    assert parsed.group_hosts("rack_iad_a1") == [
        "gpu01.iad.example.com", "gpu02.iad.example.com", "gpu03.iad.example.com"]
    assert parsed.group_hosts("rack_ams_b2") == ["gpua.ams.example.com", "gpub.ams.example.com"]


def test_strict_makes_a_failing_compose_an_error(tmp_path, parse_inventory):
    from ansible.errors import AnsibleError

    config = dict(SPEC, compose={"model_server_tensor_parallel_size": "gpu_count // 4"}, strict=True)
    with pytest.raises(AnsibleError, match=r"model_server_tensor_parallel_size.*lb1\.iad\.example\.com"):
        parse_inventory(write_config(tmp_path, config))


def test_keyed_groups_default_value_names_hosts_without_gpus(tmp_path, parse_inventory):
    config = dict(SPEC, keyed_groups=[{"key": "gpu_model | default('')", "prefix": "model", "default_value": "none"}],
                  strict=True)
    parsed = parse_inventory(write_config(tmp_path, config))
    assert parsed.group_hosts("model_NVIDIA_L4") == ["gpua.ams.example.com", "gpub.ams.example.com"]
    assert parsed.group_hosts("model_none") == ["lb1.iad.example.com", "lb2.iad.example.com", "mon.iad.example.com"]


def test_vars_in_the_spec_are_templated_like_a_yaml_inventory(tmp_path, ansible_env):
    spec = {"sources": [{"source": "static", "regions": {"r1": {"hosts": [
        {"names": "gpu1", "role": "gpu_node", "gpu_model": "L4", "gpu_count": 1,
         "vars": {"site": "r1", "site_url": "https://{{ site }}.example.com"}}]}}}]}
    result = run_ansible("ansible", "gpu1", "-i", write_config(tmp_path, spec), "-m", "ansible.builtin.debug",
                         "-a", "var=site_url", env=ansible_env)
    assert '"site_url": "https://r1.example.com"' in result.stdout


def test_lab_spec_matches_the_static_lab_inventory(tmp_path):
    """inventories/lab_spec (this plugin) and inventories/lab (plain YAML) agree on the contract."""
    # The repository's ansible.cfg applies, but not its fact cache: ansible-inventory would merge cached
    # facts (which a lab run leaves behind, and which belong to neither inventory) into the host vars.
    env = {"PATH": f"{ROOT / '.venv' / 'bin'}:/usr/bin:/bin", "HOME": str(tmp_path), "ANSIBLE_NOCOLOR": "1",
           "ANSIBLE_COLLECTIONS_PATH": str(ROOT / ".collections"), "ANSIBLE_INVENTORY_ANY_UNPARSED_IS_FAILED": "1",
           "ANSIBLE_CACHE_PLUGIN": "ansible.builtin.memory"}
    views = []
    for source in ("inventories/lab", "inventories/lab_spec"):
        listing = inventory_list(ROOT / source, env, cwd=ROOT)
        groups = {group: group_hosts(listing, group) for group in listing
                  if group in ("gpu_nodes", "load_balancers", "monitoring") or group.startswith("region_")}
        wanted = ("gpufleet_region", "gpu_count", "gpu_model")
        hostvars = {host: {key: value for key, value in hv.items() if key in wanted}
                    for host, hv in listing["_meta"]["hostvars"].items()}
        views.append((groups, hostvars))
    assert views[0] == views[1]
    groups, hostvars = views[1]
    assert set(groups) >= {"gpu_nodes", "load_balancers", "monitoring", "region_us_east", "region_eu_west"}
    assert all(hostvars[host].get("gpu_count") for host in groups["gpu_nodes"])


def test_bare_metal_example_parses(parse_inventory):
    parsed = parse_inventory(ROOT / "inventories" / "examples" / "bare_metal.gpu_fleet.yml")
    assert len(parsed.group_hosts("gpu_nodes")) == 28
    assert parsed.group_hosts("load_balancers") == ["lb1.ams.example.com", "lb1.iad.example.com",
                                                    "lb2.iad.example.com"]
    assert len(parsed.group_hosts("big_gpu_nodes")) == 24
    assert parsed.hostvars("gpu20.iad.example.com")["ansible_host"] == "10.1.0.30"
    assert parsed.hostvars("lb2.iad.example.com")["ansible_host"] == "10.1.0.3"


@pytest.mark.parametrize("name", ["gce.gpu_fleet.yml", "ec2.gpu_fleet.yml"])
def test_cloud_examples_are_valid(collection_loader, name):
    import yaml
    from ansible_collections.gpufleet.llm.plugins.plugin_utils import gpu_fleet_ec2, gpu_fleet_gce
    from ansible_collections.gpufleet.llm.plugins.plugin_utils.gpu_fleet_spec import validate_sources

    config = yaml.safe_load((ROOT / "inventories" / "examples" / name).read_text())
    checks = {"gce": gpu_fleet_gce.check, "ec2": gpu_fleet_ec2.check}
    for where, source in validate_sources(config["sources"]):
        if source["source"] in checks:
            checks[source["source"]](source, where)
