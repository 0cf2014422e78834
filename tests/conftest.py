"""Makes the checkout importable as the collection gpufleet.llm for every test, and, under CI, turns a skip
for a missing tool into a failure: a fresh machine must have everything `make test` installs."""

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / ".collections"))

# The only thing a CI machine of this project truly cannot have; a skip must start with it to stay a skip.
CANNOT_EXIST_HERE = "needs a GPU"


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if not (_in_ci() and report.skipped) or hasattr(report, "wasxfail"):
        return
    reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
    if reason.removeprefix("Skipped: ").startswith(CANNOT_EXIST_HERE):
        return
    report.outcome = "failed"
    report.longrepr = (f"skipped under CI=true: {reason}\n"
                       "A fresh machine must get this from `make test` (Makefile: host-packages or requirements).")
