# Copyright: gpufleet developers. Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""The ``ec2`` source of the gpu_fleet inventory: EC2 instances and their GPUs, through boto3.

GPU count, model and memory come from DescribeInstanceTypes (``GpuInfo``), one call per
batch of distinct instance types, never one per instance. Credentials come from boto3's
own chain (environment variables, the shared credentials/config files, a named profile),
never from the inventory file.
"""

from __future__ import annotations

from ansible_collections.gpufleet.llm.plugins.plugin_utils.gpu_fleet_cloud import (
    SourceUnavailable,
    cloud_record,
    role_from,
)
from ansible_collections.gpufleet.llm.plugins.plugin_utils.gpu_fleet_spec import (
    SpecError,
    string,
    string_list,
    string_map,
)

_TYPES_PER_CALL = 100  # DescribeInstanceTypes accepts at most 100 InstanceTypes
_DUPLICATE_NAMES = ("suffix_instance_id", "fail")
_HOSTNAME_KINDS = ("instance-id", "private-dns-name", "public-dns-name", "private-ip-address", "public-ip-address")


def _boto3(where):
    try:
        import boto3
        import botocore.config
        import botocore.exceptions
        import botocore.session
    except ImportError:
        raise SpecError(f"{where}.source", "the ec2 source needs the boto3 Python library "
                                           "(pip install boto3) on the controller") from None
    return boto3, botocore


def _session(source, where, boto3, botocore):
    """A boto3 session on boto's own credential chain, with the profile and credentials file the source names."""
    try:
        core = botocore.session.Session(profile=source.get("profile"))
        if source.get("credentials_file"):
            core.set_config_variable("credentials_file", source["credentials_file"])
        session = boto3.Session(botocore_session=core)
        core.get_scoped_config()  # resolves the profile now, so that a wrong one is an error of this field
    except botocore.exceptions.ProfileNotFound as exc:
        raise SpecError(f"{where}.profile", str(exc)) from None
    return session


def check(source, where):
    string_list(source.get("regions"), f"{where}.regions", required=True)
    string_map(source.get("tags"), f"{where}.tags")
    string(source.get("role_tag"), f"{where}.role_tag")
    string(source.get("profile"), f"{where}.profile")
    string(source.get("credentials_file"), f"{where}.credentials_file")
    string(source.get("endpoint_url"), f"{where}.endpoint_url")
    if source.get("duplicate_names", "suffix_instance_id") not in _DUPLICATE_NAMES:
        raise SpecError(f"{where}.duplicate_names", f"must be one of {', '.join(_DUPLICATE_NAMES)}, "
                                                    f"got {source['duplicate_names']!r}")
    for index, kind in enumerate(string_list(source.get("hostnames"), f"{where}.hostnames")):
        if kind not in _HOSTNAME_KINDS and not kind.startswith("tag:"):
            raise SpecError(f"{where}.hostnames[{index}]", f"unknown hostname kind {kind!r}; "
                                                           f"expected tag:<key> or one of {', '.join(_HOSTNAME_KINDS)}")


def fetch(source, where, warn):
    """Host records for every instance the source selects."""
    check(source, where)
    boto3, botocore = _boto3(where)
    errors = botocore.exceptions
    session = _session(source, where, boto3, botocore)
    client_config = botocore.config.Config(
        retries={"mode": "standard", "max_attempts": source.get("max_attempts", 3)},
        connect_timeout=source.get("timeout", 30), read_timeout=source.get("timeout", 30),
    )
    records = []
    for region in string_list(source.get("regions"), f"{where}.regions", required=True):
        client = session.client("ec2", region_name=region, endpoint_url=source.get("endpoint_url"),
                                config=client_config)
        try:
            instances = _instances(client, source)
            gpu_info = _gpu_info(client, {instance["InstanceType"] for instance in instances})
        except errors.NoCredentialsError:
            raise SourceUnavailable("ec2: no AWS credentials found (set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, "
                                    "AWS_PROFILE or the profile option)") from None
        except errors.ClientError as exc:
            error = exc.response.get("Error", {})
            raise SourceUnavailable(f"ec2: region {region} refused the request: "
                                    f"{error.get('Code', 'error')}: {error.get('Message', '')}") from None
        except (errors.EndpointConnectionError, errors.ConnectTimeoutError, errors.ReadTimeoutError) as exc:
            raise SourceUnavailable(f"ec2: cannot reach the EC2 API of region {region}: {exc}") from None
        for instance in instances:
            records.append(_record(instance, region=region, gpus=gpu_info.get(instance["InstanceType"]),
                                   source=source, where=where, warn=warn))
    _name_duplicates(records, source.get("duplicate_names", "suffix_instance_id"), where, warn)
    return records


def _name_duplicates(records, policy, where, warn):
    """Instances of this source that got the same name (two equal ``Name`` tags are common on EC2).

    Every instance of such a name gets ``<name>-<instance id>``, the first one included: which
    instance the API lists first is not stable, and a name must not move from one machine to
    another between runs. With ``fail``, one error lists every clash.
    """
    by_name = {}
    for record in records:
        by_name.setdefault(record["name"], []).append(record)
    clashes = {name: same for name, same in by_name.items() if len(same) > 1}
    if not clashes:
        return
    if policy == "fail":
        raise SpecError(f"{where}.duplicate_names", "; ".join(
            f"instances {_ids(same)} are all named {name!r}" for name, same in clashes.items())
            + " (set duplicate_names: suffix_instance_id, or hostnames: [instance-id])")
    for name, same in clashes.items():
        for record in same:
            record["name"] = f"{name}-{record['vars']['gpufleet_instance']['id']}"
            warn(f"{record['origin']}: instances {_ids(same)} are all named {name!r}; this one is "
                 f"{record['name']} (give each a unique Name tag, or set duplicate_names: fail)")


def _ids(records):
    return ", ".join(record["vars"]["gpufleet_instance"]["id"] for record in records)


def _instances(client, source):
    filters = [{"Name": f"tag:{key}", "Values": values} for key, values in string_map(source.get("tags"), "").items()]
    if not source.get("include_stopped"):
        filters.append({"Name": "instance-state-name", "Values": ["running"]})
    instances = []
    for page in client.get_paginator("describe_instances").paginate(Filters=filters):
        for reservation in page["Reservations"]:
            instances.extend(reservation["Instances"])
    return instances


def _gpu_info(client, instance_types):
    """``{instance_type: (count, model, memory_mib_per_gpu)}`` for the types that carry GPUs."""
    info = {}
    ordered = sorted(instance_types)
    for start in range(0, len(ordered), _TYPES_PER_CALL):
        batch = ordered[start:start + _TYPES_PER_CALL]
        for page in client.get_paginator("describe_instance_types").paginate(InstanceTypes=batch):
            for described in page["InstanceTypes"]:
                gpus = described.get("GpuInfo", {}).get("Gpus", [])
                if not gpus:
                    continue
                first = gpus[0]
                model = " ".join(part for part in (first.get("Manufacturer"), first.get("Name")) if part)
                info[described["InstanceType"]] = (
                    sum(gpu.get("Count", 0) for gpu in gpus), model,
                    first.get("MemoryInfo", {}).get("SizeInMiB"),
                )
    return info


def _hostname(instance, tags, preferences):
    lookups = {
        "instance-id": instance.get("InstanceId"),
        "private-dns-name": instance.get("PrivateDnsName"),
        "public-dns-name": instance.get("PublicDnsName"),
        "private-ip-address": instance.get("PrivateIpAddress"),
        "public-ip-address": instance.get("PublicIpAddress"),
    }
    for kind in preferences:
        value = tags.get(kind[4:]) if kind.startswith("tag:") else lookups.get(kind)
        if value:
            return value
    return instance["InstanceId"]


def _record(instance, *, region, gpus, source, where, warn):
    tags = {tag["Key"]: tag["Value"] for tag in instance.get("Tags", [])}
    name = _hostname(instance, tags, source.get("hostnames") or ["tag:Name", "instance-id"])
    private, public = instance.get("PrivateIpAddress"), instance.get("PublicIpAddress")
    address = (public or private) if source.get("address") == "public" else (private or public)
    count, model, memory = gpus or (None, None, None)
    return cloud_record(
        name=name, region=source.get("region_map", {}).get(region, region),
        role=role_from(tags.get(source.get("role_tag", "gpufleet_role")), count, name, warn),
        gpu_count=count, gpu_model=model, gpu_memory_mib=memory, ansible_host=address,
        source=source, origin=f"{where} (ec2 {region} {instance['InstanceId']})",
        instance={
            "provider": "ec2", "id": instance["InstanceId"], "type": instance["InstanceType"],
            "zone": instance.get("Placement", {}).get("AvailabilityZone"), "cloud_region": region,
            "state": instance.get("State", {}).get("Name"), "tags": tags,
        },
    )
