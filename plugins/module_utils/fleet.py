"""The fleet layout: which model server instances a GPU node runs, and where.

One place for the arithmetic that the model_server role (units to start), the
nginx_lb role (upstreams), the inventory check and monitoring (scrape targets)
all need, so that they can never disagree about a port.
"""

from __future__ import annotations

from ansible_collections.gpufleet.llm.plugins.module_utils.gpu_fleet_names import region_group

# Keep in step with roles/model_server/defaults/main.yml (tests/unit check it).
DEFAULT_BASE_PORT = 8000
DEFAULT_TENSOR_PARALLEL_SIZE = 1


class FleetLayoutError(ValueError):
    """An inventory value that no layout can be built from."""


def _positive_int(value, name):
    if isinstance(value, bool):
        raise FleetLayoutError(f"{name} must be a positive integer, got {value!r}")
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise FleetLayoutError(f"{name} must be a positive integer, got {value!r}") from None
    if number < 1 or str(number) != str(value).strip():
        raise FleetLayoutError(f"{name} must be a positive integer, got {value!r}")
    return number


def model_server_instances(gpu_count, tensor_parallel_size=DEFAULT_TENSOR_PARALLEL_SIZE,
                           base_port=DEFAULT_BASE_PORT):
    """One instance per tensor-parallel group of GPUs, on consecutive ports.

    >>> model_server_instances(4, 2)
    [{'index': 0, 'port': 8000, 'gpus': [0, 1], 'cuda_visible_devices': '0,1'},
     {'index': 1, 'port': 8001, 'gpus': [2, 3], 'cuda_visible_devices': '2,3'}]
    """
    gpus = _positive_int(gpu_count, "gpu_count")
    tp = _positive_int(tensor_parallel_size, "model_server_tensor_parallel_size")
    port = _positive_int(base_port, "model_server_base_port")
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


def fleet_model_servers(hostvars, hosts):
    """Every model server instance of ``hosts``, with host, address, region and port."""
    servers = []
    for host in hosts:
        hv = hostvars[host]
        for instance in model_server_instances(
                hv.get("gpu_count"),
                hv.get("model_server_tensor_parallel_size", DEFAULT_TENSOR_PARALLEL_SIZE),
                hv.get("model_server_base_port", DEFAULT_BASE_PORT)):
            servers.append(dict(instance, host=host, address=host_address(hostvars, host),
                                region=hv.get("gpufleet_region")))
    return servers


ENGINES = ("vllm", "simulator")


def _check_gpu_node(host, hv):
    errors = []
    if hv.get("gpu_count") is None:
        errors.append(f"{host}: gpu_count is not set (every host in gpu_nodes needs it)")
    if not isinstance(hv.get("gpu_model"), str) or not hv.get("gpu_model", "").strip():
        errors.append(f"{host}: gpu_model must be a non-empty string, got {hv.get('gpu_model')!r}")
    engine = hv.get("model_server_engine")
    if engine is not None and engine not in ENGINES:
        errors.append(f"{host}: model_server_engine must be one of {', '.join(ENGINES)}, got {engine!r}")
    if hv.get("gpu_count") is not None:
        try:
            model_server_instances(
                hv["gpu_count"],
                hv.get("model_server_tensor_parallel_size", DEFAULT_TENSOR_PARALLEL_SIZE),
                hv.get("model_server_base_port", DEFAULT_BASE_PORT))
        except FleetLayoutError as exc:
            errors.append(f"{host}: {exc}")
    return errors


def _check_ports(hostvars, gpu_nodes, load_balancers, checked):
    """Two instances, or an instance and a load balancer, may not share an address and port.

    Every host claims its ports, so that a clash is found whichever host is checked;
    only the checked hosts' clashes are reported.
    """
    errors = []
    taken = {}
    for host in load_balancers:
        port = hostvars[host].get("nginx_lb_listen_port")
        if port is not None:
            taken[(host_address(hostvars, host), int(port))] = f"{host} (nginx_lb_listen_port)"
    for host in gpu_nodes:
        try:
            servers = fleet_model_servers(hostvars, [host])
        except FleetLayoutError:
            continue  # reported by _check_gpu_node
        for server in servers:
            key = (server["address"], server["port"])
            if key in taken and host in checked:
                errors.append(f"{host}: model server port {server['port']} on {server['address']} "
                              f"is already used by {taken[key]} (check model_server_base_port)")
            elif key not in taken:
                taken[key] = f"{host} (model_server_base_port)"
    return errors


def _check_fleet_groups(groups):
    """A fleet needs GPU nodes and load balancers; an inventory without them is a mistake, not a no-op."""
    return [f"the inventory has no host in group {group} (is an inventory source missing or empty?)"
            for group in ("gpu_nodes", "load_balancers") if not groups.get(group)]


def validate_fleet(hostvars, groups, hosts=None):
    """Every problem of the inventory's contract, as one message per host and variable.

    ``hosts`` limits the per-host checks (a role checking its own host); the
    checks that span hosts always look at the whole inventory.
    """
    gpu_nodes = list(groups.get("gpu_nodes", []))
    load_balancers = list(groups.get("load_balancers", []))
    checked = list(hosts) if hosts is not None else list(groups.get("all", []))
    errors = _check_fleet_groups(groups) if hosts is None else []
    for host in checked:
        hv = hostvars[host]
        region = hv.get("gpufleet_region")
        if not isinstance(region, str) or not region.strip():
            errors.append(f"{host}: gpufleet_region must be a non-empty string, got {region!r}")
        elif host not in groups.get(region_group(region), []):
            errors.append(f"{host}: gpufleet_region is {region!r} but the host is not in group "
                          f"{region_group(region)}")
        if host in gpu_nodes:
            errors.extend(_check_gpu_node(host, hv))
        if host in load_balancers and isinstance(region, str):
            if not any(hostvars[g].get("gpufleet_region") == region for g in gpu_nodes):
                errors.append(f"{host}: load balancer of gpufleet_region {region!r}, "
                              f"which has no host in gpu_nodes")
    errors.extend(_check_ports(hostvars, gpu_nodes, load_balancers, set(checked)))
    return errors
