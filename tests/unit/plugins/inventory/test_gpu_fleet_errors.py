"""A bad plugin file is a parser error that names the field and the file."""

from __future__ import annotations

import re
import sys

import pytest
from gpu_fleet_testlib import run_ansible, write_config


def static(regions):
    return {"sources": [{"source": "static", "regions": regions}]}


GPU = {"role": "gpu_node", "gpu_model": "NVIDIA L4", "gpu_count": 4}

BAD_FILES = [
    pytest.param(
        static({"us-east": {"hosts": [dict(GPU, names="gpu[01:02]")]},
                "eu-west": {"hosts": [dict(GPU, names="gpu02")]}}),
        "sources[0].regions.eu-west.hosts[0]: host 'gpu02' is in two regions: 'us-east' "
        "(sources[0].regions.us-east.hosts[0]) and 'eu-west'",
        id="host-in-two-regions"),
    pytest.param(
        static({"us-east": {"hosts": [dict(GPU, names="gpu[01:02]"), dict(GPU, names=["gpu03", "gpu01"])]}}),
        "sources[0].regions.us-east.hosts[1]: host 'gpu01' is already declared by sources[0].regions.us-east.hosts[0]",
        id="host-twice-in-one-region"),
    pytest.param(
        static({"us-east": {"hosts": [dict(GPU, names="gpu[05:01]")]}}),
        "sources[0].regions.us-east.hosts[0].names: 'gpu[05:01]' expands to no hosts", id="range-expands-to-nothing"),
    pytest.param(
        static({"us-east": {"hosts": [dict(GPU, names="gpu[1:]")]}}),
        "sources[0].regions.us-east.hosts[0].names: cannot expand 'gpu[1:]'", id="range-without-end"),
    pytest.param(
        {"sources": [{"source": "openstack"}]},
        "sources[0].source: unknown source 'openstack'; expected one of static, gce, ec2, facts", id="unknown-source"),
    pytest.param({"sources": []}, "sources: must be a non-empty list of sources", id="no-sources"),
    pytest.param({"sources": {"source": "static"}}, "Config 'sources' for", id="sources-not-a-list"),
    pytest.param(
        static({"us-east": {"hosts": [dict(GPU, names="gpu1", gpu_count="two")]}}),
        "sources[0].regions.us-east.hosts[0].gpu_count: must be a positive integer, got str 'two'",
        id="gpu-count-string"),
    pytest.param(
        static({"us-east": {"hosts": [dict(GPU, names="gpu1", gpu_count=True)]}}),
        "sources[0].regions.us-east.hosts[0].gpu_count: must be a positive integer, got bool True",
        id="gpu-count-bool"),
    pytest.param(
        static({"us-east": {"hosts": [dict(GPU, names="gpu1", gpu_count=0)]}}),
        "hosts[0].gpu_count: must be a positive integer, got int 0", id="gpu-count-zero"),
    pytest.param(
        static({"us-east": {"hosts": [dict(GPU, names=5)]}}),
        "sources[0].regions.us-east.hosts[0].names: must be a string or a non-empty list of strings, got int 5",
        id="names-int"),
    pytest.param(
        static({"us-east": {"hosts": [dict(GPU, names="gpu1", gpu_cont=4)]}}),
        "sources[0].regions.us-east.hosts[0]: unknown field(s) gpu_cont", id="misspelt-field"),
    pytest.param(
        static({"us-east": {"hosts": [dict(GPU, names="gpu1", role="gpu")]}}),
        "hosts[0].role: unknown role 'gpu'; expected one of gpu_node, load_balancer, monitoring", id="unknown-role"),
    pytest.param(
        static({"us-east": {"hosts": [{"names": "gpu1", "role": "gpu_node", "gpu_count": 2}]}}),
        "sources[0].regions.us-east.hosts[0]: a gpu_node range needs gpu_count and gpu_model", id="gpu-node-no-model"),
    pytest.param(
        static({"us-east": {"hosts": [dict(GPU, names="gpu1", vars={"gpu_count": 8})]}}),
        "hosts[0].vars.gpu_count: is set by a field of its own", id="contract-var-in-vars"),
    pytest.param(
        static({"us-east": {"hosts": [dict(GPU, names="gpu[1:3]", ansible_host="10.0.0.[1:2]")]}}),
        "hosts[0].ansible_host: expands to 2 addresses for 3 hosts in names", id="address-count-mismatch"),
    pytest.param(static(["us-east"]), "sources[0].regions: must be a mapping, got list", id="regions-list"),
    pytest.param(static({"us-east": {"hosts": []}}), "sources[0].regions.us-east.hosts: must be a non-empty list",
                 id="region-without-hosts"),
    pytest.param(
        static({"us-east": {"hosts": [dict(GPU, names="a")]}, "us_east": {"hosts": [dict(GPU, names="b")]}}),
        "regions 'us-east' and 'us_east' both make group region_us_east", id="regions-same-group"),
    pytest.param(
        static({"us-east": {"hosts": [dict(GPU, names="a", gpu_model="Nodes")]}}),
        "gpu_model 'Nodes' would make group gpu_nodes, a role group", id="model-named-like-role-group"),
    pytest.param(
        {"sources": [{"source": "ec2", "regions": "us-east-1", "include_stopped": "yes"}]},
        "sources[0].include_stopped: must be true or false, got str 'yes'", id="cloud-bool-string"),
    pytest.param(
        {"sources": [{"source": "ec2", "regions": ["us-east-1"], "aws_secret_access_key": "x"}]},
        "sources[0]: unknown field(s) aws_secret_access_key", id="no-secrets-in-the-file"),
    pytest.param(
        {"sources": [{"source": "gce", "zones": ["us-central1-a"]}]},
        "sources[0].projects: must be a string or a non-empty list of strings, got null None",
        id="gce-without-projects"),
    pytest.param(
        {"sources": [{"source": "ec2", "regions": ["us-east-1"], "hostnames": ["fqdn"]}]},
        "sources[0].hostnames[0]: unknown hostname kind 'fqdn'", id="ec2-hostname-kind"),
]


@pytest.mark.parametrize(("config", "message"), BAD_FILES)
def test_bad_file_names_field_and_file(tmp_path, parse_inventory, config, message):
    from ansible.errors import AnsibleParserError

    path = write_config(tmp_path, config)
    with pytest.raises(AnsibleParserError) as raised:
        parse_inventory(path)
    text = str(raised.value)
    assert text.startswith(f"gpu_fleet inventory {path}: "), text
    assert message in text


def test_ansible_inventory_shows_the_error(tmp_path, ansible_env):
    path = write_config(tmp_path, static({"us-east": {"hosts": [dict(GPU, names="gpu[9:1]")]}}))
    result = run_ansible("ansible-inventory", "-i", path, "--list", env=ansible_env, check=False)
    assert result.returncode != 0
    output = re.sub(r"\s+", " ", result.stderr)
    assert f"gpu_fleet inventory {path}: sources[0].regions.us-east.hosts[0].names: 'gpu[9:1]' expands to no hosts" \
        in output


def test_file_must_be_named_gpu_fleet(tmp_path, collection_loader):
    from ansible.plugins.loader import inventory_loader

    plugin = inventory_loader.get("gpufleet.llm.gpu_fleet")
    assert plugin.verify_file(str(write_config(tmp_path, static({}), name="a.gpu_fleet.yaml")))
    assert not plugin.verify_file(str(write_config(tmp_path, static({}), name="fleet.yml")))
    assert not plugin.verify_file(str(tmp_path / "missing.gpu_fleet.yml"))


@pytest.mark.parametrize("case", [
    ({"source": "ec2", "regions": ["us-east-1"]}, "boto3", "boto3"),
    ({"source": "gce", "projects": ["p"]}, "google.cloud.compute_v1", "google-cloud-compute"),
])
def test_missing_client_library_is_a_clear_error(tmp_path, parse_inventory, monkeypatch, case):
    from ansible.errors import AnsibleParserError

    source, module, library = case
    monkeypatch.setitem(sys.modules, module, None)  # makes `import <module>` raise ImportError
    parent, _, name = module.rpartition(".")
    if parent in sys.modules:  # `from google.cloud import compute_v1` would find the attribute first
        monkeypatch.delattr(sys.modules[parent], name, raising=False)
    with pytest.raises(AnsibleParserError, match=rf"sources\[0\].source: the {source['source']} source needs the "
                                                 rf"{library} Python library"):
        parse_inventory(write_config(tmp_path, {"sources": [source]}))


def test_static_source_needs_no_cloud_library(tmp_path, parse_inventory, monkeypatch):
    for module in ("boto3", "google.cloud.compute_v1"):
        monkeypatch.setitem(sys.modules, module, None)
    parsed = parse_inventory(write_config(tmp_path, static({"r": {"hosts": [dict(GPU, names="gpu1")]}})))
    assert parsed.hosts == ["gpu1"]
