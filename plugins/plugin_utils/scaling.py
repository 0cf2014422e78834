# Copyright: gpufleet developers. Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""Controller-only: the scaling pools, a model in a region, with the bounds between which it may grow and shrink.

Prometheus owns the bounds (roles/prometheus renders them as series and clamps the desired instance count with
them), so whatever acts on the scaling alerts reads a count that is already within them.
"""

from __future__ import annotations

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

    servers: the fleet's model server instances (the fleet_model_servers filter), each with region and model.
    A checked pool has its bounds as ints and ``instances``, its instances in the inventory.
    """
    if not isinstance(pools, list):
        return [], [f"{where} must be a list of {{region, model, min, max}}, got {type(pools).__name__}"]
    instances = {}
    for server in servers:
        key = (server.get("region"), server.get("model"))
        instances[key] = instances.get(key, 0) + 1
    checked, problems, seen = [], [], set()
    for index, pool in enumerate(pools):
        try:
            entry = _check_pool(pool, f"{where}[{index}]", instances, seen)
        except ScalingError as exc:
            problems.append(str(exc))
        else:
            checked.append(entry)
    return checked, problems


def _check_pool(pool, entry, instances, seen):
    if not isinstance(pool, dict):
        raise ScalingError(f"{entry} must be a mapping with region, model, min and max, got {pool!r}")
    unknown = sorted(set(pool) - {"region", "model", "min", "max"})
    if unknown:
        raise ScalingError(f"{entry}: unknown keys {', '.join(unknown)} (allowed: region, model, min, max)")
    region, model = pool.get("region"), pool.get("model")
    if (region, model) not in instances:
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
    return {"region": region, "model": model, "min": low, "max": high, "instances": instances[(region, model)]}


def scaling_pools(pools, servers, where=VARIABLE):
    """The checked pools; a ScalingError with every problem when there is one."""
    checked, problems = check_pools(pools, servers, where)
    if problems:
        raise ScalingError("; ".join(problems))
    return checked


def scaling_pool_problems(pools, servers, where=VARIABLE):
    """Every problem of ``pools``, one sentence each naming the entry; [] when they are fine."""
    return check_pools(pools, servers, where)[1]
