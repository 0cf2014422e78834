"""gpufleet.llm.template and gpufleet.llm.copy, run by ansible-playbook over a local connection: they write as the
builtins do, settle an unchanged file without a module (their "Nothing to do" result), and write again a file
whose content or mode was changed by hand, in check mode only reporting it."""

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[4]
BIN = Path(sys.executable).parent


def run(tmp_path, *extra):
    """Both modules once; {task: result} of this run."""
    results = tmp_path / "results.json"
    play = [{"name": "Write", "hosts": "localhost", "gather_facts": False, "tasks": [
        {"name": "Template", "register": "template", "gpufleet.llm.template": {
            "src": str(tmp_path / "t.conf.j2"), "dest": str(tmp_path / "t.conf"), "mode": "0640"}},
        {"name": "Copy", "gpufleet.llm.copy": {"content": "fixed\n", "dest": str(tmp_path / "c.txt"), "mode": "0600"},
         "register": "copy"},
        {"name": "Results", "ansible.builtin.copy": {"dest": str(results), "mode": "0644", "content":
                                                     "{{ {'template': template, 'copy': copy} | to_json }}"},
         "check_mode": False}]}]
    (tmp_path / "play.yml").write_text(yaml.safe_dump(play))
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_NOCOLOR="1")
    done = subprocess.run([str(BIN / "ansible-playbook"), "-i", "localhost,", "-c", "local", str(tmp_path / "play.yml"),
                           "-e", json.dumps({"ansible_python_interpreter": sys.executable, "greeting": "hello"}),
                           *extra], capture_output=True, text=True, env=env, timeout=180, check=False, cwd=ROOT)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return json.loads(results.read_text())


def settled(result):
    return not result["changed"] and result.get("msg", "").startswith("Nothing to do")


def test_written_then_settled_then_written_again_after_a_hand_edit(tmp_path):
    (tmp_path / "t.conf.j2").write_text("greeting = {{ greeting }}\n")
    first = run(tmp_path)
    assert first["template"]["changed"] and first["copy"]["changed"]
    assert (tmp_path / "t.conf").read_text() == "greeting = hello\n"
    assert oct((tmp_path / "c.txt").stat().st_mode & 0o777) == "0o600"

    second = run(tmp_path)
    assert settled(second["template"]) and settled(second["copy"])
    assert second["copy"]["checksum"] == first["copy"]["checksum"]

    (tmp_path / "t.conf").write_text("greeting = edited\n")
    (tmp_path / "c.txt").chmod(0o644)
    checked = run(tmp_path, "--check")
    assert checked["template"]["changed"] and checked["copy"]["changed"]
    assert (tmp_path / "t.conf").read_text() == "greeting = edited\n"

    third = run(tmp_path)
    assert third["template"]["changed"] and third["copy"]["changed"]
    assert (tmp_path / "t.conf").read_text() == "greeting = hello\n"
    assert oct((tmp_path / "c.txt").stat().st_mode & 0o777) == "0o600"


def test_a_changed_template_variable_writes_the_file(tmp_path):
    (tmp_path / "t.conf.j2").write_text("greeting = {{ greeting }}\n")
    run(tmp_path)
    (tmp_path / "t.conf.j2").write_text("greeting = {{ greeting | upper }}\n")
    assert run(tmp_path)["template"]["changed"]
    assert (tmp_path / "t.conf").read_text() == "greeting = HELLO\n"
