"""The batch scheduler (batching.py) in virtual time: step cost, chunked prefill, KV-cache admission and preemption,
and the prefix cache that lives in the same block pool, each against what vLLM's V1 scheduler does."""

import dataclasses

import pytest
from gpufleet_simulator.batching import BatchScheduler, StepTime
from gpufleet_simulator.prefix_cache import BLOCK_SIZE
from gpufleet_simulator.scheduler import QueueFull

STEP = StepTime(base_ms=5.0, decode_ms_per_seq=0.5, prefill_ms_per_token=0.01, attention_ms_per_1k_context=1.0)


@dataclasses.dataclass(eq=False)
class Work:
    prompt_tokens: list[str]
    max_tokens: int


def prompt(tag: str, length: int, shared: int = 0) -> list[str]:
    return [f"shared{i}" for i in range(shared)] + [f"{tag}{i}" for i in range(length - shared)]


def scheduler(blocks: int = 1000, seqs: int = 8, budget: int = 2048, waiting: int = 0) -> BatchScheduler:
    return BatchScheduler(STEP, kv_cache_blocks=blocks, max_num_seqs=seqs, max_num_batched_tokens=budget,
                          max_waiting=waiting)


def run(sched: BatchScheduler, limit: int = 10_000) -> list:
    """Every step until nothing runs: (step, slots that produced a token)."""
    steps = []
    for _ in range(limit):
        step = sched.plan()
        if step is None:
            return steps
        steps.append((step, sched.finish(step)))
    raise AssertionError("the scheduler did not drain")


def test_step_time_counts_decoding_sequences_prefill_tokens_and_context():
    sched = scheduler()
    sched.add(Work(prompt("a", 100), 3))
    sched.add(Work(prompt("b", 50), 3))
    first = sched.plan()
    assert [count for _, count in first.scheduled] == [100, 50]
    assert first.seconds == pytest.approx(STEP.seconds(0, 150, 150))
    sched.finish(first)
    second = sched.plan()  # both decode one token over 101 and 51 tokens of context
    assert [count for _, count in second.scheduled] == [1, 1]
    assert second.seconds == pytest.approx((5.0 + 2 * 0.5 + 152 / 1000) / 1000)


def test_every_sequence_gets_exactly_its_tokens_and_leaves_with_its_blocks():
    sched = scheduler(blocks=100)
    works = [Work(prompt(tag, 40), tokens) for tag, tokens in (("a", 5), ("b", 1), ("c", 9))]
    slots = [sched.add(work) for work in works]
    produced = [slot for _, slots_ in run(sched) for slot in slots_]
    assert [produced.count(slot) for slot in slots] == [5, 1, 9]
    assert sched.pool.free == 100 and sched.num_running == 0


def test_chunked_prefill_keeps_decoding_sequences_going():
    sched = scheduler(budget=512)
    short = sched.add(Work(prompt("s", 10), 20))
    sched.finish(sched.plan())  # the short one has its first token
    long = sched.add(Work(prompt("l", 2000), 2))
    chunks = []
    while long.generated == 0:
        step = sched.plan()
        counts = dict((id(slot), count) for slot, count in step.scheduled)
        chunks.append(counts[id(long)])
        assert counts[id(short)] == 1  # decodes in every step of the long prefill
        assert step.seconds == pytest.approx(STEP.seconds(1, counts[id(long)], step.scheduled[0][0].computed + 1
                                                          + long.computed + counts[id(long)]))
        sched.finish(step)
    assert chunks == [511, 511, 511, 467]  # the budget less the decode token, then the rest


def test_requests_wait_for_kv_cache_blocks_and_for_slots():
    need = (100 + 10 + BLOCK_SIZE - 1) // BLOCK_SIZE  # 7 blocks for a whole sequence
    sched = scheduler(blocks=need + 2, seqs=8)
    first, second = sched.add(Work(prompt("a", 100), 10)), sched.add(Work(prompt("b", 100), 10))
    step = sched.plan()
    assert step.admitted == [first] and sched.num_waiting == 1  # 7 + 7 prompt blocks do not fit in 9
    steps = run(sched)
    assert second.generated == 10 and first.generated == 10
    slots_only = scheduler(seqs=1)
    slots_only.add(Work(prompt("a", 10), 2))
    slots_only.add(Work(prompt("b", 10), 2))
    assert len(slots_only.plan().admitted) == 1 and slots_only.num_waiting == 1
    assert steps


def test_a_sequence_that_needs_a_block_preempts_the_last_admitted_which_is_recomputed():
    # two 32-token prompts (2 blocks each) in a pool of 5: the third block either needs makes room only by preemption
    sched = scheduler(blocks=5)
    first, second = sched.add(Work(prompt("a", 32), 20)), sched.add(Work(prompt("b", 32), 20))
    preempted = []
    for step, _ in run(sched):
        preempted += step.preempted
    assert preempted and set(preempted) == {second}  # vLLM pops the request admitted last
    assert first.preemptions == 0 and second.preemptions >= 1
    assert first.generated == second.generated == 20
    assert sched.pool.free == 5


def test_a_shared_prefix_is_served_from_the_pool_and_the_last_prompt_token_is_always_computed():
    sched = scheduler()
    sched.add(Work(prompt("a", 64, shared=64), 2))
    run(sched)
    again = sched.add(Work(prompt("b", 64, shared=64), 2))
    step = sched.plan()
    assert again.cached_tokens == 48  # 4 full blocks, the last held back so that a token is computed
    assert step.scheduled == [(again, 16)]
    longer = scheduler()
    longer.add(Work(prompt("a", 80, shared=64), 2))
    run(longer)
    extended = longer.add(Work(prompt("b", 100, shared=64), 2))
    longer.plan()
    assert extended.cached_tokens == 64
    assert (longer.prefix_queries, longer.prefix_hits) == (180, 64)


def test_cached_blocks_are_evicted_least_recently_used_first_when_blocks_run_short():
    sched = scheduler(blocks=8)
    # three 49-token prompts (3 full blocks and a partial one) one after the other in 8 blocks: c's 4 blocks take
    # the 2 plain ones left and evict the 2 least recently freed, a's last two (a sequence's tail goes first)
    for tag in "abc":
        sched.add(Work(prompt(tag, 49), 1))
        run(sched)
    hits = {}
    for tag in "ca":
        slot = sched.add(Work(prompt(tag, 49), 1))
        run(sched)
        hits[tag] = slot.cached_tokens
    assert hits == {"c": 48, "a": 16}


def test_an_abort_frees_the_blocks_at_once_and_the_bounded_queue_refuses():
    sched = scheduler(blocks=50, seqs=1, waiting=1)
    running = sched.add(Work(prompt("a", 100), 50))
    sched.finish(sched.plan())
    assert sched.pool.used > 0
    waiting = sched.add(Work(prompt("b", 10), 5))
    with pytest.raises(QueueFull):
        sched.add(Work(prompt("c", 10), 5))
    sched.abort(running)
    assert sched.pool.used == 0  # its full prompt blocks stay cached, evictable, so free
    assert sched.pool.cached_prefix(running.hashes, 99) == 6
    sched.abort(waiting)
    assert sched.plan() is None
