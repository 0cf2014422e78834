"""The scaling loop's report (tests/scaling/scaling_report.py, written by make bench-scaling): its table's rows add
up to the run's phases, its settings are read from the run's configuration, and its plot is a PNG."""

import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(REPO / "tests" / "scaling"))
import scaling_report  # noqa: E402

SETTINGS = {"scale_out_for": 10.0, "scale_in_for": 60.0, "evaluation_interval": 5.0, "group_wait": 5.0,
            "cooldown": 45.0}


def _samples(start, end, ttft, every=0.1):
    return [[start + index * every, ttft] for index in range(round((end - start) / every))]


def _result(**times):
    """A run like the one of 2026-12-03: the node's instances scraped 174 s after the overload began, the node
    drained and stopped 172 s after that."""
    times = {"calm": -20.3, "overload": 0.0, "scale_out_decision": 29.6, "in_service": 41.0, "scraped": 174.2,
             "load_end": 204.3, "scale_in_decision": 290.4, "removed": 346.1, "end": 351.2, **times}
    return {"region": "us-east", "model": "simulated-llm", "host": "lab-use-gpu3", "settings": dict(SETTINGS),
            "streams": {"calm": 2, "load": 24, "tail": 2},
            "ttft_p95": {"light": 0.1142, "before": 0.4838, "after": 0.1871},
            "times": times,
            "samples": {"calm": _samples(-20, 0, 0.11),
                        "load": _samples(0, 174, 0.48, 0.02) + _samples(174, 204, 0.18, 0.02) + [[5.0, None]],
                        "tail": _samples(204, 351, 0.1)},
            "outcomes": {"calm": {"ok": 150}, "load": {"ok": 12000}, "tail": {"ok": 379}},
            "machine": {"date": "2026-12-03", "loadavg": [1.5, 1.25, 0.875], "cpus": 2}}


def _rows(table):
    return dict(line.strip("| ").split(" | ") for line in table.splitlines()[4:])


def test_the_first_line_gives_the_date_the_load_average_the_cpus_and_the_load():
    first = scaling_report.markdown(_result()).splitlines()[0]
    assert first == ("`tests/scaling/test_loop.py`, 2026-12-03, load average 1.50 1.25 0.88 at the end, 2 CPUs; "
                     "24 streams into us-east's pool of simulated-llm, the standby node lab-use-gpu3.")


def test_the_rows_are_the_phases_of_the_run_and_add_up_to_their_totals():
    table = scaling_report.markdown(_result())
    assert table.splitlines()[2:4] == ["| | |", "| --- | --- |"]
    rows = _rows(table)
    assert list(rows.values()) == ["174 s", "10 s + 5 s", "15 s", "144 s", "0.114 s / 0.484 s / 0.187 s", "172 s",
                                   "30 s", "86 s", "56 s", "0 / 12 529"]
    keys = list(rows)
    assert keys[0] == "overload → the standby node's instances scraped"
    assert keys[1] == "of which: alert `for` + Alertmanager group wait"
    assert "rule evaluation every 5 s" in keys[2]
    assert keys[3].startswith("of which: `gpufleet.llm.scale` from its decision to the scrape")
    assert keys[4] == "TTFT p95: light load (2 streams) / overloaded before / after the node joined"
    assert keys[5] == "joined → drained and stopped"
    assert keys[7] == ("of which: load end → the scale-in decision (alert `for` 1 m, cooldown 45 s after the "
                       "scale-out)")
    assert keys[9] == "streams failed / answered"
    # overload → scraped = for + group wait + the rest until the decision + the playbook after it
    assert 10 + 5 + 15 + 144 == 174
    # joined → removed = the overload after it joined + until the scale-in decision + the playbook after it
    assert 30 + 86 + 56 == 172


def test_the_settings_of_the_run_are_the_ones_the_rows_quote():
    result = _result()
    result["settings"].update(scale_out_for=60.0, group_wait=10.0, evaluation_interval=15.0, scale_in_for=600.0,
                              cooldown=90.0)
    rows = _rows(scaling_report.markdown(result))
    assert rows["of which: alert `for` + Alertmanager group wait"] == "1 m + 10 s"
    assert [value for key, value in rows.items() if "rule evaluation every 15 s" in key] == ["-40 s"]
    assert "of which: load end → the scale-in decision (alert `for` 10 m, cooldown 90 s after the scale-out)" in rows


def test_failed_streams_and_missing_decisions_and_p95s_are_shown_as_such():
    result = _result(scale_out_decision=None, scale_in_decision=None)
    result["outcomes"]["load"]["failed"] = 3
    result["ttft_p95"]["before"] = None
    values = list(_rows(scaling_report.markdown(result)).values())
    assert values == ["174 s", "10 s + 5 s", "—", "—", "0.114 s / — / 0.187 s", "172 s", "30 s", "—", "—",
                      "3 / 12 529"]


def test_the_plot_is_a_png(tmp_path):
    path = tmp_path / "img" / "bench-scaling.png"
    scaling_report.plot(_result(), path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 10_000


def test_the_plot_skips_a_boundary_the_run_lacks(tmp_path):
    scaling_report.plot(_result(scale_out_decision=None), tmp_path / "plot.png")
    assert (tmp_path / "plot.png").read_bytes()[:4] == b"\x89PNG"


def test_the_rolling_p95_is_per_window_with_enough_streams():
    samples = [(second / 10, 0.1) for second in range(100)] + [(10.5, 0.2)] * 5 + [(25.0, float(i)) for i in range(20)]
    # the p95 of PoolStreams.ttft_p95 (statistics.quantiles, exclusive): 18.95 of 0..19
    assert scaling_report.rolling_p95(samples) == [(5.0, pytest.approx(0.1)), (25.0, pytest.approx(18.95))]


@pytest.mark.parametrize(("text", "seconds"), [("10s", 10.0), ("1m", 60.0), ("1m30s", 90.0), ("500ms", 0.5),
                                               (45, 45.0), ("45", 45.0), ("2h", 7200.0)])
def test_durations_are_read_as_prometheus_writes_them(text, seconds):
    assert scaling_report.duration_s(text) == seconds


@pytest.mark.parametrize("text", ["", "10 s", "1x", "m", "10s5"])
def test_what_is_no_duration_is_refused(text):
    with pytest.raises(ValueError, match="not a duration"):
        scaling_report.duration_s(text)


def test_the_settings_come_from_the_extra_vars_over_the_inventory_over_the_role_defaults(tmp_path):
    roles = tmp_path / "roles"
    for role, values in {"prometheus": {"prometheus_alert_scale_out_for": "1m", "prometheus_alert_scale_in_for": "10m",
                                        "prometheus_evaluation_interval": "15s"},
                         "alertmanager": {"alertmanager_scaling_group_wait": "10s"},
                         "scaling_controller": {"scaling_controller_cooldown": 45}}.items():
        (roles / role / "defaults").mkdir(parents=True)
        (roles / role / "defaults" / "main.yml").write_text(yaml.safe_dump(values))
    extra = tmp_path / "loop.yml"
    extra.write_text(yaml.safe_dump({"alertmanager_scaling_group_wait": "5s", "prometheus_alert_scale_out_for": "20s",
                                     "other": "{{ a_template }}"}))
    hostvars = {"prometheus_alert_scale_out_for": "10s", "prometheus_alert_scale_in_for": "1m"}
    assert scaling_report.loop_settings(hostvars, extra, roles) == {
        "scale_out_for": 20.0, "scale_in_for": 60.0, "evaluation_interval": 15.0, "group_wait": 5.0,
        "cooldown": 45.0}
    with pytest.raises(ValueError, match="template"):
        scaling_report.loop_settings({"prometheus_evaluation_interval": "{{ x }}"}, extra, roles)


def test_the_lab_loop_reads_its_settings_from_the_lab_inventory_and_the_real_roles():
    hostvars = yaml.safe_load((REPO / "inventories" / "lab" / "group_vars" / "monitoring" / "prometheus.yml")
                              .read_text())
    assert scaling_report.loop_settings(hostvars) == SETTINGS


def test_publish_fills_the_section_between_its_markers_and_writes_the_plot(tmp_path):
    docs = tmp_path / "benchmarks.md"
    docs.write_text(f"## 10. Scaling\n\nprose\n\n{scaling_report.MARK_START}\nold table\n{scaling_report.MARK_END}\n\n"
                    "after\n")
    scaling_report.publish(_result(), docs, tmp_path / "img")
    text = docs.read_text()
    assert "old table" not in text and text.startswith("## 10. Scaling\n\nprose\n\n") and text.endswith("\n\nafter\n")
    assert (f"{scaling_report.MARK_START}\n{scaling_report.markdown(_result())}\n\n![TTFT of each answered stream "
            f"and answered streams per second over the run](img/bench-scaling.png)\n{scaling_report.MARK_END}") in text
    assert (tmp_path / "img" / "bench-scaling.png").read_bytes()[:4] == b"\x89PNG"


def test_publish_without_a_plot_links_none(tmp_path):
    docs = tmp_path / "benchmarks.md"
    docs.write_text(f"{scaling_report.MARK_START}\n{scaling_report.MARK_END}\n")
    scaling_report.publish(_result(), docs, None)
    assert "![" not in docs.read_text() and "| streams failed / answered | 0 / 12 529 |" in docs.read_text()


def test_the_docs_have_the_markers_in_the_scaling_section():
    text = (REPO / "docs" / "benchmarks.md").read_text()
    section = text.split("## 10. Scaling", 1)[1].split("\n## ", 1)[0]
    assert section.count(scaling_report.MARK_START) == 1 and section.count(scaling_report.MARK_END) == 1


def test_save_writes_the_result_as_json(tmp_path):
    import json

    path = scaling_report.save(_result(), tmp_path / "bench")
    assert path == tmp_path / "bench" / "scaling.json"
    assert json.loads(path.read_text())["times"]["scraped"] == 174.2
