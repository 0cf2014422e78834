# Copyright: gpufleet developers. Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""Filters for playbooks/rollout.yml (plugins/module_utils/rollout.py)."""

from __future__ import annotations

from ansible.errors import AnsibleFilterError
from ansible_collections.gpufleet.llm.plugins.module_utils.rollout import (
    RolloutError,
    batch_size,
    endpoints,
    fleet_rollout_batches,
    in_flight,
)


def _raising_filter_errors(function):
    def filter_(*args, **kwargs):
        try:
            return function(*args, **kwargs)
        except RolloutError as exc:
            raise AnsibleFilterError(str(exc)) from exc
    filter_.__name__ = function.__name__
    return filter_


class FilterModule:
    def filters(self):
        return {
            "rollout_batches": _raising_filter_errors(fleet_rollout_batches),
            "rollout_batch_size": _raising_filter_errors(batch_size),
            "vllm_in_flight": in_flight,
            "rollout_endpoints": endpoints,
        }
