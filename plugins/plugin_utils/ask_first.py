# Copyright: gpufleet developers. Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""Actions that ask the host one shell question before they run a module, and run it only when the answer says
the host is not yet as the task wants.

A module costs a Python process on the host (about 0.13 CPU-seconds on the lab, 0.45 for apt) and a shell command
costs next to nothing, so a rerun on a converged host gets cheaper while a host that drifted is still put right:
the question reads the host's state each time, nothing is remembered between runs.
"""

from __future__ import annotations

import re
import shlex

from ansible.plugins.action import ActionBase

_OCTAL_MODE = re.compile(r"^0?[0-7]{3,4}$")


def octal_mode(mode) -> bool:
    """Whether mode is an octal mode in a string, as the roles write it ("0644"): the only kind a stat answer is
    compared with; symbolic modes are left to the modules."""
    return isinstance(mode, str) and _OCTAL_MODE.match(mode) is not None


def stat_question(path: str) -> str:
    """What stat says of path: kind, owner name and uid, group name and gid, octal mode."""
    return f"stat -c '%F|%U|%u|%G|%g|%a' -- {shlex.quote(path)}"


def stat_matches(answer: str, kind: str, owner=None, group=None, mode=None) -> bool:
    """Whether stat_question's answer is a `kind` (stat's %F: "directory", "regular file") with the owner, group
    (names or ids) and octal mode given; one not given may be anything."""
    fields = answer.strip().split("|")
    if len(fields) != 6:
        return False
    found_kind, user, uid, found_group, gid, found_mode = fields
    return (found_kind == kind
            and (owner is None or str(owner) in (user, uid))
            and (group is None or str(group) in (found_group, gid))
            and (mode is None or int(mode, 8) == int(found_mode, 8)))


class AskFirstAction(ActionBase):
    """Subclasses say which module does the work, what to ask, and when the answer means nothing is to do."""

    TRANSFERS_FILES = False
    MODULE = ""

    def arguments(self) -> dict:
        """The task's arguments, checked; raises AnsibleActionFail naming the bad one."""
        raise NotImplementedError

    def question(self, args: dict) -> str | None:
        """The shell command to run on the host, or None when the module must run anyway."""
        raise NotImplementedError

    def settled(self, args: dict, rc: int, stdout: str) -> bool:
        """Whether the answer shows the host already as the task wants."""
        raise NotImplementedError

    def module_args(self, args: dict) -> dict:
        raise NotImplementedError

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        args = self.arguments()
        question = self.question(args)
        if question is not None:
            answer = self._low_level_execute_command(question)
            if self.settled(args, answer["rc"], answer["stdout"]):
                result.update(changed=False, msg=f"Nothing to do: {self.MODULE} was not needed.")
                return result
        result.update(self._execute_module(module_name=self.MODULE, module_args=self.module_args(args),
                                           task_vars=task_vars))
        return result
