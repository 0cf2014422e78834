"""The changelog fragments are valid for antsibull-changelog, and CHANGELOG.md is generated from them."""

import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[3]
ANTSIBULL_CHANGELOG = Path(sys.executable).parent / "antsibull-changelog"


def _lint(*paths: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(ANTSIBULL_CHANGELOG), "lint", *map(str, paths)], cwd=ROOT,
                          capture_output=True, text=True, check=False)


def test_fragments_pass_the_lint():
    result = _lint()
    assert (result.returncode, result.stdout + result.stderr) == (0, "")


def test_the_lint_reports_a_bad_fragment(tmp_path):
    bad = tmp_path / "bad.yml"
    bad.write_text("---\nnew_section:\n  - not a section antsibull-changelog knows\n")
    assert "new_section" in _lint(bad).stdout


def test_changelog_md_is_generated_from_changelog_yaml(tmp_path):
    """A hand edit of CHANGELOG.md, or a release recorded without regenerating it, shows here."""
    out = tmp_path / "CHANGELOG.md"
    subprocess.run([str(ANTSIBULL_CHANGELOG), "generate", "--output", str(out)], cwd=ROOT, check=True,
                   capture_output=True, text=True)
    assert out.read_text() == (ROOT / "CHANGELOG.md").read_text()


def test_every_release_lists_its_fragments():
    for version, release in yaml.safe_load((ROOT / "changelogs/changelog.yaml").read_text())["releases"].items():
        assert release["fragments"], version
        assert all((ROOT / "changelogs/fragments" / name).is_file() for name in release["fragments"]), version
