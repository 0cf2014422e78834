"""The ec2 source against moto's EC2 server on loopback (instances made through boto3 by the fixture)."""

from __future__ import annotations

import pytest
from gpu_fleet_testlib import free_port, inventory_list, write_config

pytest.importorskip("boto3")


def ec2_source(endpoint, **options):
    return {"source": "ec2", "regions": ["us-east-1", "eu-west-1"], "endpoint_url": endpoint, "max_attempts": 1,
            "timeout": 5, **options}


def test_gpus_from_instance_types(tmp_path, parse_inventory, moto_ec2, aws_env):
    parsed = parse_inventory(write_config(tmp_path, {"sources": [ec2_source(moto_ec2["endpoint"])]}))

    # Running instances only: p4d-use-stopped is left out. Hosts are named by their Name tag.
    assert parsed.hosts == ["g5-euw-1", "g5-euw-dev", "g6-use-1", "lb-use-1", "mon-euw-1", "p5-use-1"]
    p5 = parsed.hostvars("p5-use-1")
    assert (p5["gpufleet_region"], p5["gpu_count"], p5["gpu_model"], p5["gpu_memory_mib"]) == (
        "us-east-1", 8, "NVIDIA H100", 81920)
    assert p5["ansible_host"] == moto_ec2["addresses"]["p5-use-1"][0]
    assert p5["gpufleet_instance"]["id"] == moto_ec2["ids"]["p5-use-1"]
    assert p5["gpufleet_instance"]["type"] == "p5.48xlarge"
    g5 = parsed.hostvars("g5-euw-1")
    assert (g5["gpufleet_region"], g5["gpu_count"], g5["gpu_model"], g5["gpu_memory_mib"]) == (
        "eu-west-1", 4, "NVIDIA A10G", 22888)
    g6 = parsed.hostvars("g6-use-1")
    assert (g6["gpu_count"], g6["gpu_model"]) == (1, "NVIDIA L4")
    assert "gpu_count" not in parsed.hostvars("lb-use-1")

    # Role from the tag; the untagged g6 has GPUs, so it is a GPU node.
    assert parsed.group_hosts("gpu_nodes") == ["g5-euw-1", "g5-euw-dev", "g6-use-1", "p5-use-1"]
    assert parsed.group_hosts("load_balancers") == ["lb-use-1"]
    assert parsed.group_hosts("monitoring") == ["mon-euw-1"]
    assert parsed.group_hosts("region_us_east_1") == ["g6-use-1", "lb-use-1", "p5-use-1"]
    assert parsed.group_hosts("gpu_nvidia_a10g") == ["g5-euw-1", "g5-euw-dev"]
    assert parsed.group_hosts("gpu_nvidia_h100") == ["p5-use-1"]


def test_tag_filter_stopped_hostnames_and_region_map(tmp_path, parse_inventory, moto_ec2, aws_env):
    source = ec2_source(moto_ec2["endpoint"], tags={"env": "prod", "gpufleet_role": ["gpu_node", "monitoring"]},
                        include_stopped=True, hostnames=["instance-id"], address="public",
                        region_map={"us-east-1": "us-east", "eu-west-1": "eu-west"})
    parsed = parse_inventory(write_config(tmp_path, {"sources": [source]}))
    ids = moto_ec2["ids"]
    assert parsed.hosts == sorted([ids["p5-use-1"], ids["p4d-use-stopped"], ids["g5-euw-1"], ids["mon-euw-1"]])
    stopped = parsed.hostvars(ids["p4d-use-stopped"])
    assert (stopped["gpu_count"], stopped["gpu_model"], stopped["gpufleet_instance"]["state"]) == (
        8, "NVIDIA A100", "stopped")
    assert parsed.group_hosts("region_us_east") == sorted([ids["p5-use-1"], ids["p4d-use-stopped"]])
    assert parsed.hostvars(ids["g5-euw-1"])["gpufleet_region"] == "eu-west"
    private, public = moto_ec2["addresses"]["p5-use-1"]
    assert public and public != private
    assert parsed.hostvars(ids["p5-use-1"])["ansible_host"] == public


def test_ansible_inventory_end_to_end(tmp_path, ansible_env, moto_ec2):
    env = dict(ansible_env, AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing")
    source = ec2_source(moto_ec2["endpoint"], regions=["us-east-1"])
    listing = inventory_list(write_config(tmp_path, {"sources": [source]}), env)
    assert sorted(listing["gpu_nodes"]["hosts"]) == ["g6-use-1", "p5-use-1"]
    assert listing["_meta"]["hostvars"]["p5-use-1"]["gpu_count"] == 8


def test_refused_credentials_is_one_clear_error(tmp_path, parse_inventory, moto_ec2_with_auth, aws_env):
    from ansible.errors import AnsibleParserError

    path = write_config(tmp_path, {"sources": [ec2_source(moto_ec2_with_auth)]})
    with pytest.raises(AnsibleParserError) as raised:
        parse_inventory(path)
    message = str(raised.value)
    assert message.startswith(f"gpu_fleet inventory {path}: sources[0]: ec2: region us-east-1 refused the request: "
                              "AuthFailure")
    assert "testing" not in message.replace("gpufleet", "")  # the access key is never echoed


def test_no_credentials_is_one_clear_error(tmp_path, parse_inventory, moto_ec2, aws_env, monkeypatch):
    from ansible.errors import AnsibleParserError

    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")  # no instance-metadata lookup off loopback
    with pytest.raises(AnsibleParserError, match=r"sources\[0\]: ec2: no AWS credentials found"):
        parse_inventory(write_config(tmp_path, {"sources": [ec2_source(moto_ec2["endpoint"])]}))


def test_unreachable_api_is_one_clear_error(tmp_path, parse_inventory, aws_env):
    from ansible.errors import AnsibleParserError

    closed = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(AnsibleParserError, match=r"sources\[0\]: ec2: cannot reach the EC2 API of region us-east-1"):
        parse_inventory(write_config(tmp_path, {"sources": [ec2_source(closed)]}))


def test_unknown_profile_names_the_field(tmp_path, parse_inventory, moto_ec2, aws_env):
    from ansible.errors import AnsibleParserError

    with pytest.raises(AnsibleParserError, match=r"sources\[0\]\.profile: The config profile \(nowhere\) could not"):
        parse_inventory(write_config(tmp_path, {"sources": [ec2_source(moto_ec2["endpoint"], profile="nowhere")]}))


def test_credentials_file_and_profile_named_in_the_config(tmp_path, parse_inventory, moto_ec2_with_auth, aws_env,
                                                          monkeypatch):
    """Keys come from the file the config names (never the config itself) and never show in errors."""
    from ansible.errors import AnsibleParserError

    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    credentials = tmp_path / "fleet-credentials"
    credentials.write_text("[fleet]\naws_access_key_id = AKIAFLEETEXAMPLE0001\n"
                           "aws_secret_access_key = fleetSecretKeyThatMustNotLeak0000000000\n")
    source = ec2_source(moto_ec2_with_auth, profile="fleet", credentials_file=str(credentials))
    with pytest.raises(AnsibleParserError) as raised:
        parse_inventory(write_config(tmp_path, {"sources": [source]}))
    message = str(raised.value)
    # The emulator checked the file's keys (and knows no such user): so they were read and sent.
    assert "ec2: region us-east-1 refused the request: AuthFailure" in message
    assert "fleetSecretKey" not in message and "AKIAFLEET" not in message


def test_credentials_file_lists_hosts(tmp_path, parse_inventory, moto_ec2, aws_env, monkeypatch):
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    credentials = tmp_path / "fleet-credentials"
    credentials.write_text("[fleet]\naws_access_key_id = testing\naws_secret_access_key = testing\n")
    source = ec2_source(moto_ec2["endpoint"], regions=["eu-west-1"], profile="fleet", credentials_file=str(credentials))
    parsed = parse_inventory(write_config(tmp_path, {"sources": [source]}))
    assert parsed.hosts == ["g5-euw-1", "g5-euw-dev", "mon-euw-1"]


def _twins(endpoint, region):
    """Two GPU instances with one Name tag, and a third with its own, in a region no other test uses."""
    import boto3

    client = boto3.client("ec2", region_name=region, endpoint_url=endpoint,
                          aws_access_key_id="testing", aws_secret_access_key="testing")
    ids = {}
    for name in ("twin", "twin", "single"):
        created = client.run_instances(ImageId="ami-12345678", InstanceType="g6.xlarge", MinCount=1, MaxCount=1,
                                       TagSpecifications=[{"ResourceType": "instance",
                                                           "Tags": [{"Key": "Name", "Value": name}]}])
        ids.setdefault(name, []).append(created["Instances"][0]["InstanceId"])
    return ids


def test_instances_sharing_a_name_are_named_by_instance_id(tmp_path, parse_inventory, moto_ec2, aws_env):
    ids = _twins(moto_ec2["endpoint"], "ap-south-1")
    source = ec2_source(moto_ec2["endpoint"], regions=["ap-south-1"])
    parsed = parse_inventory(write_config(tmp_path, {"sources": [source]}))

    # The source is kept: the other instance keeps its name, each twin gets its instance id.
    twins = sorted(f"twin-{instance}" for instance in ids["twin"])
    assert parsed.hosts == sorted(["single", *twins])
    assert parsed.group_hosts("gpu_nodes") == parsed.hosts
    for host in twins:
        assert parsed.hostvars(host)["gpufleet_instance"]["id"] == host.removeprefix("twin-")
    # One warning per renamed instance, naming both instances and the way out.
    clashes = [warning for warning in parsed.warnings if "are all named 'twin'" in warning]
    assert len(clashes) == 2
    for warning in clashes:
        assert all(instance in warning for instance in ids["twin"])
        assert "duplicate_names: fail" in warning


def test_duplicate_names_fail_lists_every_clash(tmp_path, parse_inventory, moto_ec2, aws_env):
    from ansible.errors import AnsibleParserError

    ids = _twins(moto_ec2["endpoint"], "ap-northeast-1")
    source = ec2_source(moto_ec2["endpoint"], regions=["ap-northeast-1"], duplicate_names="fail")
    path = write_config(tmp_path, {"sources": [source]})
    with pytest.raises(AnsibleParserError) as raised:
        parse_inventory(path)
    assert str(raised.value) == (
        f"gpu_fleet inventory {path}: sources[0].duplicate_names: instances {', '.join(ids['twin'])} are all "
        "named 'twin' (set duplicate_names: suffix_instance_id, or hostnames: [instance-id])")


def test_unknown_duplicate_names_policy_names_the_field(tmp_path, parse_inventory, moto_ec2, aws_env):
    from ansible.errors import AnsibleParserError

    path = write_config(tmp_path, {"sources": [ec2_source(moto_ec2["endpoint"], duplicate_names="first")]})
    with pytest.raises(AnsibleParserError, match=r"sources\[0\].duplicate_names: must be one of "
                                                 r"suffix_instance_id, fail, got 'first'"):
        parse_inventory(path)
