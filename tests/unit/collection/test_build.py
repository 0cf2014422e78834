"""The built collection (ansible-galaxy collection build) ships the product and nothing of the development
checkout: no lab, tests, benchmarks, lab credentials, disabled host key checks or pinned dev toolchain."""

import re
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
ANSIBLE_GALAXY = Path(sys.executable).parent / "ansible-galaxy"

# A password given a literal value. The grafana role names its variable `grafana_admin_password` and
# defaults it to "", so the word alone is no leak: a value that is neither empty nor a template is.
PASSWORD_VALUE = re.compile(r"""password["']?\s*[:=]\s*(?!["']{2}\s*$)(?!.*\{\{)\S""", re.IGNORECASE)
# A pinned requirement line (name==version), which only the development toolchain has.
PIN = re.compile(r"^[A-Za-z0-9][\w.\-\[\],]*==\d", re.MULTILINE)


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> dict[str, bytes]:
    """Builds the collection once; returns each regular file of the tarball with its contents."""
    out = tmp_path_factory.mktemp("build")
    subprocess.run([str(ANSIBLE_GALAXY), "collection", "build", str(ROOT), "--output-path", str(out)],
                   check=True, capture_output=True, text=True, cwd=out)
    (tarball,) = out.glob("gpufleet-llm-*.tar.gz")
    with tarfile.open(tarball) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}


@pytest.mark.parametrize("path", ["README.md", "LICENSE", "meta/runtime.yml", "playbooks/site.yml",
                                  "playbooks/gpu_nodes.yml", "playbooks/load_balancers.yml",
                                  "playbooks/monitoring.yml", "playbooks/validate.yml",
                                  "plugins/inventory/gpu_fleet.py", "plugins/modules/fleet_check.py",
                                  "plugins/action/fleet_check.py", "plugins/filter/fleet.py",
                                  "requirements.yml", "requirements/controller.txt", "requirements/ec2.txt",
                                  "requirements/gce.txt", "execution-environment.yml", "bindep.txt",
                                  "CHANGELOG.md", "changelogs/changelog.yaml"])
def test_ships_the_product(built, path):
    assert path in built


def test_ships_every_product_role(built):
    roles = {p.name for p in (ROOT / "roles").iterdir() if p.is_dir()} - {"lab"}
    shipped = {name.split("/")[1] for name in built if name.startswith("roles/")}
    assert shipped == roles


@pytest.mark.parametrize("word", ["lab", "bench", "test", "molecule"])
def test_no_development_paths(built, word):
    # The model server's simulator is product (engine: simulator), but none of its paths name these words.
    assert [name for name in built if word in name.lower()] == []


@pytest.mark.parametrize("path", ["Makefile", "ansible.cfg", "requirements.txt", "pyproject.toml",
                                  ".yamllint", ".ansible-lint", ".ci/run", "docs/img/bench-failover.png"])
def test_no_toolchain_files(built, path):
    assert path not in built


def test_no_password_values(built):
    leaks = [f"{name}: {line.strip()}" for name, data in built.items()
             for line in data.decode("utf-8", "replace").splitlines() if PASSWORD_VALUE.search(line)]
    assert leaks == []


def test_no_disabled_host_key_checking(built):
    assert [name for name, data in built.items() if b"stricthostkeychecking" in data.lower()] == []


def test_no_pinned_dev_requirements(built):
    assert [name for name, data in built.items() if PIN.search(data.decode("utf-8", "replace"))] == []


def test_patterns_catch_what_the_checkout_has():
    """The content checks above would see the leaks: the lab's files, which the build leaves out, have them."""
    lab_vars = (ROOT / "inventories/lab/group_vars/monitoring/grafana.yml").read_text()
    assert PASSWORD_VALUE.search(lab_vars)
    assert not PASSWORD_VALUE.search('grafana_admin_password: ""')
    assert not PASSWORD_VALUE.search('admin_password = """{{ grafana_admin_password }}"""')
    assert b"StrictHostKeyChecking" in (ROOT / "inventories/lab/group_vars/lab/connection.yml").read_bytes()
    assert PIN.search("ansible-core==2.19.14\n") and PIN.search((ROOT / "requirements.txt").read_text())
