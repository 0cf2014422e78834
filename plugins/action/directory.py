# Copyright: gpufleet developers. Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""A directory with an owner, group and mode: asks stat first, and runs ansible.builtin.file only when the path is
not yet that directory."""

from __future__ import annotations

from ansible.errors import AnsibleActionFail
from ansible_collections.gpufleet.llm.plugins.plugin_utils.ask_first import (
    AskFirstAction,
    octal_mode,
    stat_matches,
    stat_question,
)


class ActionModule(AskFirstAction):
    MODULE = "ansible.builtin.file"
    _VALID_ARGS = frozenset(("path", "owner", "group", "mode"))

    def arguments(self):
        args = {key: value for key, value in self._task.args.items() if value is not None}
        if not isinstance(args.get("path"), str) or not args["path"].startswith(("/", "~")):
            raise AnsibleActionFail("path must be an absolute path or start with ~")
        mode = args.get("mode")
        if mode is not None and not octal_mode(mode):
            raise AnsibleActionFail(f"mode must be a quoted octal mode such as \"0755\", not {mode!r}")
        return args

    def question(self, args):
        if args["path"].startswith("~"):
            return None  # the module expands it for the connection's user
        return stat_question(args["path"])

    def settled(self, args, rc, stdout):
        return rc == 0 and stat_matches(stdout, "directory", args.get("owner"), args.get("group"), args.get("mode"))

    def module_args(self, args):
        return dict(args, state="directory")
