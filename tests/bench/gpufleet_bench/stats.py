"""Percentiles, latency distributions, throughput and goodput of a run, as LLM serving benchmarks define them."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .client import Record

PERCENTILES = (50, 90, 99)
SLO_METRICS = ("ttft", "tpot", "itl", "e2e")


def percentile(values: Sequence[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default); NaN for no values."""
    if not 0 <= q <= 100:
        raise ValueError(f"percentile must be within 0..100, got {q}")
    if not values:
        return math.nan
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def distribution(seconds: Sequence[float]) -> dict[str, float]:
    """mean, p50/p90/p99 and max in milliseconds, and the sample count."""
    values = [value * 1000.0 for value in seconds]
    result = {"count": len(values), "mean": sum(values) / len(values) if values else math.nan}
    for q in PERCENTILES:
        result[f"p{q}"] = percentile(values, q)
    result["max"] = max(values) if values else math.nan
    return result


def parse_slos(items: Iterable[str]) -> dict[str, float]:
    """['ttft:200', 'tpot:50'] -> {'ttft': 200.0, 'tpot': 50.0} (milliseconds)."""
    slos = {}
    for item in items:
        name, sep, value = item.partition(":")
        if not sep or name not in SLO_METRICS:
            raise ValueError(f"SLO {item!r} must be METRIC:MS with METRIC one of {', '.join(SLO_METRICS)}")
        try:
            slos[name] = float(value)
        except ValueError:
            raise ValueError(f"SLO {item!r}: {value!r} is not a number of milliseconds") from None
        if not slos[name] > 0:
            raise ValueError(f"SLO {item!r} must be positive")
    return slos


def meets_slos(record: Record, slos: Mapping[str, float]) -> bool:
    """A successful request whose every SLO metric is within its limit; ITL counts by its worst gap."""
    if not record.ok:
        return False
    observed = {"ttft": record.ttft, "tpot": record.tpot, "e2e": record.e2e,
                "itl": max(record.itl) if record.itl else 0.0}
    return all(observed[name] is not None and observed[name] * 1000.0 <= limit for name, limit in slos.items())


def summarize(records: Sequence[Record], slos: Mapping[str, float] | None = None) -> dict:
    """Everything a run reports: counts, throughputs over the run's wall time, latency distributions, goodput."""
    slos = dict(slos or {})
    ok = [record for record in records if record.ok]
    if records:
        duration = max(record.start + (record.e2e or 0.0) for record in records) - min(r.start for r in records)
    else:
        duration = 0.0
    per_second = 1.0 / duration if duration > 0 else math.nan
    output_tokens = sum(record.output_tokens for record in ok)
    prompt_tokens = sum(record.prompt_tokens or 0 for record in ok)
    cached_tokens = [record.cached_tokens for record in ok if record.cached_tokens is not None]
    good = sum(1 for record in ok if meets_slos(record, slos))
    instances = Counter(record.instance for record in ok if record.instance)
    return {
        "requests": len(records),
        "completed": len(ok),
        "failed": len(records) - len(ok),
        "errors": dict(Counter(record.error or f"HTTP {record.status}" for record in records if not record.ok)),
        "duration_s": duration,
        "request_throughput": len(ok) * per_second,
        "output_throughput": output_tokens * per_second,
        "total_output_tokens": output_tokens,
        "total_prompt_tokens": prompt_tokens,
        "ttft_ms": distribution([record.ttft for record in ok if record.ttft is not None]),
        "tpot_ms": distribution([record.tpot for record in ok if record.tpot is not None]),
        "itl_ms": distribution([gap for record in ok for gap in record.itl]),
        "e2e_ms": distribution([record.e2e for record in ok]),
        "slos_ms": slos,
        "goodput": good * per_second if slos else None,
        "slo_attainment": good / len(ok) if slos and ok else None,
        # token-weighted like vLLM's prefix cache metric; None when the server reports no cached tokens
        "prefix_cache_hit_rate": (sum(cached_tokens) / prompt_tokens if cached_tokens and prompt_tokens else None),
        "per_instance": dict(sorted(instances.items())),
        "instance_imbalance": (max(instances.values()) / min(instances.values()) if instances else None),
    }
