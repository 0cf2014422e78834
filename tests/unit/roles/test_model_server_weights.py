"""The model's weights are staged before any drain and the instances serve the staged copy, offline.

The instance environment is rendered from the role's template (render_env.yml); the staging itself
(roles/model_server/tasks/weights.yml) runs for real on localhost in a temporary directory (weights.yml), from a
pre-staged directory on the host, one on the controller, and the hub path through the role's download script
against a stand-in huggingface_hub (no network here), each twice: the second run changes nothing.
"""

import grp
import json
import os
import pwd
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[3]
HERE = Path(__file__).parent
SHA = "7ae557604adf67be50417f59c2c2f167def9a775"
RENDERED = {
    "defaults": {},
    "pinned": {"model_server_vllm_model_revision": SHA, "model_server_vllm_weights_dir": "/srv/models",
               "model_server_hf_token": "hf_secret_token_value"},
    "online": {"model_server_vllm_offline": False},
    "host_source": {"model_server_vllm_weights_source": "host", "model_server_vllm_weights_path": "/data/qwen",
                    "model_server_vllm_model_revision": "site-2025-01"},
}


def _env():
    return dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(REPO / ".collections"),
                ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_NOCOLOR="1", ANSIBLE_CACHE_PLUGIN="memory")


def _playbook(playbook, inventory, work, extra=None, env=None):
    (work / "hosts.yml").write_text(yaml.safe_dump(inventory))
    command = [str(Path(sys.executable).with_name("ansible-playbook")), "-i", str(work / "hosts.yml"), str(playbook)]
    if extra:
        command += ["-e", json.dumps(extra)]
    return subprocess.run(command, cwd=REPO, env=dict(_env(), ANSIBLE_LOCAL_TEMP=str(work / "ansible-tmp"),
                                                      **(env or {})),
                          capture_output=True, text=True, timeout=300, check=False)


def _local(hosts):
    return {"all": {"vars": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable},
                    "hosts": hosts}}


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    work = tmp_path_factory.mktemp("env")
    result = _playbook(HERE / "render_env.yml", _local({h: {"render_vars": v} for h, v in RENDERED.items()}), work,
                       {"render_dir": str(work)})
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    return {host: dict(line.split("=", 1) for line in (work / f"{host}.env").read_text().splitlines()
                       if line and not line.startswith("#")) for host in RENDERED}


def test_instances_serve_the_staged_weights_offline(rendered):
    env = rendered["defaults"]
    args = env["MODEL_SERVER_ARGS"].split()
    assert args[0] == "/opt/gpufleet/model-server/models/Qwen--Qwen2.5-0.5B-Instruct/main"
    # Clients still ask for the model id: the served name is not the staged path.
    assert args[args.index("--served-model-name") + 1] == "Qwen/Qwen2.5-0.5B-Instruct"
    assert (env["HF_HUB_OFFLINE"], env["TRANSFORMERS_OFFLINE"]) == ("1", "1")


def test_a_pinned_revision_names_the_directory_and_the_token_stays_out(rendered):
    env = rendered["pinned"]
    assert env["MODEL_SERVER_ARGS"].split()[0] == f"/srv/models/Qwen--Qwen2.5-0.5B-Instruct/{SHA}"
    assert not any("hf_secret_token_value" in value or name == "HF_TOKEN" for name, value in env.items())


def test_offline_mode_can_be_turned_off(rendered):
    assert "HF_HUB_OFFLINE" not in rendered["online"] and "TRANSFORMERS_OFFLINE" not in rendered["online"]


def test_a_host_copy_is_served_from_the_staged_directory_not_the_source(rendered):
    args = rendered["host_source"]["MODEL_SERVER_ARGS"].split()
    assert args[0] == "/opt/gpufleet/model-server/models/Qwen--Qwen2.5-0.5B-Instruct/site-2025-01"
    assert "/data/qwen" not in rendered["host_source"]["MODEL_SERVER_ARGS"]


# Stand-in for huggingface_hub.snapshot_download, as huggingface_hub 2.4 behaves (checked against the real one
# with a pre-filled cache): online it writes into local_dir; offline it reads only its cache, and with a
# local_dir it looks there alone, so the role's script must resolve the cache's snapshot (symlinks to blobs).
FAKE_HUB = """import json, os, shutil


def snapshot_download(repo_id, revision, local_dir=None):
    with open(os.environ["FAKE_HUB_LOG"], "a") as log:
        log.write(json.dumps({"repo_id": repo_id, "revision": revision, "local_dir": local_dir,
                              "offline": os.environ.get("HF_HUB_OFFLINE"), "endpoint": os.environ.get("HF_ENDPOINT"),
                              "token": "HF_TOKEN" in os.environ, "hf_home": os.environ.get("HF_HOME")}) + "\\n")
    snapshot = os.path.join(os.environ["FAKE_HUB_ROOT"], repo_id, revision)
    if os.environ.get("HF_HUB_OFFLINE") == "1":
        if local_dir is not None:
            raise RuntimeError("LocalEntryNotFoundError: offline, nothing in " + local_dir)
        return snapshot
    shutil.copytree(snapshot, local_dir, symlinks=False, dirs_exist_ok=True)
    os.makedirs(os.path.join(local_dir, ".cache", "huggingface"), exist_ok=True)
    return local_dir
"""


def _weights(name, root, blobs=None):
    """A model directory as the Hub serves one: config, tokenizer, two shards (in a cache, links to blobs)."""
    files = {"config.json": '{"model_type": "qwen2"}', "tokenizer.json": "{}",
             "model-00001-of-00002.safetensors": "shard one " + name, "model-00002-of-00002.safetensors": "two"}
    root.mkdir(parents=True, exist_ok=True)
    for rel, text in files.items():
        if blobs is None:
            (root / rel).write_text(text)
        else:
            blobs.mkdir(parents=True, exist_ok=True)
            (blobs / f"{name}-{rel}").write_text(text)
            (root / rel).symlink_to(blobs / f"{name}-{rel}")
    return sorted(files)


def _changed(stdout, host):
    match = re.search(rf"^{re.escape(host)}\s+: ok=\d+\s+changed=(\d+)\s+unreachable=0\s+failed=0", stdout, re.M)
    assert match, stdout[-4000:]
    return int(match.group(1))


@pytest.fixture(scope="module")
def staged(tmp_path_factory):
    work = tmp_path_factory.mktemp("weights")
    user, group = pwd.getpwuid(os.getuid()).pw_name, grp.getgrgid(os.getgid()).gr_name
    expected = {"on_host": _weights("host", work / "prestaged-host"),
                "on_controller": _weights("controller", work / "prestaged-controller"),
                "hub": _weights("hub", work / "fake-hub" / "Qwen" / "Qwen2.5-0.5B-Instruct" / SHA, work / "blobs"),
                "hub_online": _weights("hub", work / "fake-hub" / "Qwen" / "Qwen2.5-0.5B-Instruct" / "main",
                                       work / "blobs")}
    # The venv's Python: this one, with the stand-in huggingface_hub first on its path.
    (work / "fake-site" / "huggingface_hub").mkdir(parents=True)
    (work / "fake-site" / "huggingface_hub" / "__init__.py").write_text(FAKE_HUB)
    (work / "venv" / "bin").mkdir(parents=True)
    python = work / "venv" / "bin" / "python"
    python.write_text(f"#!/bin/sh\nPYTHONPATH={work / 'fake-site'} exec {sys.executable} \"$@\"\n")
    python.chmod(0o755)
    common = {"model_server_user": user, "model_server_group": group, "model_server_home": str(work / "home"),
              "model_server_venv": str(work / "venv")}
    hosts = {
        "on_host": {**common, "model_server_vllm_weights_dir": str(work / "models-host"),
                    "model_server_vllm_weights_source": "host", "model_server_vllm_model_revision": "site-1",
                    "model_server_vllm_weights_path": str(work / "prestaged-host")},
        "on_controller": {**common, "model_server_vllm_weights_dir": str(work / "models-controller"),
                          "model_server_vllm_weights_source": "controller", "model_server_vllm_model_revision": "v1",
                          "model_server_vllm_weights_path": str(work / "prestaged-controller")},
        "hub": {**common, "model_server_vllm_weights_dir": str(work / "models-hub"),
                "model_server_vllm_model_revision": SHA, "model_server_vllm_require_pinned_revision": True,
                "model_server_vllm_hf_endpoint": "https://hf-mirror.example", "model_server_vllm_weights_offline": True,
                "model_server_hf_token": "hf_secret_token_value"},
        "hub_online": {**common, "model_server_vllm_weights_dir": str(work / "models-hub-online")},
    }
    (work / "home" / "src").mkdir(parents=True)
    env = {"FAKE_HUB_ROOT": str(work / "fake-hub"), "FAKE_HUB_LOG": str(work / "hub.log")}
    runs = [_playbook(HERE / "weights.yml", _local(hosts), work, env=env) for _ in range(2)]
    for result in runs:
        assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    return work, hosts, expected, runs


@pytest.mark.parametrize("host", ["on_host", "on_controller", "hub", "hub_online"])
def test_weights_are_in_place_and_a_rerun_changes_nothing(staged, host):
    _work, hosts, expected, (first, second) = staged
    revision = hosts[host].get("model_server_vllm_model_revision", "main")
    path = Path(hosts[host]["model_server_vllm_weights_dir"]) / "Qwen--Qwen2.5-0.5B-Instruct" / revision
    files = sorted(str(p.relative_to(path)) for p in path.rglob("*") if p.is_file() and ".cache" not in p.parts)
    assert files == sorted([*expected[host], ".gpufleet-staged"])
    assert f"revision={revision}" in (path / ".gpufleet-staged").read_text()
    assert oct(path.stat().st_mode & 0o777) == "0o750"
    assert not any(p.is_symlink() for p in path.rglob("*"))
    assert all(p.stat().st_mode & 0o007 == 0 for p in path.rglob("*"))
    assert _changed(first.stdout, host) > 0
    assert _changed(second.stdout, host) == 0


def test_the_hub_is_asked_once_offline_through_the_mirror_and_the_token_never_shows(staged):
    work, _hosts, _expected, runs = staged
    calls = {call["revision"]: call for call in map(json.loads, (work / "hub.log").read_text().splitlines())}
    assert len((work / "hub.log").read_text().splitlines()) == 2 and set(calls) == {SHA, "main"}
    offline, online = calls[SHA], calls["main"]
    assert offline["repo_id"] == "Qwen/Qwen2.5-0.5B-Instruct" and offline["local_dir"] is None
    assert (offline["offline"], offline["endpoint"], offline["token"]) == ("1", "https://hf-mirror.example", True)
    assert offline["hf_home"] == str(work / "home" / ".cache" / "huggingface")
    assert (online["offline"], online["endpoint"], online["token"]) == (None, None, False)
    assert online["local_dir"] == str(work / "models-hub-online" / "Qwen--Qwen2.5-0.5B-Instruct" / "main")
    assert all("hf_secret_token_value" not in result.stdout + result.stderr for result in runs)
    assert not any("hf_secret_token_value" in p.read_text(errors="ignore")
                   for p in (work / "home").rglob("*") if p.is_file())


PREFLIGHT_CASES = {
    "relative_prestaged": ({"model_server_vllm_weights_source": "host", "model_server_vllm_weights_path": "data/qwen"},
                           'model_server_vllm_weights_path must be an absolute directory path with source host, '
                           'got "data/qwen"'),
    "unpinned": ({"model_server_vllm_require_pinned_revision": True},
                 "model_server_vllm_model_revision main is not a pinned commit (40 hex digits) and "
                 "model_server_vllm_require_pinned_revision is true"),
    "slash_revision": ({"model_server_vllm_model_revision": "refs/pr/1"},
                       'model_server_vllm_model_revision "refs/pr/1" must be a commit, tag or branch name'),
    "missing_on_controller": ({"model_server_vllm_weights_source": "controller",
                               "model_server_vllm_weights_path": "/nonexistent/gpufleet-weights"},
                              "model_server_vllm_weights_path /nonexistent/gpufleet-weights is not a directory on "
                              "the controller"),
}


@pytest.fixture(scope="module")
def preflight(tmp_path_factory):
    """One GPU node per case, all in one run: each fails its own preflight."""
    work = tmp_path_factory.mktemp("preflight")
    nodes = {case: {"gpufleet_region": "lab", "gpu_count": 1, "gpu_model": "simulated", **values}
             for case, (values, _message) in PREFLIGHT_CASES.items()}
    inventory = {"all": {"vars": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable},
                         "children": {
                             "gpu_nodes": {"hosts": nodes},
                             "load_balancers": {"hosts": {"lb1": {"gpufleet_region": "lab"}}},
                             "region_lab": {"hosts": {**{case: {} for case in nodes}, "lb1": {}}}}}}
    (work / "preflight.yml").write_text(yaml.safe_dump([{
        "name": "Model server preflight", "hosts": "gpu_nodes", "gather_facts": False,
        "tasks": [{"ansible.builtin.include_role": {"name": "gpufleet.llm.model_server",
                                                    "tasks_from": "preflight.yml"}}]}]))
    result = _playbook(work / "preflight.yml", inventory, work)
    assert result.returncode == 2, result.stdout[-4000:]
    return re.sub(r"\s+", " ", result.stdout)


@pytest.mark.parametrize("case", PREFLIGHT_CASES)
def test_preflight_names_host_and_variable(preflight, case):
    assert f"{case}: {PREFLIGHT_CASES[case][1]}" in preflight, preflight[-4000:]
