"""execution-environment.yml is a valid ansible-builder v3 file (`ansible-builder create` writes its build
context, offline) and carries the runtime requirements, no more and no less."""

import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from test_requirements import runtime_requirements

ROOT = Path(__file__).resolve().parents[3]
ANSIBLE_BUILDER = Path(sys.executable).parent / "ansible-builder"
EE = yaml.safe_load((ROOT / "execution-environment.yml").read_text())


@pytest.fixture(scope="module")
def context(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("ee") / "context"
    subprocess.run([str(ANSIBLE_BUILDER), "create", "-f", str(ROOT / "execution-environment.yml"), "-c", str(out)],
                   check=True, capture_output=True, text=True, cwd=ROOT)
    return out


def _lines(path: Path) -> set[str]:
    return {line.strip() for line in path.read_text().splitlines() if line.strip() and not line.startswith("#")}


def test_builder_accepts_it_as_version_3(context):
    assert EE["version"] == 3
    assert (context / "Containerfile").is_file()


def test_python_dependencies_are_the_runtime_requirement_files(context):
    # ansible-core comes through ansible_core (the galaxy stage needs it), the rest through python.
    in_ee = {str(Requirement(r)) for r in [EE["dependencies"]["ansible_core"]["package_pip"],
                                           *EE["dependencies"]["python"]]}
    assert in_ee == {str(r) for r in runtime_requirements()}
    built = {str(Requirement(line)) for line in _lines(context / "_build/requirements.txt")}
    assert built == in_ee - {EE["dependencies"]["ansible_core"]["package_pip"]}


def test_ansible_core_reaches_the_base_stage(context):
    assert EE["dependencies"]["ansible_core"]["package_pip"] in (context / "Containerfile").read_text()


def test_collections_are_requirements_yml(context):
    assert EE["dependencies"]["galaxy"] == "requirements.yml"
    assert (context / "_build/requirements.yml").read_text() == (ROOT / "requirements.yml").read_text()


def test_system_packages_are_bindep_txt(context):
    assert _lines(context / "_build/bindep.txt") == _lines(ROOT / "bindep.txt")
