# Copyright: gpufleet developers. Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""A systemd unit enabled and started: asks systemctl first, and runs ansible.builtin.systemd_service only when the
unit is not both enabled and active, or when the task asks for a daemon reload."""

from __future__ import annotations

import shlex

from ansible.errors import AnsibleActionFail
from ansible.module_utils.parsing.convert_bool import boolean
from ansible_collections.gpufleet.llm.plugins.plugin_utils.ask_first import AskFirstAction


class ActionModule(AskFirstAction):
    MODULE = "ansible.builtin.systemd_service"
    _VALID_ARGS = frozenset(("name", "daemon_reload"))

    def arguments(self):
        name = self._task.args.get("name")
        if not isinstance(name, str) or not name:
            raise AnsibleActionFail("name must be the name of a systemd unit")
        return {"name": name, "daemon_reload": boolean(self._task.args.get("daemon_reload", False))}

    def question(self, args):
        if args["daemon_reload"]:
            return None
        unit = shlex.quote(args["name"])
        return f"systemctl is-enabled -- {unit}; systemctl is-active -- {unit}"

    def settled(self, args, rc, stdout):
        # only the plain answers: static, indirect, activating and the like go to the module, which knows them
        return stdout.split() == ["enabled", "active"]

    def module_args(self, args):
        return dict(args, enabled=True, state="started")
