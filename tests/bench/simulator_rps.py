"""Requests per second of short non-streamed completions through the simulator on loopback.

Starts `uvicorn --factory gpufleet_simulator.app:create_app` with zero latencies and drives it with
CONCURRENCY keep-alive connections for DURATION seconds, after a warm-up; prints the median of ROUNDS.
The figure measures the simulator's own per-request cost (parsing, validation, bodies), which bounds the
load the benchmarks can push through one instance.

    .venv/bin/python tests/bench/simulator_rps.py [--duration 5] [--rounds 3] [--concurrency 16]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit" / "simulator"))
from sim_support import run_server

BODY = {"model": "simulated-llm", "prompt": "Hello, how are you today?", "max_tokens": 4}


async def drive(base_url: str, duration: float, concurrency: int) -> float:
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=30) as client:
        done = 0
        deadline = time.monotonic() + duration

        async def worker() -> None:
            nonlocal done
            while time.monotonic() < deadline:
                response = await client.post("/v1/completions", json=BODY)
                assert response.status_code == 200, response.text
                done += 1

        start = time.monotonic()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return done / (time.monotonic() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    settings = {"ttft_ms": 0, "itl_ms": 0, "prefill_ms_per_token": 0, "seed": 1}
    with tempfile.TemporaryDirectory() as tmp, run_server(Path(tmp), **settings) as server:
        asyncio.run(drive(server.base_url, 1.0, args.concurrency))  # warm-up
        rates = [asyncio.run(drive(server.base_url, args.duration, args.concurrency)) for _ in range(args.rounds)]
    print(f"short non-streamed completions: {statistics.median(rates):.0f} req/s "
          f"(median of {args.rounds} x {args.duration:g} s, {args.concurrency} connections; "
          f"rounds: {', '.join(f'{rate:.0f}' for rate in rates)})")


if __name__ == "__main__":
    main()
