"""Every role documents every default in meta/argument_specs.yml, with the same value."""

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
    options = load(ROOT / "roles" / role / "meta" / "argument_specs.yml")["argument_specs"]["main"]["options"]
    assert sorted(defaults) == sorted(o for o in options if "default" in options[o] or o in defaults)
    for name, value in defaults.items():
        assert options[name].get("default") == value, f"{role}: {name} default differs from its argument spec"
        assert options[name].get("description"), f"{role}: {name} has no description"
        assert name.startswith(f"{role}_"), f"{role}: {name} is not prefixed with the role's name"
