"""Requests per second of short non-streamed completions through the simulator on loopback, on two HTTP stacks.

Starts the simulator's CLI with zero latencies twice, side by side: on vLLM's stack (uvloop and httptools, the
CLI's default and what the model_server role runs) and on uvicorn's pure-Python one (asyncio and h11). Drives
each with CONCURRENCY keep-alive connections for DURATION seconds, after a warm-up, in alternating rounds;
prints the medians of ROUNDS: requests/s, and the server's CPU time per request, which a busy machine skews
less than the rate, and the ratio of the two stacks' CPU per request. They bound the load the benchmarks can
push through one instance.

    .venv/bin/python tests/bench/simulator_rps.py [--duration 5] [--rounds 3] [--concurrency 16]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: loopback, which sim_support imports
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit" / "simulator"))
from sim_support import run_server

ARMS = {"uvloop + httptools": [], "asyncio + h11": ["--loop", "asyncio", "--http", "h11"]}
BODY = {"model": "simulated-llm", "prompt": "Hello, how are you today?", "max_tokens": 4}


def _request(port: int) -> bytes:
    body = json.dumps(BODY).encode()
    return (f"POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode() + body


async def _one(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes) -> None:
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), head
    length = int(next(line.split(b":", 1)[1] for line in head.split(b"\r\n")
                      if line.lower().startswith(b"content-length:")))
    await reader.readexactly(length)


async def drive(port: int, duration: float, concurrency: int) -> float:
    """A hand-written keep-alive HTTP/1.1 client: cheap enough that the server, not the client, is measured."""
    request = _request(port)
    done = 0
    deadline = time.monotonic() + duration

    async def worker() -> None:
        nonlocal done
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while time.monotonic() < deadline:
                await _one(reader, writer, request)
                done += 1
        finally:
            writer.close()

    start = time.monotonic()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return done / (time.monotonic() - start)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (Linux /proc), so that a busy machine skews the cost less than the rate."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    settings = {"ttft_ms": 0, "itl_ms": 0, "prefill_ms_per_token": 0, "seed": 1}
    rates, costs = {arm: [] for arm in ARMS}, {arm: [] for arm in ARMS}
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        servers = {arm: stack.enter_context(run_server(Path(tmp), _command(flags), **settings))
                   for arm, flags in ARMS.items()}
        ports = {arm: int(server.base_url.rsplit(":", 1)[1]) for arm, server in servers.items()}
        for arm in ARMS:
            asyncio.run(drive(ports[arm], 1.0, args.concurrency))  # warm-up
        for _ in range(args.rounds):
            for arm, server in servers.items():
                before = cpu_seconds(server.process.pid)
                rate = asyncio.run(drive(ports[arm], args.duration, args.concurrency))
                rates[arm].append(rate)
                costs[arm].append((cpu_seconds(server.process.pid) - before) / (rate * args.duration) * 1e6)
    print(f"short non-streamed completions, medians of {args.rounds} x {args.duration:g} s, "
          f"{args.concurrency} connections, load average {os.getloadavg()[0]:.2f}:")
    for arm in ARMS:
        print(f"  {arm:<22} {statistics.median(rates[arm]):6.0f} req/s, server CPU "
              f"{statistics.median(costs[arm]):4.0f} us/request (req/s {', '.join(f'{r:.0f}' for r in rates[arm])})")
    vllm, python = (statistics.median(costs[arm]) for arm in ARMS)
    print(f"  CPU per request, uvloop+httptools / asyncio+h11: {vllm / python:.2f}")


def _command(flags: list[str]) -> list[str]:
    return [sys.executable, "-m", "gpufleet_simulator", "--host", "127.0.0.1", "--port", "{port}",
            "--no-access-log", *flags]


if __name__ == "__main__":
    main()
