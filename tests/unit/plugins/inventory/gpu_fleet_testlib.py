"""Helpers and fixtures for the gpu_fleet inventory plugin tests (conftest.py exposes the fixtures): the plugin
a loopback Compute Engine API serving recorded JSON, and moto's EC2 server."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest
import yaml
from loopback import free_port, wait_for_port

ROOT = Path(__file__).resolve().parents[4]
COLLECTIONS = ROOT / ".collections"
FIXTURES = Path(__file__).resolve().parent / "fixtures"
VENV_BIN = ROOT / ".venv" / "bin"
PROJECT = "gpufleet-test"


def write_config(directory, config, name="fleet.gpu_fleet.yml"):
    path = Path(directory) / name
    path.write_text(yaml.safe_dump({"plugin": "gpufleet.llm.gpu_fleet", **config}, sort_keys=False))
    return path


# --- the plugin, in this process, through Ansible's plugin loader ------------------------------------

@pytest.fixture(scope="session")
def collection_loader():
    from ansible.plugins.loader import init_plugin_loader
    from ansible.utils.collection_loader import AnsibleCollectionConfig

    if AnsibleCollectionConfig.collection_finder is None:
        # Tests elsewhere may have imported ansible_collections straight from sys.path; such modules
        # lack the collection metadata the plugin loader needs, so let the collection finder reload them.
        for name in [name for name in sys.modules if name.split(".")[0] == "ansible_collections"]:
            del sys.modules[name]
        init_plugin_loader([str(COLLECTIONS)])


class Parsed:
    """An InventoryData plus the plugin's warnings."""

    def __init__(self, inventory, warnings):
        self.inventory, self.warnings = inventory, warnings

    def hostvars(self, host):
        return self.inventory.get_host(host).get_vars()

    def group_hosts(self, group):
        return sorted(host.name for host in self.inventory.groups[group].get_hosts())

    @property
    def hosts(self):
        return sorted(self.inventory.hosts)


@pytest.fixture
def parse_inventory(collection_loader, monkeypatch):
    """``parse_inventory(path, cache=True)``: run the plugin as ansible-inventory does, in this process."""
    from ansible.inventory.data import InventoryData
    from ansible.parsing.dataloader import DataLoader
    from ansible.plugins.loader import inventory_loader

    def parse(path, cache=True):
        plugin = inventory_loader.get("gpufleet.llm.gpu_fleet")
        warnings = []
        monkeypatch.setattr(plugin.display, "warning", lambda msg, *args, **kwargs: warnings.append(msg))
        inventory = InventoryData()
        plugin.parse(inventory, DataLoader(), str(path), cache=cache)
        if getattr(plugin, "_cache", None) is not None:  # as InventoryManager does after parse
            plugin.update_cache_if_changed()
        return Parsed(inventory, warnings)

    return parse


# --- ansible-inventory, as a user runs it ------------------------------------------------------------

@pytest.fixture
def ansible_env(tmp_path):
    """Environment for ansible-* commands with a config of the test's own, never the user's."""
    config = tmp_path / "ansible.cfg"
    config.write_text(f"[defaults]\ncollections_path = {COLLECTIONS}\nfact_caching = memory\n"
                      "[inventory]\nany_unparsed_is_failed = true\n")
    env = {key: value for key, value in os.environ.items() if not key.startswith(("ANSIBLE_", "AWS_", "GOOGLE_"))}
    env.update(ANSIBLE_CONFIG=str(config), ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0",
               AWS_CONFIG_FILE=str(tmp_path / "no-aws-config"),
               AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "no-aws-creds"))
    return env


def run_ansible(tool, *args, env, cwd=None, check=True, timeout=120):
    result = subprocess.run([str(VENV_BIN / tool), *map(str, args)], env=env, cwd=cwd, capture_output=True,
                            text=True, timeout=timeout, check=False)
    if check and result.returncode != 0:
        raise AssertionError(f"{tool} {' '.join(map(str, args))} failed ({result.returncode}):\n"
                             f"{result.stdout}\n{result.stderr}")
    return result


def inventory_list(source, env, cwd=None, keep_unsafe_marks=False):
    """``ansible-inventory --list`` output; strings marked ``{"__ansible_unsafe": s}`` become ``s`` unless kept."""
    text = run_ansible("ansible-inventory", "-i", source, "--list", env=env, cwd=cwd).stdout
    return json.loads(text, object_hook=None if keep_unsafe_marks else _unmark)


def _unmark(value):
    return value["__ansible_unsafe"] if set(value) == {"__ansible_unsafe"} else value


# --- Compute Engine: recorded API responses on loopback ---------------------------------------------

class FakeComputeEngine:
    """Serves the recorded Compute Engine JSON at the REST paths the client library calls."""

    ROUTES = (
        (re.compile(r"^/compute/v1/projects/(?P<project>[^/]+)/aggregated/instances$"), "_instances"),
        (re.compile(r"^/compute/v1/projects/(?P<project>[^/]+)/zones/(?P<zone>[^/]+)/machineTypes/(?P<name>[^/]+)$"),
         "_machine_type"),
        (re.compile(r"^/compute/v1/projects/(?P<project>[^/]+)/zones/(?P<zone>[^/]+)/acceleratorTypes/"
                    r"(?P<name>[^/]+)$"), "_accelerator_type"),
    )

    def __init__(self):
        self.requests = []
        self.fail_with = None  # an HTTP status every API call answers with
        self._pages = [json.loads((FIXTURES / "gce" / f"instances_aggregated_page{n}.json").read_text())
                       for n in (1, 2)]
        self._machine_types = json.loads((FIXTURES / "gce" / "machine_types.json").read_text())
        self._accelerator_types = json.loads((FIXTURES / "gce" / "accelerator_types.json").read_text())
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                fake._handle(self)

            def do_POST(self):
                fake._handle(self)

            def log_message(self, *args):
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()

    @property
    def url(self):
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def api_requests(self):
        return [request for request in self.requests if request["path"].startswith("/compute/")]

    def stop(self):
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    def _handle(self, handler):
        url = urlparse(handler.path)
        length = int(handler.headers.get("Content-Length") or 0)
        self.requests.append({"method": handler.command, "path": url.path, "query": parse_qs(url.query),
                              "authorization": handler.headers.get("Authorization"),
                              "body": handler.rfile.read(length).decode() if length else ""})
        if self.fail_with:
            message = "Request had insufficient authentication scopes or was refused."
            return self._send(handler, self.fail_with, _google_error(self.fail_with, message))
        for pattern, method in self.ROUTES:
            match = pattern.match(url.path)
            if match:
                status, body = getattr(self, method)(match, parse_qs(url.query))
                return self._send(handler, status, body)
        return self._send(handler, 404, _google_error(404, f"The resource '{url.path}' was not found"))

    def _instances(self, match, query):
        if match["project"] != PROJECT:
            return 404, _google_error(404, f"The resource 'projects/{match['project']}' was not found")
        token = query.get("pageToken", [None])[0]
        return 200, self._pages[1] if token == self._pages[0]["nextPageToken"] else self._pages[0]

    def _described(self, table, match):
        if match["name"] not in table:
            return 404, _google_error(404, f"The resource '{match['name']}' was not found")
        text = json.dumps(table[match["name"]]).replace("{project}", match["project"]).replace("{zone}", match["zone"])
        return 200, json.loads(text)

    def _machine_type(self, match, query):
        return self._described(self._machine_types, match)

    def _accelerator_type(self, match, query):
        return self._described(self._accelerator_types, match)

    @staticmethod
    def _send(handler, status, body):
        data = json.dumps(body).encode()
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json; charset=UTF-8")
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)


def _google_error(code, message):
    reason = {401: "authError", 403: "forbidden", 404: "notFound"}.get(code, "backendError")
    return {"error": {"code": code, "message": message,
                      "errors": [{"message": message, "domain": "global", "reason": reason}]}}


@pytest.fixture
def gce_api():
    server = FakeComputeEngine()
    yield server
    server.stop()


# --- EC2: moto's server on loopback ------------------------------------------------------------------

EC2_INSTANCES = {  # Name tag: (region, instance type, tags besides Name, stop it)
    "p5-use-1": ("us-east-1", "p5.48xlarge", {"gpufleet_role": "gpu_node", "env": "prod"}, False),
    "g6-use-1": ("us-east-1", "g6.xlarge", {"env": "prod"}, False),
    "lb-use-1": ("us-east-1", "m5.large", {"gpufleet_role": "load_balancer", "env": "prod"}, False),
    "p4d-use-stopped": ("us-east-1", "p4d.24xlarge", {"gpufleet_role": "gpu_node", "env": "prod"}, True),
    "g5-euw-dev": ("eu-west-1", "g5.12xlarge", {"gpufleet_role": "gpu_node", "env": "dev"}, False),
    "g5-euw-1": ("eu-west-1", "g5.12xlarge", {"gpufleet_role": "gpu_node", "env": "prod"}, False),
    "mon-euw-1": ("eu-west-1", "t3.large", {"gpufleet_role": "monitoring", "env": "prod"}, False),
}


def _start_moto(env_extra=None):
    port = free_port()
    env = dict(os.environ, **(env_extra or {}))
    process = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                               env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_port(port, process)
    except RuntimeError:
        process.kill()
        raise
    return process, f"http://127.0.0.1:{port}"


def _stop(process):
    process.kill()  # a throwaway emulator: nothing to shut down cleanly, and SIGTERM takes seconds
    process.wait(10)


@pytest.fixture(scope="session")
def moto_ec2():
    """moto's EC2 server with the instances of EC2_INSTANCES; yields its endpoint URL, instance ids and
    (private, public) addresses by Name tag."""
    boto3 = pytest.importorskip("boto3")
    process, endpoint = _start_moto()
    try:
        ids, addresses = {}, {}
        for name, (region, instance_type, tags, stop) in EC2_INSTANCES.items():
            # moto does not check AMI ids unless asked (EC2_ENABLE_AMI_VALIDATION); listing its images is slow.
            client = boto3.client("ec2", region_name=region, endpoint_url=endpoint,
                                  aws_access_key_id="testing", aws_secret_access_key="testing")
            tag_list = [{"Key": key, "Value": value} for key, value in {"Name": name, **tags}.items()]
            created = client.run_instances(ImageId="ami-12345678", InstanceType=instance_type, MinCount=1, MaxCount=1,
                                           TagSpecifications=[{"ResourceType": "instance", "Tags": tag_list}])
            instance = created["Instances"][0]
            ids[name] = instance["InstanceId"]
            addresses[name] = (instance["PrivateIpAddress"], instance.get("PublicIpAddress"))
            if stop:
                client.stop_instances(InstanceIds=[ids[name]])
        yield {"endpoint": endpoint, "ids": ids, "addresses": addresses}
    finally:
        _stop(process)


@pytest.fixture(scope="session")
def moto_ec2_with_auth():
    """A moto EC2 server that checks credentials (IAM auth on from the first request)."""
    pytest.importorskip("boto3")
    process, endpoint = _start_moto({"INITIAL_NO_AUTH_ACTION_COUNT": "0"})
    yield endpoint
    _stop(process)


@pytest.fixture
def aws_env(monkeypatch, tmp_path):
    """Dummy keys for moto, and no profile or file of the user's that could leak in."""
    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-creds"))
