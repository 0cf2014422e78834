# Copyright: gpufleet developers. Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""Controller-only: which of a fleet host's TCP ports its firewall restricts, and to whom (roles/host_firewall).

Every port is read where it is owned: the model servers' from the fleet layout (plugin_utils/fleet.py), the
others from the host's own variable or, when the inventory leaves it unset, from its role's default
(plugin_utils/fleet_defaults.py). Sources are fleet hosts' addresses (fleet.host_address) and the operator
networks; loopback is accepted by the template, before any of these rules.
"""

from __future__ import annotations

import functools
import ipaddress
import socket

from ansible_collections.gpufleet.llm.plugins.plugin_utils.fleet import FleetLayoutError, model_server_instances
from ansible_collections.gpufleet.llm.plugins.plugin_utils.fleet import host_address as fleet_host_address
from ansible_collections.gpufleet.llm.plugins.plugin_utils.fleet_defaults import exposed_port_defaults
from ansible_collections.gpufleet.llm.plugins.plugin_utils.gpu_fleet_spec import type_name

OPERATOR_NETWORKS = "gpufleet_operator_networks"
CIDR_EXAMPLES = "such as 192.0.2.0/24 or 2001:db8::/32"
# Who may connect to each kind of service, besides loopback and the operator networks.
MODEL_SERVER_CLIENTS = ("load_balancers", "monitoring")
SCRAPERS = ("monitoring",)


class HostFirewallError(ValueError):
    """An inventory value that no firewall rule set can be built from."""


def _port(host, name, value):
    if isinstance(value, bool) or not (isinstance(value, int) or (isinstance(value, str) and value.strip().isdigit())):
        number = None
    else:
        number = int(value)
    if number is None or not 1 <= number <= 65535:
        raise HostFirewallError(f"{host}: {name} must be a port from 1 to 65535, got {type_name(value)} {value!r}")
    return number


def _listen_port(host, name, value):
    """The port of an ``[address]:port`` listen address (node exporter, Prometheus...)."""
    colon, port = value.rpartition(":")[1:] if isinstance(value, str) else ("", "")
    if not colon or not port.isdigit():
        raise HostFirewallError(f"{host}: {name} must be [address]:port, got {type_name(value)} {value!r}")
    return _port(host, name, port)


def _services(host, hv, in_group, defaults):
    """(service, variable that sets its port, ports, groups allowed) of each fleet service that listens on host."""
    def value(name):
        return defaults.get(name) if hv.get(name) is None else hv.get(name)

    services = []
    if in_group("gpu_nodes"):
        try:
            instances = model_server_instances(hv.get("gpu_count"), value("model_server_tensor_parallel_size"),
                                               value("model_server_base_port"))
        except FleetLayoutError as exc:
            raise HostFirewallError(f"{host}: {exc}") from exc
        services.append(("model servers", "model_server_base_port", [i["port"] for i in instances],
                         MODEL_SERVER_CLIENTS))
        # The textfile method writes through the node exporter and listens on nothing of its own.
        if value("gpu_exporter_method") == "dcgm":
            services.append(("DCGM exporter", "gpu_exporter_dcgm_port",
                             [_port(host, "gpu_exporter_dcgm_port", value("gpu_exporter_dcgm_port"))], SCRAPERS))
    # monitoring.yml runs the node exporter on every host of the inventory.
    services.append(("node exporter", "node_exporter_listen_address",
                     [_listen_port(host, "node_exporter_listen_address", value("node_exporter_listen_address"))],
                     SCRAPERS))
    if in_group("load_balancers"):
        services.append(("NGINX exporter", "nginx_exporter_listen_address",
                         [_listen_port(host, "nginx_exporter_listen_address", value("nginx_exporter_listen_address"))],
                         SCRAPERS))
        services.append(("gateway usage exporter", "gateway_usage_port",
                         [_port(host, "gateway_usage_port", value("gateway_usage_port"))], SCRAPERS))
    if in_group("monitoring"):
        services.append(("Prometheus", "prometheus_listen_address",
                         [_listen_port(host, "prometheus_listen_address", value("prometheus_listen_address"))],
                         SCRAPERS))
        services.append(("Alertmanager", "alertmanager_listen_address",
                         [_listen_port(host, "alertmanager_listen_address", value("alertmanager_listen_address"))],
                         SCRAPERS))
    return services


def _check_one_service_per_port(host, services):
    """Two services on one port would share one verdict: the first one's reject would refuse the other's clients."""
    owners = {}
    for service, variable, ports, _allowed in services:
        for port in ports:
            if port in owners and owners[port][0] != service:
                other, other_variable = owners[port]
                raise HostFirewallError(f"{host}: port {port} would serve both the {other} ({other_variable}) "
                                        f"and the {service} ({variable}); give each its own port")
            owners[port] = (service, variable)


def operator_networks(host, hv):
    """The host's ``gpufleet_operator_networks`` as networks; HostFirewallError names every bad entry."""
    value = hv.get(OPERATOR_NETWORKS)
    if value is None:
        return []
    if not isinstance(value, (list, tuple)):
        raise HostFirewallError(f"{host}: {OPERATOR_NETWORKS} must be a list of networks in CIDR notation "
                                f"({CIDR_EXAMPLES}), got {type_name(value)} {value!r}")
    networks, bad = [], []
    for item in value:
        try:
            if not isinstance(item, str):
                raise ValueError(item)
            networks.append(ipaddress.ip_network(item.strip(), strict=False))
        except ValueError:
            bad.append(repr(item))
    if bad:
        raise HostFirewallError(f"{host}: {OPERATOR_NETWORKS} entries must be networks in CIDR notation "
                                f"({CIDR_EXAMPLES}), got {', '.join(bad)}")
    return networks


@functools.lru_cache(maxsize=4096)
def resolve_name(name):
    """Every address ``name`` resolves to on the controller; () when it does not resolve."""
    try:
        infos = socket.getaddrinfo(name, None, proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError):
        return ()
    return tuple(sorted({info[4][0].partition("%")[0] for info in infos}))


def source_addresses(hostvars, host, source, resolve=resolve_name):
    """The addresses ``source`` connects from: its fleet address, or what that name resolves to."""
    address = str(fleet_host_address(hostvars, source))
    try:
        return [ipaddress.ip_address(address)]
    except ValueError:
        pass
    resolved = [ipaddress.ip_address(a) for a in resolve(address)]
    if not resolved:
        raise HostFirewallError(
            f"{source}: fleet address {address!r} (gpufleet_address, else ansible_host, else the inventory name) is "
            f"neither an IP address nor a name the controller resolves, so the firewall of {host} cannot let "
            f"{source} in: set gpufleet_address to its IP address")
    return resolved


def _by_family(networks):
    """Sorted, merged, as nft writes them: an address alone, a network with its prefix."""
    families = {4: [], 6: []}
    for network in networks:
        families[network.version].append(network)
    return {version: [str(n.network_address) if n.prefixlen == n.max_prefixlen else str(n)
                      for n in ipaddress.collapse_addresses(found)] if found else []
            for version, found in families.items()}


def host_firewall_rules(hostvars, groups, host, resolve=resolve_name, defaults=None):
    """Each restricted service of ``host``: its ports and the IPv4 and IPv6 sources that may connect to them.

    ``[{"service", "variable", "ports", "allowed": groups, "ipv4": [...], "ipv6": [...]}]``; a port not listed
    here is not the firewall's business. Raises HostFirewallError naming the host and the variable at fault.
    """
    hv = hostvars[host]
    defaults = exposed_port_defaults() if defaults is None else defaults
    members = {name: set(groups.get(name) or ()) for name in ("gpu_nodes", "load_balancers", "monitoring")}
    services = _services(host, hv, lambda group: host in members[group], defaults)
    _check_one_service_per_port(host, services)
    operators = operator_networks(host, hv)
    group_sources = {group: [ipaddress.ip_network(address)
                             for source in dict.fromkeys(groups.get(group) or ())
                             for address in source_addresses(hostvars, host, source, resolve)]
                     for group in dict.fromkeys(g for *_unused, allowed in services for g in allowed)}
    rules = []
    for service, variable, ports, allowed in services:
        sources = _by_family([n for group in allowed for n in group_sources[group]] + operators)
        rules.append({"service": service, "variable": variable, "ports": sorted(set(ports)),
                      "allowed": list(allowed), "ipv4": sources[4], "ipv6": sources[6]})
    return rules


def host_firewall_check(hostvars, groups, host, resolve=resolve_name, defaults=None):
    """``{"rules": host_firewall_rules(...), "error": None}``, or no rules and the error's message, for a preflight
    to fail with that message alone."""
    try:
        return {"rules": host_firewall_rules(hostvars, groups, host, resolve, defaults), "error": None}
    except HostFirewallError as exc:
        return {"rules": [], "error": str(exc)}
