# Copyright: gpufleet developers. Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
# The work is done by the action plugin of the same name, on the controller.

from __future__ import annotations

DOCUMENTATION = r"""
module: fleet_check
short_description: Check the inventory against the gpufleet contract
description:
  - Runs on the controller and changes nothing. Fails with one message that names each host and
    variable that breaks the contract between the inventory and the roles.
  - Per host, C(gpufleet_region) must be set and the host must be in its C(region_<name>) group.
    GPU nodes need C(gpu_count) and C(gpu_model), a C(gpu_count) divisible by
    C(model_server_tensor_parallel_size), and a known C(model_server_engine).
    Every load balancer's region must have GPU nodes, and no two model server instances
    (or an instance and a load balancer) may share an address and port.
version_added: 0.1.0
options:
  hosts:
    description:
      - Limit the per-host checks to these hosts (a role checking its own host).
        Checks that span hosts always look at the whole inventory.
    type: list
    elements: str
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
author: gpufleet developers
"""

EXAMPLES = r"""
- name: Check the whole inventory before any host changes
  gpufleet.llm.fleet_check:
  run_once: true

- name: Check this host only
  gpufleet.llm.fleet_check:
    hosts: ["{{ inventory_hostname }}"]
"""

RETURN = r"""
problems:
  description: One line per problem, each naming the host and the variable.
  returned: always
  type: list
  elements: str
"""
