"""Fixtures for the simulator tests; the helpers live in sim_support (a unique name other test dirs won't shadow)."""

from collections.abc import Iterator

import pytest
from sim_support import Server, run_server


@pytest.fixture(scope="module")
def fast_server(tmp_path_factory) -> Iterator[Server]:
    """Near-zero latencies for shape tests; instance id fixed so headers and metrics can be checked."""
    with run_server(tmp_path_factory.mktemp("fast"), ttft_ms=1, itl_ms=1, prefill_ms_per_token=0,
                    instance_id="sim-a", output_tokens=7, max_model_len=64) as server:
        yield server
