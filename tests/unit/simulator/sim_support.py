"""Helpers for the simulator tests: the package on sys.path, a real uvicorn server, SSE and metrics parsing."""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
from loopback import free_port

PACKAGE_DIR = Path(__file__).resolve().parents[3] / "roles" / "model_server" / "files" / "simulator"
SRC = PACKAGE_DIR / "src"
sys.path.insert(0, str(SRC))

START_TIMEOUT_S = 20.0


def sim_env(**settings: object) -> dict[str, str]:
    """Process environment with GPUFLEET_SIM_<KEY> for each setting and the package on PYTHONPATH."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("GPUFLEET_SIM_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(SRC), env.get("PYTHONPATH")]))
    env.update({f"GPUFLEET_SIM_{key.upper()}": str(value) for key, value in settings.items()})
    return env


class Server:
    def __init__(self, base_url: str, process: subprocess.Popen, log: Path) -> None:
        self.base_url = base_url
        self.process = process
        self.log = log

    def client(self, **kwargs) -> httpx.Client:
        return httpx.Client(base_url=self.base_url, timeout=30.0, **kwargs)

    def metrics(self) -> str:
        return httpx.get(self.base_url + "/metrics", timeout=10.0).text


def _wait_until_listening(base_url: str, process: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"simulator exited with {process.returncode}:\n{log.read_text()}")
        with contextlib.suppress(httpx.TransportError):
            if httpx.get(base_url + "/metrics", timeout=2.0).status_code == 200:
                return
        time.sleep(0.05)
    raise RuntimeError(f"simulator did not start within {START_TIMEOUT_S}s:\n{log.read_text()}")


@contextlib.contextmanager
def run_server(tmp_path: Path, command: list[str] | None = None, **settings: object) -> Iterator[Server]:
    """Start the simulator as the model_server role runs it (its CLI, or command) on a free port on 127.0.0.1."""
    port = free_port()
    command = command or [sys.executable, "-m", "gpufleet_simulator", "--host", "127.0.0.1", "--port", str(port),
                          "--no-access-log"]
    command = [part.replace("{port}", str(port)) for part in command]
    log = tmp_path / f"simulator-{port}.log"
    with log.open("w") as out:
        process = subprocess.Popen(command, env=sim_env(**settings), stdout=out, stderr=subprocess.STDOUT)
    base_url = f"http://127.0.0.1:{port}"
    try:
        _wait_until_listening(base_url, process, log)
        yield Server(base_url, process, log)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def sse_events(body: str) -> list[str]:
    """Split an SSE body into event payloads, asserting the framing of every event on the way."""
    assert body.endswith("\n\n"), body[-80:]
    events = body[:-2].split("\n\n")
    for event in events:
        assert event.startswith("data: ") and "\n" not in event, event
    return [event[len("data: "):] for event in events]


_SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$')
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse_metrics(text: str) -> dict[tuple[str, frozenset], float]:
    """Exposition text -> {(name, frozenset of label pairs): value}."""
    samples = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, labels, value = _SAMPLE.match(line).groups()
            samples[(name, frozenset(_LABEL.findall(labels or "")))] = float(value)
    return samples


def metric_value(text: str, name: str, **labels: str) -> float:
    key = (name, frozenset(labels.items()))
    samples = parse_metrics(text)
    assert key in samples, f"{name}{labels} not in metrics:\n{text}"
    return samples[key]


def metrics_once_idle(server: Server, labels: dict[str, str], timeout_s: float = 5.0) -> str:
    """The metrics once no request runs any more (an abort takes a moment to reach the engine), or at the timeout."""
    deadline = time.monotonic() + timeout_s
    while True:
        metrics = server.metrics()
        if metric_value(metrics, "vllm:num_requests_running", **labels) == 0 or time.monotonic() >= deadline:
            return metrics
        time.sleep(0.05)
