#!/usr/bin/python
# Copyright: gpufleet developers. Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: gpu_facts
short_description: Gather facts about a host's NVIDIA GPUs
version_added: "0.1.0"
description:
  - Lists the host's NVIDIA GPUs from C(nvidia-smi --query-gpu ... --format=csv,noheader,nounits) and their NVLink
    state from C(nvidia-smi nvlink -s).
  - When C(nvidia-smi) is missing or fails (no driver, driver not loaded, driver/library mismatch), falls back to
    PCI sysfs (vendor C(0x10de), class C(0x0300) or C(0x0302)), which needs no driver; fields only the driver knows
    are then null.
  - Also reports what the driver roles need to decide on an install without a driver, that is NVSwitch bridges on
    PCI, the loaded kernel module and its version, nouveau, Secure Boot and whether the host is a container.
  - Never changes the host.
options:
  root:
    description:
      - Directory under which C(sys/) and C(proc/) are read. Only tests set it, to point at fixture trees.
    type: path
    default: /
  nvidia_smi:
    description:
      - Path of C(nvidia-smi). By default it is searched for on C(PATH).
    type: path
  kernel_module:
    description:
      - Name of the installed NVIDIA kernel module (C(nvidia), or C(nvidia-current) on Debian). When set, the
        module's installed version for the running kernel (C(modinfo)), its DKMS state and the action that makes
        it the loaded module are returned in RV(ansible_facts.gpu_host.kernel_module).
    type: str
  dkms_module:
    description:
      - DKMS name of the module, checked with C(dkms status) when O(kernel_module) is set.
    type: str
  driver_version:
    description:
      - The wanted driver version, to decide on RV(ansible_facts.gpu_host.kernel_module.action).
    type: str
  expected_gpu_count:
    description:
      - The inventory's C(gpu_count). When set, the module fails if the host has fewer GPUs, with a message naming
        both numbers.
    type: int
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - ansible.builtin.action_common_attributes.facts
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
  facts:
    support: full
  platform:
    platforms: posix
author:
  - gpufleet developers (@gpufleet)
"""

EXAMPLES = r"""
- name: Gather GPU facts
  gpufleet.llm.gpu_facts:

- name: Gather GPU facts, failing when the inventory promises more GPUs than the host has
  gpufleet.llm.gpu_facts:
    expected_gpu_count: "{{ gpu_count }}"

- name: Show the GPUs without a driver on a fresh host
  ansible.builtin.debug:
    msg: "{{ ansible_facts.gpus | map(attribute='name') | list }} (from {{ ansible_facts.gpu_host.source }})"
"""

RETURN = r"""
nvidia_smi_problems:
  description:
    - "Lines of C(nvidia-smi --query-gpu) output that were not GPU rows, such as
      C(WARNING: infoROM is corrupted at gpu ...) or
      C(Unable to determine the device handle for GPU ...: Unknown Error).
      Each is also a module warning; the GPUs whose rows did parse are still reported."
  returned: always
  type: list
  elements: str
  sample: ["Unable to determine the device handle for GPU 0000:5D:00.0: Unknown Error"]
ansible_facts:
  description: Facts added to the host.
  returned: always
  type: dict
  contains:
    gpus:
      description: One entry per GPU, ordered by index.
      returned: always
      type: list
      elements: dict
      contains:
        index:
          description: GPU index as nvidia-smi and C(CUDA_VISIBLE_DEVICES) number it (PCI order in the fallback).
          type: int
        name:
          description: Product name, for example C(NVIDIA H100 80GB HBM3).
          type: str
        uuid:
          description: GPU UUID; null from PCI.
          type: str
        memory_total_mib:
          description: Total memory in MiB; null from PCI.
          type: int
        driver_version:
          description: Driver version; null from PCI.
          type: str
        compute_capability:
          description: Compute capability such as C(9.0); from a table of known devices when read from PCI.
          type: str
        pci_bus_id:
          description: PCI address in sysfs form, for example C(0000:18:00.0).
          type: str
        pci_device_id:
          description: PCI device id such as C(0x2330); only when read from PCI.
          type: str
          returned: when read from PCI
        pci_device_name:
          description:
            - The device's name in the host's PCI ID database (C(pci.ids)), such as C(GH100 [H200 SXM 141GB]); null
              when the host has no C(pci.ids) or it does not know the device. Only when read from PCI.
          type: str
          returned: when read from PCI
        kernel_driver:
          description: Kernel driver bound to the device (C(nvidia), C(nouveau), C(vfio-pci)); only when read from PCI.
          type: str
          returned: when read from PCI
        mig_mode:
          description: C(enabled), C(disabled), or null where MIG is not supported or unknown.
          type: str
        nvlink:
          description: Whether the GPU has at least one active NVLink.
          type: bool
        nvlink_links:
          description: Number of active NVLinks; null when unknown.
          type: int
        nvswitch:
          description: Whether the host has NVSwitch bridges (HGX/DGX), so the GPU needs Fabric Manager.
          type: bool
      sample:
        - index: 0
          name: NVIDIA H100 80GB HBM3
          uuid: GPU-5b8a1f7e-2f7c-9d0a-1c43-6e2f0d9b7a11
          memory_total_mib: 81559
          driver_version: "550.54.15"
          compute_capability: "9.0"
          pci_bus_id: "0000:18:00.0"
          mig_mode: disabled
          nvlink: true
          nvlink_links: 18
          nvswitch: true
    nvidia_gpu_count:
      description:
        - Number of GPUs found. Named apart from the inventory's C(gpu_count), because facts outrank inventory
          variables and the inventory must be able to say otherwise.
      returned: always
      type: int
      sample: 8
    nvidia_gpu_model:
      description:
        - The most common GPU name on the host; empty without GPUs. Named apart from the inventory's C(gpu_model).
      returned: always
      type: str
      sample: NVIDIA H100 80GB HBM3
    gpu_host:
      description: Host-level state the driver roles decide on.
      returned: always
      type: dict
      contains:
        source:
          description: C(nvidia-smi) or C(pci), where the GPU list came from.
          type: str
        nvidia_smi_error:
          description: Why nvidia-smi was not used; null when it was.
          type: str
        nvidia_smi_missing_fields:
          description:
            - Query fields this nvidia-smi rejected (C(compute_cap) before driver 510); they are null in
              RV(ansible_facts.gpus).
          type: list
          elements: str
        container:
          description: Whether the host is a container (the kernel module then belongs to the container host).
          type: bool
        pci_gpu_count:
          description: NVIDIA GPUs on PCI.
          type: int
        nvswitch_count:
          description: NVIDIA NVSwitch bridges on PCI.
          type: int
        driver_loaded:
          description: Whether an nvidia kernel module is loaded.
          type: bool
        driver_loaded_version:
          description: Version of the loaded nvidia kernel module.
          type: str
        driver_loaded_flavor:
          description: C(open) or C(proprietary), the loaded module's kind.
          type: str
        nouveau_loaded:
          description: Whether nouveau is loaded.
          type: bool
        secure_boot:
          description: Whether UEFI Secure Boot is on.
          type: bool
        efi:
          description: Whether the host booted through UEFI.
          type: bool
        kernel_module:
          description: The installed kernel module, when O(kernel_module) is set; null otherwise.
          type: dict
          contains:
            installed_version:
              description: Version of the module the running kernel would load (C(modinfo -F version)).
              type: str
            dkms_error:
              description: Why DKMS has no module built for the running kernel; null when it has.
              type: str
            action:
              description:
                - C(none) when the wanted version is loaded, C(load) when nothing is loaded yet (modprobe is
                  enough), C(reboot) when another nvidia module or nouveau holds the GPU.
              type: str
"""

import os
import platform

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.gpufleet.llm.plugins.module_utils.nvidia import (
    QUERY_FIELDS,
    check_inventory_gpus,
    dkms_failure,
    driver_action,
    gpu_model,
    gpus_from_pci,
    invalid_query_fields,
    parse_dkms_status,
    parse_nvlink_status,
    read_host_state,
    read_pci_ids,
    split_query_gpu,
)


class GpuFacts:
    def __init__(self, module):
        self.module = module
        self.root = module.params["root"]

    def _detect_virt(self):
        if os.path.realpath(self.root) != "/":
            return None
        tool = self.module.get_bin_path("systemd-detect-virt")
        if not tool:
            return None
        # Exit status 1 with "none" means not a container; both outcomes are answers.
        _rc, out, _err = self.module.run_command([tool, "--container"])
        return out.strip()

    def _run_query(self, smi, fields):
        return self.module.run_command([smi, "--query-gpu=" + ",".join(fields), "--format=csv,noheader,nounits"])

    def _query(self, smi):
        """(GPUs or None, why not, lines that were not GPU rows, fields this nvidia-smi does not know)."""
        fields = list(QUERY_FIELDS)
        missing = []
        rc, out, err = self._run_query(smi, fields)
        # An older driver rejects a whole query for one field it does not know (compute_cap before 510):
        # drop each field it names and ask again, so the others are still read.
        while rc != 0:
            unknown = [f for f in invalid_query_fields(out + err) if f in fields and f != "index"]
            if not unknown:
                break
            for field in unknown:
                fields.remove(field)
            missing.extend(unknown)
            rc, out, err = self._run_query(smi, fields)
        # Rows are kept whatever the exit status: nvidia-smi fails the command for one lost GPU
        # and still prints the others.
        gpus, problems = split_query_gpu(out, tuple(fields))
        if gpus:
            return gpus, None, problems, missing
        # Without a single row the output is the reason nvidia-smi was not used, not a list of problems.
        if rc != 0:
            return None, (err or out).strip() or f"nvidia-smi exited with {rc}", [], missing
        if problems:
            return None, "unexpected nvidia-smi output: " + "; ".join(problems), [], missing
        return None, "nvidia-smi found no GPUs", [], missing

    def _nvlinks(self, smi):
        # As with --query-gpu, one GPU nvidia-smi cannot answer for fails the whole command while the
        # others' links are printed; every GPU block that is there is used, whatever the exit status.
        _rc, out, _err = self.module.run_command([smi, "nvlink", "-s"])
        return parse_nvlink_status(out)

    def _kernel_module(self, host):
        params = self.module.params
        kernel = platform.release()
        modinfo = self.module.get_bin_path("modinfo") or "modinfo"
        rc, out, _err = self.module.run_command([modinfo, "-k", kernel, "-F", "version", params["kernel_module"]])
        installed = out.strip() if rc == 0 and out.strip() else None
        dkms_error = None
        if params["dkms_module"]:
            dkms = self.module.get_bin_path("dkms")
            if dkms:
                _rc, out, _err = self.module.run_command([dkms, "status", "-m", params["dkms_module"]])
                dkms_error = dkms_failure(parse_dkms_status(out), params["dkms_module"],
                                          params["driver_version"] or installed or "", kernel)
            else:
                dkms_error = "dkms is not installed"
        return {
            "installed_version": installed,
            "dkms_error": dkms_error,
            "action": driver_action(params["driver_version"], installed, host["driver_loaded_version"],
                                    host["nouveau_loaded"]),
        }

    def collect(self):
        host = read_host_state(self.root, self._detect_virt())
        smi = self.module.params["nvidia_smi"] or self.module.get_bin_path("nvidia-smi")
        gpus, error, links, problems, missing = None, "nvidia-smi not found", {}, [], []
        if smi:
            gpus, error, problems, missing = self._query(smi)
            if gpus:
                links = self._nvlinks(smi)
        source = "nvidia-smi" if gpus else "pci"
        if not gpus:
            gpus = gpus_from_pci(host["pci_devices"], read_pci_ids(self.root))
        for gpu in gpus:
            gpu["nvlink_links"] = links.get(gpu["index"]) if source == "nvidia-smi" and links else None
            gpu["nvlink"] = bool(gpu["nvlink_links"])
            gpu["nvswitch"] = host["nvswitch_count"] > 0
        del host["pci_devices"]
        host["kernel_module"] = self._kernel_module(host) if self.module.params["kernel_module"] else None
        host.update(source=source, nvidia_smi_error=error, nvidia_smi_missing_fields=missing)
        facts = {"gpus": gpus, "nvidia_gpu_count": len(gpus), "nvidia_gpu_model": gpu_model(gpus), "gpu_host": host}
        return facts, problems


def main():
    module = AnsibleModule(
        argument_spec={
            "root": {"type": "path", "default": "/"},
            "nvidia_smi": {"type": "path"},
            "kernel_module": {"type": "str"},
            "dkms_module": {"type": "str"},
            "driver_version": {"type": "str"},
            "expected_gpu_count": {"type": "int"},
        },
        supports_check_mode=True,
    )
    facts, problems = GpuFacts(module).collect()
    # A lost or unreadable GPU is worth a warning on every run, not only a field in the result.
    for line in problems:
        module.warn(f"nvidia-smi: {line}")
    expected = module.params["expected_gpu_count"]
    error = None if expected is None else check_inventory_gpus(expected, facts["nvidia_gpu_count"], platform.node())
    if error:
        module.fail_json(msg=error, ansible_facts=facts, nvidia_smi_problems=problems)
    module.exit_json(changed=False, ansible_facts=facts, nvidia_smi_problems=problems)


if __name__ == "__main__":
    main()
