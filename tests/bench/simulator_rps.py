"""Requests per second of short non-streamed completions through the simulator on loopback.

Starts `uvicorn --factory gpufleet_simulator.app:create_app` with zero latencies and drives it with
CONCURRENCY keep-alive connections for DURATION seconds, after a warm-up; prints the medians of ROUNDS:
requests/s, and the server's CPU time per request, which a busy machine skews less than the rate. They bound
the load the benchmarks can push through one instance.

    .venv/bin/python tests/bench/simulator_rps.py [--duration 5] [--rounds 3] [--concurrency 16]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit" / "simulator"))
from sim_support import run_server

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
    with tempfile.TemporaryDirectory() as tmp, run_server(Path(tmp), **settings) as server:
        port = int(server.base_url.rsplit(":", 1)[1])
        asyncio.run(drive(port, 1.0, args.concurrency))  # warm-up
        rates, costs = [], []
        for _ in range(args.rounds):
            before = cpu_seconds(server.process.pid)
            rate = asyncio.run(drive(port, args.duration, args.concurrency))
            rates.append(rate)
            costs.append((cpu_seconds(server.process.pid) - before) / (rate * args.duration) * 1e6)
    print(f"short non-streamed completions: {statistics.median(rates):.0f} req/s, server CPU "
          f"{statistics.median(costs):.0f} us/request (medians of {args.rounds} x {args.duration:g} s, "
          f"{args.concurrency} connections; req/s {', '.join(f'{rate:.0f}' for rate in rates)})")


if __name__ == "__main__":
    main()
