"""model_server packs the simulator on the controller: one archive per checkout, byte-identical across runs."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[3]
BIN = Path(sys.executable).parent


def checkout(directory):
    """A copy of the collection (a collections path of its own), as a second checkout on the same controller."""
    copy = directory / "ansible_collections" / "gpufleet" / "llm"
    for name in ("meta", "plugins", "roles"):
        shutil.copytree(ROOT / name, copy / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy2(ROOT / "galaxy.yml", copy / "galaxy.yml")
    return directory


def pack(tmp_path, collections, tmpdir):
    play = [{"name": "Pack", "hosts": "localhost", "gather_facts": False, "tasks": [
        {"name": "Pack the simulator", "ansible.builtin.include_role": {
            "name": "gpufleet.llm.model_server", "tasks_from": "pack_simulator.yml"}}]}]
    (tmp_path / "pack.yml").write_text(yaml.safe_dump(play))
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(collections), ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"),
               ANSIBLE_NOCOLOR="1", TMPDIR=str(tmpdir))
    result = subprocess.run(
        [str(BIN / "ansible-playbook"), "-i", "localhost,", "-c", "local", str(tmp_path / "pack.yml"),
         "-e", json.dumps({"ansible_python_interpreter": sys.executable})],
        capture_output=True, text=True, env=env, timeout=180, check=False)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return {path.name: path.read_bytes() for path in tmpdir.iterdir() if path.name.startswith("gpufleet-simulator")}


def test_two_checkouts_never_share_an_archive_and_each_is_idempotent(tmp_path):
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    first, second = checkout(tmp_path / "a"), checkout(tmp_path / "b")
    (one,) = pack(tmp_path, first, tmpdir).items()
    assert pack(tmp_path, first, tmpdir) == dict([one]), "a second run must leave the same bytes (and no temp file)"
    archives = pack(tmp_path, second, tmpdir)
    assert len(archives) == 2 and archives[one[0]] == one[1]
    (other,) = set(archives) - {one[0]}
    assert archives[other] == one[1], "the same source packs to the same bytes, whichever checkout"
    # The second checkout's simulator changes: only its own archive follows.
    simulator = second / "ansible_collections/gpufleet/llm/roles/model_server/files/simulator"
    (simulator / "CHANGED").write_text("a change in the second checkout only\n")
    after = pack(tmp_path, second, tmpdir)
    assert after[one[0]] == one[1] and after[other] != one[1]
