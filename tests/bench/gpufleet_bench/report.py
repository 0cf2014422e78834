"""Results as JSON: the settings, the summary and, when asked, every request."""

from __future__ import annotations

import dataclasses
import json
import math
import platform
import subprocess
from pathlib import Path
from typing import Any

from .client import Record


def _finite(value: Any) -> Any:
    """NaN and infinities become null, so the file is strict JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(item) for item in value]
    return value


def record_dict(record: Record) -> dict:
    return {**dataclasses.asdict(record), "ok": record.ok, "tpot": record.tpot}


def machine() -> dict:
    """Where the numbers come from: CPU model and count, kernel, Python, NGINX."""
    cpu = next((line.split(":", 1)[1].strip() for line in _read("/proc/cpuinfo").splitlines()
                if line.startswith("model name")), platform.processor())
    try:
        nginx = subprocess.run(["nginx", "-v"], capture_output=True, text=True, check=False).stderr.strip()
    except OSError:
        nginx = None
    load = _read("/proc/loadavg").split()[:3]
    return {"cpu": cpu, "cpus": _cpu_count(), "memory_gib": _memory_gib(), "kernel": platform.release(),
            "os": _os_name(), "python": platform.python_version(), "nginx": nginx, "loadavg_at_start": load}


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""


def _cpu_count() -> int | None:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def _memory_gib() -> float | None:
    for line in _read("/proc/meminfo").splitlines():
        if line.startswith("MemTotal:"):
            return round(int(line.split()[1]) / 1024 / 1024, 1)
    return None


def _os_name() -> str:
    for line in _read("/etc/os-release").splitlines():
        if line.startswith("PRETTY_NAME="):
            return line.split("=", 1)[1].strip('"')
    return platform.system()


def write_json(path: Path, document: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(_finite(document), indent=2, sort_keys=False) + "\n")
