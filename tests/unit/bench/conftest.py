"""Fixtures for the load generator's tests: a simulator on loopback."""

from collections.abc import Iterator

import pytest
from bench_support import free_port
from gpufleet_bench import fixtures


@pytest.fixture
def simulator(tmp_path) -> Iterator[fixtures.Simulator]:
    """One simulator on a free port: 30 ms to the first token, then 10 ms per token."""
    with fixtures.simulators([free_port()], tmp_path, {"ttft_ms": 30, "itl_ms": 10, "prefill_ms_per_token": 0,
                                                       "output_tokens": 5}) as (server,):
        yield server
