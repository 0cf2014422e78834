# Copyright: gpufleet developers. Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""The fleet layout: which model server instances a GPU node runs, and where.

One place for the arithmetic that the model_server role (units to start), the
nginx_lb role (upstreams), the inventory check and monitoring (scrape targets)
all need, so that they can never disagree about a port.
"""

from __future__ import annotations

import re

from ansible_collections.gpufleet.llm.plugins.plugin_utils.gpu_fleet_names import region_group
from ansible_collections.gpufleet.llm.plugins.plugin_utils.gpu_fleet_spec import type_name

# Keep in step with roles/model_server/defaults/main.yml (tests/unit check it).
DEFAULT_BASE_PORT = 8000
DEFAULT_TENSOR_PARALLEL_SIZE = 1
# What the simulator serves when the inventory names no model; vLLM serves its model_server_vllm_model.
DEFAULT_SIMULATOR_MODEL = "simulated-llm"
# A model name the load balancers can route on: it is a key of NGINX maps and a JSON string in their
# /v1/models answer, so no spaces, quotes or backslashes (Hugging Face ids such as Qwen/Qwen2.5-7B fit).
MODEL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/@+-]{0,255}")


class FleetLayoutError(ValueError):
    """An inventory value that no layout can be built from."""


# What each integer of the contract must be: its smallest and largest value (None: no limit).
# model-server@.service runs as an unprivileged user, so its ports cannot be privileged ones (< 1024);
# NGINX starts as root and may bind any port.
CONTRACT_INTEGERS = {
    "gpu_count": (1, None),
    "model_server_tensor_parallel_size": (1, None),
    "model_server_base_port": (1024, 65535),
    "nginx_lb_listen_port": (1, 65535),
    "nginx_lb_plain_http_port": (1, 65535),
    "nginx_lb_status_port": (1, 65535),
}


def _as_int(value):
    """``value`` as an int when it is one, or a string of one (INI inventories give strings); else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value.strip())
    return None


def contract_int(name, value):
    """The one rule for each integer of the contract: ``value`` of ``name`` as an int, or FleetLayoutError."""
    low, high = CONTRACT_INTEGERS[name]
    number = _as_int(value)
    if number is None or number < low or (high is not None and number > high):
        # Worded as the gpu_fleet inventory plugin words its own fields (gpu_fleet_spec.py).
        kind = f"an integer from {low} to {high}" if high is not None else "a positive integer"
        raise FleetLayoutError(f"{name} must be {kind}, got {type_name(value)} {value!r}")
    return number


def model_server_instances(gpu_count, tensor_parallel_size=DEFAULT_TENSOR_PARALLEL_SIZE,
                           base_port=DEFAULT_BASE_PORT):
    """One instance per tensor-parallel group of GPUs, on consecutive ports.

    >>> model_server_instances(4, 2)
    [{'index': 0, 'port': 8000, 'gpus': [0, 1], 'cuda_visible_devices': '0,1'},
     {'index': 1, 'port': 8001, 'gpus': [2, 3], 'cuda_visible_devices': '2,3'}]
    """
    gpus = contract_int("gpu_count", gpu_count)
    tp = contract_int("model_server_tensor_parallel_size", tensor_parallel_size)
    port = contract_int("model_server_base_port", base_port)
    if gpus % tp:
        raise FleetLayoutError(
            f"gpu_count {gpus} is not divisible by model_server_tensor_parallel_size {tp}")
    if port + gpus // tp - 1 > 65535:
        raise FleetLayoutError(f"model_server_base_port {port} leaves no room for {gpus // tp} ports")
    instances = []
    for index in range(gpus // tp):
        devices = list(range(index * tp, (index + 1) * tp))
        instances.append({
            "index": index,
            "port": port + index,
            "gpus": devices,
            "cuda_visible_devices": ",".join(str(d) for d in devices),
        })
    return instances


def host_address(hostvars, host):
    """The address other fleet hosts use to reach ``host``."""
    hv = hostvars[host]
    return hv.get("gpufleet_address") or hv.get("ansible_host") or host


def _defaults(defaults):
    if defaults is None:
        from ansible_collections.gpufleet.llm.plugins.plugin_utils.fleet_defaults import role_defaults
        defaults = role_defaults()
    return defaults


def served_model(hv, defaults=None):
    """The model a GPU node serves: the name clients put in a request's ``model`` field.

    The inventory's ``gpufleet_model``; without it, the vLLM model id (vLLM's own default name) or the
    simulator's default. The model_server role, the load balancers' routing and the contract check all
    ask here, so that a node is always routed the name it serves.
    """
    model = hv.get("gpufleet_model")
    if model:
        return model
    defaults = _defaults(defaults)
    if _value(hv, "model_server_engine", defaults) == "vllm":
        return _value(hv, "model_server_vllm_model", defaults)
    return DEFAULT_SIMULATOR_MODEL


def fleet_models(hostvars, hosts):
    """The models ``hosts`` serve, sorted, each once (retired nodes serve nothing)."""
    return sorted({server["model"] for server in fleet_model_servers(hostvars, hosts)})


# The local fact (/etc/ansible/facts.d/gpufleet_scaling.fact on the node) in which playbooks/scale.yml keeps
# whether a standby GPU node is in service, so that a later site.yml run keeps the size scaling chose.
SCALING_FACT = "gpufleet_scaling"


# What a flag of the contract may be: a YAML boolean, or the words an INI inventory gives for one.
BOOLEAN_WORDS = {"true", "yes", "1", "false", "no", "0"}


def _true(value):
    return str(value).lower() in {"true", "yes", "1"}


def is_standby(hv):
    """Whether the inventory declares this GPU node standby capacity (``gpufleet_standby: true``)."""
    return _true(hv.get("gpufleet_standby", False))


def scaling_state(hv):
    """A standby node's in-service state as scale.yml last left it: False before it ever ran, and False when
    the node's local facts were not read (playbooks/scaling_state.yml reads them; every playbook that renders
    the fleet's layout imports it, so that none drops a node that scaling brought in)."""
    facts = hv.get("ansible_facts") or {}
    local = facts.get("local", hv.get("ansible_local")) or {}
    return _true((local.get(SCALING_FACT) or {}).get("in_service", False))


def in_service(hv):
    """Whether a GPU node serves: not retired, and, when it is standby, brought in by scaling."""
    if _true(hv.get("gpufleet_retired", False)):
        return False
    return not is_standby(hv) or scaling_state(hv)


# The tag EC2 puts on every instance an Auto Scaling group launches, naming the group.
AUTOSCALING_GROUP_TAG = "aws:autoscaling:groupName"


def autoscaling_member(hv):
    """``{autoscaling_group, instance_id}`` of an EC2 instance that an Auto Scaling group launched (the gpu_fleet
    inventory's ``gpufleet_instance``), else ``{}``."""
    instance = hv.get("gpufleet_instance") or {}
    group = (instance.get("tags") or {}).get(AUTOSCALING_GROUP_TAG) if isinstance(instance, dict) else None
    return {"autoscaling_group": group, "instance_id": instance.get("id")} if group else {}


def fleet_model_servers(hostvars, hosts, standby=False):
    """Every model server instance of ``hosts``, with host, address, region, model and port.

    A retired node (``gpufleet_retired: true``) serves nothing: the load balancers and Prometheus drop it,
    and its own instances are drained and stopped by the rollout. A standby node (``gpufleet_standby: true``)
    serves once playbooks/scale.yml brought it into service. With ``standby``, also the instances of the
    standby nodes out of service (the fleet's capacity), each instance with ``in_service`` and, on a VM that an
    EC2 Auto Scaling group launched, that group and the VM's instance id (``autoscaling_member``).
    """
    servers = []
    defaults = _defaults(None)
    for host in hosts:
        hv = hostvars[host]
        if _true(hv.get("gpufleet_retired", False)):
            continue
        serving = in_service(hv)
        if not serving and not standby:
            continue
        model = served_model(hv, defaults)
        for instance in model_server_instances(
                hv.get("gpu_count"),
                hv.get("model_server_tensor_parallel_size", DEFAULT_TENSOR_PARALLEL_SIZE),
                hv.get("model_server_base_port", DEFAULT_BASE_PORT)):
            server = dict(instance, host=host, address=host_address(hostvars, host),
                          region=hv.get("gpufleet_region"), model=model)
            if standby:
                server.update(in_service=serving, standby=is_standby(hv), **autoscaling_member(hv))
            servers.append(server)
    return servers


ENGINES = ("vllm", "simulator")
GPU_NODE_INTEGERS = ("gpu_count", "model_server_tensor_parallel_size", "model_server_base_port")
LOAD_BALANCER_PORTS = ("nginx_lb_listen_port", "nginx_lb_plain_http_port", "nginx_lb_status_port")


def _value(hv, name, defaults):
    """A host's ``name``: its inventory value, else its role's default (None when neither has one)."""
    value = hv.get(name)
    return defaults.get(name) if value is None else value


def _contract_ints(host, hv, names, defaults, errors):
    """The host's values of ``names`` as ints; each wrong one goes to ``errors`` and is left out."""
    values = {}
    for name in names:
        value = _value(hv, name, defaults)
        if value is None:
            continue
        try:
            values[name] = contract_int(name, value)
        except FleetLayoutError as exc:
            errors.append(f"{host}: {exc}")
    return values


class _Members:
    """Group membership. The whole-fleet check asks about every host, so it builds each group's set once;
    a one-host check scans the group's list instead of paying for a set of the whole fleet."""

    def __init__(self, groups, whole_fleet):
        self._groups, self._sets = groups, {} if whole_fleet else None

    def __call__(self, group, host):
        if self._sets is None:
            return host in self._groups.get(group, ())
        if group not in self._sets:
            self._sets[group] = set(self._groups.get(group, ()))
        return host in self._sets[group]


def _own_groups(hv, groups):
    """Membership for a one-host check: Ansible gives each host its ``group_names``, so asking needs no
    scan of the fleet's groups; plain data without it falls back to scanning them."""
    names = hv.get("group_names")
    if isinstance(names, (list, tuple)):
        own = frozenset(names)
        return lambda group, host: group in own
    return _Members(groups, whole_fleet=False)


def _check_gpu_node(host, hv, defaults):
    errors = []
    if hv.get("gpu_count") is None:
        errors.append(f"{host}: gpu_count is not set (every host in gpu_nodes needs it)")
    if not isinstance(hv.get("gpu_model"), str) or not hv.get("gpu_model", "").strip():
        errors.append(f"{host}: gpu_model must be a non-empty string, got {hv.get('gpu_model')!r}")
    model = served_model(hv, defaults)
    if not isinstance(model, str) or not MODEL_NAME.fullmatch(model):
        errors.append(f"{host}: gpufleet_model must be a model name of letters, digits and . _ : / @ + - "
                      f"(the load balancers route on it), got {model!r}")
    for flag in ("gpufleet_retired", "gpufleet_standby"):
        if str(hv.get(flag, False)).lower() not in BOOLEAN_WORDS:
            errors.append(f"{host}: {flag} must be true or false, got {type_name(hv[flag])} {hv[flag]!r}")
    engine = _value(hv, "model_server_engine", defaults)
    if engine is not None and engine not in ENGINES:
        errors.append(f"{host}: model_server_engine must be one of {', '.join(ENGINES)}, got {engine!r}")
    values = _contract_ints(host, hv, GPU_NODE_INTEGERS, defaults, errors)
    if len(values) == len(GPU_NODE_INTEGERS):  # each is valid: now the layout they make together
        try:
            model_server_instances(*(values[name] for name in GPU_NODE_INTEGERS))
        except FleetLayoutError as exc:
            errors.append(f"{host}: {exc}")
    return errors


def validate_host(host, hv, members, defaults):
    """Problems of one host's own values; O(that host), so that each host's preflight can run it."""
    errors = []
    region = hv.get("gpufleet_region")
    if not isinstance(region, str) or not region.strip():
        errors.append(f"{host}: gpufleet_region must be a non-empty string, got {region!r}")
    elif not members(region_group(region), host):
        errors.append(f"{host}: gpufleet_region is {region!r} but the host is not in group "
                      f"{region_group(region)}")
    if members("gpu_nodes", host):
        errors.extend(_check_gpu_node(host, hv, defaults))
    if members("load_balancers", host):
        _contract_ints(host, hv, LOAD_BALANCER_PORTS, defaults, errors)
    return errors


def _check_lonely_load_balancers(hostvars, gpu_nodes, load_balancers):
    """A load balancer needs GPU nodes of its own region to send requests to."""
    gpu_regions = {hostvars[host].get("gpufleet_region") for host in gpu_nodes}
    errors = []
    for host in load_balancers:
        region = hostvars[host].get("gpufleet_region")
        if isinstance(region, str) and region not in gpu_regions:
            errors.append(f"{host}: load balancer of gpufleet_region {region!r}, "
                          f"which has no host in gpu_nodes")
    return errors


def _check_ports(hostvars, gpu_nodes, load_balancers, defaults):
    """Two instances, or an instance and a load balancer, may not share an address and port.

    A port left at its role default counts as much as one set in the inventory. Values of the
    wrong type are reported by validate_host and skipped here.
    """
    errors = []
    taken = {}
    for host in load_balancers:
        hv = hostvars[host]
        for name, port in _contract_ints(host, hv, LOAD_BALANCER_PORTS, defaults, []).items():
            taken.setdefault((host_address(hostvars, host), port), f"{host} ({name})")
    for host in gpu_nodes:
        hv = hostvars[host]
        values = _contract_ints(host, hv, GPU_NODE_INTEGERS, defaults, [])
        if len(values) < len(GPU_NODE_INTEGERS):
            continue
        try:
            instances = model_server_instances(*(values[name] for name in GPU_NODE_INTEGERS))
        except FleetLayoutError:
            continue  # reported by validate_host
        address = host_address(hostvars, host)
        for instance in instances:
            key = (address, instance["port"])
            if key in taken:
                errors.append(f"{host}: model server port {instance['port']} on {address} "
                              f"is already used by {taken[key]} (check model_server_base_port)")
            else:
                taken[key] = f"{host} (model_server_base_port)"
    return errors


_NGINX_TIME_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "M": 2592000, "y": 31536000}


def nginx_seconds(value):
    """An NGINX time (``60s``, ``1m30s``, ``500ms``, or a bare number of seconds) in seconds; None if it is not one."""
    text = str(value).strip()
    parts = re.findall(r"(\d+)(ms|s|m|h|d|w|M|y)?", text)
    if not text or "".join(number + unit for number, unit in parts) != text.replace(" ", ""):
        return None
    return sum(int(number) * _NGINX_TIME_UNITS[unit or "s"] for number, unit in parts)


def _check_keepalive(hostvars, gpu_nodes, load_balancers, defaults):
    """NGINX must close an idle upstream connection before the model server does: one the server closes while
    NGINX sends a request on it resets that request (a 502). Values of the wrong type are left to the roles."""
    servers = {host: _as_int(_value(hostvars[host], "model_server_keepalive_timeout", defaults)) for host in gpu_nodes}
    servers = {host: value for host, value in servers.items() if value is not None}
    if not servers:
        return []
    shortest = min(servers, key=servers.get)
    errors = []
    for host in load_balancers:
        value = _value(hostvars[host], "nginx_lb_keepalive_timeout", defaults)
        seconds = nginx_seconds(value)
        if seconds is not None and seconds >= servers[shortest]:
            errors.append(f"{host}: nginx_lb_keepalive_timeout {value} is not below model_server_keepalive_timeout "
                          f"{servers[shortest]} of {shortest}: the model server would close idle connections that "
                          "NGINX still reuses (lower the one or raise the other)")
    return errors


def _check_fleet_groups(groups):
    """A fleet needs GPU nodes and load balancers; an inventory without them is a mistake, not a no-op."""
    return [f"the inventory has no host in group {group} (is an inventory source missing or empty?)"
            for group in ("gpu_nodes", "load_balancers") if not groups.get(group)]


def validate_fleet(hostvars, groups, hosts=None, defaults=None):
    """Every problem of the inventory's contract, as one message per host and variable.

    Without ``hosts``: the whole inventory, with the checks that span hosts (ports, load balancers'
    regions, empty groups), in time linear in the fleet; validate.yml runs it once per run. With
    ``hosts`` (a role's preflight): only those hosts' own values, in time of those hosts alone.
    ``defaults`` are the roles' defaults (fleet_defaults.role_defaults(), read when not given).
    """
    defaults = _defaults(defaults)
    if hosts is not None:
        return [error for host in hosts
                for error in validate_host(host, hostvars[host], _own_groups(hostvars[host], groups), defaults)]
    members = _Members(groups, whole_fleet=True)
    gpu_nodes = list(dict.fromkeys(groups.get("gpu_nodes", [])))  # each host once, in inventory order
    load_balancers = list(dict.fromkeys(groups.get("load_balancers", [])))
    errors = _check_fleet_groups(groups)
    for host in groups.get("all", []):
        errors.extend(validate_host(host, hostvars[host], members, defaults))
    errors.extend(_check_lonely_load_balancers(hostvars, gpu_nodes, load_balancers))
    errors.extend(_check_ports(hostvars, gpu_nodes, load_balancers, defaults))
    errors.extend(_check_keepalive(hostvars, gpu_nodes, load_balancers, defaults))
    return errors
