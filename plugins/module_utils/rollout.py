# Copyright: gpufleet developers. Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""Rolling changes of serving model server instances: batches per region, and what an instance still serves.

The model_server role reports, per GPU node, which of its serving instances must restart (their settings
changed) or stop (no longer wanted); playbooks/rollout.yml drains, acts on and readmits them batch by batch.
"""

from __future__ import annotations

import math
import re

ACTIONS = ("restart", "stop")
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
    Regions roll in parallel: batch i takes the next batch-size instances of every region.
    """
    by_region = {}
    for item in pending:
        if item.get("action") not in ACTIONS:
            raise RolloutError(f"{item.get('host')}: unknown rollout action {item.get('action')!r}")
        by_region.setdefault(item["region"], []).append(item)
    chunks = {region: _chunks(items, batch_size(batch_specs.get(region, 1), region_sizes.get(region, len(items)),
                                                f"model_server_rollout_batch of region {region}"))
              for region, items in by_region.items()}
    depth = max((len(c) for c in chunks.values()), default=0)
    return [[item for region in sorted(chunks) if i < len(chunks[region]) for item in chunks[region][i]]
            for i in range(depth)]


def fleet_rollout_batches(pending, servers):
    """The batches of ``pending`` for a fleet whose layout (after the change) is ``servers``.

    A region's size counts what it serves before the change: its instances in the layout plus those to stop.
    Its batch setting is the first pending instance's ``batch``.
    """
    sizes, specs = {}, {}
    for server in servers:
        sizes[server["region"]] = sizes.get(server["region"], 0) + 1
    for item in pending:
        specs.setdefault(item["region"], item.get("batch", 1))
        if item.get("action") == "stop":
            sizes[item["region"]] = sizes.get(item["region"], 0) + 1
    return rollout_batches(pending, sizes, specs)


def _chunks(items, size):
    return [items[i:i + size] for i in range(0, len(items), size)]


def in_flight(metrics_text):
    """Requests an instance is running or holding in its queue, read from its own /metrics."""
    return int(sum(float(value) for value in _IN_FLIGHT.findall(metrics_text or "")))


def endpoints(items):
    """The ``address:port`` of each instance, as the load balancers list them."""
    return [f"{item['address']}:{item['port']}" for item in items]
