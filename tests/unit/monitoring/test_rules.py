"""Recording rules and alerts: valid for promtool, and computing and firing what they should."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import yaml

PROMTOOL_TESTS = Path(__file__).resolve().parent / "promtool"


def rules(directory):
    return [rule for path in sorted((directory / "rules").glob("*.yml"))
            for group in yaml.safe_load(path.read_text())["groups"] for rule in group["rules"]]


def test_promtool_checks_the_rules(fixture_render, promtool):
    result = subprocess.run([promtool, "check", "rules", *map(str, sorted((fixture_render / "rules").glob("*.yml")))],
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_unit_tests_pass(fixture_render, promtool, tmp_path):
    shutil.copytree(fixture_render / "rules", tmp_path / "rules")
    tests = [shutil.copy(path, tmp_path) for path in sorted(PROMTOOL_TESTS.glob("*.yml"))]
    assert tests
    result = subprocess.run([promtool, "test", "rules", *map(str, tests)],
                            capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_issue_s_alerts_exist_with_severity_and_summary(fixture_render):
    alerts = {rule["alert"]: rule for rule in rules(fixture_render) if "alert" in rule}
    assert {"ModelServerDown", "RegionWithoutHealthyModelServer", "ErrorRatioOverSLO", "TimeToFirstTokenP95OverSLO",
            "WaitingQueueGrowing", "GpuTemperatureHigh", "GpuUncorrectableEccErrors", "GpuXidErrors",
            "DiskFillingUp", "GatewayKeyErrorRatioHigh"} <= set(alerts)
    for name, rule in alerts.items():
        assert rule["labels"]["severity"] in {"warning", "critical"}, name
        assert rule["annotations"]["summary"], name


def test_the_issue_s_recordings_exist_per_region(fixture_render):
    recorded = {rule["record"] for rule in rules(fixture_render) if "record" in rule}
    for name in ("http_requests:rate", "http_errors:ratio", "time_to_first_token_seconds:quantile",
                 "e2e_request_latency_seconds:quantile", "generation_tokens:rate", "num_requests_waiting:sum",
                 "num_requests_running:sum"):
        assert f"region:vllm_{name}" in recorded
        assert f"model_server:vllm_{name}" in recorded
    assert {"region:model_servers_up:ratio", "region:model_servers_up:sum"} <= recorded


def test_the_gateway_usage_recordings_exist_per_key_and_model(fixture_render):
    recorded = {rule["record"] for rule in rules(fixture_render) if "record" in rule}
    for level in ("key", "model", "key_model"):
        for name in ("requests:rate", "prompt_tokens:rate", "completion_tokens:rate"):
            assert f"{level}:gpufleet_gateway_{name}" in recorded
    for level in ("key", "key_model"):
        assert {f"{level}:gpufleet_gateway_errors:ratio", f"{level}:gpufleet_gateway_rate_limited:ratio"} <= recorded
    assert {"key_status:gpufleet_gateway_requests:ratio", "key:gpufleet_gateway_request_seconds:quantile"} <= recorded


def test_alertmanager_configuration_is_valid_and_has_no_receiver_by_default(fixture_render, amtool):
    result = subprocess.run([amtool, "check-config", str(fixture_render / "alertmanager.yml")],
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    config = yaml.safe_load((fixture_render / "alertmanager.yml").read_text())
    assert config["route"]["receiver"] == "ui-only"
    assert [receiver["name"] for receiver in config["receivers"]] == ["ui-only"]
