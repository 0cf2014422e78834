"""Both ways of starting the simulator: the CLI and uvicorn's factory, including how they refuse bad settings."""

import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sim_support import run_server, sim_env

CLI = [sys.executable, "-m", "gpufleet_simulator"]


def test_cli_flags_configure_the_server_and_win_over_env(tmp_path):
    command = [*CLI, "--host", "127.0.0.1", "--port", "{port}", "--no-access-log", "--model", "cli-model",
               "--instance-id", "cli-1", "--output-tokens", "3", "--ttft-ms", "1", "--itl-ms", "1"]
    with run_server(tmp_path, command=command, model="env-model") as server, server.client() as client:
        models = client.get("/v1/models")
        completion = client.post("/v1/completions", json={"prompt": "q", "model": "cli-model"})
    assert [model["id"] for model in models.json()["data"]] == ["cli-model"]
    assert models.headers["x-gpufleet-instance"] == "cli-1"
    assert completion.json()["usage"]["completion_tokens"] == 3


def _loaded_extensions(server):
    maps = Path(f"/proc/{server.process.pid}/maps").read_text()
    return {name for name in ("uvloop", "httptools") if f"/{name}/" in maps}


@pytest.mark.parametrize(("flags", "loaded"), [
    ([], {"uvloop", "httptools"}),
    (["--loop", "asyncio", "--http", "h11"], set()),
])
def test_cli_serves_on_vllms_http_stack_unless_told(tmp_path, flags, loaded):
    # vLLM's server runs on uvloop and httptools; the role's unit starts the CLI with its defaults.
    command = [*CLI, "--host", "127.0.0.1", "--port", "{port}", "--no-access-log", *flags]
    with run_server(tmp_path, command=command) as server, server.client() as client:
        assert client.post("/v1/completions", json={"prompt": "q", "model": "simulated-llm"}).status_code == 200
        assert _loaded_extensions(server) == loaded


def test_cli_closes_an_idle_keepalive_connection_after_its_timeout(tmp_path):
    command = [*CLI, "--host", "127.0.0.1", "--port", "{port}", "--no-access-log", "--timeout-keep-alive", "1"]
    with run_server(tmp_path, command=command) as server:
        port = int(server.base_url.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(f"GET /health HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
            received, last = b"", time.monotonic()
            while chunk := sock.recv(4096):  # until the server closes; the socket's timeout bounds each wait
                received, last = received + chunk, time.monotonic()
            idle = time.monotonic() - last
    assert received.startswith(b"HTTP/1.1 200"), received
    assert 0.5 <= idle <= 4, idle


def test_cli_rejects_a_bad_flag_naming_flag_and_variable():
    result = subprocess.run([*CLI, "--max-num-seqs", "0"], env=sim_env(), capture_output=True, text=True,
                            timeout=60, check=False)
    assert result.returncode == 2
    assert "--max-num-seqs (GPUFLEET_SIM_MAX_NUM_SEQS): must be >= 1, got '0'" in result.stderr


def test_cli_rejects_a_bad_environment_variable():
    result = subprocess.run([*CLI, "--port", "1"], env=sim_env(itl_ms="slow"), capture_output=True, text=True,
                            timeout=60, check=False)
    assert result.returncode == 2
    assert "GPUFLEET_SIM_ITL_MS: must be a number, got 'slow'" in result.stderr


def test_uvicorn_factory_exits_with_the_variable_named_and_no_traceback():
    command = [sys.executable, "-m", "uvicorn", "--factory", "gpufleet_simulator.app:create_app", "--port", "1"]
    result = subprocess.run(command, env=sim_env(failure_rate="2"), capture_output=True, text=True, timeout=60,
                            check=False)
    assert result.returncode != 0
    assert "invalid configuration: GPUFLEET_SIM_FAILURE_RATE: must be <= 1, got '2'" in result.stderr
    assert "Traceback" not in result.stderr


def test_uvicorn_factory_refuses_misspelt_variables():
    command = [sys.executable, "-m", "uvicorn", "--factory", "gpufleet_simulator.app:create_app", "--port", "1"]
    result = subprocess.run(command, env=sim_env(ttft="10"), capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode != 0 and "unknown variable(s) GPUFLEET_SIM_TTFT;" in result.stderr
