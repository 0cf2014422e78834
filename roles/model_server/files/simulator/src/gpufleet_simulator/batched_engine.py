"""The simulated model on a named GPU profile: continuous batching (batching.py) run in real time.

One task runs the engine's steps, as vLLM's engine core does: it plans a step, sleeps for the step's time, then
hands each sequence that produced a token its token. Requests only wait for their tokens; the batch, not the
request, decides when they come, so load slows every sequence, prefill slows the decoding ones, a full KV cache
holds requests back or preempts them, and a cached prefix shortens a prefill.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from .batching import BatchScheduler, QueueFull, Slot, Step
from .config import ConfigError, SimConfig
from .engine import Engine, Sequence
from .errors import ApiError
from .prefix_cache import BLOCK_SIZE
from .profiles import PROFILES

logger = logging.getLogger("uvicorn.error")


def create_engine(config: SimConfig) -> Engine:
    """The fixed-latency engine, or the batching one when the config names a profile."""
    return BatchedEngine(config) if config.profile else Engine(config)


class BatchedEngine(Engine):
    def __init__(self, config: SimConfig) -> None:
        profile = PROFILES[config.profile]
        kv_cache_blocks = config.kv_cache_blocks or profile.kv_cache_blocks
        if kv_cache_blocks * BLOCK_SIZE < config.max_model_len:
            # vLLM refuses to start when one request of max_model_len cannot fit in the KV cache
            raise ConfigError(f"GPUFLEET_SIM_KV_CACHE_BLOCKS: {kv_cache_blocks} blocks of {BLOCK_SIZE} tokens cannot "
                              f"hold one request of max_model_len {config.max_model_len}")
        self.profile = profile
        self.batch = BatchScheduler(profile.step_time, kv_cache_blocks=kv_cache_blocks,
                                    max_num_seqs=config.max_num_seqs,
                                    max_num_batched_tokens=config.max_num_batched_tokens
                                    or profile.max_num_batched_tokens, max_waiting=config.max_waiting)
        super().__init__(config)
        self._slots: dict[Sequence, Slot] = {}
        self._progress: dict[Slot, asyncio.Event] = {}
        self._work = asyncio.Event()
        self._steps: asyncio.Task | None = None

    @property
    def queue(self) -> BatchScheduler:  # type: ignore[override]
        return self.batch

    @property
    def caches_prefixes(self) -> bool:
        return True  # vLLM V1 caches prefixes unless told not to

    def _kv_cache_usage(self) -> float:
        return self.batch.kv_cache_usage

    @asynccontextmanager
    async def running(self, seq: Sequence) -> AsyncIterator[Sequence]:
        try:
            try:
                slot = self.batch.add(seq)
            except QueueFull as exc:
                seq.finished = True  # rejected, never started: not an abort
                raise ApiError(503, f"Service is overloaded: {exc}.") from None
            self._slots[seq], self._progress[slot] = slot, asyncio.Event()
            self._start_steps()
            self._work.set()
            try:
                yield seq
            finally:
                self.batch.abort(slot)  # nothing when it finished; frees its blocks when the client left
                del self._slots[seq], self._progress[slot]
        finally:
            if not seq.finished:
                self.metrics.request_success["abort"].inc()
                seq.finished = True

    async def _token(self, seq: Sequence, index: int) -> None:
        """Wait until the sequence has generated its index-th token (0-based)."""
        slot = self._slots[seq]
        progress = self._progress[slot]
        while slot.generated <= index:
            progress.clear()
            await progress.wait()

    async def stream(self, seq: Sequence) -> AsyncIterator[str]:
        for index, token in enumerate(seq.output):
            await self._token(seq, index)
            yield token
        self._finish(seq)

    async def complete(self, seq: Sequence) -> str:
        await self._token(seq, seq.max_tokens - 1)
        self._finish(seq)
        return "".join(seq.output)

    def _start_steps(self) -> None:
        if self._steps is None or self._steps.done():
            self._steps = asyncio.get_running_loop().create_task(self._run_steps())
            self._steps.add_done_callback(_log_crash)

    async def _run_steps(self) -> None:
        """Steps back to back while there is work; each ends at a deadline chained from the last, so time spent
        delivering tokens does not slow the engine."""
        deadline = time.monotonic()
        while True:
            step = self.batch.plan()
            if step is None:
                self._work.clear()
                await self._work.wait()
                deadline = time.monotonic()
                continue
            started = max(deadline, time.monotonic())
            self._admitted(step, started)
            deadline = started + step.seconds
            await asyncio.sleep(max(deadline - time.monotonic(), 0))
            self._produced(self.batch.finish(step), time.monotonic())

    def _admitted(self, step: Step, now: float) -> None:
        for slot in step.admitted:
            seq: Sequence = slot.work  # type: ignore[assignment]
            prompt_len = len(seq.prompt_tokens)
            self.metrics.prefix_cache_queries.inc(prompt_len)
            self.metrics.prefix_cache_hits.inc(slot.cached_tokens)
            if slot.preemptions == 0:
                seq.cached_tokens = slot.cached_tokens
                self.metrics.queue_time.observe(now - seq.arrival)

    def _produced(self, slots: list[Slot], now: float) -> None:
        for slot in slots:
            seq: Sequence = slot.work  # type: ignore[assignment]
            if slot.generated == 1:
                self.metrics.ttft.observe(now - seq.arrival)
                self.metrics.prompt_tokens.inc(len(seq.prompt_tokens))
                seq.first_token_at = now
            else:
                self.metrics.itl.observe(now - seq.last_token_at)
            seq.last_token_at = now
            seq.generated = slot.generated
            self.metrics.generation_tokens.inc()
            progress = self._progress.get(slot)
            if progress is not None:
                progress.set()


def _log_crash(task: asyncio.Task) -> None:
    if not task.cancelled() and task.exception() is not None:
        logger.error("the engine's step loop failed", exc_info=task.exception())
