# Copyright: gpufleet developers. Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""ansible.builtin.copy that asks sha1sum and stat first: when the destination already has the content, owner,
group and mode, no module runs on the host (the builtin action runs stat, then file, even then)."""

from __future__ import annotations

import shlex

from ansible.module_utils.parsing.convert_bool import boolean
from ansible.plugins.action.copy import ActionModule as CopyAction
from ansible.utils.hashing import checksum
from ansible_collections.gpufleet.llm.plugins.plugin_utils.ask_first import octal_mode, stat_matches, stat_question

# the arguments with which a destination that has the content, owner, group and mode is as the task wants;
# any other (follow, attributes, SELinux contexts...) leaves the decision to the builtin action
SETTLED_ARGS = frozenset(("src", "content", "dest", "owner", "group", "mode", "validate", "backup", "follow"))


class ActionModule(CopyAction):
    def _copy_file(self, source_full, source_rel, content, content_tempfile, dest, task_vars, follow):  # noqa: PLR0917 (the builtin's)
        settled = self._settled(source_full, dest)
        if settled is not None:
            return settled
        return super()._copy_file(source_full, source_rel, content, content_tempfile, dest, task_vars, follow)

    def _settled(self, source_full, dest):
        """The result of an unchanged copy when the host's answer shows dest as wanted, else None."""
        args = self._task.args
        mode = args.get("mode")
        if (not set(args) <= SETTLED_ARGS or boolean(args.get("follow", False), strict=False)
                or dest.endswith("/") or (mode is not None and not octal_mode(mode))):
            return None
        local = checksum(source_full)
        answer = self._low_level_execute_command(f"sha1sum -- {shlex.quote(dest)}; {stat_question(dest)}")
        lines = answer["stdout"].splitlines()
        if (answer["rc"] != 0 or len(lines) != 2 or lines[0].split(" ", 1)[0] != local
                or not stat_matches(lines[1], "regular file", args.get("owner"), args.get("group"), mode)):
            return None
        return {"changed": False, "dest": dest, "checksum": local, "state": "file",
                "msg": "Nothing to do: the destination has the content, owner, group and mode."}
