"""PNG plots with matplotlib (Agg backend: no display needed)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.ticker import NullFormatter

from .client import Record


def _cdf(axis, values_ms: Sequence[float], label: str) -> None:
    ordered = sorted(values_ms)
    if not ordered:
        return
    axis.plot(ordered, [(index + 1) / len(ordered) for index in range(len(ordered))], label=label)


def plot_run(records: Sequence[Record], path: Path, title: str) -> None:
    """One run: CDFs of TTFT, ITL and end-to-end latency, and completed requests over time."""
    ok = [record for record in records if record.ok]
    figure, axes = plt.subplots(1, 4, figsize=(16, 3.6))
    for axis, (name, values) in zip(axes[:3], (
            ("TTFT", [r.ttft * 1000 for r in ok if r.ttft is not None]),
            ("ITL", [gap * 1000 for r in ok for gap in r.itl]),
            ("end-to-end", [r.e2e * 1000 for r in ok if r.e2e is not None])), strict=True):
        _cdf(axis, values, name)
        axis.set_xlabel(f"{name} (ms)")
        axis.set_ylabel("fraction of requests" if name != "ITL" else "fraction of gaps")
        axis.grid(alpha=0.3)
    ends = sorted(r.start + r.e2e for r in ok if r.e2e is not None)
    axes[3].plot(ends, range(1, len(ends) + 1))
    axes[3].set_xlabel("time (s)")
    axes[3].set_ylabel("requests completed")
    axes[3].grid(alpha=0.3)
    figure.suptitle(title)
    _save(figure, path)


def plot_comparison(path: Path, title: str, panels: Sequence[tuple[str, Mapping[str, Sequence[float]]]],
                    cdfs: Mapping[str, Sequence[float]] | None = None, cdf_label: str = "") -> None:
    """Bars of each arm's median over the repetitions, every repetition as a dot; optionally a CDF per arm."""
    count = len(panels) + (1 if cdfs else 0)
    figure, axes = plt.subplots(1, count, figsize=(4.2 * count, 3.8), squeeze=False)
    for axis, (label, by_arm) in zip(axes[0], panels, strict=False):
        arms = list(by_arm)
        medians = [_median(by_arm[arm]) for arm in arms]
        axis.bar(arms, medians, color=[f"C{index}" for index in range(len(arms))], alpha=0.7)
        for index, arm in enumerate(arms):
            axis.plot([index] * len(by_arm[arm]), by_arm[arm], "k.", markersize=5)
        axis.set_title(label, fontsize=10)
        axis.grid(axis="y", alpha=0.3)
        values = [value for arm in arms for value in by_arm[arm] if value is not None and math.isfinite(value)]
        if values and min(values) >= 0:
            axis.set_ylim(0, max(values) * 1.1 if max(values) > 0 else 1)
            if max(values) == 0:
                axis.text(0.5, 0.5, "0 in every repetition", transform=axis.transAxes, ha="center")
    if cdfs:
        axis = axes[0][-1]
        for arm, values in cdfs.items():
            _cdf(axis, values, arm)
        axis.set_xlabel(cdf_label)
        axis.set_ylabel("fraction")
        axis.set_xscale("log")
        axis.xaxis.set_minor_formatter(NullFormatter())
        axis.legend(fontsize=8)
        axis.grid(alpha=0.3)
    figure.suptitle(title)
    _save(figure, path)


def plot_sweep(path: Path, title: str, xlabel: str, sweep: Mapping[int, Mapping[str, Mapping[str, float]]],
               panels: Sequence[tuple[str, str]]) -> None:
    """One line per arm across a swept setting (x, log scale), one panel per metric."""
    figure, axes = plt.subplots(1, len(panels), figsize=(4.8 * len(panels), 3.8), squeeze=False)
    xs = sorted(sweep)
    arms = list(sweep[xs[0]]) if xs else []
    for axis, (label, key) in zip(axes[0], panels, strict=True):
        for arm in arms:
            axis.plot(xs, [sweep[x][arm][key] for x in xs], "o-", label=arm)
        axis.set_xscale("log")
        axis.set_xlabel(xlabel)
        axis.set_title(label, fontsize=10)
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8)
    figure.suptitle(title)
    _save(figure, path)


def _median(values: Sequence[float]) -> float:
    finite = sorted(value for value in values if value is not None and math.isfinite(value))
    if not finite:
        return math.nan
    middle = len(finite) // 2
    return finite[middle] if len(finite) % 2 else (finite[middle - 1] + finite[middle]) / 2


def _save(figure, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)
