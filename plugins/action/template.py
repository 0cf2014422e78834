# Copyright: gpufleet developers. Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""ansible.builtin.template whose copy of the rendered file is gpufleet.llm.copy: it asks sha1sum and stat first,
so an unchanged file costs no module on the host. Rendering, validation, diff and check mode are the builtin's."""

from __future__ import annotations

from ansible.plugins.action.template import ActionModule as TemplateAction
from ansible_collections.gpufleet.llm.plugins.action.copy import ActionModule as AskFirstCopy


class _Loaders:
    """The shared plugin loaders, except that the builtin template's copy action is gpufleet.llm.copy."""

    def __init__(self, shared):
        self._shared = shared
        self.action_loader = self

    def __getattr__(self, name):
        return getattr(self._shared, name)

    def get(self, name, *args, **kwargs):
        if name == "ansible.legacy.copy":
            return AskFirstCopy(*args, **kwargs)
        return self._shared.action_loader.get(name, *args, **kwargs)


class ActionModule(TemplateAction):
    def run(self, tmp=None, task_vars=None):
        self._shared_loader_obj = _Loaders(self._shared_loader_obj)
        return super().run(tmp, task_vars)
