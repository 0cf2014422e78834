"""Day-2: a rerun of site.yml that restarts every model server drains them batch by batch under live traffic.

Runs last (file order): it leaves the fleet on a changed simulator setting, which only the destroy step follows.
"""

from __future__ import annotations

import json
import time
from collections import Counter

import httpx
import pytest
from conftest import run_playbook
from lab_traffic import Background, answers_models, stream_chat

LOAD_SECONDS_MAX = 420
STREAMS_PER_REGION = 3
REQUESTS_MAX = 6000


def _changed_settings(fleet, lab_host) -> str:
    first = fleet.groups["gpu_nodes"][0]
    # A model load that takes seconds, as a real engine's takes minutes: no instance answers while it loads.
    # Another value than the one running, so that a rerun of this test on a kept lab changes every instance too.
    running = lab_host(first).file(f"/etc/gpufleet/model-server/{fleet.servers[0]['port']}.env").content_string
    delay = 4 if "GPUFLEET_SIM_STARTUP_DELAY_S=3\n" in running else 3
    settings = dict(fleet.hostvars[first]["model_server_simulator_settings"], startup_delay_s=delay)
    return json.dumps({"model_server_simulator_settings": settings})


def _start_times(fleet, lab_host) -> dict[tuple[str, int], str]:
    times = {}
    for server in fleet.servers:
        unit = f"model-server@{server['port']}.service"
        times[(server["host"], server["port"])] = lab_host(server["host"]).check_output(
            f"systemctl show -p ExecMainStartTimestampMonotonic --value {unit}")
    return times


class Load(Background):
    """Streamed chats through each region's load balancer until stopped (bounded in count and time)."""

    def __init__(self, fleet):
        super().__init__()
        self.fleet = fleet
        self.outcomes: Counter = Counter()
        self.failures: list[str] = []
        self.deadline = time.monotonic() + LOAD_SECONDS_MAX
        for region in fleet.regions:
            for index in range(STREAMS_PER_REGION):
                self.run(self._stream, region, fleet.models[index % len(fleet.models)])

    def _stream(self, region: str, model: str) -> None:
        with self.fleet.client(timeout=60) as client:
            while not self.stop.is_set() and time.monotonic() < self.deadline:
                with self.lock:
                    if sum(self.outcomes.values()) >= REQUESTS_MAX:
                        return
                outcome = stream_chat(client, self.fleet.lb_url(region), model)
                with self.lock:
                    if outcome.resent:
                        self.outcomes["resent after a reload closed its idle connection"] += 1
                    self.outcomes["ok" if outcome.ok else "failed"] += 1
                    if not outcome.ok:
                        self.failures.append(f"{region} {model}: {outcome.what}")


class ReadySampler(Background):
    """Every 0.5 s, how many instances of each region answer /v1/models."""

    def __init__(self, fleet):
        super().__init__()
        self.fleet = fleet
        self.minimum = {region: len(fleet.servers_of(region)) for region in fleet.regions}
        self.samples = 0
        self.run(self._sample)

    def _sample(self) -> None:
        with httpx.Client(timeout=2) as client:
            deadline = time.monotonic() + LOAD_SECONDS_MAX
            while not self.stop.is_set() and time.monotonic() < deadline:
                for region in self.fleet.regions:
                    ready = sum(answers_models(client, self.fleet.server_url(server))
                                for server in self.fleet.servers_of(region))
                    self.minimum[region] = min(self.minimum[region], ready)
                self.samples += 1
                time.sleep(0.5)


@pytest.fixture(scope="module")
def changed(fleet, lab_host):
    return _changed_settings(fleet, lab_host)


def test_check_mode_lists_the_instances_it_would_drain_and_changes_nothing(fleet, lab_host, changed):
    before = _start_times(fleet, lab_host)
    result = run_playbook("playbooks/site.yml", "--check", "-e", changed)
    assert result.returncode == 0, result.stdout[-3000:]
    for server in fleet.servers:
        assert f"restart {server['host']} {server['port']}" in result.stdout, result.stdout[-3000:]
    assert _start_times(fleet, lab_host) == before


def test_a_rerun_that_restarts_every_instance_drops_no_request(fleet, lab_host, changed):
    before = _start_times(fleet, lab_host)
    with ReadySampler(fleet) as sampler, Load(fleet) as load:
        time.sleep(2)
        started = time.monotonic()
        result = run_playbook("playbooks/site.yml", "-e", changed)
        rollout_s = time.monotonic() - started
        time.sleep(2)
    print(f"rollout under load: {rollout_s:.0f} s, {dict(load.outcomes)}, fewest ready per region "
          f"{sampler.minimum} over {sampler.samples} samples")
    assert result.returncode == 0, result.stdout[-4000:]
    assert load.outcomes["ok"] > 50 and load.failures == [], load.failures[:10]
    after = _start_times(fleet, lab_host)
    assert all(after[key] != before[key] for key in before), "an instance kept its old process"
    for region in fleet.regions:
        assert sampler.minimum[region] >= len(fleet.servers_of(region)) - 1, sampler.minimum


def test_retiring_a_node_under_load_drains_it_first_and_it_can_come_back(fleet, lab_host, tmp_path):
    region = fleet.regions[0]
    host = sorted({s["host"] for s in fleet.servers_of(region)})[-1]
    ports = [s["port"] for s in fleet.servers if s["host"] == host]
    overlay = tmp_path / "retire.yml"
    # The one edit a user makes: gpufleet_retired on the host (here in a second inventory source).
    overlay.write_text(json.dumps({"all": {"hosts": {host: {"gpufleet_retired": True}}}}))
    with Load(fleet) as load:
        time.sleep(2)
        result = run_playbook("playbooks/site.yml", "-i", str(overlay))
        time.sleep(2)
    print(f"retiring {host} under load: {dict(load.outcomes)}")
    assert result.returncode == 0, result.stdout[-4000:]
    assert load.outcomes["ok"] > 20 and load.failures == [], load.failures[:10]
    for port in ports:
        unit = lab_host(host).service(f"model-server@{port}")
        assert not unit.is_running and not unit.is_enabled
    for lb in fleet.groups["load_balancers"]:
        assert fleet.hostvars[host]["ansible_host"] not in lab_host(lb).file("/etc/nginx/nginx.conf").content_string

    back = run_playbook("playbooks/site.yml")
    assert back.returncode == 0, back.stdout[-4000:]
    assert all(lab_host(host).service(f"model-server@{port}").is_running for port in ports)


def test_a_change_that_breaks_instances_stops_after_the_first_batch_and_the_fleet_keeps_serving(fleet, lab_host):
    before = _start_times(fleet, lab_host)
    first = fleet.hostvars[fleet.groups["gpu_nodes"][0]]
    broken = json.dumps({"model_server_simulator_settings": dict(first["model_server_simulator_settings"],
                                                                 ttft_ms="banana"),
                         "model_server_startup_timeout": 16})
    with Load(fleet) as load:
        time.sleep(2)
        result = run_playbook("playbooks/site.yml", "-e", broken)
        time.sleep(2)
    print(f"broken change under load: {dict(load.outcomes)}")
    assert result.returncode != 0
    assert "rollout stopped at batch 1" in result.stdout and "did not become ready" in result.stdout, \
        result.stdout[-4000:]
    assert load.failures == [] and load.outcomes["ok"] > 20, load.failures[:10]
    after = _start_times(fleet, lab_host)
    restarted = sorted(key for key in before if after[key] != before[key])
    # One instance per region was tried; every other instance still runs its old process.
    assert len(restarted) == len(fleet.regions), restarted
    assert sorted(server["region"] for server in fleet.servers
                  if (server["host"], server["port"]) in restarted) == fleet.regions
    for host, port in restarted:
        assert f"{host} model-server@{port}" in result.stdout

    repaired = run_playbook("playbooks/site.yml")
    assert repaired.returncode == 0, repaired.stdout[-4000:]
    with httpx.Client() as client:
        for server in fleet.servers:
            assert client.get(f"{fleet.server_url(server)}/v1/models", timeout=5).status_code == 200
