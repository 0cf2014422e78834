"""The nvidia-smi textfile collector: per-GPU metrics that promtool accepts, and nothing at all without GPUs."""

from __future__ import annotations

import importlib.machinery
import importlib.util
import os
import subprocess
import sys

import pytest
from monitoring_support import ROLES

SCRIPT = ROLES / "gpu_exporter" / "files" / "gpufleet-gpu-metrics"
SMI_CSV = (
    "0, GPU-aaaa, NVIDIA H100 80GB HBM3, 00000000:3B:00.0, 87, 40960, 81559, 71, 350.52, 0, 3\n"
    "1, GPU-bbbb, NVIDIA H100 80GB HBM3, 00000000:86:00.0, 0, 1, 81559, 35, [N/A], [N/A], [N/A]\n"
)


def load():
    loader = importlib.machinery.SourceFileLoader("gpufleet_gpu_metrics", str(SCRIPT))
    spec = importlib.util.spec_from_loader(loader.name, loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


metrics = load()


def fake_smi(tmp_path, body):
    smi = tmp_path / "bin" / "nvidia-smi"
    smi.parent.mkdir(exist_ok=True)
    smi.write_text(f"#!/bin/sh\n{body}\n")
    smi.chmod(0o755)
    return smi


def run(tmp_path, smi, output):
    env = dict(os.environ, PATH=f"{tmp_path / 'bin'}:/usr/bin:/bin")
    return subprocess.run([sys.executable, str(SCRIPT), "--output", str(output), "--nvidia-smi", str(smi)],
                          capture_output=True, text=True, env=env, timeout=60, check=False)


def test_render_scales_units_and_skips_unsupported_fields():
    gpus = metrics.parse_gpus(SMI_CSV)
    text = metrics.render(gpus, {"0": 2, "1": 0})
    assert 'gpufleet_gpu_utilization_ratio{gpu="0"} 0.87' in text
    assert f'gpufleet_gpu_memory_total_bytes{{gpu="1"}} {81559 * 1024 * 1024:g}' in text
    assert 'gpufleet_gpu_power_draw_watts{gpu="0"} 350.52' in text
    assert 'gpufleet_gpu_power_draw_watts{gpu="1"}' not in text
    assert 'gpufleet_gpu_ecc_errors_corrected_total{gpu="0"} 3' in text
    assert 'gpufleet_gpu_xid_errors_total{gpu="0"} 2' in text
    assert 'name="NVIDIA H100 80GB HBM3"' in text


def test_xid_lines_are_counted_for_the_gpu_on_their_pci_bus():
    gpus = metrics.parse_gpus(SMI_CSV)
    log = ("NVRM: Xid (PCI:0000:86:00): 79, pid=1234, GPU has fallen off the bus.\n"
           "NVRM: Xid (PCI:0000:86:00): 48, pid=1234, DBE\n"
           "NVRM: Xid (PCI:0000:3b:00): 13, Graphics Exception\n"
           "NVRM: Xid (PCI:0000:99:00): 13, a GPU this host does not list\n")
    assert metrics.count_xids(log, gpus) == {"0": 1, "1": 2}


def test_the_written_file_passes_promtool_check_metrics(tmp_path, promtool):
    output = tmp_path / "gpufleet_gpu.prom"
    result = run(tmp_path, fake_smi(tmp_path, f"printf '{SMI_CSV}'"), output)
    assert result.returncode == 0, result.stderr
    text = output.read_text()
    assert "gpufleet_gpu_smi_up 1" in text
    lint = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=60,
                          check=False)
    assert lint.returncode == 0, lint.stdout + lint.stderr


def test_nothing_is_written_without_nvidia_smi_and_a_stale_file_goes(tmp_path):
    output = tmp_path / "gpufleet_gpu.prom"
    output.write_text("stale\n")
    result = run(tmp_path, tmp_path / "bin" / "no-such-nvidia-smi", output)
    assert result.returncode == 0, result.stderr
    assert not output.exists()


def test_nothing_is_written_when_nvidia_smi_lists_no_gpu(tmp_path):
    output = tmp_path / "gpufleet_gpu.prom"
    result = run(tmp_path, fake_smi(tmp_path, "exit 0"), output)
    assert result.returncode == 0, result.stderr
    assert not output.exists()


def test_a_failing_nvidia_smi_is_reported_not_hidden(tmp_path):
    output = tmp_path / "gpufleet_gpu.prom"
    result = run(tmp_path, fake_smi(tmp_path, "echo 'NVIDIA-SMI has failed' >&2; exit 9"), output)
    assert result.returncode == 1
    assert output.read_text().endswith("gpufleet_gpu_smi_up 0\n")


def test_malformed_output_is_an_error_not_garbage():
    with pytest.raises(ValueError, match="unexpected nvidia-smi line"):
        metrics.parse_gpus("0, GPU-aaaa, only three fields\n")
