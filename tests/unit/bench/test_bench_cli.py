"""`python -m gpufleet_bench run`: JSON that strict parsers accept, a PNG, and clear refusals."""

import json
import subprocess
import sys

from bench_support import REPO


def _bench(*args, timeout=60):
    return subprocess.run([sys.executable, "-m", "gpufleet_bench", *args], cwd=REPO / "tests" / "bench",
                          capture_output=True, text=True, timeout=timeout, check=False)


def _strict(text):
    def refuse(constant):
        raise ValueError(f"not strict JSON: {constant}")
    return json.loads(text, parse_constant=refuse)


def test_run_writes_results_records_and_a_plot(simulator, tmp_path):
    out, plot = tmp_path / "run.json", tmp_path / "run.png"
    result = _bench("run", "--base-url", simulator.url, "--arrivals", "poisson", "--rate", "40",
                    "--num-requests", "12", "--max-tokens", "4", "--goodput", "ttft:1000", "--goodput", "tpot:0.001",
                    "--seed", "3", "--json", str(out), "--records", "--plot", str(plot))
    assert result.returncode == 0, result.stderr
    document = _strict(out.read_text())
    summary = document["summary"]
    assert (summary["requests"], summary["completed"], summary["total_output_tokens"]) == (12, 12, 48)
    assert summary["slo_attainment"] == 0.0 and summary["goodput"] == 0.0  # nobody makes 1 µs per token
    assert len(document["records"]) == 12 and document["records"][0]["ok"] is True
    assert document["settings"]["rate"] == 40.0 and document["machine"]["cpus"] >= 1
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_run_refuses_an_open_loop_without_a_rate_and_a_bad_slo(simulator):
    result = _bench("run", "--base-url", simulator.url, "--arrivals", "poisson")
    assert result.returncode != 0 and "needs --rate" in result.stderr
    result = _bench("run", "--base-url", simulator.url, "--rate", "1", "--goodput", "latency:5")
    assert result.returncode == 2 and "METRIC:MS" in result.stderr


def test_suite_refuses_an_unknown_comparison():
    result = _bench("suite", "--only", "streaming,warp-drive")
    assert result.returncode == 2 and "warp-drive" in result.stderr
