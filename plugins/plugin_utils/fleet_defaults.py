# Copyright: gpufleet developers. Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""The roles' own defaults for the variables of the fleet's contract.

A value left at its role default binds a port just as much as one set in the inventory, so the
contract check must know the defaults. They are read from roles/*/defaults/main.yml, once per
process, rather than copied here, so that changing a role's default cannot leave the check behind.
"""

from __future__ import annotations

import functools
from pathlib import Path

import yaml  # plugin_utils run on the controller only, where ansible-core brings PyYAML

# This file is plugins/plugin_utils/fleet_defaults.py of the collection; roles/ is beside plugins/.
ROLES = Path(__file__).resolve().parents[2] / "roles"

CONTRACT_VARIABLES = {
    "model_server": ("model_server_base_port", "model_server_tensor_parallel_size", "model_server_engine",
                     "model_server_vllm_model"),
    "nginx_lb": ("nginx_lb_listen_port", "nginx_lb_plain_http_port", "nginx_lb_status_port", "nginx_lb_auth",
                 "nginx_lb_api_keys", "nginx_lb_key_rate", "nginx_lb_key_burst", "nginx_lb_key_concurrency"),
}


@functools.cache
def role_defaults(roles=ROLES):
    """``{variable: default}`` for the contract's variables that a role gives a default."""
    defaults = {}
    for role, names in CONTRACT_VARIABLES.items():
        values = yaml.safe_load((Path(roles) / role / "defaults" / "main.yml").read_text()) or {}
        defaults.update({name: values[name] for name in names if name in values})
    return defaults


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
    defaults = {}
    for role, names in EXPOSED_PORT_VARIABLES.items():
        path = Path(roles) / role / "defaults" / "main.yml"
        values = yaml.safe_load(path.read_text()) or {}
        defaults.update({name: values[name] for name in names if name in values})
    return defaults
