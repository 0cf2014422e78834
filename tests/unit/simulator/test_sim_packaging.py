"""The package installs as the model_server role installs it: setuptools first, then no build isolation."""

import shutil
import subprocess
import sys
import time

import pytest
from sim_support import PACKAGE_DIR


def test_pip_install_without_build_isolation_into_a_fresh_venv(tmp_path):
    pytest.importorskip("ensurepip", reason="this Python cannot create venvs with pip")
    source = shutil.copytree(PACKAGE_DIR, tmp_path / "simulator",
                             ignore=shutil.ignore_patterns("__pycache__", "build", "*.egg-info"))
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    setuptools = subprocess.run([str(venv / "bin" / "pip"), "install", "setuptools>=70.1"],
                                capture_output=True, text=True, timeout=300, check=False)
    assert setuptools.returncode == 0, setuptools.stdout + setuptools.stderr
    start = time.monotonic()
    install = subprocess.run(
        [str(venv / "bin" / "pip"), "install", "--no-build-isolation", "--no-index", "--no-deps", str(source)],
        capture_output=True, text=True, timeout=300, check=False)
    elapsed = time.monotonic() - start
    assert install.returncode == 0, install.stdout + install.stderr
    version = subprocess.run([str(venv / "bin" / "gpufleet-simulator"), "--version"], capture_output=True, text=True,
                             timeout=60, check=True)
    assert version.stdout.strip() == "gpufleet-simulator 0.1.0"
    files = subprocess.run([str(venv / "bin" / "pip"), "show", "-f", "gpufleet-simulator"], capture_output=True,
                           text=True, timeout=60, check=True).stdout
    requires = next(line for line in files.splitlines() if line.startswith("Requires:"))
    assert "gpufleet_simulator/app.py" in files
    assert set(requires.removeprefix("Requires:").replace(",", " ").split()) == {
        "httptools", "prometheus_client", "pydantic", "uvicorn", "uvloop"}
    assert elapsed < 60
