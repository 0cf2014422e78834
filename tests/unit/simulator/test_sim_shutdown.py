"""SIGTERM as systemd sends it: uvicorn stops listening, lets open streams finish, bounded by its timeout."""

import signal
import sys
import time

import httpx
import pytest
from sim_support import run_server

REQUEST = {"prompt": "Hello", "max_tokens": 20, "stream": True}
# uvicorn >= 0.29 re-raises the signal it caught once shut down; systemd counts death by SIGTERM as a clean stop
CLEAN_EXITS = (0, -signal.SIGTERM)


def uvicorn(graceful_s: float) -> list[str]:
    return [sys.executable, "-m", "uvicorn", "--factory", "gpufleet_simulator.app:create_app", "--host", "127.0.0.1",
            "--port", "{port}", "--no-access-log", "--timeout-graceful-shutdown", str(graceful_s)]


def refused(base_url: str, within_s: float) -> bool:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        try:
            httpx.get(base_url + "/health", timeout=0.5)
        except httpx.ConnectError:
            return True
        time.sleep(0.02)
    return False


def test_sigterm_finishes_the_open_stream_and_refuses_new_connections(tmp_path):
    # 20 tokens 50 ms apart: the stream outlives the moment SIGTERM arrives by about a second
    with run_server(tmp_path, uvicorn(10), ttft_ms=1, itl_ms=50) as server, server.client() as client:
        with client.stream("POST", "/v1/completions", json=REQUEST) as response:
            lines = response.iter_lines()
            first = next(line for line in lines if line)
            server.process.send_signal(signal.SIGTERM)
            assert refused(server.base_url, within_s=0.5)
            rest = [line for line in lines if line]
        assert server.process.wait(timeout=10) in CLEAN_EXITS
    events = [first, *rest]
    assert events[-1] == "data: [DONE]" and len(events) == 21
    assert '"finish_reason":"length"' in events[-2]


def simulator_cli(graceful_s: float) -> list[str]:
    return [sys.executable, "-m", "gpufleet_simulator", "--port", "{port}", "--no-access-log",
            "--timeout-graceful-shutdown", str(graceful_s)]


@pytest.mark.parametrize("command", [uvicorn, simulator_cli])
def test_the_graceful_timeout_bounds_how_long_a_stream_holds_the_stop(tmp_path, command):
    graceful_s = 1
    # 20 tokens 1 s apart would hold a stop for 20 s; uvicorn cuts it after graceful_s
    with run_server(tmp_path, command(graceful_s), ttft_ms=1, itl_ms=1000) as server, server.client() as client:
        with client.stream("POST", "/v1/completions", json=REQUEST) as response:
            lines = response.iter_lines()  # kept: dropping the iterator would close the stream from our side
            next(line for line in lines if line)
            server.process.send_signal(signal.SIGTERM)
            started = time.monotonic()
            server.process.wait(timeout=graceful_s + 5)
            elapsed = time.monotonic() - started
            with pytest.raises(httpx.RemoteProtocolError):  # cut, no [DONE]
                list(lines)
    assert graceful_s - 0.2 <= elapsed < graceful_s + 2
