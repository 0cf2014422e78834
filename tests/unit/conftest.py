"""Fixture sysfs/proc roots, written at test time from tests/unit/fixtures/nvidia/roots/<name>.yml.

sysfs names PCI devices 0000:18:00.0, and ansible-test's no-illegal-filenames sanity test rejects a
':' in any tracked path, so the trees are described in YAML and built in a temporary directory.
"""

import base64
import os
from pathlib import Path

import pytest
import yaml

ROOT_DESCRIPTIONS = Path(__file__).resolve().parent / "fixtures" / "nvidia" / "roots"


def materialise_root(description, dest):
    """Build one root from its YAML: files (text), binary (base64), links (symlink targets), dirs (empty)."""
    spec = yaml.safe_load(Path(description).read_text()) or {}
    dest = Path(dest)
    for rel in spec.get("dirs", []):
        (dest / rel).mkdir(parents=True, exist_ok=True)
    for key, write in (("files", lambda p, v: p.write_text(v)),
                       ("binary", lambda p, v: p.write_bytes(base64.b64decode(v)))):
        for rel, value in spec.get(key, {}).items():
            path = dest / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            write(path, value)
    for rel, target in spec.get("links", {}).items():
        path = dest / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(target, path)
    return dest


def materialise_roots(dest):
    """Every described root under dest/<name>; returns dest."""
    for description in sorted(ROOT_DESCRIPTIONS.glob("*.yml")):
        materialise_root(description, Path(dest) / description.stem)
    return Path(dest)


@pytest.fixture(scope="session")
def nvidia_roots(tmp_path_factory):
    """Directory holding hgx_h100/, no_gpu/, ... as gpu_facts' and the roles' detection roots."""
    return materialise_roots(tmp_path_factory.mktemp("nvidia_roots"))
