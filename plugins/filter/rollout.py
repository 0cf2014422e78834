# Copyright: gpufleet developers. Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""Filters for playbooks/rollout.yml (plugins/plugin_utils/rollout.py)."""

from __future__ import annotations

from ansible_collections.gpufleet.llm.plugins.plugin_utils.filter_errors import raising_filter_errors
from ansible_collections.gpufleet.llm.plugins.plugin_utils.rollout import (
    RolloutError,
    batch_size,
    driver_reboot_mode,
    endpoints,
    fleet_rollout_batches,
    fleet_rollout_plan,
    in_flight,
    reboot_hosts,
)


class FilterModule:
    def filters(self):
        return {
            "rollout_batches": raising_filter_errors(fleet_rollout_batches, RolloutError),
            "rollout_plan": raising_filter_errors(fleet_rollout_plan, RolloutError),
            "rollout_batch_size": raising_filter_errors(batch_size, RolloutError),
            "rollout_reboot_hosts": reboot_hosts,
            "rollout_driver_reboot": raising_filter_errors(driver_reboot_mode, RolloutError),
            "vllm_in_flight": in_flight,
            "rollout_endpoints": endpoints,
        }
