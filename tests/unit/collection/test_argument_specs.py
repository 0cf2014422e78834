"""Every role documents every default in meta/argument_specs.yml, with the same value."""

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[3]
ROLES = sorted(p.parent.parent.name for p in ROOT.glob("roles/*/defaults/main.yml"))


def load(path):
    return yaml.safe_load(path.read_text()) or {}


def test_every_role_has_argument_specs():
    missing = [p.name for p in (ROOT / "roles").iterdir()
               if p.is_dir() and not (p / "meta" / "argument_specs.yml").exists()]
    assert missing == []


@pytest.mark.parametrize("role", ROLES)
def test_defaults_and_argument_specs_match(role):
    defaults = load(ROOT / "roles" / role / "defaults" / "main.yml")
    entry_points = load(ROOT / "roles" / role / "meta" / "argument_specs.yml")["argument_specs"].values()
    options = {name: option for entry in entry_points for name, option in entry.get("options", {}).items()}
    assert sorted(defaults) == sorted(o for o in options if "default" in options[o] or o in defaults)
    for name, value in defaults.items():
        assert options[name].get("default") == value, f"{role}: {name} default differs from its argument spec"
        assert options[name].get("description"), f"{role}: {name} has no description"
        assert name.startswith(f"{role}_"), f"{role}: {name} is not prefixed with the role's name"


def test_the_role_pages_match_the_argument_specs():
    result = subprocess.run([sys.executable, str(ROOT / "tests" / "role_docs.py"), "--check"],
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
