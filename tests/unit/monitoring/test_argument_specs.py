"""Each monitoring role documents every default in meta/argument_specs.yml, with the same value."""

from __future__ import annotations

import pytest
import yaml
from monitoring_support import ROLES

MONITORING_ROLES = ["monitoring_common", "node_exporter", "nginx_exporter", "gpu_exporter", "prometheus",
                    "alertmanager", "grafana"]


@pytest.mark.parametrize("role", MONITORING_ROLES)
def test_defaults_and_argument_specs_agree(role):
    defaults = yaml.safe_load((ROLES / role / "defaults" / "main.yml").read_text())
    specs = yaml.safe_load((ROLES / role / "meta" / "argument_specs.yml").read_text())["argument_specs"]
    options = {name: option for entry in specs.values() for name, option in entry["options"].items()}
    assert set(options) == set(defaults)
    for name, value in defaults.items():
        assert name.startswith(f"{role}_"), name
        assert options[name].get("default") == value, name
        assert options[name].get("description"), name
