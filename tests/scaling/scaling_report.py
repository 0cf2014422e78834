"""What the scaling loop's end-to-end run (tests/scaling/test_loop.py) reports: its phases as a markdown table for
docs/benchmarks.md (section 10, between MARK_START and MARK_END) and a plot of every answered stream's TTFT over
time with the phase boundaries. A unique module name, so that other test dirs' helpers cannot shadow it.

The run's result is a dict (also written as JSON), with every time in seconds since the overload began:
    times: calm (the light load's start), overload (0), scale_out_decision, in_service, scraped, load_end,
           scale_in_decision, removed, end; a decision the loop's log lacks is None
    samples: {calm, load, tail: [[time, TTFT seconds], ...]} of the answered streams
    outcomes: {calm, load, tail: {"ok": n, "failed": n}}
    ttft_p95: {light, before, after} (None with too few streams), as the test asserts them
    settings: loop_settings(), in seconds
    streams: {calm, load, tail}; region, model, host (the standby node); machine: machine()
"""

from __future__ import annotations

import json
import os
import re
import statistics
import sys
import time
from pathlib import Path

import yaml
from ansible_collections.gpufleet.llm.plugins.plugin_utils.fleet_defaults import ROLES, role_default

REPO = Path(__file__).resolve().parents[2]
LOOP_VARS = Path(__file__).resolve().parent / "lab_loop.yml"
MARK_START = "<!-- bench:scaling:start -->"
MARK_END = "<!-- bench:scaling:end -->"
# Each setting of the loop that the report quotes, by the variable that sets it (its role's default is read where
# the role owns it, through fleet_defaults).
SETTINGS = {"scale_out_for": "prometheus_alert_scale_out_for", "scale_in_for": "prometheus_alert_scale_in_for",
            "evaluation_interval": "prometheus_evaluation_interval", "group_wait": "alertmanager_scaling_group_wait",
            "cooldown": "scaling_controller_cooldown"}
# The phase boundaries the plot draws, in their order in the run.
PHASES = (("overload", "overload"), ("scale_out_decision", "scale-out decided"), ("in_service", "node in service"),
          ("scraped", "instances scraped"), ("load_end", "load ends"), ("scale_in_decision", "scale-in decided"),
          ("removed", "drained and stopped"))
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w|y)")
_UNIT_S = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}


def duration_s(value) -> float:
    """A Prometheus duration ("10s", "1m30s") or a number of seconds, in seconds."""
    if isinstance(value, int | float):
        return float(value)
    text = str(value).strip()
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return float(text)
    parts = _DURATION.findall(text)
    if not parts or "".join(number + unit for number, unit in parts) != text:
        raise ValueError(f"not a duration: {value!r}")
    return sum(float(number) * _UNIT_S[unit] for number, unit in parts)


def loop_settings(hostvars: dict, loop_vars: Path = LOOP_VARS, roles: Path = ROLES) -> dict[str, float]:
    """The loop's timing as the run configures it, in seconds: the extra vars of the run (lab_loop.yml) over the
    monitoring host's inventory variables (``hostvars``, as ansible-inventory lists them) over the roles' defaults."""
    extra = yaml.safe_load(loop_vars.read_text()) or {}
    settings = {}
    for key, name in SETTINGS.items():
        value = next((source[name] for source in (extra, hostvars) if name in source), None)
        if value is None:
            value = role_default(name, roles)  # refuses a default that is a template
        if "{{" in str(value):
            raise ValueError(f"{name} is a template ({value!r}): the report cannot read its value")
        settings[key] = duration_s(value)
    return settings


def machine() -> dict:
    """The date, the load average (now, at the run's end) and the CPU count, for the table's first line."""
    return {"date": time.strftime("%Y-%m-%d", time.gmtime()), "loadavg": list(os.getloadavg()),
            "cpus": os.cpu_count()}


def _seconds(value: float) -> str:
    return f"{value / 60:g} m" if value >= 60 and value % 60 == 0 else f"{value:g} s"


def _whole(value: float | None) -> int | None:
    return None if value is None else round(value)


def _diff(later: int | None, earlier: int | None) -> str:
    return "—" if later is None or earlier is None else f"{later - earlier} s"


def _p95(value: float | None) -> str:
    return "—" if value is None else f"{value:.3f} s"


def phases(result: dict) -> dict[str, int | None]:
    """Each phase boundary in whole seconds since the overload; the table's rows are differences of these, so
    that the rows of a total add up to it."""
    return {name: _whole(result["times"].get(name)) for name, _ in PHASES}


def markdown(result: dict) -> str:
    """The run's phases as docs/benchmarks.md quotes them: the time from overload to added capacity and what it is
    made of, the TTFT before and after, the way back, and the streams that failed."""
    t, s, m = phases(result), result["settings"], result["machine"]
    wait_s = s["scale_out_for"] + s["group_wait"]
    rest = "—" if t["scale_out_decision"] is None else f"{t['scale_out_decision'] - wait_s:g} s"
    p95 = result["ttft_p95"]
    outcomes = [phase.get(key, 0) for phase in result["outcomes"].values() for key in ("failed", "ok")]
    failed, answered = sum(outcomes[0::2]), sum(outcomes[1::2])
    lines = [f"`tests/scaling/test_loop.py`, {m['date']}, load average "
             f"{' '.join(f'{value:.2f}' for value in m['loadavg'])} at the end, {m['cpus']} CPUs; "
             f"{result['streams']['load']} streams into {result['region']}'s pool of {result['model']}, "
             f"the standby node {result['host']}.", "",
             "| | |", "| --- | --- |",
             f"| overload → the standby node's instances scraped | {_diff(t['scraped'], t['overload'])} |",
             f"| of which: alert `for` + Alertmanager group wait | {_seconds(s['scale_out_for'])} + "
             f"{_seconds(s['group_wait'])} |",
             f"| of which: the rest until `gpufleet.llm.scale` decides (the queue growing, rule evaluation every "
             f"{_seconds(s['evaluation_interval'])}, the rulebook, `validate.yml`, the scaling state) | {rest} |",
             "| of which: `gpufleet.llm.scale` from its decision to the scrape (model_server role on the node, load "
             f"balancers, Prometheus) | {_diff(t['scraped'], t['scale_out_decision'])} |",
             f"| TTFT p95: light load ({result['streams']['calm']} streams) / overloaded before / after the node "
             f"joined | {_p95(p95['light'])} / {_p95(p95['before'])} / {_p95(p95['after'])} |",
             f"| joined → drained and stopped | {_diff(t['removed'], t['scraped'])} |",
             f"| of which: the overload going on after it joined | {_diff(t['load_end'], t['scraped'])} |",
             f"| of which: load end → the scale-in decision (alert `for` {_seconds(s['scale_in_for'])}, cooldown "
             f"{_seconds(s['cooldown'])} after the scale-out) | {_diff(t['scale_in_decision'], t['load_end'])} |",
             "| of which: `gpufleet.llm.scale` from its decision to the node drained and stopped | "
             f"{_diff(t['removed'], t['scale_in_decision'])} |",
             f"| streams failed / answered | {failed} / {answered:,} |".replace(",", " ")]
    return "\n".join(lines)


def rolling_p95(samples: list[tuple[float, float]], window: float = 10.0, least: int = 20
                ) -> list[tuple[float, float]]:
    """TTFT p95 per ``window`` seconds (at the window's middle), where it has at least ``least`` streams."""
    by_window: dict[int, list[float]] = {}
    for at, ttft in samples:
        by_window.setdefault(int(at // window), []).append(ttft)
    return [((index + 0.5) * window, statistics.quantiles(values, n=20)[-1])
            for index, values in sorted(by_window.items()) if len(values) >= least]


def plot(result: dict, path: Path) -> None:
    """TTFT of each answered stream over time (dots per phase, the rolling p95 as a line) above the answered
    streams per second, with the phase boundaries as vertical lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    samples = {phase: [(at, ttft) for at, ttft in values if ttft is not None]
               for phase, values in result["samples"].items()}
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(10, 6), sharex=True, height_ratios=(2, 1))
    for phase, colour in zip(samples, ("tab:green", "tab:orange", "tab:blue"), strict=False):
        top.scatter([at for at, _ in samples[phase]], [ttft for _, ttft in samples[phase]], s=3, alpha=0.35,
                    color=colour, label=f"{phase} ({result['streams'][phase]} streams)")
    every = sorted(sample for values in samples.values() for sample in values)
    p95 = rolling_p95(every)
    top.plot([at for at, _ in p95], [value for _, value in p95], color="black", label="TTFT p95 per 10 s")
    top.set_ylabel("TTFT (s)")
    top.set_ylim(bottom=0)
    ends = [at for at, _ in every]
    first, last = (int(min(ends)) - 1, int(max(ends)) + 1) if ends else (0, 1)
    bottom.step(range(first, last), [sum(1 for at in ends if second <= at < second + 1)
                                     for second in range(first, last)], where="post", color="tab:green")
    bottom.set_ylabel("answered streams / s")
    bottom.set_xlabel("seconds since the overload began")
    for index, (name, label) in enumerate(PHASES):
        at = result["times"].get(name)
        if at is None:
            continue
        for axis in (top, bottom):
            axis.axvline(at, color=f"C{index}", linestyle="--", linewidth=1)
        top.annotate(label, (at, 1), xycoords=("data", "axes fraction"), rotation=90, fontsize=7, va="top",
                     ha="right", color=f"C{index}",
                     bbox={"facecolor": "white", "alpha": 0.8, "edgecolor": "none", "pad": 1})
    top.legend(loc="center right", fontsize=7, markerscale=3)
    t = phases(result)
    top.set_title(f"{result['region']}: overload → capacity added {_diff(t['scraped'], t['overload'])}, "
                  f"joined → removed {_diff(t['removed'], t['scraped'])}")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def save(result: dict, out: Path) -> Path:
    """The result as JSON in ``out`` (scaling.json)."""
    out.mkdir(parents=True, exist_ok=True)
    path = out / "scaling.json"
    path.write_text(json.dumps(result))
    return path


def publish(result: dict, docs: Path | None, img: Path | None) -> None:
    """The plot into ``img`` (bench-scaling.png) and the table between the markers of ``docs``, where given; with
    both, the table is followed by the plot (the docs show no image before a run made one)."""
    table = markdown(result)
    if img is not None:
        plot(result, img / "bench-scaling.png")
        if docs is not None:
            link = Path(os.path.relpath(img / "bench-scaling.png", docs.parent)).as_posix()
            table += f"\n\n![TTFT of each answered stream and answered streams per second over the run]({link})"
    if docs is not None:
        sys.path.insert(0, str(REPO / "tests" / "bench"))
        from gpufleet_bench.suite import update_docs

        update_docs(docs, table, MARK_START, MARK_END)
