# Copyright: gpufleet developers. Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""The ``gce`` source of the gpu_fleet inventory: Compute Engine instances and their GPUs.

Through Google's client library (google-cloud-compute, REST transport): one aggregated
instance list per project; GPUs from the instance's attached accelerators, or else from its
machine type (A2, A3, G2 ... carry theirs); the GPU's name and memory from its accelerator
type. Machine and accelerator types are looked up once per distinct (zone, type).
"""

from __future__ import annotations

import re

from ansible_collections.gpufleet.llm.plugins.plugin_utils.gpu_fleet_cloud import (
    SourceUnavailable,
    cloud_record,
    role_from,
)
from ansible_collections.gpufleet.llm.plugins.plugin_utils.gpu_fleet_spec import (
    SpecError,
    boolean,
    string,
    string_list,
    string_map,
)

SCOPES = ["https://www.googleapis.com/auth/compute.readonly"]

# Accelerator types whose description names no memory size (others say e.g. "NVIDIA A100 80GB").
_KNOWN_MEMORY_GIB = {
    "nvidia-tesla-t4": 16,
    "nvidia-tesla-p4": 8,
    "nvidia-tesla-p100": 16,
    "nvidia-tesla-v100": 16,
    "nvidia-l4": 24,
    "nvidia-tesla-a100": 40,
}
_MEMORY_IN_DESCRIPTION = re.compile(r"(\d+)\s*GB\b", re.IGNORECASE)


def _libraries(where):
    try:
        import requests
        from google.api_core import exceptions as api_exceptions
        from google.api_core import retry as api_retry
        from google.auth import credentials as auth_credentials
        from google.auth import exceptions as auth_exceptions
        from google.cloud import compute_v1
        from google.oauth2 import service_account
    except ImportError:
        raise SpecError(f"{where}.source", "the gce source needs the google-cloud-compute Python library "
                                           "(pip install google-cloud-compute) on the controller") from None
    return {
        "api_exceptions": api_exceptions, "api_retry": api_retry, "auth_credentials": auth_credentials,
        "auth_exceptions": auth_exceptions, "compute_v1": compute_v1, "service_account": service_account,
        "requests": requests,
    }


def check(source, where):
    string_list(source.get("projects"), f"{where}.projects", required=True)
    string_list(source.get("zones"), f"{where}.zones")
    string_list(source.get("regions"), f"{where}.regions")
    string_map(source.get("labels"), f"{where}.labels")
    string(source.get("role_label"), f"{where}.role_label")
    string(source.get("credentials_file"), f"{where}.credentials_file")
    string(source.get("api_endpoint"), f"{where}.api_endpoint")
    if boolean(source.get("anonymous"), f"{where}.anonymous") and source.get("credentials_file"):
        raise SpecError(f"{where}.anonymous", "give either anonymous or credentials_file, not both")


def _credentials(source, where, lib):
    if source.get("anonymous"):
        return lib["auth_credentials"].AnonymousCredentials()
    if source.get("credentials_file"):
        try:
            return lib["service_account"].Credentials.from_service_account_file(
                source["credentials_file"], scopes=SCOPES)
        except (OSError, ValueError) as exc:
            # The library's messages name missing fields, never the key material.
            raise SpecError(f"{where}.credentials_file", f"cannot use {source['credentials_file']}: {exc}") from None
    import google.auth
    try:
        credentials, _project = google.auth.default(scopes=SCOPES)
    except lib["auth_exceptions"].DefaultCredentialsError:
        raise SourceUnavailable("gce: no Google credentials found (set GOOGLE_APPLICATION_CREDENTIALS "
                                "or the credentials_file option)") from None
    return credentials


def fetch(source, where, warn):
    """Host records for every instance the source selects."""
    check(source, where)
    lib = _libraries(where)
    compute_v1 = lib["compute_v1"]
    options = {"credentials": _credentials(source, where, lib), "transport": "rest"}
    if source.get("api_endpoint"):
        options["client_options"] = {"api_endpoint": source["api_endpoint"]}
    timeout = source.get("timeout", 30)
    call = {
        "timeout": timeout,
        "retry": lib["api_retry"].Retry(
            initial=0.5, maximum=5.0, multiplier=2.0, timeout=timeout,
            predicate=lib["api_retry"].if_exception_type(
                lib["api_exceptions"].ServiceUnavailable, lib["api_exceptions"].DeadlineExceeded)),
    }
    lookup = _TypeLookup(compute_v1.MachineTypesClient(**options), compute_v1.AcceleratorTypesClient(**options), call)
    instances_client = compute_v1.InstancesClient(**options)
    records = []
    for project in string_list(source.get("projects"), f"{where}.projects", required=True):
        try:
            for zone, instance in _instances(instances_client, compute_v1, project, source, call):
                records.append(_record(instance, project=project, zone=zone, lookup=lookup, source=source,
                                       where=where, warn=warn))
        except lib["auth_exceptions"].GoogleAuthError as exc:
            # Raised when the token cannot be had or refreshed; its message names the reason, never the key.
            raise SourceUnavailable(f"gce: Compute Engine refused the credentials for project {project}: "
                                    f"{type(exc).__name__}: {str(exc)[:300]}") from None
        except (lib["api_exceptions"].Unauthorized, lib["api_exceptions"].Forbidden) as exc:
            raise SourceUnavailable(f"gce: Compute Engine refused the credentials for project {project}: "
                                    f"{exc.code} {exc.message}") from None
        except lib["api_exceptions"].GoogleAPIError as exc:
            raise SourceUnavailable(f"gce: Compute Engine API error for project {project}: {exc}") from None
        except lib["requests"].exceptions.RequestException as exc:
            endpoint = source.get("api_endpoint") or "compute.googleapis.com"
            raise SourceUnavailable(f"gce: cannot reach the Compute Engine API ({endpoint}) for project {project}: "
                                    f"{type(exc).__name__}") from None
    return records


def _filter_expression(source):
    """The server-side filter. Labels with several accepted values are only checked here, since the
    documented filter syntax ORs whole parenthesized expressions, not terms inside one."""
    terms = [] if source.get("include_stopped") else ['(status = "RUNNING")']
    for key, values in sorted(string_map(source.get("labels"), "").items()):
        if len(values) == 1:
            terms.append(f'(labels.{key} = "{values[0]}")')
    return " AND ".join(terms)


def _zone_wanted(zone, source):
    zones, regions = source.get("zones"), source.get("regions")
    if isinstance(zones, str):
        zones = [zones]
    if isinstance(regions, str):
        regions = [regions]
    if zones and zone not in zones:
        return False
    return not regions or zone.rsplit("-", 1)[0] in regions


def _instances(client, compute_v1, project, source, call):
    request = compute_v1.AggregatedListInstancesRequest(
        project=project, filter=_filter_expression(source), max_results=500)
    labels = string_map(source.get("labels"), "")
    for scope, scoped in client.aggregated_list(request=request, **call):
        zone = scope.rsplit("/", 1)[-1]
        if not _zone_wanted(zone, source):
            continue
        for instance in scoped.instances:
            # The server applies the filter too; checking again keeps a partial filter from leaking hosts.
            if not source.get("include_stopped") and instance.status != "RUNNING":
                continue
            if any(instance.labels.get(key) not in values for key, values in labels.items()):
                continue
            yield zone, instance


class _TypeLookup:
    """Machine and accelerator types, each fetched once per zone."""

    def __init__(self, machine_types, accelerator_types, call):
        self._machine_types, self._accelerator_types, self._call = machine_types, accelerator_types, call
        self._machines, self._accelerators = {}, {}

    def machine_accelerators(self, project, zone, machine_type):
        key = (project, zone, machine_type)
        if key not in self._machines:
            described = self._machine_types.get(project=project, zone=zone, machine_type=machine_type, **self._call)
            self._machines[key] = [(a.guest_accelerator_type, a.guest_accelerator_count)
                                   for a in described.accelerators]
        return self._machines[key]

    def accelerator(self, project, zone, accelerator_type):
        """``(model, memory_mib)`` of an accelerator type."""
        key = (project, zone, accelerator_type)
        if key not in self._accelerators:
            described = self._accelerator_types.get(
                project=project, zone=zone, accelerator_type=accelerator_type, **self._call)
            model = described.description or accelerator_type
            match = _MEMORY_IN_DESCRIPTION.search(described.description or "")
            gib = int(match.group(1)) if match else _KNOWN_MEMORY_GIB.get(accelerator_type)
            self._accelerators[key] = (model, gib * 1024 if gib else None)
        return self._accelerators[key]


def _last_part(url):
    return url.rsplit("/", 1)[-1]


def _record(instance, *, project, zone, lookup, source, where, warn):
    attached = [(_last_part(a.accelerator_type), a.accelerator_count) for a in instance.guest_accelerators]
    machine_type = _last_part(instance.machine_type)
    accelerators = attached or lookup.machine_accelerators(project, zone, machine_type)
    count = sum(number for _model, number in accelerators)
    model = memory = None
    if count:
        model, memory = lookup.accelerator(project, zone, accelerators[0][0])
    interfaces = instance.network_interfaces
    private = interfaces[0].network_i_p if interfaces else None
    public = next((config.nat_i_p for nic in interfaces for config in nic.access_configs if config.nat_i_p), None)
    address = (public or private) if source.get("address") == "public" else (private or public)
    region = zone.rsplit("-", 1)[0]
    labels = dict(instance.labels)
    return cloud_record(
        name=instance.name, region=source.get("region_map", {}).get(region, region),
        role=role_from(labels.get(source.get("role_label", "gpufleet_role")), count, instance.name, warn),
        gpu_count=count, gpu_model=model, gpu_memory_mib=memory, ansible_host=address or None,
        source=source, origin=f"{where} (gce {project}/{zone}/{instance.name})",
        instance={
            "provider": "gce", "id": str(instance.id), "type": machine_type, "zone": zone,
            "cloud_region": region, "project": project, "state": instance.status, "labels": labels,
        },
    )
