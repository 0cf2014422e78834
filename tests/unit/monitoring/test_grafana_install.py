"""Grafana's install path: chosen from the inventory (APT repository, local .deb, or configuration only), and a
missing or default admin password refused before anything is installed."""

from __future__ import annotations

import re

import pytest
import yaml
from monitoring_support import render

GOOD_PASSWORD = "correct-horse-battery-staple"
LEAKY_PASSWORD = "grafana-administrator"


@pytest.fixture(scope="module")
def selection(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("grafana-selection")
    (tmp / "grafana_11.2.0_amd64.deb").write_bytes(b"!<arch>\n")
    (tmp / "grafana.tar.gz").write_bytes(b"")
    cases = {
        "apt-by-default": {},
        "deb-when-a-local-package-is-given": {"grafana_deb_file": str(tmp / "grafana_11.2.0_amd64.deb")},
        "none-when-install-is-off": {"grafana_install_package": False},
        "none-wins-over-a-local-package": {"grafana_install_package": False,
                                           "grafana_deb_file": str(tmp / "missing.deb")},
        "refused-missing-local-package": {"grafana_deb_file": str(tmp / "missing.deb")},
        "refused-local-file-not-a-deb": {"grafana_deb_file": str(tmp / "grafana.tar.gz")},
        "refused-no-password": {"grafana_admin_password": ""},
        "refused-default-password": {"grafana_admin_password": "admin"},
        "refused-password-equal-to-user": {"grafana_admin_user": LEAKY_PASSWORD,
                                           "grafana_admin_password": LEAKY_PASSWORD},
    }
    hosts = {name: {"grafana_admin_password": GOOD_PASSWORD, **variables} for name, variables in cases.items()}
    inventory = tmp / "inventory"
    inventory.mkdir()
    (inventory / "hosts.yml").write_text(yaml.safe_dump({"all": {"children": {"monitoring": {"hosts": hosts}}}}))
    code, output = render(inventory, tmp / "out")
    recap = dict(re.findall(r"^(\S+)\s+: ok=\d+\s+changed=\d+\s+unreachable=\d+\s+failed=(\d+)", output, re.M))
    assert set(recap) == set(cases), output[-3000:]
    sources = {host: (tmp / "out" / host / "grafana_install_source").read_text().strip()
               for host in cases if (tmp / "out" / host / "grafana_install_source").exists()}
    return code, output, recap, sources


@pytest.mark.parametrize(("host", "source"), [
    ("apt-by-default", "apt"),
    ("deb-when-a-local-package-is-given", "deb"),
    ("none-when-install-is-off", "none"),
    ("none-wins-over-a-local-package", "none"),
])
def test_install_source_follows_the_inventory(selection, host, source):
    _, _, recap, sources = selection
    assert recap[host] == "0"
    assert sources[host] == source


@pytest.mark.parametrize("host", ["refused-missing-local-package", "refused-local-file-not-a-deb",
                                  "refused-no-password", "refused-default-password",
                                  "refused-password-equal-to-user"])
def test_bad_input_is_refused_before_anything_else(selection, host):
    code, _, recap, sources = selection
    assert code != 0
    assert recap[host] == "1"
    assert host not in sources


def test_refusals_name_the_host_and_variable_but_never_show_the_password(selection):
    _, output, _, _ = selection
    assert "grafana_deb_file must name an existing .deb on the controller" in output
    assert "refused-missing-local-package" in output
    assert GOOD_PASSWORD not in output
    assert LEAKY_PASSWORD + '"""' not in output
    assert "the output has been hidden" in output
