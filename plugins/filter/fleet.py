# Copyright: gpufleet developers. Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""Filters that expose the fleet layout (plugins/plugin_utils/fleet.py) and the roles' own defaults
(plugins/plugin_utils/fleet_defaults.py) to templates."""

from __future__ import annotations

from ansible_collections.gpufleet.llm.plugins.plugin_utils.filter_errors import raising_filter_errors
from ansible_collections.gpufleet.llm.plugins.plugin_utils.fleet import (
    FleetLayoutError,
    fleet_model_servers,
    fleet_models,
    host_address,
    model_server_instances,
    served_model,
)
from ansible_collections.gpufleet.llm.plugins.plugin_utils.fleet_defaults import (
    RoleDefaultError,
    host_value,
    role_default,
)


def fleet_var(hostvars, host, name):
    """``host``'s value of ``name``, else the default of the role that owns ``name`` (not a template's argument)."""
    return host_value(hostvars, host, name)


def role_default_filter(name):
    """The default of the role that owns ``name``."""
    return role_default(name)


class FilterModule:
    def filters(self):
        return {name: raising_filter_errors(function, FleetLayoutError) for name, function in {
            "model_server_instances": model_server_instances,
            "fleet_model_servers": fleet_model_servers,
            "fleet_models": fleet_models,
            "fleet_host_address": host_address,
            "fleet_served_model": lambda hostvars, host: served_model(hostvars[host]),
        }.items()} | {name: raising_filter_errors(function, RoleDefaultError) for name, function in {
            "fleet_var": fleet_var,
            "role_default": role_default_filter,
        }.items()}
