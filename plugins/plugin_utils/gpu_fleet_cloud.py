# Copyright: gpufleet developers. Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""What the gce and ec2 sources of the gpu_fleet inventory share."""

from __future__ import annotations

from ansible_collections.gpufleet.llm.plugins.plugin_utils.gpu_fleet_names import ROLE_GROUPS


class SourceUnavailable(Exception):
    """The cloud API could not be reached or refused the credentials (the cache may stand in)."""


def role_from(value, gpu_count, name, warn):
    """Roles of an instance from its role label/tag; without one, an instance with GPUs is a GPU node."""
    if value and value not in ROLE_GROUPS:
        warn(f"host {name}: unknown role {value!r} (expected one of {', '.join(ROLE_GROUPS)}); ignored")
        value = None
    if value == "gpu_node" and not gpu_count:
        # The roles would fail on a GPU node without gpu_count; keep the host out of gpu_nodes instead.
        warn(f"host {name}: marked gpu_node but its machine type has no GPU; left out of gpu_nodes")
        return []
    if value:
        return [value]
    return ["gpu_node"] if gpu_count else []


def cloud_record(*, name, region, role, gpu_count, gpu_model, gpu_memory_mib, ansible_host, source, origin,
                 instance):
    variables = dict(source.get("vars") or {})
    variables["gpufleet_instance"] = instance
    return {
        "name": name, "region": region, "roles": role, "gpu_count": gpu_count or None,
        "gpu_model": gpu_model if gpu_count else None, "gpu_memory_mib": gpu_memory_mib if gpu_count else None,
        "ansible_host": ansible_host, "port": None, "vars": variables, "origin": origin,
    }
