"""The simulated model: admission, token timing, failure injection and the numbers behind the metrics."""

from __future__ import annotations

import asyncio
import dataclasses
import random
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from . import timing
from .config import FAILURE_TYPES, SimConfig
from .errors import ApiError
from .metrics import Metrics
from .prefix_cache import PrefixCache
from .scheduler import QueueFull, Scheduler
from .tokenizer import filler_tokens


@dataclasses.dataclass(eq=False)
class Sequence:
    request_id: str
    prompt_tokens: list[str]
    output: list[str]
    finish_reason: str
    arrival: float = dataclasses.field(default_factory=time.monotonic)
    cached_tokens: int = 0
    generated: int = 0
    first_token_at: float | None = None
    last_token_at: float | None = None  # set by the batching engine, which observes each gap as it happens
    planned_end: float | None = None  # set by non-streamed generation, which sleeps through the decode phase
    finished: bool = False
    stop_reason: str | None = None  # the stop string that ended the output, as vLLM reports it

    @property
    def max_tokens(self) -> int:
        return len(self.output)

    def kv_tokens(self, now: float) -> float:
        generated = self.generated
        if self.planned_end is not None and self.first_token_at is not None:
            span = max(self.planned_end - self.first_token_at, 1e-9)
            generated = 1 + (self.max_tokens - 1) * min(max((now - self.first_token_at) / span, 0.0), 1.0)
        return len(self.prompt_tokens) + generated


def cut_at_stop(seq: Sequence, stop: list[str]) -> None:
    """End the output before the first stop string, as vLLM's check_stop_strings (vllm/v1/engine/detokenizer.py):
    after each token it searches only where that token could complete a stop string, the first string of the
    list found wins, the token that completes it is still generated (and counted in usage), and the text from
    the stop string on is dropped."""
    text = ""
    for index, token in enumerate(seq.output):
        previous, text = len(text), text + token
        for string in stop:
            cut = text.find(string, max(previous - len(string) + 1, 0))
            if cut != -1:
                seq.output = _clip(seq.output[:index + 1], cut)
                seq.finish_reason, seq.stop_reason = "stop", string
                return


def _clip(tokens: list[str], length: int) -> list[str]:
    """The tokens with their text cut so that together they are the first `length` characters."""
    clipped, offset = [], 0
    for token in tokens:
        clipped.append(token[:max(length - offset, 0)])
        offset += len(token)
    return clipped


class RequestLog:
    """One line per accepted generation request, flushed to the kernel at once so even SIGKILL loses none."""

    def __init__(self, path: str) -> None:
        self._file = open(path, "a", buffering=1, encoding="utf-8")  # open for the server's lifetime

    def record(self, request_id: str) -> None:
        self._file.write(f"{time.time():.6f} {request_id}\n")


async def _sleep_until(deadline: float) -> None:
    delay = deadline - time.monotonic()
    # sleep(0) when already late still yields, so zero-latency settings cannot starve other streams
    await asyncio.sleep(max(delay, 0))


class Engine:
    def __init__(self, config: SimConfig) -> None:
        self.config = config
        self.rng = random.Random(config.seed)
        self.scheduler: Scheduler[Sequence] = Scheduler(config.max_num_seqs, config.max_waiting)
        self.prefix_cache = PrefixCache(config.prefix_cache_blocks) if config.prefix_cache_blocks else None
        self.started_at = time.monotonic()
        self.started_at_wall = time.time()
        self.request_log = RequestLog(config.request_log) if config.request_log else None
        self.metrics = Metrics(config.model, config.instance_id, running=lambda: self.num_running,
                               waiting=lambda: self.num_waiting, kv_cache_usage=self._kv_cache_usage)

    @property
    def queue(self) -> Scheduler:
        """What holds the running and waiting sequences (the batching engine's batch scheduler does too)."""
        return self.scheduler

    @property
    def num_running(self) -> int:
        return self.queue.num_running

    @property
    def num_waiting(self) -> int:
        return self.queue.num_waiting

    @property
    def caches_prefixes(self) -> bool:
        return self.prefix_cache is not None

    @property
    def ready(self) -> bool:
        return time.monotonic() - self.started_at >= self.config.startup_delay_s

    def _kv_cache_usage(self) -> float:
        now = time.monotonic()
        used = sum(seq.kv_tokens(now) for seq in self.scheduler.running)
        return min(used / (self.config.max_num_seqs * self.config.max_model_len), 1.0)

    def _load_factor(self) -> float:
        return timing.load_factor(self.scheduler.num_running, self.config.max_num_seqs,
                                  self.config.time_factor_under_load)

    def injected_failure(self) -> ApiError | None:
        if self.config.failure_rate <= 0 or self.rng.random() >= self.config.failure_rate:
            return None
        kind = self.rng.choice(self.config.failure_types)
        if kind.isdigit():
            return ApiError(int(kind), f"Injected failure (HTTP {kind}).")
        status, type_, message = FAILURE_TYPES[kind]
        return ApiError(status, message, type_)

    def _plan(self, prompt_len: int, max_tokens: int | None) -> tuple[int, str]:
        """Apply vLLM's length rules: explicit max_tokens must fit, the default is clipped to the context."""
        limit = self.config.max_model_len
        if max_tokens is not None and prompt_len + max_tokens > limit:
            raise ApiError(400, f"This model's maximum context length is {limit} tokens. However, you requested "
                                f"{prompt_len + max_tokens} tokens ({prompt_len} in the messages, {max_tokens} in "
                                "the completion). Please reduce the length of the messages or completion.",
                           param="max_tokens")
        if prompt_len >= limit:
            raise ApiError(400, f"This model's maximum context length is {limit} tokens. However, your prompt "
                                f"contains {prompt_len} tokens. Please reduce the length of the prompt.",
                           param="messages")
        if max_tokens is not None:
            return max_tokens, "length"
        count = min(self.config.output_tokens, limit - prompt_len)
        return count, "stop" if count == self.config.output_tokens else "length"

    def new_sequences(self, request_id: str, prompts: list[list[str]], max_tokens: int | None, *, n: int = 1,
                      stop: list[str] | None = None, seed: int | None = None) -> list[Sequence]:
        """One sequence per choice of each prompt, prompt-major, as vLLM fans a request out into child requests.

        Every prompt is checked before any sequence exists, so a batch with one prompt too long runs nothing.
        """
        plans = [self._plan(len(prompt), max_tokens) for prompt in prompts]
        if self.request_log is not None:
            self.request_log.record(request_id)
        seqs = []
        for prompt, (count, reason) in zip(prompts, plans, strict=True):
            for index in range(n):
                # a seed makes the text reproducible, as vLLM's per-request generator does; child j of n gets
                # seed + j (ParentRequest._get_child_sampling_params, vllm/v1/engine/parallel_sampling.py);
                # timing stays on the shared rng
                rng = self.rng if seed is None else random.Random(seed + index)
                seq = Sequence(request_id, prompt, filler_tokens(rng, count), reason)
                if stop:
                    cut_at_stop(seq, stop)
                seqs.append(seq)
        return seqs

    def new_sequence(self, request_id: str, prompt_tokens: list[str], max_tokens: int | None,
                     stop: list[str] | None = None, seed: int | None = None) -> Sequence:
        return self.new_sequences(request_id, [prompt_tokens], max_tokens, stop=stop, seed=seed)[0]

    def check_capacity(self, count: int = 1) -> None:
        """Reject before any response header is sent when the bounded waiting queue cannot take count more."""
        if not self.queue.has_room(count):
            raise ApiError(503, f"Service is overloaded: waiting queue is full ({self.config.max_waiting} requests).")

    @asynccontextmanager
    async def running(self, seq: Sequence) -> AsyncIterator[Sequence]:
        """Hold a sequence slot for the duration; leaving early (client gone) counts as an abort."""
        try:
            try:
                admitted_at = await self.scheduler.admit(seq)
            except QueueFull as exc:
                seq.finished = True  # rejected, never started: not an abort
                raise ApiError(503, f"Service is overloaded: {exc}.") from None
            try:
                self.metrics.queue_time.observe(admitted_at - seq.arrival)
                self._schedule_first_token(seq, admitted_at)
                yield seq
            finally:
                self.scheduler.release(seq)
        finally:
            if not seq.finished:
                self.metrics.request_success["abort"].inc()
                seq.finished = True

    def _schedule_first_token(self, seq: Sequence, admitted_at: float) -> None:
        prompt_len = len(seq.prompt_tokens)
        if self.prefix_cache is not None:
            seq.cached_tokens = self.prefix_cache.lookup_and_insert(seq.prompt_tokens)
            self.metrics.prefix_cache_queries.inc(prompt_len)
            self.metrics.prefix_cache_hits.inc(seq.cached_tokens)
        config = self.config
        delay = timing.first_token_delay(
            timing.sample_ms(self.rng, config.ttft_ms, config.ttft_stddev_ms),
            timing.sample_ms(self.rng, config.prefill_ms_per_token, config.prefill_stddev_ms_per_token),
            prompt_len - seq.cached_tokens, self._load_factor())
        seq.first_token_at = admitted_at + delay

    async def _first_token(self, seq: Sequence) -> float:
        await _sleep_until(seq.first_token_at)
        now = time.monotonic()
        self.metrics.ttft.observe(now - seq.arrival)
        self.metrics.prompt_tokens.inc(len(seq.prompt_tokens))
        seq.generated = 1
        self.metrics.generation_tokens.inc()
        return now

    def _itl(self) -> float:
        return timing.sample_ms(self.rng, self.config.itl_ms, self.config.itl_stddev_ms)

    def _finish(self, seq: Sequence) -> None:
        self.metrics.e2e.observe(time.monotonic() - seq.arrival)
        self.metrics.request_success[seq.finish_reason].inc()
        seq.finished = True

    async def stream(self, seq: Sequence) -> AsyncIterator[str]:
        """Yield one token at each deadline; deadlines are absolute so send time never shifts later tokens."""
        last = await self._first_token(seq)
        yield seq.output[0]
        deadline = seq.first_token_at
        for token in seq.output[1:]:
            deadline = timing.next_deadline(deadline, self._itl(), self._load_factor())
            await _sleep_until(deadline)
            now = time.monotonic()
            self.metrics.itl.observe(now - last)
            last = now
            seq.generated += 1
            self.metrics.generation_tokens.inc()
            yield token
        self._finish(seq)

    async def complete(self, seq: Sequence) -> str:
        """Non-streamed: two sleeps (first token, last token) instead of one wake-up per token."""
        await self._first_token(seq)
        factor = self._load_factor()
        gaps = [self._itl() * factor for _token in range(seq.max_tokens - 1)]
        seq.planned_end = seq.first_token_at + sum(gaps)
        await _sleep_until(seq.planned_end)
        for gap in gaps:
            self.metrics.itl.observe(gap)
        seq.generated = seq.max_tokens
        self.metrics.generation_tokens.inc(seq.max_tokens - 1)
        self._finish(seq)
        return "".join(seq.output)
