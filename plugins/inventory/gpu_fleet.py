# Copyright: gpufleet developers. Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""Inventory plugin gpufleet.llm.gpu_fleet: GPU hosts from fleet specs, Compute Engine and EC2."""

from __future__ import annotations

DOCUMENTATION = r"""
name: gpu_fleet
short_description: GPU fleet inventory from bare-metal specs, Compute Engine and EC2
description:
  - Builds the inventory that the C(gpufleet.llm) roles consume, with each host's GPU count, model
    and memory, from any mix of sources listed in one file.
  - Host vars of every host C(gpufleet_region), C(ansible_host) (when known); of hosts with GPUs
    also C(gpu_count), C(gpu_model) and C(gpu_memory_mib) (memory of one GPU, when known).
  - Groups C(gpu_nodes), C(load_balancers), C(monitoring), C(region_<region>) and C(gpu_<model>),
    where every character outside C([A-Za-z0-9_]) becomes C(_) and model names are lowercased
    (C(us-east) gives C(region_us_east), C(NVIDIA A100 80GB) gives C(gpu_nvidia_a100_80gb)).
    The rule lives in C(plugins/plugin_utils/gpu_fleet_names.py).
  - A host named twice (in two regions, or twice in one), a host range that expands to nothing,
    an unknown source or a field of the wrong type is an error naming the field and the file.
  - A cloud API that cannot be reached or refuses the credentials is one clear error; when the
    inventory cache holds a copy younger than O(cache_timeout), that copy is used with a warning.
  - Uses a YAML configuration file whose name ends with C(gpu_fleet.yml) or C(gpu_fleet.yaml).
  - Secrets are never read from this file, only from environment variables or from files it names
    (O(sources[].credentials_file)), and never echoed in errors.
author:
  - gpufleet developers (@gpufleet)
requirements:
  - boto3 (only for the C(ec2) source)
  - google-cloud-compute (only for the C(gce) source)
extends_documentation_fragment:
  - constructed
  - inventory_cache
options:
  plugin:
    description: Marks this file as a gpu_fleet inventory.
    required: true
    type: str
    choices: [gpufleet.llm.gpu_fleet]
  sources:
    description:
      - Where the hosts come from, in order; any mix of kinds.
      - C(static) is a bare-metal fleet spec. O(sources[].regions) maps each region name to
        C(hosts), a list of host ranges, and optional C(vars) for all its hosts. A host range has
        C(names) (a host pattern such as C(gpu[01:16].iad.example.com), or a list of them),
        C(role) (C(gpu_node), C(load_balancer) or C(monitoring), or a list of them), C(gpu_model)
        and C(gpu_count) (required for C(gpu_node)), optional C(gpu_memory_mib), C(ansible_host)
        (a pattern that expands to one address per host, such as C(10.1.0.[11:26])) and C(vars).
        Templates in C(vars) work as in a YAML inventory.
      - C(gce) lists Compute Engine instances of O(sources[].projects). GPUs come from the
        instance's attached accelerators or from its machine type (A2, A3, G2 ...), the model and
        memory from the accelerator type, the region from the zone, the role from the label
        O(sources[].role_label). Without a role label an instance with GPUs is a C(gpu_node).
      - C(ec2) lists EC2 instances of O(sources[].regions). GPUs come from the instance type's
        C(GpuInfo) (DescribeInstanceTypes), the role from the tag O(sources[].role_tag).
        Without a role tag an instance with GPUs is a C(gpu_node).
      - C(facts) makes C(gpu_facts) results found in Ansible's fact cache override the declared
        GPU count, model and memory of hosts that have GPUs. List it after the other sources.
      - Cloud hosts also get C(gpufleet_instance) (provider, id, type, zone, cloud_region, state,
        tags or labels), handy for O(keyed_groups).
    required: true
    type: list
    elements: dict
    suboptions:
      source:
        description: Kind of source.
        required: true
        type: str
        choices: [static, gce, ec2, facts]
      regions:
        description:
          - C(static), a mapping of region name to C(hosts) and C(vars).
          - C(ec2), the AWS regions to list (required).
          - C(gce), keep only zones of these regions.
        type: raw
      projects:
        description: C(gce), the projects to list.
        type: list
        elements: str
      zones:
        description: C(gce), keep only these zones.
        type: list
        elements: str
      labels:
        description: C(gce), keep only instances with these label values (a value or a list of accepted values).
        type: dict
      role_label:
        description: C(gce), the label that holds a host's role.
        type: str
        default: gpufleet_role
      tags:
        description: C(ec2), keep only instances with these tag values (a value or a list of accepted values).
        type: dict
      role_tag:
        description: C(ec2), the tag that holds a host's role.
        type: str
        default: gpufleet_role
      hostnames:
        description:
          - C(ec2), what names a host, in order of preference; C(tag:<key>), C(instance-id),
            C(private-dns-name), C(public-dns-name), C(private-ip-address), C(public-ip-address).
          - The instance id when none of them is set.
        type: list
        elements: str
        default: ['tag:Name', 'instance-id']
      duplicate_names:
        description:
          - C(ec2), what to do when instances of this source get the same host name (two instances
            with one C(Name) tag).
          - C(suffix_instance_id) names each of them C(<name>-<instance id>), with a warning per instance;
            the other hosts of the source are unaffected.
          - C(fail) refuses the source with one error listing every clash.
        type: str
        choices: [suffix_instance_id, fail]
        default: suffix_instance_id
      include_stopped:
        description: C(gce)/C(ec2), list instances in every state, not only running ones.
        type: bool
        default: false
      address:
        description: C(gce)/C(ec2), which IP becomes C(ansible_host) (the other one when it is missing).
        type: str
        choices: [private, public]
        default: private
      region_map:
        description:
          - C(gce)/C(ec2), cloud region to fleet region (for example C(us-east-1) to C(us-east)), so that
            cloud and bare-metal hosts of one site share a C(region_<name>) group.
        type: dict
      vars:
        description: C(gce)/C(ec2), vars for every host of the source.
        type: dict
      profile:
        description: C(ec2), named profile of the AWS shared config/credentials files.
        type: str
      credentials_file:
        description:
          - C(gce), path of a service-account key file. Without it, Application Default Credentials
            (C(GOOGLE_APPLICATION_CREDENTIALS)) are used.
          - C(ec2), path of an AWS shared credentials file, read with O(sources[].profile). Without it,
            boto3's own chain (C(AWS_ACCESS_KEY_ID), C(AWS_PROFILE), C(~/.aws/credentials) ...) is used.
        type: path
      anonymous:
        description: C(gce), send no credentials; for private endpoints and tests only.
        type: bool
        default: false
      api_endpoint:
        description: C(gce), Compute Engine endpoint such as C(http://127.0.0.1:8080); for private endpoints and tests.
        type: str
      endpoint_url:
        description: C(ec2), EC2 endpoint URL; for private endpoints and tests.
        type: str
      max_attempts:
        description: C(ec2), attempts per API call (boto's standard retry mode).
        type: int
        default: 3
      timeout:
        description: C(gce)/C(ec2), seconds before an API call is given up.
        type: int
        default: 30
"""

EXAMPLES = r"""
# bare_metal.gpu_fleet.yml: a two-region bare-metal fleet
plugin: gpufleet.llm.gpu_fleet
sources:
  - source: static
    regions:
      us-east:
        vars:
          ansible_user: deploy
        hosts:
          - names: gpu[01:16].iad.example.com
            ansible_host: 10.1.0.[11:26]
            role: gpu_node
            gpu_model: NVIDIA H100 80GB HBM3
            gpu_count: 8
            gpu_memory_mib: 81559
          - names: [lb1.iad.example.com, lb2.iad.example.com]
            role: load_balancer
          - names: mon.iad.example.com
            role: monitoring
      eu-west:
        hosts:
          - names: gpu[a:h].ams.example.com
            role: gpu_node
            gpu_model: NVIDIA L4
            gpu_count: 4
            vars:
              rack: ams-b2

---
# cloud.gpu_fleet.yml: GPU instances of two clouds, cached for an hour
plugin: gpufleet.llm.gpu_fleet
cache: true
cache_plugin: ansible.builtin.jsonfile
cache_connection: ~/.cache/gpufleet-inventory
cache_timeout: 3600
sources:
  - source: gce
    projects: [my-inference-project]
    regions: [us-central1, europe-west4]
    labels:
      env: prod
    region_map:
      us-central1: us-east
      europe-west4: eu-west
  - source: ec2
    regions: [us-east-1]
    tags:
      env: prod
    region_map:
      us-east-1: us-east
  # gpu_facts results in the fact cache override declared GPU counts and models
  - source: facts
keyed_groups:
  - key: gpufleet_instance.zone | default('bare_metal')
    prefix: zone
groups:
  big_gpu_nodes: gpu_count | default(0) >= 8
compose:
  model_server_tensor_parallel_size: gpu_count | default(1)
"""

import functools
import time

from ansible.errors import AnsibleError, AnsibleOptionsError, AnsibleParserError
from ansible.plugins.inventory import BaseInventoryPlugin, Cacheable, Constructable
from ansible.utils.unsafe_proxy import wrap_var
from ansible_collections.gpufleet.llm.plugins.plugin_utils import gpu_fleet_ec2, gpu_fleet_gce
from ansible_collections.gpufleet.llm.plugins.plugin_utils.gpu_fleet_cloud import SourceUnavailable
from ansible_collections.gpufleet.llm.plugins.plugin_utils.gpu_fleet_names import (
    ROLE_GROUPS,
    gpu_model_group,
    region_group,
)
from ansible_collections.gpufleet.llm.plugins.plugin_utils.gpu_fleet_spec import (
    CLOUD_KINDS,
    SpecError,
    check_records,
    gpus_from_facts,
    source_cache_key,
    static_records,
    validate_sources,
)

CLOUD_FETCHERS = {"gce": gpu_fleet_gce, "ec2": gpu_fleet_ec2}

# Regions and models repeat across thousands of hosts: name each group once.
_region_group = functools.lru_cache(maxsize=None)(region_group)
_gpu_model_group = functools.lru_cache(maxsize=None)(gpu_model_group)


def make_unsafe(value):
    """Mark strings that could be templates as unsafe, so that API and fact data is never templated."""
    if isinstance(value, str):
        return wrap_var(value) if "{" in value or "}" in value else value
    if isinstance(value, dict):
        return {make_unsafe(key): make_unsafe(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [make_unsafe(item) for item in value]
    return value


class InventoryModule(BaseInventoryPlugin, Constructable, Cacheable):

    NAME = "gpufleet.llm.gpu_fleet"

    def verify_file(self, path):
        if super().verify_file(path) and path.endswith(("gpu_fleet.yml", "gpu_fleet.yaml")):
            return True
        self.display.vvv(f"gpu_fleet: skipping {path}, its name does not end in gpu_fleet.yml or gpu_fleet.yaml")
        return False

    def parse(self, inventory, loader, path, cache=True):
        super().parse(inventory, loader, path, cache)
        if not loader.load_from_file(path, cache="none"):
            # Ansible's own message ("... is empty") would not say which plugin or what the file lacks.
            raise AnsibleParserError(f"gpu_fleet inventory {path}: the file is empty; it needs "
                                     f"'plugin: {self.NAME}' and a list of 'sources'")
        try:
            self._read_config_data(path)
        except AnsibleOptionsError as exc:  # an option of the wrong type, found by Ansible's config system
            raise AnsibleParserError(f"gpu_fleet inventory {path}: {exc}") from None
        try:
            sources = validate_sources(self.get_option("sources"))
            records = []
            for where, source in sources:
                if source["source"] == "static":
                    records.extend(static_records(source, where, self._expand_hostpattern))
                elif source["source"] in CLOUD_KINDS:
                    CLOUD_FETCHERS[source["source"]].check(source, where)
            records.extend(self._cloud_records(path, sources, cache))
            if any(source["source"] == "facts" for _where, source in sources):
                records = self._apply_gpu_facts(records)
            check_records(records)
        except SpecError as exc:
            raise AnsibleParserError(f"gpu_fleet inventory {path}: {exc}") from None
        self._populate(records)

    # --- cloud sources and the inventory cache ----------------------------------------------------

    def _cloud_records(self, path, sources, cache):
        """Records of the cloud sources, from the inventory cache where it may and must stand in."""
        clouds = [(where, source) for where, source in sources if source["source"] in CLOUD_KINDS]
        if not clouds:
            return []
        caching = self.get_option("cache")
        cache_key = self.get_cache_key(path)
        cached = {}
        if caching:
            try:
                cached = self._cache[cache_key] or {}
            except KeyError:
                cached = {}
        timeout = self.get_option("cache_timeout")
        fetched, records = {}, []
        for where, source in clouds:
            key = source_cache_key(where, source)
            entry = cached.get(key)
            fresh = isinstance(entry, dict) and (not timeout or time.time() - entry.get("fetched_at", 0) <= timeout)
            if caching and cache and fresh:
                records.extend(entry["records"])
                continue
            try:
                found = CLOUD_FETCHERS[source["source"]].fetch(source, where, self.display.warning)
            except SourceUnavailable as exc:
                if caching and fresh:
                    self.display.warning(f"gpu_fleet inventory {path}: {where}: {exc}; using the inventory cache "
                                         f"from {time.ctime(entry['fetched_at'])}")
                    records.extend(entry["records"])
                    continue
                raise AnsibleParserError(f"gpu_fleet inventory {path}: {where}: {exc}") from None
            found = make_unsafe(found)
            fetched[key] = {"fetched_at": time.time(), "records": found}
            records.extend(found)
        if caching and fetched:
            self._cache[cache_key] = dict(cached, **fetched)
        return records

    # --- facts source -------------------------------------------------------------------------------

    def _apply_gpu_facts(self, records):
        """``records`` with GPU count, model and memory from cached gpu_facts results (copies, never the cache's)."""
        from ansible import constants as C
        from ansible.plugins.loader import cache_loader

        fact_cache = cache_loader.get(C.CACHE_PLUGIN)
        if not getattr(fact_cache, "_persistent", True):
            self.display.warning(f"gpu_fleet: the facts source reads Ansible's fact cache, but the fact cache plugin "
                                 f"{C.CACHE_PLUGIN!r} keeps nothing between runs; set fact_caching")
            return records
        return [self._with_gpu_facts(record, fact_cache) for record in records]

    def _with_gpu_facts(self, record, fact_cache):
        if not record["gpu_count"]:
            return record
        try:
            found = gpus_from_facts(fact_cache.get(record["name"]))
        except KeyError:
            return record
        except AnsibleError as exc:
            self.display.warning(f"gpu_fleet: facts of {record['name']} unreadable, declared GPUs kept: {exc}")
            return record
        if not found:
            return record
        count, model, memory = make_unsafe(list(found))
        if memory is None and model == record["gpu_model"]:
            memory = record["gpu_memory_mib"]  # facts from PCI know no memory size; the declared one still fits
        return dict(record, gpu_count=count, gpu_model=model, gpu_memory_mib=memory)

    # --- inventory ---------------------------------------------------------------------------------

    def _populate(self, records):
        strict = self.get_option("strict")
        compose, groups, keyed_groups = (self.get_option(name) for name in ("compose", "groups", "keyed_groups"))
        for group in ROLE_GROUPS.values():
            self.inventory.add_group(group)
        made = set(ROLE_GROUPS.values())
        for record in records:
            name = make_unsafe(record["name"])
            self.inventory.add_host(name, port=record["port"])
            for var, value in record["vars"].items():
                self.inventory.set_variable(name, var, value)
            self.inventory.set_variable(name, "gpufleet_region", make_unsafe(record["region"]))
            if record["ansible_host"]:
                self.inventory.set_variable(name, "ansible_host", make_unsafe(record["ansible_host"]))
            member_of = [ROLE_GROUPS[role] for role in record["roles"]]
            member_of.append(_region_group(record["region"]))
            if record["gpu_count"]:
                self.inventory.set_variable(name, "gpu_count", record["gpu_count"])
                self.inventory.set_variable(name, "gpu_model", make_unsafe(record["gpu_model"]))
                if record["gpu_memory_mib"]:
                    self.inventory.set_variable(name, "gpu_memory_mib", record["gpu_memory_mib"])
                member_of.append(_gpu_model_group(record["gpu_model"]))
            for group in member_of:
                if group not in made:
                    self.inventory.add_group(group)
                    made.add(group)
                self.inventory.add_child(group, name)
            if compose or groups or keyed_groups:
                hostvars = self.inventory.get_host(name).get_vars()
                self._set_composite_vars(compose, hostvars, name, strict=strict)
                self._add_host_to_composed_groups(groups, hostvars, name, strict=strict)
                self._add_host_to_keyed_groups(keyed_groups, hostvars, name, strict=strict)
