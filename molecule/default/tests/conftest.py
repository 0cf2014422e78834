"""What the fleet's verify tests share: the lab inventory, its layout and ways to reach it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[3]
INVENTORY = ROOT / "inventories" / "lab"
# Ansible's commands from the same environment as the tests.
BIN = Path(sys.executable).parent
sys.path.insert(0, str(ROOT / ".collections"))
sys.path.insert(0, str(ROOT / "tests"))

from ansible_collections.gpufleet.llm.plugins.plugin_utils.fleet import fleet_model_servers  # noqa: E402
from inventory_listing import group_hosts  # noqa: E402
from lab_traffic import ADMIN_KEY, lab_client, published_url  # noqa: E402


class Fleet:
    """The lab as the inventory describes it, and as the controller reaches it."""

    def __init__(self, inventory: dict):
        self.hostvars = inventory["_meta"]["hostvars"]
        self.groups = {name: sorted(group_hosts(inventory, name)) for name in inventory if name != "_meta"}
        self.servers = fleet_model_servers(self.hostvars, self.groups["gpu_nodes"])

    def region_of(self, host: str) -> str:
        return self.hostvars[host]["gpufleet_region"]

    def load_balancer(self, region: str) -> str:
        return next(h for h in self.groups["load_balancers"] if self.region_of(h) == region)

    def lb_url(self, region: str) -> str:
        """The region's load balancer as clients reach it: HTTPS on its published 443."""
        return published_url(self.hostvars[self.load_balancer(region)], 443, "https")

    def client(self, key: str | None = ADMIN_KEY, **kwargs) -> httpx.Client:
        """A client of the load balancers: the lab's fleet CA trusted, API key ``key`` (None: no key) sent."""
        return lab_client(self.hostvars[self.groups["load_balancers"][0]], key, **kwargs)

    def servers_of(self, region: str, model: str | None = None) -> list[dict]:
        return [s for s in self.servers if s["region"] == region and model in (None, s["model"])]

    @property
    def models(self) -> list[str]:
        return sorted({s["model"] for s in self.servers})

    def server_url(self, server: dict) -> str:
        """Model servers are reached from the controller at their host's lab address."""
        return f"http://{self.hostvars[server['host']]['ansible_host']}:{server['port']}"

    @property
    def regions(self) -> list[str]:
        return sorted({self.region_of(h) for h in self.groups["load_balancers"]})


@pytest.fixture(scope="session")
def fleet() -> Fleet:
    listed = subprocess.run([str(BIN / "ansible-inventory"), "-i", str(INVENTORY), "--list"], check=True,
                            capture_output=True, text=True, cwd=ROOT, timeout=120)
    return Fleet(json.loads(listed.stdout))


@pytest.fixture(scope="session")
def lab_host():
    """A testinfra host for a lab container, by inventory hostname."""
    import testinfra

    return lambda name: testinfra.get_host(f"podman://{name}")


MODEL_A = "simulated-llm"


def chat(client: httpx.Client, url: str, *, stream: bool = False, max_tokens: int = 8, model: str = MODEL_A,
         **extra) -> httpx.Response:
    body = {"model": model, "stream": stream, "max_tokens": max_tokens,
            "messages": [{"role": "user", "content": "Say something about load balancers."}], **extra}
    return client.post(f"{url}/v1/chat/completions", json=body, timeout=60)


def wait_until(predicate, timeout: float, what: str, interval: float = 0.5):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


@pytest.fixture(scope="module")
def prometheus(fleet):
    """The lab's Prometheus, on the port the monitoring host publishes on this machine."""
    monitoring = fleet.groups["monitoring"][0]
    port = str(fleet.hostvars[monitoring].get("prometheus_listen_address", ":9090")).rsplit(":", 1)[1]
    with httpx.Client(base_url=published_url(fleet.hostvars[monitoring], int(port), "http"), timeout=30) as client:
        yield client


def prom_query(prometheus: httpx.Client, expr: str) -> list[dict]:
    body = prometheus.get("/api/v1/query", params={"query": expr}).json()
    assert body.get("status") == "success", f"{expr}: {body}"
    return body["data"]["result"]


def run_playbook(*args: str, timeout: int = 900) -> subprocess.CompletedProcess:
    # Plain, unwrapped output, so that tests can search it for a message.
    env = dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0", ANSIBLE_CALLBACK_RESULT_FORMAT="json")
    # One stream: failures go to stderr where ANSIBLE_DISPLAY_FAILED_STDERR is set (molecule sets it).
    return subprocess.run([str(BIN / "ansible-playbook"), "-i", str(INVENTORY), *args], stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, cwd=ROOT, env=env, timeout=timeout, check=False)
