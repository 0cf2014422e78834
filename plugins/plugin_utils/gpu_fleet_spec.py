# Copyright: gpufleet developers. Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""The gpu_fleet inventory file: validation of its ``sources`` and the hosts they declare.

Every source turns into *host records*, plain JSON-able dicts (so that the inventory cache
can hold them)::

    {"name": "gpu01.iad.example.com", "region": "us-east", "roles": ["gpu_node"],
     "gpu_count": 8, "gpu_model": "NVIDIA H100 80GB", "gpu_memory_mib": 81920,
     "ansible_host": "10.0.0.11", "port": None, "vars": {...}, "origin": "sources[0]..."}

Nothing here imports Ansible's controller code; the plugin passes in what it needs.
"""

from __future__ import annotations

import hashlib
import json

from ansible_collections.gpufleet.llm.plugins.plugin_utils.gpu_fleet_names import (
    ROLE_GROUPS,
    gpu_model_group,
    region_group,
)

SOURCE_KINDS = ("static", "gce", "ec2", "facts")
CLOUD_KINDS = ("gce", "ec2")

# Set by fields of their own; a `vars` entry of the same name would be ambiguous.
CONTRACT_VARS = ("gpufleet_region", "gpu_count", "gpu_model", "gpu_memory_mib", "ansible_host")

_COMMON_CLOUD_FIELDS = {
    "source", "include_stopped", "address", "region_map", "vars", "max_attempts", "timeout",
}
SOURCE_FIELDS = {
    "static": {"source", "regions"},
    "gce": _COMMON_CLOUD_FIELDS | {
        "projects", "zones", "regions", "labels", "role_label",
        "credentials_file", "anonymous", "api_endpoint",
    },
    "ec2": _COMMON_CLOUD_FIELDS | {
        "regions", "tags", "role_tag", "hostnames", "duplicate_names", "profile", "credentials_file", "endpoint_url",
    },
    "facts": {"source"},
}
RANGE_FIELDS = {"names", "role", "gpu_model", "gpu_count", "gpu_memory_mib", "ansible_host", "vars"}


class SpecError(ValueError):
    """A field of the inventory file that cannot be used; ``field`` is its path in the file."""

    def __init__(self, field, message):
        super().__init__(f"{field}: {message}")
        self.field = field


# --- field checks ------------------------------------------------------------------------------

def _type_name(value):
    """The YAML-level type (Ansible hands over tagged subclasses such as _AnsibleTaggedStr)."""
    for kind, name in ((bool, "bool"), (int, "int"), (float, "float"), (str, "str"), (dict, "mapping"),
                       (list, "list")):
        if isinstance(value, kind):
            return name
    return "null" if value is None else type(value).__name__


type_name = _type_name  # also words the contract check's messages (fleet.py), so both say "got str 'two'"


def mapping(value, field, required=False):
    if value is None and not required:
        return {}
    if not isinstance(value, dict):
        raise SpecError(field, f"must be a mapping, got {_type_name(value)} {value!r}")
    return value


def string(value, field, required=False):
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value.strip():
        raise SpecError(field, f"must be a non-empty string, got {_type_name(value)} {value!r}")
    return value


def positive_int(value, field, required=False):
    if value is None and not required:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise SpecError(field, f"must be a positive integer, got {_type_name(value)} {value!r}")
    return value


def boolean(value, field, default=False):
    if value is None:
        return default
    if not isinstance(value, bool):
        raise SpecError(field, f"must be true or false, got {_type_name(value)} {value!r}")
    return value


def string_list(value, field, required=False):
    """A string or a list of strings, as a list."""
    if value is None and not required:
        return []
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not items:
        raise SpecError(field, f"must be a string or a non-empty list of strings, got {_type_name(value)} {value!r}")
    for index, item in enumerate(items):
        string(item, f"{field}[{index}]", required=True)
    return list(items)


def string_map(value, field):
    """A mapping of strings to a string (or, for filters, a list of strings)."""
    result = {}
    for key, item in mapping(value, field).items():
        string(key, f"{field} key", required=True)
        result[key] = string_list(item, f"{field}.{key}", required=True)
    return result


def known_fields(entry, allowed, field):
    unknown = sorted(str(key) for key in entry if key not in allowed)
    if unknown:
        raise SpecError(field, f"unknown field(s) {', '.join(unknown)}; expected some of {', '.join(sorted(allowed))}")


def plain_vars(value, field):
    variables = mapping(value, field)
    for name in variables:
        if not isinstance(name, str):
            raise SpecError(field, f"variable names must be strings, got {name!r}")
        if name in CONTRACT_VARS:
            raise SpecError(f"{field}.{name}", "is set by a field of its own (gpu_count, gpu_model, ...), not in vars")
    return variables


def roles(value, field):
    names = string_list(value, field, required=True)
    for name in names:
        if name not in ROLE_GROUPS:
            raise SpecError(field, f"unknown role {name!r}; expected one of {', '.join(ROLE_GROUPS)}")
    return names


# --- sources -------------------------------------------------------------------------------------

def validate_sources(value, field="sources"):
    """Check each entry's ``source`` kind and fields; returns ``[(field, source_dict)]``."""
    if not isinstance(value, list) or not value:
        raise SpecError(field, f"must be a non-empty list of sources, got {_type_name(value)} {value!r}")
    checked = []
    for index, source in enumerate(value):
        where = f"{field}[{index}]"
        mapping(source, where, required=True)
        kind = source.get("source")
        if kind not in SOURCE_KINDS:
            raise SpecError(f"{where}.source", f"unknown source {kind!r}; expected one of {', '.join(SOURCE_KINDS)}")
        known_fields(source, SOURCE_FIELDS[kind], where)
        if kind in CLOUD_KINDS:
            _check_cloud_common(source, where)
        checked.append((where, source))
    if sum(1 for _where, source in checked if source["source"] == "facts") > 1:
        raise SpecError(field, "list the facts source once")
    return checked


def _check_cloud_common(source, where):
    boolean(source.get("include_stopped"), f"{where}.include_stopped")
    address = source.get("address", "private")
    if address not in ("private", "public"):
        raise SpecError(f"{where}.address", f"must be private or public, got {address!r}")
    for name, item in mapping(source.get("region_map"), f"{where}.region_map").items():
        string(item, f"{where}.region_map.{name}", required=True)
    plain_vars(source.get("vars"), f"{where}.vars")
    positive_int(source.get("max_attempts"), f"{where}.max_attempts")
    positive_int(source.get("timeout"), f"{where}.timeout")


def source_cache_key(where, source):
    """Changes whenever the source's settings do, so a stale cache entry is never used for new settings."""
    digest = hashlib.sha256(json.dumps(source, sort_keys=True, default=str).encode()).hexdigest()[:16]
    return f"{where}:{source['source']}:{digest}"


# --- static source -----------------------------------------------------------------------------

def static_records(source, where, expand):
    """Host records of a bare-metal fleet spec.

    ``expand(pattern)`` returns ``(hostnames, port)`` for a host pattern with ranges
    (the plugin passes Ansible's own expansion, so ranges mean what they mean in a YAML inventory).
    """
    regions = mapping(source.get("regions"), f"{where}.regions", required=True)
    if not regions:
        raise SpecError(f"{where}.regions", "lists no region")
    records = []
    for region, given in regions.items():
        rfield = f"{where}.regions.{region}"
        string(region, f"{where}.regions key", required=True)
        region_spec = mapping(given, rfield, required=True)
        known_fields(region_spec, {"hosts", "vars"}, rfield)
        region_vars = plain_vars(region_spec.get("vars"), f"{rfield}.vars")
        ranges = region_spec.get("hosts")
        if not isinstance(ranges, list) or not ranges:
            raise SpecError(f"{rfield}.hosts", f"must be a non-empty list of host ranges, got {ranges!r}")
        for index, entry in enumerate(ranges):
            records.extend(_range_records(entry, f"{rfield}.hosts[{index}]", region, region_vars, expand))
    return records


def _expand_patterns(patterns, field, expand):
    hosts = []
    for pattern in patterns:
        try:
            names, port = expand(pattern)
        except Exception as exc:  # Ansible raises AnsibleError or ValueError on malformed ranges
            raise SpecError(field, f"cannot expand {pattern!r}: {exc}") from None
        if not names:
            raise SpecError(field, f"{pattern!r} expands to no hosts")
        hosts.extend((name, port) for name in names)
    return hosts


def _range_records(entry, field, region, region_vars, expand):
    mapping(entry, field, required=True)
    known_fields(entry, RANGE_FIELDS, field)
    host_roles = roles(entry.get("role"), f"{field}.role")
    gpu_count = positive_int(entry.get("gpu_count"), f"{field}.gpu_count")
    gpu_model = string(entry.get("gpu_model"), f"{field}.gpu_model")
    gpu_memory = positive_int(entry.get("gpu_memory_mib"), f"{field}.gpu_memory_mib")
    if "gpu_node" in host_roles and (gpu_count is None or gpu_model is None):
        raise SpecError(field, "a gpu_node range needs gpu_count and gpu_model")
    if (gpu_count is None) != (gpu_model is None):
        raise SpecError(field, "give gpu_count and gpu_model together")
    if gpu_memory is not None and gpu_count is None:
        raise SpecError(f"{field}.gpu_memory_mib", "needs gpu_count and gpu_model")
    range_vars = dict(region_vars)
    range_vars.update(plain_vars(entry.get("vars"), f"{field}.vars"))

    hosts = _expand_patterns(string_list(entry.get("names"), f"{field}.names", required=True),
                             f"{field}.names", expand)
    addresses = [None] * len(hosts)
    if entry.get("ansible_host") is not None:
        addresses = [name for name, _port in _expand_patterns(
            string_list(entry["ansible_host"], f"{field}.ansible_host"), f"{field}.ansible_host", expand)]
        if len(addresses) != len(hosts):
            raise SpecError(f"{field}.ansible_host",
                            f"expands to {len(addresses)} addresses for {len(hosts)} hosts in names")
    return [
        {
            "name": name, "region": region, "roles": host_roles, "gpu_count": gpu_count,
            "gpu_model": gpu_model, "gpu_memory_mib": gpu_memory, "ansible_host": address,
            "port": port, "vars": range_vars, "origin": field,
        }
        for (name, port), address in zip(hosts, addresses, strict=True)
    ]


# --- all sources together ----------------------------------------------------------------------

def check_records(records):
    """A host in two places, or two names for one group, is an error, never a silent merge."""
    seen = {}
    region_groups = {}
    for record in records:
        name = record["name"]
        first = seen.get(name)
        if first is not None:
            if first["region"] != record["region"]:
                raise SpecError(record["origin"], f"host {name!r} is in two regions: {first['region']!r} "
                                                  f"({first['origin']}) and {record['region']!r}")
            raise SpecError(record["origin"], f"host {name!r} is already declared by {first['origin']}")
        seen[name] = record
        group = region_group(record["region"])
        other = region_groups.setdefault(group, record["region"])
        if other != record["region"]:
            raise SpecError(record["origin"], f"regions {other!r} and {record['region']!r} both make group {group}")
        if record["gpu_model"] is not None and gpu_model_group(record["gpu_model"]) in ROLE_GROUPS.values():
            raise SpecError(record["origin"], f"gpu_model {record['gpu_model']!r} would make group "
                                              f"{gpu_model_group(record['gpu_model'])}, a role group")


# --- facts source ------------------------------------------------------------------------------

def gpus_from_facts(facts):
    """``(gpu_count, gpu_model, gpu_memory_mib)`` from cached gpu_facts results, or None.

    gpu_facts (plugins/modules/gpu_facts.py) stores ``gpus`` (one dict per GPU: ``name``,
    ``memory_total_mib``, null when read from PCI), ``nvidia_gpu_count`` and ``nvidia_gpu_model``
    (the most common name). A host whose facts found no GPU gives None, so that its declared values stand.
    """
    if not isinstance(facts, dict):
        return None
    gpus = facts.get("gpus", facts.get("ansible_gpus"))
    if isinstance(gpus, list) and gpus and all(isinstance(gpu, dict) for gpu in gpus):
        model = facts.get("nvidia_gpu_model") or gpus[0].get("name")
        if isinstance(model, str) and model:
            memory = next((gpu.get("memory_total_mib") for gpu in gpus if gpu.get("name") == model), None)
            return len(gpus), model, memory if isinstance(memory, int) and not isinstance(memory, bool) else None
    count = facts.get("nvidia_gpu_count")
    model = facts.get("nvidia_gpu_model")
    if isinstance(count, int) and not isinstance(count, bool) and count > 0 and isinstance(model, str) and model:
        return count, model, None
    return None
