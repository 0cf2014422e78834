"""Every plugin carries the same license line, that of LICENSE and galaxy.yml (Apache-2.0)."""

from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[3]
HEADER = "# Copyright: gpufleet developers. Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)"
PLUGINS = sorted(p.relative_to(ROOT).as_posix() for p in ROOT.glob("plugins/**/*.py"))


def test_license_file_is_what_galaxy_yml_declares():
    assert yaml.safe_load((ROOT / "galaxy.yml").read_text())["license"] == ["Apache-2.0"]
    assert "Apache License\n" in (ROOT / "LICENSE").read_text() and "Version 2.0, January 2004" in (
        ROOT / "LICENSE").read_text()


@pytest.mark.parametrize("path", PLUGINS)
def test_plugin_carries_the_license_line(path):
    lines = (ROOT / path).read_text().splitlines()
    # A module's shebang stays first: Ansible reads the interpreter from it.
    first = lines[1] if lines[0].startswith("#!") else lines[0]
    assert first == HEADER
    assert "GNU General Public License" not in "\n".join(lines[:5])
