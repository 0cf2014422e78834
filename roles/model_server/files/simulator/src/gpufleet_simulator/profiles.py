"""Named GPU profiles for the batching engine, each calibrated to a published vLLM serving benchmark.

How well: the mean inter-token latency within 6 % of the published one at every concurrency; the median TTFT
within 25 %, flatter than published (the model's grows 49 -> 53 ms from C = 1 to 16 where the H200 run's grows
39 -> 66 ms: step time alone does not explain how much a busy server's TTFT grows; vLLM's API server, which
tokenizes and streams for every request in one process, adds to it).

A profile is a step-time model (batching.StepTime), a KV-cache size and vLLM's default token budget on that GPU.
Its step-time constants were fitted so that a closed loop in virtual time (virtual.closed_loop, the published run's
workload and concurrencies) reproduces the published median TTFT and mean inter-token latency; the published
figures are kept beside each profile and tests/unit/simulator/test_sim_profiles.py checks the fit.

Source of both published tables: the repository sariekr/gpu_conc on GitHub ("RunPod vLLM Concurrency Benchmark"),
files H200/benchmark_summary_20250814_182107.json and H100/benchmark_concurrency_{1,8,16}.json: vLLM serving
openai/gpt-oss-20b (--max-model-len 8192 --gpu-memory-utilization 0.85), prompts of about 1000 tokens, up to 1000
output tokens, a closed loop of C streaming clients for 180 s per level (its concurrency.py). TTFT there is the
median from send to first token; inter-token latency is 1000 / its median "output speed per query" (tokens after the
first over the time after the first). Only C <= 16 is used: above it that client's own throughput flattens
(system tokens/s ÷ per-query tokens/s is 19 at C = 32 and 20 at C = 64), so the server was no longer what it measured.

KV-cache sizes are estimates, not published: (GPU memory x 0.85 - 13 GiB of MXFP4 weights - 3 GiB of activations
and CUDA graphs) ÷ 48 KiB per token (24 layers x 8 KV heads x 64 x 2 (K and V) x 2 bytes, bf16; vLLM's hybrid
allocator gives the 12 sliding-window layers pages of the same size as the full-attention ones), in 16-token blocks.

vLLM's defaults on a GPU of 70 GiB or more that is not an A100 (vllm/engine/arg_utils.py, get_batch_defaults):
max_num_batched_tokens 8192 for the OpenAI server.
"""

from __future__ import annotations

import dataclasses

from .batching import StepTime


@dataclasses.dataclass(frozen=True)
class Published:
    concurrency: int
    ttft_ms: float  # median
    itl_ms: float  # mean: 1000 / the median per-query output speed


@dataclasses.dataclass(frozen=True)
class Profile:
    name: str
    model: str
    gpu: str
    step_time: StepTime
    kv_cache_blocks: int
    max_num_batched_tokens: int
    source: str
    prompt_tokens: int  # the published run's workload
    output_tokens: int
    published: tuple[Published, ...]


_GPU_CONC = "github.com/sariekr/gpu_conc"

PROFILES: dict[str, Profile] = {profile.name: profile for profile in (
    Profile(
        name="gpt-oss-20b-h200", model="openai/gpt-oss-20b", gpu="1x NVIDIA H200 (141 GB)",
        step_time=StepTime(base_ms=4.08, decode_ms_per_seq=0.231, prefill_ms_per_token=0.0446,
                           attention_ms_per_1k_context=0.0438),
        kv_cache_blocks=135_000, max_num_batched_tokens=8192,
        source=f"{_GPU_CONC} H200/benchmark_summary_20250814_182107.json", prompt_tokens=1000, output_tokens=1000,
        published=(Published(1, 39.0, 1000 / 220.79), Published(4, 53.5, 1000 / 184.75),
                   Published(8, 57.9, 1000 / 162.06), Published(16, 66.0, 1000 / 110.68))),
    Profile(
        name="gpt-oss-20b-h100-pcie", model="openai/gpt-oss-20b", gpu="1x NVIDIA H100 PCIe (80 GB)",
        step_time=StepTime(base_ms=6.24, decode_ms_per_seq=0.227, prefill_ms_per_token=0.0671,
                           attention_ms_per_1k_context=0.0457),
        kv_cache_blocks=67_000, max_num_batched_tokens=8192,
        source=f"{_GPU_CONC} H100/benchmark_concurrency_{{1,8,16}}.json", prompt_tokens=1000, output_tokens=1000,
        published=(Published(1, 59.3, 1000 / 149.03), Published(8, 88.8, 1000 / 113.68),
                   Published(16, 102.7, 1000 / 89.71))),
)}
