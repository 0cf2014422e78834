"""The delay line between two network namespaces adds the round trip it is asked for, and cleans up after itself.

A delay that went missing (a link that bypasses the delay line, a sleep that never happens) would leave the
round trip at its zero-delay value: the lower bounds below fail then.
"""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from bench_support import free_port
from gpufleet_bench.delayline import DelayedLink

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or not Path("/dev/net/tun").exists(),
                                reason="network namespaces and TUN devices need root and /dev/net/tun")
BENCH = str(Path(__file__).resolve().parents[2] / "bench")
PROBES = 15


def _round_trips(link: DelayedLink) -> dict[str, list[float]]:
    port = free_port()
    env = dict(os.environ, PYTHONPATH=BENCH)
    server = link.popen("server", [sys.executable, "-m", "gpufleet_bench.delayline", "serve", str(port), "20"],
                        env=env)
    try:
        deadline = time.monotonic() + 10
        while True:
            probe = link.run("client", [sys.executable, "-m", "gpufleet_bench.delayline", "probe",
                                        link.address("server"), str(port), str(PROBES)],
                             env=env, capture_output=True, text=True, timeout=30)
            if probe.returncode == 0 or time.monotonic() > deadline:
                break
            time.sleep(0.1)  # the server is not listening yet
        assert probe.returncode == 0, probe.stderr
        return json.loads(probe.stdout)
    finally:
        server.kill()
        server.wait(timeout=5)


def _gpf_namespaces() -> set[str]:
    listing = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
    return {line.split()[0] for line in listing.splitlines() if line.startswith("gpf-")}


def test_the_round_trip_is_twice_the_one_way_delay_on_top_of_the_line_s_own_cost():
    before = _gpf_namespaces()
    with DelayedLink(0.0, tag="z") as link:
        zero = _round_trips(link)
    # The Python delay line's own cost (two TUN reads and writes, two thread wake-ups): small against 2 x 2 ms.
    # Its fastest round trip, not its median, which a busy machine (CI runs other tests beside it) drives up.
    assert min(zero["echo_s"]) < 0.0015, zero
    for one_way_s in (0.0005, 0.002):
        with DelayedLink(one_way_s, tag=f"d{int(one_way_s * 1e4)}") as link:
            measured = _round_trips(link)
        for name, values in measured.items():
            # every round trip pays both delays: one that went missing fails the lower bound at once
            assert min(values) >= 2 * one_way_s, (one_way_s, name, values)
            # and no more than asked: the fastest round trip, which a busy machine does not drive up as it does the
            # median, within the line's own fastest cost plus sleep overshoot (p90 about 0.4 ms per wake-up here)
            assert min(values) <= 2 * one_way_s + min(zero[name]) + 0.002, (one_way_s, name, values, zero)
    assert _gpf_namespaces() == before, "the namespaces were not removed"


def test_a_failing_setup_leaves_no_namespace_behind(monkeypatch):
    before = _gpf_namespaces()
    link = DelayedLink(0.001, tag="f")

    def refuse(*_args):
        raise OSError("refused")

    monkeypatch.setattr(link, "_start_direction", refuse)
    with pytest.raises(OSError, match="refused"):
        link.__enter__()
    assert _gpf_namespaces() == before
