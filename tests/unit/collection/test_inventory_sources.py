"""site.yml, with the repository's ansible.cfg, fails on an inventory source it cannot read, and names it.

Without `[inventory] any_unparsed_is_failed`, Ansible warns about such a source and runs on without its
hosts: on an empty inventory every play is skipped and the run ends green.
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
BIN = Path(sys.executable).parent

BROKEN = """\
plugin: gpufleet.llm.gpu_fleet
sources:
  - source: static
    regions:
      us-east:
        hosts:
          - {names: gpu1, role: gpu_node, gpu_model: NVIDIA H100, gpu_count: two}
"""


def site(*sources):
    env = {key: value for key, value in os.environ.items() if not key.startswith("ANSIBLE_")}
    env["ANSIBLE_CONFIG"] = str(ROOT / "ansible.cfg")
    args = [arg for source in sources for arg in ("-i", str(source))]
    return subprocess.run([str(BIN / "ansible-playbook"), *args, "playbooks/site.yml"], env=env,
                          capture_output=True, text=True, cwd=ROOT, timeout=300, check=False)


def good_source(tmp_path):
    """The lab spec, copied (its group_vars too) so that the test can put a broken file beside it."""
    directory = tmp_path / "good"
    shutil.copytree(ROOT / "inventories/lab_spec", directory, symlinks=False)
    return directory / "lab.gpu_fleet.yml"


@pytest.mark.parametrize(("content", "message"), [
    (BROKEN, "hosts[0].gpu_count: must be a positive integer, got str 'two'"),
    ("", "the file is empty; it needs 'plugin: gpufleet.llm.gpu_fleet'"),
    ("# nothing here yet\n", "the file is empty"),
], ids=["broken", "empty", "only-a-comment"])
def test_an_unreadable_source_fails_the_run_and_names_the_file(tmp_path, content, message):
    source = tmp_path / "fleet.gpu_fleet.yml"
    source.write_text(content)
    result = site(source)
    output = result.stdout + result.stderr
    assert result.returncode != 0, output[-3000:]
    assert f"gpu_fleet inventory {source}: " in output, output[-3000:]
    assert message in output
    assert "PLAY [" not in output  # no play started


def test_one_broken_source_beside_a_good_one_fails_the_run(tmp_path):
    broken = tmp_path / "broken.gpu_fleet.yml"
    broken.write_text(BROKEN)
    result = site(good_source(tmp_path), broken)
    output = result.stdout + result.stderr
    assert result.returncode != 0, output[-3000:]
    assert f"Completely failed to parse inventory source {broken}" in output
    assert f"gpu_fleet inventory {broken}: " in output
    assert "PLAY [" not in output  # the good source's hosts were not touched either


def test_an_inventory_without_gpu_nodes_or_load_balancers_fails_the_first_play(tmp_path):
    hosts = tmp_path / "hosts.yml"
    hosts.write_text("all:\n  hosts: {}\n")
    result = site(hosts)
    assert result.returncode != 0, result.stdout[-3000:]
    assert "the inventory has no host in group gpu_nodes" in result.stdout
    assert "the inventory has no host in group load_balancers" in result.stdout
    assert "PLAY [Provision" not in result.stdout
