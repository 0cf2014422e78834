# Copyright: gpufleet developers. Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""Filters that expose the fleet layout (plugins/module_utils/fleet.py) to templates."""

from __future__ import annotations

from ansible.errors import AnsibleFilterError
from ansible_collections.gpufleet.llm.plugins.module_utils.fleet import (
    FleetLayoutError,
    fleet_model_servers,
    host_address,
    model_server_instances,
)


def _wrap(function):
    def filter_(*args, **kwargs):
        try:
            return function(*args, **kwargs)
        except FleetLayoutError as exc:
            raise AnsibleFilterError(str(exc)) from exc
    filter_.__name__ = function.__name__
    filter_.__doc__ = function.__doc__
    return filter_


class FilterModule:
    def filters(self):
        return {
            "model_server_instances": _wrap(model_server_instances),
            "fleet_model_servers": _wrap(fleet_model_servers),
            "fleet_host_address": _wrap(host_address),
        }
