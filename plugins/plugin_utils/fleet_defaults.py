# Copyright: gpufleet developers. Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""The roles' own defaults, read where they are owned: each role's defaults/main.yml.

A value left at its role default binds a port just as much as one set in the inventory, so the
contract check, the host firewall and the scrape targets must know the defaults. Ansible does not
put a role's defaults in ``hostvars`` (nor those of a role another play runs), so they are read from
roles/*/defaults/main.yml, once per process, rather than copied, so that changing a role's default
cannot leave a reader behind. Every default is prefixed with its role's name (tests/unit/collection
check it), which is how ``role_default`` finds the owner of a variable.
"""

from __future__ import annotations

import functools
from pathlib import Path

import yaml  # plugin_utils run on the controller only, where ansible-core brings PyYAML

# This file is plugins/plugin_utils/fleet_defaults.py of the collection; roles/ is beside plugins/.
ROLES = Path(__file__).resolve().parents[2] / "roles"

CONTRACT_VARIABLES = {
    "model_server": ("model_server_base_port", "model_server_tensor_parallel_size", "model_server_engine",
                     "model_server_vllm_model", "model_server_keepalive_timeout"),
    "nginx_lb": ("nginx_lb_listen_port", "nginx_lb_plain_http_port", "nginx_lb_status_port", "nginx_lb_auth",
                 "nginx_lb_api_keys", "nginx_lb_key_rate", "nginx_lb_key_burst", "nginx_lb_key_concurrency",
                 "nginx_lb_keepalive_timeout"),
}


class RoleDefaultError(ValueError):
    """A variable that no role owns, or whose owner gives no plain default."""


@functools.cache
def _defaults_of(role, roles=ROLES):
    return yaml.safe_load((Path(roles) / role / "defaults" / "main.yml").read_text()) or {}


def owning_role(name, roles=ROLES):
    """The role that owns variable ``name``: the longest role name that ``name`` is prefixed with."""
    owners = [path.parent.parent.name for path in Path(roles).glob("*/defaults/main.yml")
              if name.startswith(path.parent.parent.name + "_")]
    if not owners:
        raise RoleDefaultError(f"no role of the collection owns {name!r} (roles own the variables prefixed "
                               "with their name)")
    return max(owners, key=len)


def role_default(name, roles=ROLES):
    """The default that ``name``'s owning role gives it, for a host or play that does not set it.

    Only plain values: a default that is itself a template would be returned unrendered, so it is refused.
    """
    role = owning_role(name, roles)
    values = _defaults_of(role, roles)
    if name not in values:
        raise RoleDefaultError(f"the {role} role gives {name!r} no default (roles/{role}/defaults/main.yml)")
    value = values[name]
    if isinstance(value, str) and ("{{" in value or "{%" in value):
        raise RoleDefaultError(f"the {role} role's default of {name!r} is a template; only plain defaults "
                               "can be read for other hosts")
    return value


def host_value(hostvars, host, name, roles=ROLES):
    """``host``'s value of ``name``: its inventory's (or the run's extra vars'), else its owning role's default."""
    hv = hostvars[host]
    if name in hv:
        return hv[name]
    return role_default(name, roles)


@functools.cache
def role_defaults(roles=ROLES):
    """``{variable: default}`` for the contract's variables that a role gives a default."""
    return _defaults_for(CONTRACT_VARIABLES, roles)


# The ports the host firewall restricts, by the role that owns each (roles/host_firewall).
EXPOSED_PORT_VARIABLES = {
    "model_server": ("model_server_base_port", "model_server_tensor_parallel_size"),
    "node_exporter": ("node_exporter_listen_address",),
    "gpu_exporter": ("gpu_exporter_method", "gpu_exporter_dcgm_port"),
    "nginx_exporter": ("nginx_exporter_listen_address",),
    "gateway_usage": ("gateway_usage_port",),
    "prometheus": ("prometheus_listen_address",),
    "alertmanager": ("alertmanager_listen_address",),
}


@functools.cache
def exposed_port_defaults(roles=ROLES):
    """``{variable: default}`` for every variable that decides a port the host firewall restricts."""
    return _defaults_for(EXPOSED_PORT_VARIABLES, roles)


def _defaults_for(variables, roles):
    """``{variable: default}`` for ``variables`` (``{role: names}``) that their role gives a default."""
    defaults = {}
    for role, names in variables.items():
        values = _defaults_of(role, roles)
        defaults.update({name: values[name] for name in names if name in values})
    return defaults
