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
  - Every integer has one rule, whether set in the inventory or left at the role's default (read
    from the roles' C(defaults/main.yml)). C(gpu_count) and C(model_server_tensor_parallel_size) are
    positive, C(model_server_base_port) is 1024 to 65535 (the model servers run unprivileged),
    C(nginx_lb_listen_port) and C(nginx_lb_status_port) are 1 to 65535. A value of the wrong type is
    reported with its host and variable.
  - Across hosts (whole inventory only), the inventory must have C(gpu_nodes) and C(load_balancers),
    every load balancer's region must have GPU nodes, and no two model server instances (or an
    instance and a load balancer port) may share an address and port, defaults included.
version_added: 0.1.0
options:
  hosts:
    description:
      - Check only these hosts' own values, reading no other host's variables (a role's preflight
        runs once per host, so it must not cost the whole fleet each time).
      - The checks that span hosts are left to the whole-inventory check, the first play of
        C(site.yml) (C(playbooks/validate.yml)).
    type: list
    elements: str
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - ansible.builtin.action_common_attributes.flow
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
  platform:
    platforms: all
    details: The action plugin does the work on the controller; nothing runs on the host.
  action:
    support: full
  async:
    support: none
  bypass_host_loop:
    support: none
author:
  - gpufleet developers (@gpufleet)
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
