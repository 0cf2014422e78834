"""Scheduler and engine in-process (no HTTP): FIFO slots, absolute token deadlines, load slow-down."""

import asyncio
import time

import pytest
from gpufleet_simulator.config import SimConfig
from gpufleet_simulator.engine import Engine
from gpufleet_simulator.errors import ApiError
from gpufleet_simulator.scheduler import QueueFull, Scheduler


def engine(**settings) -> Engine:
    return Engine(SimConfig(instance_id="test", seed=1, prefill_ms_per_token=0, **settings))


def test_scheduler_admits_in_arrival_order_and_bounds_the_queue():
    async def scenario():
        scheduler = Scheduler(max_running=1, max_waiting=2)
        order = []

        async def job(name):
            await scheduler.admit(name)
            order.append(name)
            await asyncio.sleep(0.01)
            scheduler.release(name)

        first = asyncio.ensure_future(job("a"))
        await asyncio.sleep(0)
        waiters = [asyncio.ensure_future(job(name)) for name in "bc"]
        await asyncio.sleep(0)
        assert (scheduler.num_running, scheduler.num_waiting) == (1, 2)
        with pytest.raises(QueueFull):
            await scheduler.admit("d")
        await asyncio.gather(first, *waiters)
        return order, scheduler.num_running

    assert asyncio.run(scenario()) == (["a", "b", "c"], 0)


def test_cancelled_waiter_leaves_the_queue():
    async def scenario():
        scheduler = Scheduler(max_running=1)
        await scheduler.admit("a")
        waiter = asyncio.ensure_future(scheduler.admit("b"))
        await asyncio.sleep(0)
        waiter.cancel()
        await asyncio.gather(waiter, return_exceptions=True)
        scheduler.release("a")
        return scheduler.num_running, scheduler.num_waiting

    assert asyncio.run(scenario()) == (0, 0)


def test_stream_deadlines_absorb_slow_sends_without_drift():
    """A consumer that takes 6 ms per token must not stretch a 10 ms ITL schedule to 16 ms."""
    sim = engine(ttft_ms=20, itl_ms=10)

    async def scenario():
        seq = sim.new_sequence("r", ["x"], 30)
        start = time.monotonic()
        async with sim.running(seq):
            async for _ in sim.stream(seq):
                time.sleep(0.006)  # blocking on purpose: the send path is slow
        return time.monotonic() - start

    elapsed = asyncio.run(scenario())
    assert 0.020 + 29 * 0.010 <= elapsed < 0.020 + 29 * 0.016 - 0.05


def test_running_sequences_slow_each_other_down_by_the_load_factor():
    sim = engine(ttft_ms=0, itl_ms=20, max_num_seqs=2, time_factor_under_load=3.0)

    async def one(tokens):
        seq = sim.new_sequence("r", ["x"], tokens)
        start = time.monotonic()
        async with sim.running(seq):
            await sim.complete(seq)
        return time.monotonic() - start

    async def scenario():
        alone = await one(11)
        together = await asyncio.gather(one(11), one(11))
        return alone, together

    alone, together = asyncio.run(scenario())
    assert 0.19 <= alone < 0.45              # 10 gaps of 20 ms
    assert min(together) >= 0.55            # 10 gaps of 60 ms: two running is max-num-seqs, factor 3


def test_length_rules_follow_vllm():
    sim = engine(max_model_len=20, output_tokens=8)
    assert sim.new_sequence("r", ["x"] * 5, None).max_tokens == 8
    assert sim.new_sequence("r", ["x"] * 5, None).finish_reason == "stop"
    clipped = sim.new_sequence("r", ["x"] * 15, None)
    assert (clipped.max_tokens, clipped.finish_reason) == (5, "length")
    with pytest.raises(ApiError) as error:
        sim.new_sequence("r", ["x"] * 15, 6)
    assert error.value.status == 400 and "maximum context length is 20 tokens" in error.value.message
    with pytest.raises(ApiError):
        sim.new_sequence("r", ["x"] * 20, None)
