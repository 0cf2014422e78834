# Copyright: gpufleet developers. Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""Checks the inventory against the fleet's contract, on the controller, before any host changes."""

from __future__ import annotations

from ansible.plugins.action import ActionBase
from ansible_collections.gpufleet.llm.plugins.plugin_utils.fleet import validate_fleet
from ansible_collections.gpufleet.llm.plugins.plugin_utils.fleet_defaults import role_defaults
from ansible_collections.gpufleet.llm.plugins.plugin_utils.gateway import validate_gateway


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = False
    _VALID_ARGS = frozenset(("hosts",))

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        hosts = self._task.args.get("hosts")
        if isinstance(hosts, str):
            hosts = [hosts]
        hostvars, groups, defaults = task_vars["hostvars"], task_vars["groups"], role_defaults()
        errors = validate_fleet(hostvars, groups, hosts, defaults) + validate_gateway(hostvars, groups, defaults, hosts)
        result["changed"] = False
        result["problems"] = errors
        if errors:
            result["failed"] = True
            result["msg"] = "The inventory breaks the fleet's contract:\n" + "\n".join(f"- {e}" for e in errors)
        else:
            result["msg"] = "The inventory meets the fleet's contract."
        return result
