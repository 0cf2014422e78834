# Copyright: gpufleet developers. Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""The load balancers' API keys and models, checked on the controller before any host changes.

Every message names the host, the variable and the key by its name or position, never by its value:
these messages end up in logs.
"""

from __future__ import annotations

import hashlib
import json
import re

from ansible_collections.gpufleet.llm.plugins.plugin_utils.fleet import fleet_model_servers

KEY_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
MIN_KEY_LENGTH = 32
# A key's own limits, each defaulting to the load balancer's nginx_lb_key_<limit>, with its smallest value:
# a rate or concurrency of 0 would refuse every request of the key, which is what removing it is for.
KEY_LIMITS = {"rate": 1, "burst": 0, "concurrency": 1}
KEY_FIELDS = {"name", "key", "models", *KEY_LIMITS}


def _truthy(value):
    return str(value).lower() in {"true", "yes", "on", "1"}


def _text(value):
    """A key as text: a plain string, or an ansible-vault value (which is not a str subclass)."""
    if isinstance(value, str):
        return value
    if hasattr(value, "vault"):
        return str(value)
    return None


def _limit(host, label, field, value, smallest, *, errors):
    if isinstance(value, bool) or not isinstance(value, int) or value < smallest:
        errors.append(f"{host}: {label}: {field} must be an integer of at least {smallest}, got {value!r}")


def _check_key(host, index, entry, served, errors):
    if not isinstance(entry, dict):
        errors.append(f"{host}: nginx_lb_api_keys[{index}] must be a mapping with name and key")
        return None, None
    name = entry.get("name")
    label = f"nginx_lb_api_keys[{index}]"
    if not isinstance(name, str) or not KEY_NAME.fullmatch(name):
        errors.append(f"{host}: {label}: name must be letters, digits, '.', '_' or '-' (at most 64), got {name!r}")
        name = None
    else:
        label = f"{label} ({name})"
    unknown = sorted(set(entry) - KEY_FIELDS)
    if unknown:
        errors.append(f"{host}: {label}: unknown field(s) {', '.join(unknown)}; known: {', '.join(sorted(KEY_FIELDS))}")
    key = _text(entry.get("key"))
    if key is None:
        errors.append(f"{host}: {label}: key must be a string (from ansible-vault)")
    elif len(key) < MIN_KEY_LENGTH or any(c.isspace() or not c.isprintable() for c in key):
        errors.append(f"{host}: {label}: key must be at least {MIN_KEY_LENGTH} printable characters without "
                      f"spaces (it has {len(key)}); make one with `openssl rand -hex 32`")
        key = None
    for field, smallest in KEY_LIMITS.items():
        if field in entry:
            _limit(host, label, field, entry[field], smallest, errors=errors)
    models = entry.get("models")
    if models is not None:
        if not isinstance(models, list) or not models or not all(isinstance(m, str) for m in models):
            errors.append(f"{host}: {label}: models must be a non-empty list of model names, got {models!r}")
        elif served is not None:
            for model in models:
                if model not in served:
                    errors.append(f"{host}: {label}: model {model!r} is served by no GPU node "
                                  f"(served: {', '.join(sorted(served)) or 'none'})")
    return name, key


def validate_load_balancer(host, hv, defaults, served=None):
    """Problems of one load balancer's keys and limits; ``served``: the fleet's models (None: not checked)."""
    errors = []
    for field, smallest in KEY_LIMITS.items():
        variable = f"nginx_lb_key_{field}"
        value = hv.get(variable, defaults.get(variable))
        if value is not None:
            _limit(host, variable, "the value", value, smallest, errors=errors)
    keys = hv.get("nginx_lb_api_keys", defaults.get("nginx_lb_api_keys")) or []
    auth = _truthy(hv.get("nginx_lb_auth", defaults.get("nginx_lb_auth", True)))
    if not isinstance(keys, list):
        return [*errors, f"{host}: nginx_lb_api_keys must be a list of keys, got {type(keys).__name__}"]
    if auth and not keys:
        errors.append(f"{host}: nginx_lb_auth is true but nginx_lb_api_keys is empty, so no client could "
                      f"use the load balancer; add keys (from ansible-vault) or set nginx_lb_auth: false")
    names, values = {}, {}
    for index, entry in enumerate(keys):
        name, key = _check_key(host, index, entry, served, errors)
        if name is not None:
            if name in names:
                errors.append(f"{host}: nginx_lb_api_keys[{index}]: name {name!r} is also the name of "
                              f"nginx_lb_api_keys[{names[name]}]")
            names.setdefault(name, index)
        if key is not None:
            if key in values:
                errors.append(f"{host}: nginx_lb_api_keys[{index}] has the same key as "
                              f"nginx_lb_api_keys[{values[key]}]; each client needs its own")
            values.setdefault(key, index)
    return errors


def _check_routable_models(hostvars, servers, load_balancers):
    """A model is reachable only through a load balancer; at least one region that serves it needs one."""
    lb_regions = {hostvars[host].get("gpufleet_region") for host in load_balancers}
    regions, hosts = {}, {}
    for server in servers:
        regions.setdefault(server["model"], set()).add(server["region"])
        hosts.setdefault(server["model"], []).append(server["host"])
    return [f"{', '.join(dict.fromkeys(hosts[model]))}: gpufleet_model {model!r} is served only in "
            f"region(s) {', '.join(sorted(regions[model]))}, which have no load balancer"
            for model in sorted(regions) if not regions[model] & lb_regions]


def validate_gateway(hostvars, groups, defaults, hosts=None):
    """The gateway's part of the contract; like fleet.validate_fleet, whole (hosts None) or for ``hosts``."""
    load_balancers = list(dict.fromkeys(groups.get("load_balancers", [])))
    if hosts is not None:
        return [error for host in hosts if host in load_balancers
                for error in validate_load_balancer(host, hostvars[host], defaults)]
    gpu_nodes = list(dict.fromkeys(groups.get("gpu_nodes", [])))
    try:
        servers = fleet_model_servers(hostvars, gpu_nodes)
    except ValueError:
        return []  # a layout no model server can be built from: validate_fleet reports it
    served = {server["model"] for server in servers}
    errors = _check_routable_models(hostvars, servers, load_balancers)
    for host in load_balancers:
        errors.extend(validate_load_balancer(host, hostvars[host], defaults, served))
    return errors


def model_pools(servers, region, cross_region_backup=True):
    """One upstream per model for a load balancer of ``region``: its region's instances as primaries and the
    other regions' as backups; a model no instance of the region serves has the other regions' as primaries
    (with cross-region backup on), so every model of the fleet stays routable from every region.

    Returns ``[{"model", "name", "primary", "backup"}]`` sorted by model; names are NGINX upstream names.
    """
    pools = []
    for index, model in enumerate(sorted({server["model"] for server in servers})):
        local = [s for s in servers if s["model"] == model and s["region"] == region]
        remote = [s for s in servers if s["model"] == model and s["region"] != region]
        primary = local or (remote if cross_region_backup else [])
        if not primary:
            continue
        backup = remote if local and cross_region_backup else []
        pools.append({"model": model, "name": f"gpufleet_pool_{index}", "primary": primary, "backup": backup})
    return pools


def key_limits(entry, rate, burst, concurrency, models):
    """A key as the NGINX template needs it: name, SHA-256 of the key, its limits and the models it may use.

    The key itself is left out, so nothing rendered from this can leak it.
    """
    key = _text(entry.get("key"))
    allowed = [m for m in models if m in entry["models"]] if entry.get("models") else list(models)
    listing = {"object": "list", "data": [{"id": m, "object": "model", "created": 0, "owned_by": "gpufleet"}
                                          for m in allowed]}
    return {
        "name": entry["name"],
        "sha256": hashlib.sha256(key.encode()).hexdigest() if key is not None else None,
        "rate": int(entry.get("rate", rate)),
        "burst": int(entry.get("burst", burst)),
        "concurrency": int(entry.get("concurrency", concurrency)),
        "models": allowed,
        # /v1/models as OpenAI's API answers it; model names hold no quote (MODEL_NAME), so it fits in '...'.
        "models_json": json.dumps(listing, separators=(",", ":")),
    }


def limit_zones(keys):
    """NGINX zones for the keys' limits: one per distinct (rate, burst), one per concurrency, each listing
    the names of its keys, so that a thousand keys of one tier cost two zones, not two thousand."""
    rates, concurrencies = {}, {}
    for key in keys:
        rates.setdefault((key["rate"], key["burst"]), []).append(key["name"])
        concurrencies.setdefault(key["concurrency"], []).append(key["name"])
    return ([{"kind": "rate", "name": f"gpufleet_rate_{rate}_{burst}", "rate": rate, "burst": burst, "members": names}
             for (rate, burst), names in sorted(rates.items())]
            + [{"kind": "concurrency", "name": f"gpufleet_concurrency_{limit}", "concurrency": limit, "members": names}
               for limit, names in sorted(concurrencies.items())])
