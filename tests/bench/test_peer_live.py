"""The peer client (aiperf, from its own venv) against a simulator on loopback: it measures the configured TTFT.

Not a unit test: it needs the peer venv, which only the benchmark installs. `make bench` runs it first
(`make bench-peer-check`), so a broken peer client stops the benchmark before its 15 minutes.
"""

import os
import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]  # gpufleet_bench, and tests/loopback.py

from gpufleet_bench import fixtures, peer  # noqa: E402
from loopback import free_port  # noqa: E402


def test_the_peer_client_measures_the_simulators_ttft(tmp_path):
    assert peer.available(), f"no peer client at {peer.executable()}: make bench-peer-venv"
    with fixtures.simulators([free_port()], tmp_path, {"ttft_ms": 80, "itl_ms": 10, "prefill_ms_per_token": 0}) as (
            server,):
        figures = peer.run(f"http://{fixtures.LOOPBACK}:{server.port}", peer.Load(8, [(16, 1.0)], concurrency=4),
                           tmp_path, "e2e", model=fixtures.SIMULATOR_MODEL, timeout_s=120)
    assert figures["failed"] == 0 and figures["requests"] == 8
    assert 80 <= figures["ttft_p50"] < 80 + 60  # the configured 80 ms, plus a loaded 2-core machine's delays
    assert 10 * 0.8 <= figures["itl_p50"] < 10 + 15
    assert os.path.isdir(tmp_path / "peer-e2e")
    assert re.fullmatch(r"\d+\.\d+\.\d+", peer.version())
