"""Grafana's provisioning files and the dashboards: valid, provisioned from the right place, every query sound."""

from __future__ import annotations

import configparser
import json
import subprocess

import pytest
import yaml
from monitoring_support import (
    DASHBOARDS,
    EXPORTER_METRICS,
    VLLM_METRICS,
    boolify,
    dashboard_queries,
    grafana_substitute,
    metric_names,
)

LOADED = {path.name: json.loads(path.read_text()) for path in DASHBOARDS}


def recorded_names(directory):
    return {rule["record"] for path in (directory / "rules").glob("*.yml")
            for group in yaml.safe_load(path.read_text())["groups"] for rule in group["rules"] if "record" in rule}


def test_the_three_dashboards_of_the_issue_exist_and_the_role_installs_each():
    assert {board["uid"] for board in LOADED.values()} == {
        "gpufleet-overview", "gpufleet-gpus", "gpufleet-load-balancers"}
    role_vars = yaml.safe_load((DASHBOARDS[0].parents[2] / "vars" / "main.yml").read_text())
    assert sorted(role_vars["_grafana_dashboards"]) == sorted(LOADED)


@pytest.mark.parametrize("name", sorted(LOADED))
def test_dashboard_structure(name):
    board = LOADED[name]
    ids = [panel["id"] for panel in board["panels"]]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    assert board["templating"]["list"][0]["name"] == "datasource"
    occupied = set()
    for panel in board["panels"]:
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        cells = {(x, y) for x in range(grid["x"], grid["x"] + grid["w"])
                 for y in range(grid["y"], grid["y"] + grid["h"])}
        assert not cells & occupied, f"{panel['title']} overlaps another panel"
        occupied |= cells
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
        assert panel["targets"], panel["title"]
        refs = [target["refId"] for target in panel["targets"]]
        assert len(refs) == len(set(refs)), panel["title"]


def test_every_dashboard_query_parses(fixture_render, promtool, tmp_path):
    """promtool parses each query (Grafana's variables substituted) as the expression of a recording rule."""
    queries = [(where, expr) for board in LOADED.values() for where, expr in dashboard_queries(board)]
    assert len(queries) > 40
    rules = {"groups": [{"name": "dashboards", "rules": [
        {"record": f"dashboard_query_{index}", "expr": grafana_substitute(expr)}
        for index, (_, expr) in enumerate(queries)]}]}
    (tmp_path / "dashboards.yml").write_text(yaml.safe_dump(rules))
    result = subprocess.run([promtool, "check", "rules", str(tmp_path / "dashboards.yml")],
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "$" not in (tmp_path / "dashboards.yml").read_text(), "a Grafana variable was left unsubstituted"


def test_every_dashboard_query_reads_only_metrics_that_exist(fixture_render):
    known = recorded_names(fixture_render) | VLLM_METRICS | EXPORTER_METRICS
    for board in LOADED.values():
        for where, expr in dashboard_queries(board):
            names = metric_names(grafana_substitute(expr))
            assert names, f"{where}: no metric found in {expr}"
            assert names <= known, f"{where}: unknown {names - known}"


def test_metric_scanner_finds_metrics_and_skips_functions_labels_and_keywords():
    expr = ('sum by (region, le) (rate(vllm:x_bucket{job="a",le=~"1|2"}[5m])) / on (region) group_left '
            'region:y:rate > bool 0 or absent(nginx_up{job="nginx"}) * 0')
    assert metric_names(expr) == {"vllm:x_bucket", "region:y:rate", "nginx_up"}


def test_grafana_provisioning_points_at_prometheus_and_the_dashboards(fixture_render):
    grafana = fixture_render / "grafana"
    datasources = yaml.safe_load((grafana / "provisioning" / "datasources" / "gpufleet.yml").read_text())
    (source,) = datasources["datasources"]
    assert source["type"] == "prometheus" and source["url"] == "http://127.0.0.1:9090" and source["isDefault"]
    providers = yaml.safe_load((grafana / "provisioning" / "dashboards" / "gpufleet.yml").read_text())
    (provider,) = providers["providers"]
    assert provider["type"] == "file"
    assert provider["options"]["path"] == "/var/lib/grafana/dashboards/gpufleet"
    ini = configparser.ConfigParser(interpolation=None)
    ini.read_string((grafana / "grafana.ini").read_text())
    assert ini["security"]["admin_password"] == '"""unit-test-password-0123"""'
    assert ini["users"]["allow_sign_up"] == "false"


def test_boolify_keeps_alert_signals_without_touching_matchers():
    assert boolify('up{job="model_servers",port!="1"} == 0') == 'up{job="model_servers",port!="1"} == bool 0'
    assert boolify('a > 16 and deriv(a[1m]) > 0') == 'a > bool 16 and deriv(a[1m]) > bool 0'
    assert boolify('x{l=~"a|b"} / y < 0.05') == 'x{l=~"a|b"} / y < bool 0.05'
    assert boolify("x > bool 1") == "x > bool 1"
