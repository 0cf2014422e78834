"""The batch scheduler in virtual time: a closed loop of clients, as `vllm bench serve --max-concurrency` runs
one, measured the way published serving benchmarks report it (median TTFT, mean inter-token latency).

No sleeping: a run of minutes of engine time takes milliseconds, so the profiles' calibration against published
figures is a unit test (and `python -m gpufleet_simulator.virtual` prints it as a table).
"""

from __future__ import annotations

import dataclasses
import heapq
import statistics

from .batching import BatchScheduler, StepTime
from .profiles import PROFILES, Profile


@dataclasses.dataclass(eq=False)
class _Request:
    prompt_tokens: list[str]
    max_tokens: int
    sent_at: float
    first_token_at: float | None = None
    finished_at: float | None = None


@dataclasses.dataclass(frozen=True)
class LoopResult:
    ttft_ms_median: float
    itl_ms_mean: float
    output_tokens_per_s: float
    requests: int
    preemptions: int
    prefix_hit_rate: float


def closed_loop(step_time: StepTime, *, kv_cache_blocks: int, max_num_seqs: int, max_num_batched_tokens: int,
                concurrency: int, prompt_tokens: int, output_tokens: int, requests: int,
                shared_prefix_tokens: int = 0) -> LoopResult:
    """`concurrency` clients each send their next request as soon as the last one ends, `requests` in all;
    every prompt is unique past its first shared_prefix_tokens. The first `concurrency` requests warm up and
    are not measured."""
    scheduler = BatchScheduler(step_time, kv_cache_blocks=kv_cache_blocks, max_num_seqs=max_num_seqs,
                               max_num_batched_tokens=max_num_batched_tokens)
    prefix = [f"shared{i}" for i in range(shared_prefix_tokens)]
    sent: list[_Request] = []
    due: list[tuple[float, int]] = []  # (send time, index in sent): a client's next request may be due before
    # another client's first one

    def send(at: float) -> None:
        unique = [f"r{len(sent)}t{i}" for i in range(prompt_tokens - shared_prefix_tokens)]
        heapq.heappush(due, (at, len(sent)))
        sent.append(_Request(prefix + unique, output_tokens, at))

    # A long benchmark's clients are out of step with each other; starting them spread over one request's
    # decode keeps them so from the first request on (all at once, they would send in lockstep for ever).
    spread = output_tokens * step_time.seconds(concurrency, 0, concurrency * prompt_tokens) / concurrency
    for client in range(min(concurrency, requests)):
        send(client * spread)
    now, preemptions, finished = 0.0, 0, 0
    while finished < len(sent):
        while due and due[0][0] <= now:
            scheduler.add(sent[heapq.heappop(due)[1]])
        step = scheduler.plan()
        if step is None:
            if not due:
                raise RuntimeError("the scheduler can run nothing: the KV cache cannot hold one request")
            now = due[0][0]
            continue
        now += step.seconds
        preemptions += len(step.preempted)
        for slot in scheduler.finish(step):
            request = slot.work
            if slot.generated == 1:
                request.first_token_at = now
            if slot.done:
                request.finished_at = now
                finished += 1
                if len(sent) < requests:
                    send(now)
    measured = sent[concurrency:] or sent
    ttfts = [(r.first_token_at - r.sent_at) * 1000 for r in measured]
    itls = [(r.finished_at - r.first_token_at) * 1000 / (r.max_tokens - 1) for r in measured if r.max_tokens > 1]
    # Little's law for a closed loop: C requests always in flight, each taking the mean latency
    latency = statistics.fmean(r.finished_at - r.sent_at for r in measured)
    return LoopResult(statistics.median(ttfts), statistics.fmean(itls) if itls else 0.0,
                      min(concurrency, requests) * output_tokens / latency, len(measured), preemptions,
                      scheduler.prefix_hits / scheduler.prefix_queries if scheduler.prefix_queries else 0.0)


def replay(profile: Profile, concurrency: int, **overrides) -> LoopResult:
    """The profile's published run at one concurrency (vLLM's default max_num_seqs on an 80 GB GPU, 1024), each
    client sending 4 requests; overrides change any closed_loop argument."""
    settings = {"kv_cache_blocks": profile.kv_cache_blocks, "max_num_seqs": 1024,
                "max_num_batched_tokens": profile.max_num_batched_tokens, "concurrency": concurrency,
                "prompt_tokens": profile.prompt_tokens, "output_tokens": profile.output_tokens,
                "requests": 4 * concurrency, **overrides}
    return closed_loop(profile.step_time, **settings)


def calibration_table() -> str:
    """Each profile's closed loop against the published run it was fitted to, as a markdown table."""

    lines = ["| profile | concurrency | TTFT p50 published (ms) | simulated | ratio | ITL mean published (ms) | "
             "simulated | ratio |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for profile in PROFILES.values():
        for published in profile.published:
            result = replay(profile, published.concurrency)
            lines.append(f"| {profile.name} | {published.concurrency} | {published.ttft_ms:.1f} | "
                         f"{result.ttft_ms_median:.1f} | {result.ttft_ms_median / published.ttft_ms:.2f} | "
                         f"{published.itl_ms:.2f} | {result.itl_ms_mean:.2f} | "
                         f"{result.itl_ms_mean / published.itl_ms:.2f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(calibration_table())
