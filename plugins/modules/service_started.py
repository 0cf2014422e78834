# Copyright: gpufleet developers. Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
# The work is done by the action plugin of the same name: systemctl's answer, then ansible.builtin.systemd_service
# only if needed.

from __future__ import annotations

DOCUMENTATION = r"""
module: service_started
short_description: Make sure a systemd unit is enabled and started, asking systemctl before the module
description:
  - Asks C(systemctl is-enabled) and C(systemctl is-active) over the connection (no Python module on the host).
    When the unit is C(enabled) and C(active), it reports no change and does not call the module.
  - Otherwise, or when O(daemon_reload) is true, it runs M(ansible.builtin.systemd_service) with C(enabled=true),
    C(state=started) and O(daemon_reload), and returns that module's result.
  - A unit stopped or disabled by hand is not active or not enabled to systemctl, so the next run starts or
    enables it again.
version_added: "0.1.0"
options:
  name:
    description: The unit, for example C(nginx.service) or C(gpufleet-gpu-metrics.timer).
    type: str
    required: true
  daemon_reload:
    description:
      - Reload systemd's units first; set it when the task that writes the unit changed it.
    type: bool
    default: false
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - ansible.builtin.action_common_attributes.flow
  - gpufleet.llm.ask_first
attributes:
  diff_mode:
    support: none
seealso:
  - module: ansible.builtin.systemd_service
author:
  - gpufleet developers (@gpufleet)
"""

EXAMPLES = r"""
- name: Install the exporter's unit
  ansible.builtin.template:
    src: exporter.service.j2
    dest: /etc/systemd/system/exporter.service
    mode: "0644"
  register: __exporter_unit

- name: Enable and start the exporter, loading its unit only when it changed
  gpufleet.llm.service_started:
    name: exporter.service
    daemon_reload: "{{ __exporter_unit is changed }}"
"""

RETURN = r"""
msg:
  description:
    - C(Nothing to do ...) when the unit was enabled and active; otherwise the result is that of
      M(ansible.builtin.systemd_service).
  returned: always
  type: str
"""
