# Copyright: gpufleet developers. Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""Filters of the load balancers' gateway (plugins/plugin_utils/gateway.py) for the nginx_lb role."""

from __future__ import annotations

from ansible_collections.gpufleet.llm.plugins.plugin_utils.gateway import key_limits, limit_zones, model_pools


class FilterModule:
    def filters(self):
        return {"gateway_model_pools": model_pools, "gateway_key_limits": key_limits,
                "gateway_limit_zones": limit_zones}
