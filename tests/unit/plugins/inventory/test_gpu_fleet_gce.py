"""The gce source against recorded Compute Engine API responses served on loopback."""

from __future__ import annotations

import base64
import json

import pytest
from gpu_fleet_testlib import PROJECT, write_config

pytest.importorskip("google.cloud.compute_v1")


def gce_source(api, **options):
    return {"source": "gce", "projects": [PROJECT], "api_endpoint": api.url, "anonymous": True, "timeout": 10,
            **options}


def test_instances_with_gpus_from_accelerators_and_machine_types(tmp_path, parse_inventory, gce_api):
    parsed = parse_inventory(write_config(tmp_path, {"sources": [gce_source(gce_api)]}))

    # Running instances only: a3-usc-stopped (TERMINATED) is left out.
    assert parsed.hosts == ["a2-usc-1", "a3-usc-1", "g2-euw-1", "lb-usc-1", "mon-euw-1", "n1-t4-euw-dev"]
    a3 = parsed.hostvars("a3-usc-1")
    assert (a3["gpufleet_region"], a3["gpu_count"], a3["gpu_model"], a3["gpu_memory_mib"], a3["ansible_host"]) == (
        "us-central1", 8, "NVIDIA H100 80GB", 81920, "10.128.0.11")
    assert a3["gpufleet_instance"]["zone"] == "us-central1-a"
    assert a3["gpufleet_instance"]["type"] == "a3-highgpu-8g"
    # No guestAccelerators on the instance: the GPUs come from the A2 / G2 machine type.
    a2 = parsed.hostvars("a2-usc-1")
    assert (a2["gpu_count"], a2["gpu_model"], a2["gpu_memory_mib"]) == (2, "NVIDIA A100 40GB", 40960)
    g2 = parsed.hostvars("g2-euw-1")
    assert (g2["gpufleet_region"], g2["gpu_count"], g2["gpu_model"], g2["gpu_memory_mib"]) == (
        "europe-west4", 2, "NVIDIA L4", 24576)
    t4 = parsed.hostvars("n1-t4-euw-dev")
    assert (t4["gpu_count"], t4["gpu_model"], t4["gpu_memory_mib"]) == (2, "NVIDIA T4", 16384)
    lb = parsed.hostvars("lb-usc-1")
    assert "gpu_count" not in lb and lb["ansible_host"] == "10.128.0.20"

    # Role from the label; without one, an instance with GPUs is a GPU node.
    assert parsed.group_hosts("gpu_nodes") == ["a2-usc-1", "a3-usc-1", "g2-euw-1", "n1-t4-euw-dev"]
    assert parsed.group_hosts("load_balancers") == ["lb-usc-1"]
    assert parsed.group_hosts("monitoring") == ["mon-euw-1"]
    assert parsed.group_hosts("region_us_central1") == ["a2-usc-1", "a3-usc-1", "lb-usc-1"]
    assert parsed.group_hosts("region_europe_west4") == ["g2-euw-1", "mon-euw-1", "n1-t4-euw-dev"]
    assert parsed.group_hosts("gpu_nvidia_h100_80gb") == ["a3-usc-1"]
    assert parsed.group_hosts("gpu_nvidia_l4") == ["g2-euw-1"]


def test_api_calls_aggregated_list_pages_and_each_type_once(tmp_path, parse_inventory, gce_api):
    parse_inventory(write_config(tmp_path, {"sources": [gce_source(gce_api)]}))
    paths = [request["path"] for request in gce_api.api_requests()]
    listing = f"/compute/v1/projects/{PROJECT}/aggregated/instances"
    assert paths.count(listing) == 2  # both pages
    first = next(request for request in gce_api.api_requests() if request["path"] == listing)
    assert first["query"]["filter"] == ['(status = "RUNNING")']
    types = [path for path in paths if path != listing]
    assert len(types) == len(set(types))
    assert f"/compute/v1/projects/{PROJECT}/zones/us-central1-a/machineTypes/a2-highgpu-2g" in types
    assert f"/compute/v1/projects/{PROJECT}/zones/us-central1-a/acceleratorTypes/nvidia-h100-80gb" in types
    # The A3's GPUs are attached accelerators: its machine type need not be fetched.
    assert f"/compute/v1/projects/{PROJECT}/zones/us-central1-a/machineTypes/a3-highgpu-8g" not in types
    assert all(request["authorization"] is None for request in gce_api.requests)  # anonymous


def test_label_filter_zones_stopped_and_public_address(tmp_path, parse_inventory, gce_api):
    config = {"sources": [gce_source(gce_api, labels={"env": "prod"}, regions=["us-central1"], include_stopped=True,
                                     address="public", region_map={"us-central1": "us-east"})]}
    parsed = parse_inventory(write_config(tmp_path, config))
    assert parsed.hosts == ["a2-usc-1", "a3-usc-1", "a3-usc-stopped", "lb-usc-1"]
    assert parsed.hostvars("a3-usc-1")["ansible_host"] == "34.72.10.11"
    assert parsed.hostvars("a2-usc-1")["ansible_host"] == "10.128.0.12"  # no external IP: the private one
    assert parsed.hostvars("a3-usc-1")["gpufleet_region"] == "us-east"
    assert parsed.group_hosts("region_us_east") == parsed.hosts
    listing = next(request for request in gce_api.api_requests() if "aggregated" in request["path"])
    assert listing["query"]["filter"] == ['(labels.env = "prod")']


def test_gce_and_static_in_one_file(tmp_path, parse_inventory, gce_api):
    config = {"sources": [
        {"source": "static", "regions": {"us-east": {"hosts": [
            {"names": "bm-gpu[1:2]", "role": "gpu_node", "gpu_model": "NVIDIA H100 80GB", "gpu_count": 8}]}}},
        gce_source(gce_api, zones=["us-central1-a"], region_map={"us-central1": "us-east"}),
    ]}
    parsed = parse_inventory(write_config(tmp_path, config))
    assert parsed.group_hosts("gpu_nvidia_h100_80gb") == ["a3-usc-1", "bm-gpu1", "bm-gpu2"]
    assert parsed.group_hosts("region_us_east") == ["a2-usc-1", "a3-usc-1", "bm-gpu1", "bm-gpu2", "lb-usc-1"]


def test_cloud_host_named_like_a_static_host_is_an_error(tmp_path, parse_inventory, gce_api):
    from ansible.errors import AnsibleParserError

    config = {"sources": [
        {"source": "static", "regions": {"us-east": {"hosts": [
            {"names": "a3-usc-1", "role": "gpu_node", "gpu_model": "H100", "gpu_count": 8}]}}},
        gce_source(gce_api),
    ]}
    with pytest.raises(AnsibleParserError, match=r"host 'a3-usc-1' is in two regions: 'us-east' "
                                                 r"\(sources\[0\]\.regions\.us-east\.hosts\[0\]\) and 'us-central1'"):
        parse_inventory(write_config(tmp_path, config))


def test_refused_credentials_is_one_clear_error(tmp_path, parse_inventory, gce_api):
    from ansible.errors import AnsibleParserError

    gce_api.fail_with = 403
    path = write_config(tmp_path, {"sources": [gce_source(gce_api)]})
    with pytest.raises(AnsibleParserError) as raised:
        parse_inventory(path)
    assert str(raised.value).startswith(
        f"gpu_fleet inventory {path}: sources[0]: gce: Compute Engine refused the credentials for project "
        f"{PROJECT}: 403")


def test_unreachable_api_is_one_clear_error(tmp_path, parse_inventory, gce_api):
    from ansible.errors import AnsibleParserError

    url = gce_api.url
    gce_api.stop()
    config = {"sources": [dict(gce_source(gce_api), api_endpoint=url)]}
    with pytest.raises(AnsibleParserError, match=rf"sources\[0\]: gce: cannot reach the Compute Engine API "
                                                 rf"\({url}\) for project {PROJECT}: ConnectionError"):
        parse_inventory(write_config(tmp_path, config))


def service_account_file(tmp_path, gce_api):
    """A service-account key file made up here: its own RSA key, its token URI on loopback."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()
    path = tmp_path / "inventory-sa.json"
    path.write_text(json.dumps({
        "type": "service_account", "project_id": PROJECT, "private_key_id": "test-key-1", "private_key": pem,
        "client_email": f"inventory@{PROJECT}.iam.gserviceaccount.com", "client_id": "100000000000000000001",
        "token_uri": f"{gce_api.url}/token",
    }))
    return path, key.public_key(), pem


def _jwt_parts(token):
    def decode(part):
        return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))
    header, payload, signature = token.split(".")
    return json.loads(decode(header)), json.loads(decode(payload)), decode(signature), f"{header}.{payload}".encode()


def test_service_account_file_signs_the_requests(tmp_path, parse_inventory, gce_api):
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding

    key_file, public_key, _ = service_account_file(tmp_path, gce_api)
    source = dict(gce_source(gce_api), anonymous=False, credentials_file=str(key_file))
    parsed = parse_inventory(write_config(tmp_path, {"sources": [source]}))
    assert "a3-usc-1" in parsed.hosts

    # The client library sends JWTs signed with the service account's key (no token exchange); each API
    # client makes its own, so their issue times may differ by a second.
    headers = {request["authorization"] for request in gce_api.api_requests()}
    assert headers and None not in headers
    for header_value in headers:
        scheme, token = header_value.split(" ", 1)
        assert scheme == "Bearer"
        header, claims, signature, signed = _jwt_parts(token)
        assert header["kid"] == "test-key-1"
        assert claims["iss"] == f"inventory@{PROJECT}.iam.gserviceaccount.com"
        public_key.verify(signature, signed, padding.PKCS1v15(), hashes.SHA256())  # raises unless our key signed it


def test_credentials_are_never_echoed(tmp_path, parse_inventory, gce_api):
    from ansible.errors import AnsibleParserError

    key_file, _, pem = service_account_file(tmp_path, gce_api)
    gce_api.fail_with = 401
    source = dict(gce_source(gce_api), anonymous=False, credentials_file=str(key_file))
    with pytest.raises(AnsibleParserError) as raised:
        parse_inventory(write_config(tmp_path, {"sources": [source]}))
    message = str(raised.value)
    assert "refused the credentials" in message
    bearer = next(r["authorization"] for r in gce_api.api_requests()).split(" ", 1)[1]
    for secret in (bearer, pem.splitlines()[1], "BEGIN PRIVATE KEY"):
        assert secret not in message


def test_unusable_credentials_file_names_the_field(tmp_path, parse_inventory, gce_api):
    from ansible.errors import AnsibleParserError

    broken = tmp_path / "broken-sa.json"
    broken.write_text(json.dumps({"type": "service_account", "private_key": "-----BEGIN PRIVATE KEY-----\nc2VjcmV0\n"}))
    source = dict(gce_source(gce_api), anonymous=False, credentials_file=str(broken))
    expected = r"sources\[0\]\.credentials_file: cannot use .*broken-sa.json"
    with pytest.raises(AnsibleParserError, match=expected) as raised:
        parse_inventory(write_config(tmp_path, {"sources": [source]}))
    assert "c2VjcmV0" not in str(raised.value)


def test_label_with_several_accepted_values(tmp_path, parse_inventory, gce_api):
    config = {"sources": [gce_source(gce_api, labels={"env": ["dev", "staging"], "gpufleet_role": "gpu_node"})]}
    parsed = parse_inventory(write_config(tmp_path, config))
    assert parsed.hosts == []  # the only dev instance has no role label
    config = {"sources": [gce_source(gce_api, labels={"env": ["dev", "staging"]})]}
    assert parse_inventory(write_config(tmp_path, config)).hosts == ["n1-t4-euw-dev"]
    filters = [r["query"]["filter"] for r in gce_api.api_requests() if "aggregated" in r["path"]]
    assert filters[0] == ['(status = "RUNNING") AND (labels.gpufleet_role = "gpu_node")']
    assert filters[-1] == ['(status = "RUNNING")']
