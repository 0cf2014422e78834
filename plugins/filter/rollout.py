# Copyright: gpufleet developers. Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""Filters for playbooks/rollout.yml (plugins/module_utils/rollout.py)."""

from __future__ import annotations

from ansible_collections.gpufleet.llm.plugins.module_utils.rollout import (
    RolloutError,
    batch_size,
    endpoints,
    fleet_rollout_batches,
    in_flight,
)
from ansible_collections.gpufleet.llm.plugins.plugin_utils.filter_errors import raising_filter_errors


class FilterModule:
    def filters(self):
        return {
            "rollout_batches": raising_filter_errors(fleet_rollout_batches, RolloutError),
            "rollout_batch_size": raising_filter_errors(batch_size, RolloutError),
            "vllm_in_flight": in_flight,
            "rollout_endpoints": endpoints,
        }
