# Copyright: gpufleet developers. Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""The host firewall's rule set (plugins/plugin_utils/host_firewall.py) for roles/host_firewall."""

from __future__ import annotations

from ansible_collections.gpufleet.llm.plugins.plugin_utils.filter_errors import raising_filter_errors
from ansible_collections.gpufleet.llm.plugins.plugin_utils.host_firewall import (
    HostFirewallError,
    host_firewall_check,
    host_firewall_rules,
)


class FilterModule:
    def filters(self):
        return {
            "host_firewall_rules": raising_filter_errors(host_firewall_rules, HostFirewallError),
            # For preflights: the error as a value, so that the task fails with its message alone.
            "host_firewall_check": host_firewall_check,
        }
