"""Continuous batching on a virtual clock, after vLLM's V1 scheduler (vllm/v1/core/sched/scheduler.py).

One step at a time: every running sequence gets its next token (or its next prefill chunk) within a token budget
(max_num_batched_tokens, chunked prefill), then waiting sequences are admitted, first come first served, while
slots, budget and KV-cache blocks last. A running sequence that needs a block when none is free preempts the
sequence admitted last, which frees its blocks and goes back to the head of the queue to be recomputed. The KV
cache is one pool of 16-token blocks that doubles as the prefix cache: a finished sequence's full prompt blocks
stay hashed in it until a new allocation evicts them, least recently used first.

Nothing here sleeps or reads a clock: `plan()` says what the next step does and how long it takes (the
profile's step-time model), `finish()` applies it. The server drives it in real time (engine.py), the
calibration tests in virtual time, so both run the same scheduler.
"""

from __future__ import annotations

import dataclasses
import math
from collections import OrderedDict, deque
from typing import Protocol

from .prefix_cache import BLOCK_SIZE, block_hashes
from .scheduler import QueueFull


@dataclasses.dataclass(frozen=True)
class StepTime:
    """Time of one engine step: a fixed cost (weights read once per step), a cost per decoding sequence, per
    prefill token computed, and per thousand tokens of KV cache the step's sequences attend over."""

    base_ms: float
    decode_ms_per_seq: float
    prefill_ms_per_token: float
    attention_ms_per_1k_context: float

    def seconds(self, decode_seqs: int, prefill_tokens: int, context_tokens: int) -> float:
        return (self.base_ms + self.decode_ms_per_seq * decode_seqs + self.prefill_ms_per_token * prefill_tokens
                + self.attention_ms_per_1k_context * context_tokens / 1000) / 1000


class Work(Protocol):
    """What the scheduler needs of a sequence: its prompt, and how many tokens it is to generate."""

    prompt_tokens: list[str]

    @property
    def max_tokens(self) -> int: ...


@dataclasses.dataclass(eq=False)
class Slot:
    """A sequence's place in the scheduler: tokens computed, tokens generated, blocks held."""

    work: Work
    hashes: list[int]
    generated: int = 0
    computed: int = 0
    cached_tokens: int = 0  # prompt tokens found in the prefix cache at the last admission
    private_blocks: int = 0  # blocks no other sequence can share (partial blocks, generated tokens)
    shared: list[int] = dataclasses.field(default_factory=list)  # hashed prompt blocks it holds a reference to
    preemptions: int = 0

    @property
    def num_tokens(self) -> int:
        """Tokens whose KV the next token needs: the prompt and every token generated so far."""
        return len(self.work.prompt_tokens) + self.generated

    @property
    def blocks(self) -> int:
        return self.private_blocks + len(self.shared)

    @property
    def done(self) -> bool:
        return self.generated >= self.work.max_tokens


class BlockPool:
    """KV-cache blocks. A block is free and unhashed, free and hashed (evictable, LRU order), or in use; a hashed
    block in use may be referenced by several sequences with the same prefix."""

    def __init__(self, num_blocks: int) -> None:
        self.num_blocks = num_blocks
        self._free_plain = num_blocks
        self._evictable: OrderedDict[int, None] = OrderedDict()
        self._refs: dict[int, int] = {}

    @property
    def free(self) -> int:
        return self._free_plain + len(self._evictable)

    @property
    def used(self) -> int:
        return self.num_blocks - self.free

    def cached_prefix(self, hashes: list[int], max_blocks: int) -> int:
        """How many leading blocks of a prompt are cached (in use or evictable)."""
        count = 0
        for block_hash in hashes[:max_blocks]:
            if block_hash not in self._refs and block_hash not in self._evictable:
                break
            count += 1
        return count

    def evictable_among(self, hashes: list[int]) -> int:
        return sum(1 for block_hash in hashes if block_hash in self._evictable)

    def share(self, hashes: list[int]) -> None:
        for block_hash in hashes:
            self._evictable.pop(block_hash, None)
            self._refs[block_hash] = self._refs.get(block_hash, 0) + 1

    def take(self, count: int) -> bool:
        """Allocate count plain blocks, evicting cached ones (least recently used first) when none is plain."""
        if count > self.free:
            return False
        plain = min(count, self._free_plain)
        self._free_plain -= plain
        for _evicted in range(count - plain):
            self._evictable.popitem(last=False)
        return True

    def publish(self, block_hash: int) -> bool:
        """Turn one of the caller's plain blocks into a hashed one; False when another sequence got there first
        (the caller keeps its duplicate as a plain block, as vLLM does)."""
        if block_hash in self._refs or block_hash in self._evictable:
            return False
        self._refs[block_hash] = 1
        return True

    def release(self, private_blocks: int, shared: list[int]) -> None:
        """Give back a sequence's blocks; hashed ones stay cached, the prompt's tail evicted before its head."""
        self._free_plain += private_blocks
        for block_hash in reversed(shared):
            refs = self._refs[block_hash] - 1
            if refs:
                self._refs[block_hash] = refs
            else:
                del self._refs[block_hash]
                self._evictable[block_hash] = None


@dataclasses.dataclass
class Step:
    """One engine step: which sequences advance by how many tokens, and how long it takes."""

    scheduled: list[tuple[Slot, int]]
    seconds: float
    admitted: list[Slot]
    preempted: list[Slot]


class BatchScheduler:
    def __init__(self, step_time: StepTime, *, kv_cache_blocks: int, max_num_seqs: int, max_num_batched_tokens: int,
                 max_waiting: int = 0) -> None:
        self.step_time = step_time
        self.pool = BlockPool(kv_cache_blocks)
        self.max_num_seqs = max_num_seqs
        self.max_num_batched_tokens = max_num_batched_tokens
        self.max_waiting = max_waiting
        self.running: list[Slot] = []
        self.waiting: deque[Slot] = deque()
        self.prefix_queries = 0
        self.prefix_hits = 0

    @property
    def num_running(self) -> int:
        return len(self.running)

    @property
    def num_waiting(self) -> int:
        return len(self.waiting)

    @property
    def kv_cache_usage(self) -> float:
        return self.pool.used / self.pool.num_blocks if self.pool.num_blocks else 0.0

    def has_room(self, count: int = 1) -> bool:
        return not self.max_waiting or len(self.waiting) + count <= self.max_waiting

    def add(self, work: Work) -> Slot:
        if not self.has_room():
            raise QueueFull(f"waiting queue is full ({self.max_waiting} requests)")
        slot = Slot(work, block_hashes(work.prompt_tokens))
        self.waiting.append(slot)
        return slot

    def abort(self, slot: Slot) -> None:
        if slot in self.running:
            self.running.remove(slot)
            self._free(slot)
        elif slot in self.waiting:
            self.waiting.remove(slot)

    def plan(self) -> Step | None:
        """Schedule the next step, or None when nothing can run."""
        budget = self.max_num_batched_tokens
        scheduled: list[tuple[Slot, int]] = []
        preempted: list[Slot] = []
        index = 0
        while index < len(self.running) and budget > 0:
            slot = self.running[index]
            count = min(slot.num_tokens - slot.computed, budget)
            while not self._grow(slot, slot.computed + count):
                victim = self.running.pop()
                self._preempt(victim)
                preempted.append(victim)
                if victim is slot:
                    break
            else:
                scheduled.append((slot, count))
                budget -= count
                index += 1
        admitted: list[Slot] = []
        # as in vLLM, no admission in a step that had to preempt: memory is short
        while not preempted and self.waiting and budget > 0 and len(self.running) < self.max_num_seqs:
            slot = self.waiting[0]
            if not self._admit(slot, budget):
                break
            self.waiting.popleft()
            count = min(slot.num_tokens - slot.computed, budget)
            self.running.append(slot)
            scheduled.append((slot, count))
            admitted.append(slot)
            budget -= count
        if not scheduled:
            return None
        decode = sum(1 for slot, count in scheduled if slot.computed + count == slot.num_tokens and count == 1)
        prefill = sum(count for slot, count in scheduled) - decode
        context = sum(slot.computed + count for slot, count in scheduled)
        return Step(scheduled, self.step_time.seconds(decode, prefill, context), admitted, preempted)

    def finish(self, step: Step) -> list[Slot]:
        """Apply a planned step: the sequences that produced a token, in schedule order. Finished ones leave."""
        produced = []
        for slot, count in step.scheduled:
            if slot not in self.running:
                continue  # aborted while the step ran
            slot.computed += count
            self._publish_prompt_blocks(slot)
            if slot.computed == slot.num_tokens:
                slot.generated += 1
                produced.append(slot)
                if slot.done:
                    self.running.remove(slot)
                    self._free(slot)
        return produced

    def _admit(self, slot: Slot, budget: int) -> bool:
        prompt_len = len(slot.work.prompt_tokens)
        # the last prompt token is always computed, so a fully cached prompt still misses one block
        hits = self.pool.cached_prefix(slot.hashes, max(prompt_len - 1, 0) // BLOCK_SIZE)
        count = min(slot.num_tokens - hits * BLOCK_SIZE, budget)
        needed = _blocks_for(hits * BLOCK_SIZE + count) - hits
        # blocks shared from the evictable list stop being free
        if needed + self.pool.evictable_among(slot.hashes[:hits]) > self.pool.free:
            return False
        self.pool.share(slot.hashes[:hits])
        self.pool.take(needed)
        slot.shared = list(slot.hashes[:hits])
        slot.private_blocks = needed
        slot.computed = slot.cached_tokens = hits * BLOCK_SIZE
        self.prefix_queries += prompt_len
        self.prefix_hits += slot.cached_tokens
        return True

    def _grow(self, slot: Slot, tokens: int) -> bool:
        extra = _blocks_for(tokens) - slot.blocks
        if extra <= 0:
            return True
        if not self.pool.take(extra):
            return False
        slot.private_blocks += extra
        return True

    def _publish_prompt_blocks(self, slot: Slot) -> None:
        """Full prompt blocks just computed become hashed, so that later prompts with the same prefix hit."""
        full = min(slot.computed, len(slot.work.prompt_tokens)) // BLOCK_SIZE
        for block_hash in slot.hashes[len(slot.shared):full]:
            if self.pool.publish(block_hash):
                slot.private_blocks -= 1
                slot.shared.append(block_hash)
            else:
                break  # keep `shared` a prefix of the prompt's blocks

    def _preempt(self, slot: Slot) -> None:
        self._free(slot)
        slot.computed = 0
        slot.preemptions += 1
        self.waiting.appendleft(slot)

    def _free(self, slot: Slot) -> None:
        self.pool.release(slot.private_blocks, slot.shared)
        slot.private_blocks, slot.shared = 0, []


def _blocks_for(tokens: int) -> int:
    return math.ceil(tokens / BLOCK_SIZE)
