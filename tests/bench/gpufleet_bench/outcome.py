"""What a comparison reports: per-arm metrics of each repetition, and checks against the issue's targets."""

from __future__ import annotations

import dataclasses
import math
import statistics
from collections.abc import Sequence


@dataclasses.dataclass
class Check:
    label: str
    per_rep: list[float]
    target: float | None  # None: shown as measured, a fact the comparison reports with no target to meet or miss
    higher_is_better: bool  # value >= target passes, else value <= target
    unit: str = ""

    @classmethod
    def shown(cls, label: str, per_rep: list[float], unit: str = "") -> Check:
        return cls(label, per_rep, None, False, unit)

    @property
    def value(self) -> float:
        finite = [value for value in self.per_rep if value is not None and math.isfinite(value)]
        return statistics.median(finite) if finite else math.nan

    @property
    def met(self) -> bool | None:
        """None for a figure shown as measured: it has no target."""
        if self.target is None:
            return None
        return self.value >= self.target if self.higher_is_better else self.value <= self.target

    @property
    def verdict(self) -> str:
        """What the reports put in the 'met' column: yes, no, or shown (no target)."""
        return "shown" if self.met is None else "yes" if self.met else "no"

    def as_dict(self) -> dict:
        return {"label": self.label, "value": self.value, "target": self.target, "unit": self.unit,
                "higher_is_better": self.higher_is_better, "met": self.met, "per_rep": self.per_rep}


@dataclasses.dataclass
class Outcome:
    key: str
    title: str
    setup: str
    arms: dict[str, list[dict]]  # arm -> one metrics dict per repetition
    rows: list[tuple[str, str]]  # (label, metrics key) shown per arm in the table
    checks: list[Check]
    plot: str | None = None
    notes: list[str] = dataclasses.field(default_factory=list)
    wall_s: float = 0.0

    def median(self, arm: str, key: str) -> float:
        values = [rep[key] for rep in self.arms[arm] if rep.get(key) is not None and math.isfinite(rep[key])]
        return statistics.median(values) if values else math.nan

    def as_dict(self) -> dict:
        return {"title": self.title, "setup": self.setup, "wall_s": self.wall_s, "arms": self.arms,
                "medians": {arm: {key: self.median(arm, key) for _, key in self.rows} for arm in self.arms},
                "checks": [check.as_dict() for check in self.checks], "plot": self.plot, "notes": self.notes}


def interleaved(arms: Sequence[str], reps: int) -> list[tuple[int, str]]:
    """(rep, arm) in run order: A B C, C B A, A B C, ..."""
    order = []
    for rep in range(reps):
        order += [(rep, arm) for arm in (arms if rep % 2 == 0 else list(reversed(arms)))]
    return order
