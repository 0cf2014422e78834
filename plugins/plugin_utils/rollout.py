# Copyright: gpufleet developers. Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""Rolling changes of serving model server instances: batches per region, and what an instance still serves.

The model_server role reports, per GPU node, which of its serving instances must restart (their settings
changed), stop (no longer wanted) or go down with their host for a driver reboot (the nvidia_driver role
deferred it because the host serves); playbooks/rollout.yml drains, acts on and readmits them batch by batch.
A host that reboots is never split across batches: all of its instances are out together.
"""

from __future__ import annotations

import math
import re

from ansible_collections.gpufleet.llm.plugins.module_utils.nvidia import driver_action

ACTIONS = ("restart", "stop", "reboot")
# What the nvidia_driver role does about a reboot its kernel module needs (driver_reboot_mode).
REBOOT_MODES = ("none", "off", "now", "rollout")
_SERVICE = re.compile(r"^model-server@([0-9]+)\.service$")
# vLLM's gauges of what an instance is working on; a drained instance is idle when both are 0.
_IN_FLIGHT = re.compile(r"^vllm:num_requests_(?:running|waiting)(?:\{[^}]*\})?\s+(\S+)", re.MULTILINE)


class RolloutError(ValueError):
    """A rollout setting that no batch can be built from."""


def batch_size(spec, region_size, where="model_server_rollout_batch"):
    """How many instances of a region of ``region_size`` may be out of service at once.

    ``spec`` is a count (``1``) or a percentage of the region (``"25%"``, rounded down, at least 1).
    """
    text = str(spec).strip()
    if isinstance(spec, bool) or not text:
        raise RolloutError(f"{where} must be a count or a percentage such as '25%', got {spec!r}")
    if text.endswith("%"):
        try:
            percent = float(text[:-1])
        except ValueError:
            raise RolloutError(f"{where} must be a count or a percentage such as '25%', got {spec!r}") from None
        if not 0 < percent < 100:
            raise RolloutError(f"{where} {spec!r}: a percentage must be above 0% and below 100%, so that the "
                               "region keeps serving")
        return max(1, math.floor(region_size * percent / 100))
    if not text.isdigit():
        raise RolloutError(f"{where} must be a count or a percentage such as '25%', got {spec!r}")
    count = int(text)
    if count < 1 or (region_size > 1 and count >= region_size):
        raise RolloutError(f"{where} {count} must be at least 1 and smaller than the region's {region_size} "
                           "instances, so that the region keeps serving")
    return count


def rollout_batches(pending, region_sizes, batch_specs):
    """Split ``pending`` instances into batches that keep each region serving.

    pending: [{host, region, address, port, action, ...}] in rollout order.
    region_sizes: {region: instances serving in that region before the rollout}.
    batch_specs: {region: count or percentage}.
    Regions roll in parallel: batch i takes the next batch-size instances of every region. A host with a
    ``reboot`` item goes into one batch with all of its items (see plan_batches for a host larger than a batch).
    """
    return plan_batches(pending, region_sizes, batch_specs)[0]


def plan_batches(pending, region_sizes, batch_specs):
    """``(batches, notes)``: the batches of rollout_batches, and per batch the notes a plan should show.

    A reboot cannot take part of a host: a host whose instances outnumber its region's batch size rolls alone,
    in a batch of its own (its region then has more instances out than the batch setting says, never all of
    them unless the host is the region's only one, as a region of one instance rolls it alone); the note says so.
    """
    by_region = {}
    for item in pending:
        _check_item(item)
        by_region.setdefault(item["region"], []).append(item)
    chunks, notes = {}, {}
    for region, items in by_region.items():
        size = batch_size(batch_specs.get(region, 1), region_sizes.get(region, len(items)),
                          f"model_server_rollout_batch of region {region}")
        chunks[region], notes[region] = _pack(_units(items), size, region, region_sizes.get(region, len(items)))
    depth = max((len(c) for c in chunks.values()), default=0)
    batches = [[item for region in sorted(chunks) if i < len(chunks[region]) for item in chunks[region][i]]
               for i in range(depth)]
    batch_notes = [[note for region in sorted(notes) if i < len(notes[region]) for note in notes[region][i]]
                   for i in range(depth)]
    return batches, batch_notes


def _check_item(item):
    if item.get("action") not in ACTIONS:
        raise RolloutError(f"{item.get('host')}: unknown rollout action {item.get('action')!r}")
    if item["action"] == "reboot":
        missing = [key for key in ("driver_version", "reboot_timeout") if item.get(key) in (None, "")]
        if missing:
            raise RolloutError(f"{item.get('host')} model-server@{item.get('port')}: a reboot item needs "
                               f"{' and '.join(missing)} (set by the nvidia_driver role)")


def _units(items):
    """The items in order, grouped: all items of a host that reboots form one unit, every other item its own."""
    rebooting = {item["host"] for item in items if item["action"] == "reboot"}
    units, seen = [], {}
    for item in items:
        if item["host"] not in rebooting:
            units.append([item])
        elif item["host"] in seen:
            seen[item["host"]].append(item)
        else:
            seen[item["host"]] = [item]
            units.append(seen[item["host"]])
    return units


def _pack(units, size, region, region_size):
    """Batches of at most ``size`` items, units kept whole, order kept; a unit above ``size`` goes alone."""
    batches, notes = [], []
    for unit in units:
        if len(unit) > size:
            batches.append(list(unit))
            whole = " - the whole region, served meanwhile by the other regions' backups" if (
                len(unit) >= region_size) else ""
            notes.append([f"{unit[0]['host']} reboots with its {len(unit)} instances, more than "
                          f"model_server_rollout_batch of region {region} ({size}) allows: a reboot cannot take "
                          f"part of a host, so it rolls alone in this batch{whole}"])
        elif batches and len(batches[-1]) + len(unit) <= size and not (notes[-1]):
            batches[-1].extend(unit)
        else:
            batches.append(list(unit))
            notes.append([])
    return batches, notes


def fleet_rollout_batches(pending, servers):
    """The batches of ``pending`` for a fleet whose layout (after the change) is ``servers``.

    A region's size counts what it serves before the change: its instances in the layout plus those to stop.
    Its batch setting is the first pending instance's ``batch``.
    """
    return plan_batches(pending, *_fleet_sizes(pending, servers))[0]


def fleet_rollout_plan(pending, servers):
    """One line per batch of fleet_rollout_batches: what it drains, acts on and reboots, and its notes."""
    batches, notes = plan_batches(pending, *_fleet_sizes(pending, servers))
    lines = []
    for index, batch in enumerate(batches):
        batch_notes = notes[index]
        acts = ", ".join(f"{item['action']} {item['host']} {item['port']}" for item in batch)
        reboots = "; ".join(f"reboot host {host['host']} into driver {host['driver_version']}"
                            for host in reboot_hosts(batch))
        lines.append(f"batch {index + 1}/{len(batches)}: drain, then {acts}"
                     + (f"; {reboots}" if reboots else "")
                     + "".join(f" (note: {note})" for note in batch_notes))
    return lines


def _fleet_sizes(pending, servers):
    sizes, specs = {}, {}
    for server in servers:
        sizes[server["region"]] = sizes.get(server["region"], 0) + 1
    for item in pending:
        specs.setdefault(item["region"], item.get("batch", 1))
        if item.get("action") == "stop":
            sizes[item["region"]] = sizes.get(item["region"], 0) + 1
    return sizes, specs


def reboot_hosts(batch):
    """The hosts a batch reboots, once each in batch order: ``[{host, driver_version, reboot_timeout, ...}]``."""
    hosts = {}
    for item in batch:
        if item.get("action") == "reboot" and item["host"] not in hosts:
            hosts[item["host"]] = {key: item[key] for key in ("host", "driver_version", "reboot_timeout",
                                                              "detection_root") if key in item}
    return list(hosts.values())


def driver_reboot_mode(gpu_host, wanted_version, reboot, services, planned=False):
    """What the nvidia_driver role does about the kernel module, from gpu_facts' ``gpu_host`` fact.

    ``none``: no reboot needed. ``off``: needed, but nvidia_driver_reboot is false (the role only tells).
    ``now``: needed and no model server instance runs on the host (a first converge): the role reboots itself.
    ``rollout``: needed while instances serve: the role leaves the reboot to playbooks/rollout.yml, which
    drains them first. ``services`` is service_facts' ``ansible_facts.services``.
    ``planned`` (check mode, which installs nothing): the module on disk is still the old one, so the reboot is
    the one the wanted version would need once installed, whatever ``gpu_host`` says of the installed module.
    """
    host = gpu_host or {}
    if _bool(planned, "planned"):
        action = driver_action(wanted_version, wanted_version, host.get("driver_loaded_version"),
                               host.get("nouveau_loaded"))
    else:
        action = (host.get("kernel_module") or {}).get("action")
    if action != "reboot":
        return "none"
    if not _bool(reboot, "nvidia_driver_reboot"):
        return "off"
    return "rollout" if serving_ports(services) else "now"


def serving_ports(services):
    """The ports of the model-server@<port> units that service_facts reports running."""
    ports = []
    for name, state in (services or {}).items():
        match = _SERVICE.match(str(name))
        if match and (state or {}).get("state") == "running":
            ports.append(int(match.group(1)))
    return sorted(ports)


def _bool(value, name):
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on", "y"):
        return True
    if text in ("0", "false", "no", "off", "n", ""):
        return False
    raise RolloutError(f"{name} must be a boolean, got {value!r}")


def in_flight(metrics_text):
    """Requests an instance is running or holding in its queue, read from its own /metrics."""
    return int(sum(float(value) for value in _IN_FLIGHT.findall(metrics_text or "")))


def endpoints(items):
    """The ``address:port`` of each instance, as the load balancers list them."""
    return [f"{item['address']}:{item['port']}" for item in items]
