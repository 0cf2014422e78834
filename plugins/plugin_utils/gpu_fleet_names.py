# Copyright: gpufleet developers. Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""Group names of the fleet contract, built by one rule.

``region_<name>`` and ``gpu_<model>``: every character outside [A-Za-z0-9_] becomes ``_``
(``us-east`` -> ``region_us_east``); GPU model groups are lowercased as well
(``NVIDIA H100 80GB`` -> ``gpu_nvidia_h100_80gb``). The inventory plugin and the
inventory check both import these functions so that they can never disagree.
"""

from __future__ import annotations

import re

_NOT_GROUP_CHAR = re.compile(r"[^A-Za-z0-9_]")

ROLE_GROUPS = {
    "gpu_node": "gpu_nodes",
    "load_balancer": "load_balancers",
    "monitoring": "monitoring",
}


def group_name_part(value):
    """``value`` with every character outside [A-Za-z0-9_] replaced by ``_``."""
    return _NOT_GROUP_CHAR.sub("_", str(value))


def region_group(region):
    """``us-east`` -> ``region_us_east``."""
    return "region_" + group_name_part(region)


def gpu_model_group(model):
    """``NVIDIA A100 80GB`` -> ``gpu_nvidia_a100_80gb``."""
    return "gpu_" + group_name_part(model).lower()
