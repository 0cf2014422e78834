# Copyright: gpufleet developers. Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""Controller-only: the scaling pools, a model in a region, with the bounds between which it may grow and shrink.

Prometheus owns the bounds (roles/prometheus renders them as series and clamps the desired instance count with
them), so whatever acts on the scaling alerts reads a count that is already within them.
"""

from __future__ import annotations

import re
from datetime import datetime

VARIABLE = "prometheus_scaling_pools"


class ScalingError(ValueError):
    """A scaling pool that names no instances or has bounds no count can meet."""


def _count(pool, name, where):
    value = pool.get(name)
    if isinstance(value, bool) or not isinstance(value, (int, str)) or not str(value).strip().isdigit():
        raise ScalingError(f"{where}: {name} must be a whole number of instances, got {value!r}")
    return int(value)


def check_pools(pools, servers, where=VARIABLE):
    """(pools checked, problems): ``pools`` ([{region, model, min, max}]) against the fleet's model servers.

    servers: the fleet's model server instances with its standby capacity (the fleet_model_servers filter with
    standby=true), each with region, model and, for a standby node out of service, ``in_service`` false.
    A checked pool has its bounds as ints, ``instances`` (those in service) and ``capacity`` (with the standby
    nodes out of service): scaling can grow a pool only into its capacity.
    """
    if not isinstance(pools, list):
        return [], [f"{where} must be a list of {{region, model, min, max}}, got {type(pools).__name__}"]
    instances, capacity = {}, {}
    for server in servers:
        key = (server.get("region"), server.get("model"))
        capacity[key] = capacity.get(key, 0) + 1
        instances[key] = instances.get(key, 0) + (server.get("in_service", True) is not False)
    checked, problems, seen = [], [], set()
    for index, pool in enumerate(pools):
        try:
            entry = _check_pool(pool, f"{where}[{index}]", instances, capacity, seen)
        except ScalingError as exc:
            problems.append(str(exc))
        else:
            checked.append(entry)
    return checked, problems


def _check_pool(pool, entry, instances, capacity, seen):
    if not isinstance(pool, dict):
        raise ScalingError(f"{entry} must be a mapping with region, model, min and max, got {pool!r}")
    unknown = sorted(set(pool) - set(POOL_KEYS))
    if unknown:
        raise ScalingError(f"{entry}: unknown keys {', '.join(unknown)} (allowed: {', '.join(POOL_KEYS)})")
    region, model = pool.get("region"), pool.get("model")
    group = _autoscaling_group(pool.get("autoscaling_group"), f"{entry}.autoscaling_group")
    if (region, model) not in capacity and group is None:
        raise ScalingError(f"{entry}: no GPU node of region {region!r} serves model {model!r}, so the pool names "
                           "no instances")
    if (region, model) in seen:
        raise ScalingError(f"{entry}: region {region!r} and model {model!r} are already a pool")
    seen.add((region, model))
    low, high = _count(pool, "min", entry), _count(pool, "max", entry)
    if low < 1:
        raise ScalingError(f"{entry}: min must be at least 1 (a pool never scales to zero), got {low}")
    if low > high:
        raise ScalingError(f"{entry}: min {low} is above max {high}")
    checked = {"region": region, "model": model, "min": low, "max": high,
               "instances": instances.get((region, model), 0), "capacity": capacity.get((region, model), 0)}
    if group is not None:
        # The group's MaxSize bounds a cloud pool; only scale.yml reads it, from the EC2 API.
        return dict(checked, autoscaling_group=group, capacity=None)
    if high > capacity[(region, model)]:
        raise ScalingError(f"{entry}: max {high} is beyond the pool's capacity of {capacity[(region, model)]} "
                           "instances (its GPU nodes', standby ones included: declare more with gpufleet_standby, "
                           "or give the pool an autoscaling_group)")
    return checked


POOL_KEYS = ("region", "model", "min", "max", "autoscaling_group")
GROUP_KEYS = ("name", "region", "instances_per_vm")


def _autoscaling_group(group, where):
    """A cloud pool's EC2 Auto Scaling group, {name, region, instances_per_vm}, checked; None for a plain pool."""
    if group is None:
        return None
    if not isinstance(group, dict):
        raise ScalingError(f"{where} must be a mapping with {', '.join(GROUP_KEYS)}, got {group!r}")
    unknown = sorted(set(group) - set(GROUP_KEYS))
    if unknown:
        raise ScalingError(f"{where}: unknown keys {', '.join(unknown)} (allowed: {', '.join(GROUP_KEYS)})")
    for name in ("name", "region"):
        if not isinstance(group.get(name), str) or not group[name].strip():
            raise ScalingError(f"{where}.{name} must be a non-empty string, got {group.get(name)!r}")
    per_vm = _count(group, "instances_per_vm", where)
    if per_vm < 1:
        raise ScalingError(f"{where}: instances_per_vm must be at least 1, got {per_vm}")
    return {"name": group["name"], "region": group["region"], "instances_per_vm": per_vm}


def scaling_pools(pools, servers, where=VARIABLE):
    """The checked pools; a ScalingError with every problem when there is one."""
    checked, problems = check_pools(pools, servers, where)
    if problems:
        raise ScalingError("; ".join(problems))
    return checked


def scaling_pool_problems(pools, servers, where=VARIABLE):
    """Every problem of ``pools``, one sentence each naming the entry; [] when they are fine."""
    return check_pools(pools, servers, where)[1]


# What the scaling loop decides on each alert of an Alertmanager notification (playbooks/scale.yml).

MANUAL = "manual"


def _timestamp(text):
    """An Alertmanager time (RFC 3339, up to nanoseconds) as epoch seconds; None for its zero time or none."""
    if not isinstance(text, str) or not text or text.startswith("0001-"):
        return None
    text = re.sub(r"(\.\d{6})\d+", r"\1", text.strip()).replace("Z", "+00:00")
    return datetime.fromisoformat(text).timestamp()


def _hosts(servers, region, model):
    """The pool's hosts: {host: (instances, in service, standby)}, in host order."""
    hosts = {}
    for server in servers:
        if (server.get("region"), server.get("model")) != (region, model):
            continue
        count = hosts.get(server["host"], (0,))[0]
        hosts[server["host"]] = (count + 1, server.get("in_service", True) is not False,
                                 bool(server.get("standby", False)))
    return dict(sorted(hosts.items()))


def _choose(hosts, current, desired):
    """The standby hosts to bring in (desired above current) or take out (below), and the count they make."""
    chosen = []
    if desired > current:
        for host, (count, serving, standby) in hosts.items():
            if current >= desired:
                break
            if standby and not serving:
                chosen.append(host)
                current += count
    else:
        for host, (count, serving, standby) in reversed(hosts.items()):
            if standby and serving and current - count >= desired:
                chosen.append(host)
                current -= count
    return chosen, current


def _decide(alert, pools, servers, last_actions, context):
    now, cooldown, autoscaling = context
    labels, annotations = alert.get("labels") or {}, alert.get("annotations") or {}
    region, model = labels.get("region"), labels.get("model_name")
    trigger = labels.get("alertname", MANUAL)
    decision = {"time": now, "pool": f"{region}/{model}", "region": region, "model": model, "trigger": trigger,
                "status": alert.get("status"), "asked": annotations.get("desired"), "action": "none", "hosts": []}

    def none(reason, **values):
        decision.update(values, reason=reason)
        return decision

    if alert.get("status") != "firing":
        return none(f"the alert is {alert.get('status')}, not firing")
    ends = _timestamp(alert.get("endsAt"))
    if ends is not None and ends < now:
        return none(f"stale: the alert ended {now - ends:.0f} s ago")
    pool = next((p for p in pools if (p["region"], p["model"]) == (region, model)), None)
    if pool is None:
        return none("no scaling pool is this region and model")
    try:
        asked = float(annotations.get("desired"))
    except (TypeError, ValueError):
        return none(f"the desired count {annotations.get('desired')!r} is not a number")
    desired = min(max(int(asked), pool["min"]), pool["max"])
    hosts = _hosts(servers, region, model)
    group = _GroupPlan(pool, hosts, servers, autoscaling) if pool.get("autoscaling_group") else None
    current = group.current if group else sum(entry[0] for entry in hosts.values() if entry[1])
    decision.update(desired=desired, current=current, min=pool["min"], max=pool["max"])
    direction = labels.get("gpufleet_scaling")
    if desired == current or (direction == "out" and desired < current) or (direction == "in" and desired > current):
        return none(f"the pool has {current} instances, the alert asks {direction or 'for'} {desired}")
    last = last_actions.get(decision["pool"])
    if trigger != MANUAL and last is not None and now - last < cooldown:
        return none(f"cooldown: the pool last changed {now - last:.0f} s ago, under {cooldown} s")
    if group:
        chosen, reached, extra = group.choose(desired)
        decision["kind"] = "autoscaling_group"
    else:
        (chosen, reached), extra = _choose(hosts, current, desired), {}
    if reached == current:
        return none(group.none_reason(desired) if group else
                    "out: no standby node of the pool is left out of service" if desired > current else
                    "in: no standby node of the pool can leave without going below the desired count")
    decision.update(extra, action="out" if desired > current else "in", hosts=chosen, reached=reached,
                    reason=f"{current} -> {reached} instances for a desired {desired}")
    last_actions[decision["pool"]] = now
    return decision


class _GroupPlan:
    """A cloud pool against its EC2 Auto Scaling group as the EC2 API describes it now.

    The pool's instances are its fixed nodes' (in service) and its group's: instances_per_vm for each VM the group
    wants (DesiredCapacity, the VMs still booting included). Scale-out raises the group's DesiredCapacity, never
    above its MaxSize; scale-in picks the last VMs of the group that the inventory has, for scale.yml to drain,
    then terminate with the group's DesiredCapacity lowered, never below its MinSize.
    """

    def __init__(self, pool, hosts, servers, autoscaling):
        """hosts: the pool's hosts (_hosts); servers: the fleet's, whose ``autoscaling_group`` names the VMs."""
        spec = pool["autoscaling_group"]
        self.name, self.per_vm = spec["name"], spec["instances_per_vm"]
        self.where = f"pool {pool['region']}/{pool['model']}: Auto Scaling group {self.name} ({spec['region']})"
        described = (autoscaling or {}).get(self.name)
        if not described:
            raise ScalingError(f"{self.where} is not in the EC2 API's answer (does it exist in that region?)")
        self.low, self.high = int(described["min_size"]), int(described["max_size"])
        self.vms = int(described["desired_capacity"])
        self.group = {"name": self.name, "region": spec["region"]}
        self.members = {}
        for server in servers:
            if server.get("autoscaling_group") == self.name and server["host"] in hosts:
                self.members[server["host"]] = server.get("instance_id")
        for host in self.members:
            if hosts[host][0] != self.per_vm:
                raise ScalingError(f"{self.where}: VM {host} runs {hosts[host][0]} instances, the pool's "
                                   f"instances_per_vm says {self.per_vm}")
        self.fixed = sum(count for host, (count, serving, _standby) in hosts.items()
                         if serving and host not in self.members)
        self.current = self.fixed + self.vms * self.per_vm
        capacity = self.fixed + self.high * self.per_vm
        if pool["max"] > capacity:
            raise ScalingError(f"{self.where}: the pool's max {pool['max']} is beyond its capacity of "
                               f"{capacity} instances ({self.fixed} fixed, "
                               f"{self.per_vm} on each of the group's at most {self.high} VMs)")

    def choose(self, desired):
        """(VMs that leave, instances reached, what scale.yml needs to act)."""
        if desired > self.current:
            vms = min(self.high, -(-(desired - self.fixed) // self.per_vm))
            return [], self.fixed + vms * self.per_vm, {"autoscaling_group": dict(self.group, desired_capacity=vms)}
        leaving, vms = [], self.vms
        for host in reversed(list(self.members)):
            if vms - 1 < self.low or self.fixed + (vms - 1) * self.per_vm < desired:
                break
            leaving.append(host)
            vms -= 1
        return leaving, self.fixed + vms * self.per_vm, {
            "autoscaling_group": dict(self.group, desired_capacity=vms,
                                      instance_ids=[self.members[host] for host in leaving])}

    def none_reason(self, desired):
        if desired > self.current:
            return f"out: the Auto Scaling group {self.name} is at its MaxSize of {self.high} VMs"
        return (f"in: no VM of the Auto Scaling group {self.name} can leave without going below the desired count "
                f"or the group's MinSize of {self.low}")


def scaling_decisions(notification, pools, servers, last_actions, *, now, cooldown, autoscaling=None):
    """One decision per alert of ``notification`` (Alertmanager's webhook body, or one alert by hand).

    pools: the checked pools (scaling_pools); servers: the fleet with its capacity (fleet_model_servers with
    standby); last_actions: {pool: epoch seconds of its last action}; now: epoch seconds; cooldown: seconds a
    pool waits after an action (an alert raised by hand, alertname absent, does not wait). Only standby nodes
    move: scale-out brings the first ones out of service into it, scale-in takes the last ones in service out,
    never below the desired count. The desired count is bounded by the pool's min and max again here.
    A pool with an ``autoscaling_group`` scales its EC2 Auto Scaling group instead (_GroupPlan); autoscaling:
    the groups as amazon.aws.autoscaling_group_info describes them, a list or {name: group}.
    """
    if not isinstance(notification, dict) or not isinstance(notification.get("alerts"), list):
        raise ScalingError(f"a scaling notification needs a list of alerts, got {type(notification).__name__}")
    actions = dict(last_actions or {})
    if isinstance(autoscaling, list):
        autoscaling = {group["auto_scaling_group_name"]: group for group in autoscaling}
    context = (float(now), float(cooldown), autoscaling)
    return [_decide(alert if isinstance(alert, dict) else {}, pools, servers, actions, context)
            for alert in notification["alerts"]]
