"""Both ways of starting the simulator: the CLI and uvicorn's factory, including how they refuse bad settings."""

import subprocess
import sys

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
