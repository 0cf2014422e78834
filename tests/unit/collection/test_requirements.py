"""requirements.yml, galaxy.yml's dependencies and requirements/*.txt declare exactly what the product uses:
collections derived from the FQCNs in its roles, playbooks and plugins, Python packages from its imports."""

import ast
import re
import sys
from importlib import metadata
from pathlib import Path

import ansible_collections
import yaml
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[3]
RUNTIME_FILES = ["controller.txt", "ec2.txt", "gce.txt"]
# Collections the checkout itself is, or that ansible-core is: never a requirement.
NOT_REQUIREMENTS = {"gpufleet.llm", "ansible.builtin"}
FQCN = re.compile(r"\b([a-z][a-z0-9_]*)\.([a-z][a-z0-9_]*)\.[a-z][a-z0-9_]*\b")
# ansible-core's own Python packages (ansible.utils.unsafe_proxy) look like FQCNs of the ansible.utils collection.
CORE_IMPORT = re.compile(r"^\s*(from|import)\s+ansible\.", re.MULTILINE)


def _installed_collections() -> set[str]:
    """Every collection the pinned `ansible` package bundles: what an FQCN's first two parts may name."""
    found = set()
    for base in map(Path, ansible_collections.__path__):
        found |= {f"{ns.name}.{c.name}" for ns in base.iterdir() if ns.is_dir() for c in ns.iterdir() if c.is_dir()}
    return found


def _product_files():
    """What the built collection ships that can name a collection (test_build.py checks the exclusions)."""
    for path in [*ROOT.glob("roles/*/**/*"), *ROOT.glob("playbooks/*.yml"), *ROOT.glob("plugins/**/*.py")]:
        rel = path.relative_to(ROOT).as_posix()
        if path.is_file() and not rel.startswith(("roles/lab/", "playbooks/lab")) and "/files/simulator/" not in rel:
            yield path


def _used_collections() -> set[str]:
    known = _installed_collections()
    used = set()
    for path in _product_files():
        text = path.read_text(errors="replace")
        if path.suffix == ".py":
            text = CORE_IMPORT.sub("#", text)
        used |= {f"{ns}.{coll}" for ns, coll in FQCN.findall(text)} & known
    return used - NOT_REQUIREMENTS


def test_requirements_yml_is_what_the_product_uses():
    declared = {c["name"] for c in yaml.safe_load((ROOT / "requirements.yml").read_text())["collections"]}
    assert declared == _used_collections()


def test_galaxy_dependencies_match_requirements_yml():
    galaxy = yaml.safe_load((ROOT / "galaxy.yml").read_text())["dependencies"]
    wanted = {c["name"]: c["version"] for c in yaml.safe_load((ROOT / "requirements.yml").read_text())["collections"]}
    assert galaxy == wanted


def test_the_derivation_sees_a_collection_and_not_core():
    assert "community.general" in _used_collections()  # roles/cuda_toolkit: community.general.alternatives
    assert "ansible.utils" not in _used_collections()  # only core's ansible.utils.unsafe_proxy in plugins


def runtime_requirements() -> list[Requirement]:
    reqs = []
    for name in RUNTIME_FILES:
        lines = (ROOT / "requirements" / name).read_text().splitlines()
        reqs += [Requirement(line) for line in lines if line.strip() and not line.startswith("#")]
    return reqs


def _plugin_imports() -> set[str]:
    """Top-level names the plugins import, outside the standard library and the collection itself."""
    names = set()
    for path in ROOT.glob("plugins/**/*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
    return names - set(sys.stdlib_module_names) - {"__future__", "ansible_collections"}


def _closure(dists: set[str]) -> set[str]:
    """The distributions and everything they require (no extras), as installed in this venv."""
    seen, todo = set(), [d.lower() for d in dists]
    while todo:
        dist = todo.pop()
        if dist in seen:
            continue
        seen.add(dist)
        for line in metadata.requires(dist) or []:
            req = Requirement(line)
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                todo.append(req.name.lower().replace("_", "-"))
    return seen


def test_every_plugin_import_is_provided_by_the_runtime_requirements():
    provided = _closure({r.name for r in runtime_requirements()})
    providers = metadata.packages_distributions()
    missing = {name for name in _plugin_imports()
               if not {d.lower().replace("_", "-") for d in providers.get(name, [])} & provided}
    assert missing == set()


def test_every_runtime_requirement_is_imported_by_a_plugin():
    providers = metadata.packages_distributions()
    imported_dists = {d.lower() for name in _plugin_imports() for d in providers.get(name, [])}
    assert {r.name.lower() for r in runtime_requirements()} - imported_dists == set()


def test_controller_ansible_core_matches_runtime_yml():
    (core,) = [r for r in runtime_requirements() if r.name == "ansible-core"]
    requires = yaml.safe_load((ROOT / "meta/runtime.yml").read_text())["requires_ansible"]
    assert str(core.specifier) == requires


def test_runtime_requirements_are_ranges_not_dev_pins():
    assert [str(r) for r in runtime_requirements() if any(s.operator == "==" for s in r.specifier)] == []
