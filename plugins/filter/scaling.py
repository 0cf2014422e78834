# Copyright: gpufleet developers. Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""Filters for traffic-responsive scaling (plugins/plugin_utils/scaling.py)."""

from __future__ import annotations

from ansible_collections.gpufleet.llm.plugins.plugin_utils.filter_errors import raising_filter_errors
from ansible_collections.gpufleet.llm.plugins.plugin_utils.scaling import (
    ScalingError,
    scaling_decisions,
    scaling_pool_problems,
    scaling_pools,
)


class FilterModule:
    def filters(self):
        return {"scaling_pools": raising_filter_errors(scaling_pools, ScalingError),
                "scaling_pool_problems": scaling_pool_problems,
                "scaling_decisions": raising_filter_errors(scaling_decisions, ScalingError)}
