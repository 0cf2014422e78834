# Copyright: gpufleet developers. Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""Run ansible-test sanity (or antsibull-docs' lint) on a copy of the working tree, offline.

    .venv/bin/python tests/collection_tree.py sanity [ansible-test sanity options, e.g. --test pylint]
    .venv/bin/python tests/collection_tree.py docs-lint

Both tools want the collection at .../ansible_collections/gpufleet/llm. The checkout's own
.collections/ansible_collections/gpufleet/llm is a directory symlink back to the checkout, which
ansible-test's symlinks test rejects and on which antsibull-docs walks in circles. So the collection
as `ansible-galaxy collection build` ships it (galaxy.yml's build_ignore: no lab, tests, benchmarks or
toolchain; what Galaxy's importer runs sanity on), plus tests/sanity/ (the ignore file), taken from the
files git knows (tracked, and untracked ones it does not ignore: a developer's uncommitted change is
tested too), is copied into .cache/<command>/ansible_collections/gpufleet/llm (one per command, so that `make -j`
runs both), a git repository of its own so that ansible-test lists its files with git rather than
finding the checkout's .git above it.

ansible-test bootstraps pip in each of its sanity virtual environments with a get-pip.py it downloads
from ci-files.testing.ansible.com; offline (PyPI only) this puts pip's wheel, from PyPI, and a
bootstrap script that installs it into ansible-test's cache first.
"""

from __future__ import annotations

import fnmatch
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SANITY_FILES = "tests/sanity/"
ANSIBLE_TEST_CACHE = Path("~/.ansible/test/cache").expanduser()

BOOTSTRAP_MARK = "written by gpufleet's tests/collection_tree.py"
BOOTSTRAP = textwrap.dedent('''\
    """pip's bootstrap for ansible-test, written by gpufleet's tests/collection_tree.py: installs pip from
    the wheel beside it instead of the get-pip.py that ansible-test downloads."""
    import os
    import sys

    HERE = os.path.dirname(os.path.abspath(__file__))
    sys.path.insert(0, os.path.join(HERE, "{wheel}"))
    from pip._internal.cli.main import main  # noqa: E402

    # get-pip.py's own options; pip install knows neither
    ARGS = [arg for arg in sys.argv[1:] if arg not in ("--no-setuptools", "--no-wheel")]
    sys.exit(main(["install", "--no-index", "--find-links", HERE, *ARGS]))
    ''')


def shipped(name, build_ignore):
    """Whether the build keeps ``name``: ansible-galaxy skips a path when it, or a directory above it, matches."""
    parts = name.split("/")
    prefixes = ("/".join(parts[:end]) for end in range(1, len(parts) + 1))
    return not any(fnmatch.fnmatch(prefix, pattern) for prefix in prefixes for pattern in build_ignore)


def collection_files():
    import yaml

    build_ignore = yaml.safe_load((ROOT / "galaxy.yml").read_text()).get("build_ignore", [])
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                            cwd=ROOT, check=True, capture_output=True).stdout.decode().split("\0")
    return sorted({name for name in listed if name and os.path.lexists(ROOT / name)
                   and (shipped(name, build_ignore) or name.startswith(SANITY_FILES))})


def copy_tree(command):
    copy = ROOT / ".cache" / command / "ansible_collections" / "gpufleet" / "llm"
    if copy.exists():
        shutil.rmtree(copy)
    for name in collection_files():
        source, target = ROOT / name, copy / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_symlink():
            target.symlink_to(os.readlink(source))
        else:
            shutil.copy2(source, target)
    subprocess.run(["git", "init", "--quiet"], cwd=copy, check=True)
    return copy


def ansible_test_pip_version():
    """The pip that ansible-test puts in its virtual environments (the name of the script it looks for)."""
    from ansible_test._internal.python_requirements import get_venv_packages

    class Python:
        version = f"{sys.version_info.major}.{sys.version_info.minor}"

    return get_venv_packages(Python())["pip"]


def provide_pip_bootstrap():
    version = ansible_test_pip_version()
    script = ANSIBLE_TEST_CACHE / f"get_pip_{version.replace('.', '_')}.py"
    wheel = f"pip-{version}-py3-none-any.whl"
    ANSIBLE_TEST_CACHE.mkdir(parents=True, exist_ok=True)
    if not (ANSIBLE_TEST_CACHE / wheel).exists():
        subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary", ":all:",
                        "--dest", str(ANSIBLE_TEST_CACHE), f"pip=={version}"], check=True)
    ours = BOOTSTRAP.format(wheel=wheel)
    # A get-pip.py that ansible-test downloaded itself (a machine with internet) is kept.
    if not script.exists() or (script.read_text() != ours and BOOTSTRAP_MARK in script.read_text()):
        script.write_text(ours)


def main(argv):
    command, *options = argv or ["sanity"]
    bin_dir = Path(sys.executable).parent
    if command == "sanity":
        provide_pip_bootstrap()
        python = f"{sys.version_info.major}.{sys.version_info.minor}"
        # --local: the sanity tests' own virtual environments are built either way; --python: only the
        # venv's version, not every version ansible-core supports.
        run = [str(bin_dir / "ansible-test"), "sanity", "--local", "--python", python, *options]
    elif command == "docs-lint":
        run = [str(bin_dir / "antsibull-docs"), "lint-collection-docs", "--plugin-docs", *options, "."]
    else:
        sys.exit(f"usage: {sys.argv[0]} sanity|docs-lint [options]")
    # The Makefile's ANSIBLE_CONFIG points at the checkout's ansible.cfg, whose collections_path resolves
    # gpufleet.llm to the checkout: the tools must see the copy.
    env = {name: value for name, value in os.environ.items() if name != "ANSIBLE_CONFIG"}
    return subprocess.run(run, cwd=copy_tree(command), env=env, check=False).returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
