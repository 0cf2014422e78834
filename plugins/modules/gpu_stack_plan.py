#!/usr/bin/python
# Copyright: gpufleet developers. Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: gpu_stack_plan
short_description: Choose the NVIDIA driver or CUDA packages for a host
version_added: "0.1.0"
description:
  - Picks, from the package tables in the nvidia_driver and cuda_toolkit roles' C(vars/), the packages, version
    pins, holds and repository that a host needs, from its OS, the chosen source and the facts of
    M(gpufleet.llm.gpu_facts).
  - Used by the nvidia_driver and cuda_toolkit roles; changes nothing.
  - A combination that cannot be installed (a branch the OS does not ship, NVSwitch without Fabric Manager, a CUDA
    version the driver cannot run) is returned in RV(error) instead of failing, so the role can name the host and
    the variable.
options:
  component:
    description: What to plan.
    type: str
    required: true
    choices: [driver, cuda]
  table:
    description: The role's package table, keyed by source and then by OS (C(Debian-12), C(Ubuntu-22.04)).
    type: dict
    required: true
  distribution:
    description: C(ansible_facts.distribution).
    type: str
    required: true
  distribution_version:
    description: C(ansible_facts.distribution_version).
    type: str
    required: true
  source:
    description: C(distribution) for the OS's own packages, C(nvidia) for NVIDIA's CUDA repository.
    type: str
    required: true
    choices: [distribution, nvidia]
  host:
    description: For O(component=driver), C(ansible_facts.gpu_host) plus C(gpu_count).
    type: dict
    default: {}
  flavor:
    description: For O(component=driver), the kernel module kind.
    type: str
    choices: [open, proprietary]
    default: proprietary
  branch:
    description: For O(component=driver), the driver branch, for example C(535).
    type: str
  version:
    description: For O(component=driver), the exact driver version, for example C(535.309.01).
    type: str
  container_userspace:
    description: For O(component=driver), install user-space packages in a container.
    type: bool
    default: false
  versions:
    description: For O(component=cuda), the CUDA versions to install.
    type: list
    elements: str
    default: []
  default_version:
    description: For O(component=cuda), the version C(/usr/local/cuda) points to; the last of O(versions) when unset.
    type: str
  driver_version:
    description: For O(component=cuda), the driver the toolkits must run on; not checked when unset.
    type: str
  strict:
    description:
      - For O(component=cuda), demand the driver each toolkit release shipped with instead of the minimum of its
        major release (minor version compatibility).
    type: bool
    default: false
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
  platform:
    platforms: posix
author:
  - gpufleet developers (@gpufleet)
"""

EXAMPLES = r"""
- name: Plan the driver
  gpufleet.llm.gpu_stack_plan:
    component: driver
    table: "{{ _nvidia_driver_packages }}"
    distribution: "{{ ansible_facts.distribution }}"
    distribution_version: "{{ ansible_facts.distribution_version }}"
    source: distribution
    branch: "535"
    version: "535.309.01"
    host: "{{ ansible_facts.gpu_host | combine({'gpu_count': ansible_facts.gpu_count}) }}"
  register: __nvidia_driver_plan
"""

RETURN = r"""
plan:
  description: The packages (with version pins), names to hold and the repository to configure.
  returned: when error is null
  type: dict
  sample:
    repository: debian_nonfree
    packages: ["nvidia-smi=535.309.01-*", "libcuda1=535.309.01-*"]
    hold: [nvidia-smi, libcuda1]
error:
  description: Why the settings cannot be installed on this host; null when they can.
  returned: always
  type: str
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.gpufleet.llm.plugins.module_utils.nvidia_plan import (
    PlanError,
    os_key,
    plan_cuda,
    plan_driver,
)


def main():
    module = AnsibleModule(
        argument_spec={
            "component": {"type": "str", "required": True, "choices": ["driver", "cuda"]},
            "table": {"type": "dict", "required": True},
            "distribution": {"type": "str", "required": True},
            "distribution_version": {"type": "str", "required": True},
            "source": {"type": "str", "required": True, "choices": ["distribution", "nvidia"]},
            "host": {"type": "dict", "default": {}},
            "flavor": {"type": "str", "default": "proprietary", "choices": ["open", "proprietary"]},
            "branch": {"type": "str"},
            "version": {"type": "str"},
            "container_userspace": {"type": "bool", "default": False},
            "versions": {"type": "list", "elements": "str", "default": []},
            "default_version": {"type": "str"},
            "driver_version": {"type": "str"},
            "strict": {"type": "bool", "default": False},
        },
        required_if=[("component", "driver", ("branch", "version"))],
        supports_check_mode=True,
    )
    params = module.params
    key = os_key(params["distribution"], params["distribution_version"])
    try:
        if params["component"] == "driver":
            plan = plan_driver(params["table"], key, params["source"], flavor=params["flavor"], branch=params["branch"],
                               version=params["version"], host=params["host"],
                               container_userspace=params["container_userspace"])
        else:
            plan = plan_cuda(params["table"], key, params["source"], params["versions"],
                             default_version=params["default_version"], driver_version=params["driver_version"],
                             strict=params["strict"])
    except (PlanError, ValueError) as error:
        module.exit_json(changed=False, error=str(error))
    module.exit_json(changed=False, error=None, plan=plan)


if __name__ == "__main__":
    main()
