"""A benchmark client the project did not write (NVIDIA's aiperf), run against the same arm as the project's own.

aiperf runs from its own virtual environment (make bench-peer-venv, pinned in requirements/bench-peer.txt), offline:
its tokenizer is the one peer_tokenizer builds, which counts tokens exactly as the simulator does.

aiperf's "Inter Token Latency" is a per-request mean, (latency - TTFT) / (tokens - 1), which hides a proxy that
buffers a stream and lets it go in bursts. Its per-record export (profile_export.jsonl, --export-level records)
holds every gap between streamed chunks (`inter_chunk_latency`); the simulator sends one token per chunk, so those
are per-token gaps, and ITL here is their percentiles over all gaps of all requests, as the project's client
reports it (stats.summarize).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import statistics
import subprocess
from pathlib import Path

from . import peer_tokenizer, stats
from .fixtures import REPO

VENV = REPO / ".cache" / "bench-peer-venv"
NAME = "aiperf"
PROMPT_TOKENS = 32  # as the project's workload.requests(..., 32, ...) of the streaming and mixed-length runs
FIGURES = (("TTFT p50 (ms)", "ttft_p50"), ("TTFT p99 (ms)", "ttft_p99"), ("ITL p50 (ms), per gap", "itl_p50"),
           ("ITL p99 (ms), per gap", "itl_p99"), ("output tokens/s", "tok_s"))


def executable() -> Path:
    return VENV / "bin" / "aiperf"


def available() -> bool:
    return executable().exists()


@dataclasses.dataclass(frozen=True)
class Load:
    """The load shape: a closed loop of `concurrency` streams, or Poisson arrivals at `rate` per second."""

    requests: int
    mix: list[tuple[int, float]]  # output tokens and weights, as workload.requests takes them
    concurrency: int | None = None
    rate: float | None = None
    seed: int = 0


def command(url: str, load: Load, tokenizer: str, artifacts: Path, model: str) -> list[str]:
    """aiperf's command line for one run against url (an OpenAI-compatible server's base URL)."""
    argv = [str(executable()), "profile", "--model", model, "--url", url, "--endpoint-type", "completions",
            "--streaming", "--tokenizer", tokenizer, "--request-count", str(load.requests),
            # max_tokens is the output length; ignore_eos as vLLM takes it (the simulator always fills max_tokens)
            "--extra-inputs", "ignore_eos:true", "--artifact-dir", str(artifacts), "--export-level", "records",
            "--ui-type", "none", "--random-seed", str(load.seed), "--no-server-metrics", "--no-gpu-telemetry"]
    if len(load.mix) == 1:
        argv += ["--isl", str(PROMPT_TOKENS), "--osl", str(load.mix[0][0])]
    else:  # ISL,OSL:percent pairs
        total = sum(weight for _, weight in load.mix)
        argv += ["--seq-dist", ";".join(f"{PROMPT_TOKENS},{tokens}:{100 * weight / total:g}"
                                        for tokens, weight in load.mix)]
    if load.concurrency:
        argv += ["--concurrency", str(load.concurrency)]
    if load.rate:
        argv += ["--request-rate", f"{load.rate:g}", "--arrival-pattern", "poisson"]
    return argv


def parse(artifacts: Path) -> dict:
    """The run's figures from aiperf's per-record export, with the project's definitions (stats.py)."""
    ttfts, gaps, starts, ends = [], [], [], []
    output_tokens = failed = 0
    for line in (artifacts / "profile_export.jsonl").read_text().splitlines():
        if not line.strip():
            continue
        row = json.loads(line)
        metrics, metadata = row.get("metrics") or {}, row.get("metadata") or {}
        starts.append(metadata["request_start_ns"])
        ends.append(metadata.get("request_end_ns") or metadata["request_start_ns"])
        if row.get("error") or metadata.get("was_cancelled"):
            failed += 1
            continue
        ttfts.append(_ms(metrics["time_to_first_token"]))
        gaps += _ms(metrics.get("inter_chunk_latency") or {"value": [], "unit": "ms"})
        output_tokens += metrics["output_sequence_length"]["value"]
    # tokens/s over the run's wall time, first request sent to last response ended, as stats.summarize has it
    duration = (max(ends) - min(starts)) / 1e9 if starts else 0.0
    return {"requests": len(starts), "failed": failed,
            "tok_s": output_tokens / duration if duration > 0 else math.nan,
            "ttft_p50": stats.percentile(ttfts, 50), "ttft_p99": stats.percentile(ttfts, 99),
            "itl_p50": stats.percentile(gaps, 50), "itl_p99": stats.percentile(gaps, 99)}


_TO_MS = {"ns": 1e-6, "us": 1e-3, "ms": 1.0, "sec": 1e3, "s": 1e3}


def _ms(metric: dict):
    """A record's metric (a number or a list) in milliseconds, whatever display unit aiperf chose."""
    scale = _TO_MS[metric["unit"]]
    value = metric["value"]
    return [item * scale for item in value] if isinstance(value, list) else value * scale


def run(url: str, load: Load, workdir: Path, label: str, *, model: str, timeout_s: float) -> dict:
    """Run aiperf once against url and return its figures; raises if it fails."""
    hf_home = workdir / "peer-hf"
    tokenizer = peer_tokenizer.build_hub_cache(hf_home)
    artifacts = workdir / f"peer-{label}"
    # HF_HUB_OFFLINE: nothing is fetched; HF_HOME: the tokenizer's cache is the only one it sees
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(hf_home)}
    argv = command(url, load, tokenizer, artifacts, model)
    result = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout_s, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"{NAME} exited {result.returncode} against {url}: {result.stderr[-2000:]}")
    return parse(artifacts)


def version() -> str:
    """The installed aiperf's version (from its metadata in the peer venv)."""
    found = sorted((next(iter(VENV.glob("lib/python*/site-packages")), VENV)).glob("aiperf-*.dist-info"))
    return found[0].name.removeprefix("aiperf-").removesuffix(".dist-info") if found else "unknown"


def beside_own(arms: dict[str, list[dict]], figures: dict[str, dict]) -> list[tuple[str, str]]:
    """Put each arm's peer figures, and their ratio to the median of the project's repetitions, into the arm's
    first repetition (an Outcome's median skips the repetitions without them); returns the table rows."""
    for arm, peer_figures in figures.items():
        first = arms[arm][0]
        for _, key in FIGURES:
            own = statistics.median(rep[key] for rep in arms[arm])
            first[f"peer_{key}"] = peer_figures[key]
            first[f"peer_ratio_{key}"] = peer_figures[key] / own if own else math.nan
        first["peer_failed"] = peer_figures["failed"]
    return ([(f"{NAME}: {label}", f"peer_{key}") for label, key in FIGURES] + [(f"{NAME}: failed", "peer_failed")]
            + [(f"{NAME} ÷ own: {label.split(' (')[0]}", f"peer_ratio_{key}") for label, key in FIGURES])


def note(arm_names: list[str], load: str) -> str:
    return (f"Peer client: {NAME} {version()} (not the project's), run once per arm ({', '.join(arm_names)}) after "
            f"the project's repetitions, with the same load ({load}); its ITL is every gap between streamed chunks "
            f"from its per-record export, not its per-request mean; `{NAME} ÷ own` divides its figure by the median "
            "of the project's client's repetitions (docs/benchmarks.md, 'A peer client').")
