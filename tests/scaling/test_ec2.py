"""Scaling a cloud pool end to end in the lab (make test-scaling-ec2; the lab must be up): us-east's simulated-llm
pool grows and shrinks through an EC2 Auto Scaling group served by moto on loopback. The gpu_fleet inventory
plugin finds the group's VMs in moto; each VM is mapped, through a tag the group propagates to it, onto the
lab's spare GPU container (lab-use-gpu3, left out of the static inventory for this test), so that joining and
draining are real. Under streaming load: scale-out raises the group's desired capacity, the VM is provisioned
and the load balancers take it in; scale-in drains it, stops its instance and only then terminates it. No
request fails. Load only through the lab's own load balancer, bounded in streams, requests and time; the AWS
API calls go to moto on 127.0.0.1 only."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import yaml

boto3 = pytest.importorskip("boto3")

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("lab_verify", ROOT / "molecule" / "default" / "tests" / "conftest.py")
lab = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(lab)
from lab_traffic import Background, PoolStreams  # noqa: E402  (on the path lab_verify sets)
from loopback import free_port, wait_for_port  # noqa: E402

REGION, MODEL, AWS_REGION, GROUP = "us-east", lab.MODEL_A, "us-east-1", "lab-use-llm"
SPARE = "lab-use-gpu3"  # the container the group's one VM maps onto
PORT = 8000  # g5.xlarge has one GPU: one instance per VM
fleet, prometheus, lab_host = lab.fleet, lab.prometheus, lab.lab_host


@pytest.fixture(scope="module")
def moto(tmp_path_factory):
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    home = tmp_path_factory.mktemp("aws")
    env = {"AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}", "AWS_ACCESS_KEY_ID": "testing",
           "AWS_SECRET_ACCESS_KEY": "testing", "AWS_CONFIG_FILE": str(home / "config"),
           "AWS_SHARED_CREDENTIALS_FILE": str(home / "credentials")}
    try:
        wait_for_port(port, process)
        yield env
    finally:
        process.kill()
        process.wait(10)


def _aws(env, service):
    return boto3.client(service, region_name=AWS_REGION, endpoint_url=env["AWS_ENDPOINT_URL"],
                        aws_access_key_id="testing", aws_secret_access_key="testing")


@pytest.fixture(scope="module")
def cloud_inventory(fleet, moto, tmp_path_factory):
    """The lab without its spare container, plus the group's VMs from moto through the gpu_fleet plugin."""
    spare_address = fleet.hostvars[SPARE]["ansible_host"]
    ec2, autoscaling = _aws(moto, "ec2"), _aws(moto, "autoscaling")
    ec2.create_launch_template(LaunchTemplateName="lab-gpu-vm", LaunchTemplateData={
        "ImageId": "ami-12345678", "InstanceType": "g5.xlarge"})
    tags = {"lab_address": spare_address, "gpufleet_model": MODEL}
    autoscaling.create_auto_scaling_group(
        AutoScalingGroupName=GROUP, LaunchTemplate={"LaunchTemplateName": "lab-gpu-vm", "Version": "$Latest"},
        MinSize=0, MaxSize=1, DesiredCapacity=0, AvailabilityZones=[f"{AWS_REGION}a"],
        Tags=[{"Key": k, "Value": v, "PropagateAtLaunch": True, "ResourceId": GROUP,
               "ResourceType": "auto-scaling-group"} for k, v in tags.items()])
    directory = tmp_path_factory.mktemp("inventory")
    hosts = yaml.safe_load((lab.INVENTORY / "hosts.yml").read_text())
    children = hosts["all"]["children"]
    for group in ("region_us_east", "gpu_nodes"):
        del children[group]["hosts"][SPARE]
    (directory / "hosts.yml").write_text(yaml.safe_dump(hosts, sort_keys=False))
    (directory / "group_vars").symlink_to(lab.INVENTORY / "group_vars")
    (directory / "cloud.gpu_fleet.yml").write_text(yaml.safe_dump({
        "plugin": "gpufleet.llm.gpu_fleet", "strict": True,
        "sources": [{"source": "ec2", "regions": [AWS_REGION], "endpoint_url": moto["AWS_ENDPOINT_URL"],
                     "tags": {"aws:autoscaling:groupName": GROUP}, "region_map": {AWS_REGION: REGION}}],
        # The lab's emulation of a cloud: each VM reaches the container its tag names, as a lab host.
        "compose": {"ansible_host": "gpufleet_instance.tags.lab_address",
                    "gpufleet_model": "gpufleet_instance.tags.gpufleet_model"},
        "groups": {"lab": "true"},
    }, sort_keys=False))
    return directory


def _pools(fleet):
    monitoring = fleet.groups["monitoring"][0]
    pools = [dict(pool) for pool in fleet.hostvars[monitoring]["prometheus_scaling_pools"]]
    for pool in pools:
        if (pool["region"], pool["model"]) == (REGION, MODEL):
            # lab-use-gpu1's two instances stay; the group adds at most one VM of one instance.
            pool.update(max=3, autoscaling_group={"name": GROUP, "region": AWS_REGION, "instances_per_vm": 1})
    return pools


def _scale(inventory, env, fleet, to):
    command = [str(lab.BIN / "ansible-playbook"), "-i", str(inventory), "playbooks/scale.yml",
               "-e", json.dumps({"gpufleet_scale_region": REGION, "gpufleet_scale_model": MODEL,
                                 "gpufleet_scale_to": to, "prometheus_scaling_pools": _pools(fleet)})]
    return subprocess.run(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          timeout=900, check=False,
                          env=dict(os.environ, **env, ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0"))


def _vms(env):
    (group,) = _aws(env, "autoscaling").describe_auto_scaling_groups(AutoScalingGroupNames=[GROUP])[
        "AutoScalingGroups"]
    return group["DesiredCapacity"], [i["InstanceId"] for i in group["Instances"]]


def _state(env, instance_id):
    reservations = _aws(env, "ec2").describe_instances(InstanceIds=[instance_id])["Reservations"]
    return reservations[0]["Instances"][0]["State"]["Name"]


class Watch(Background):
    """When the VM's instance stops answering and when EC2 says the VM is terminated, polled every 0.2 s."""

    def __init__(self, env, instance_id, url):
        super().__init__()
        self.stopped = self.terminated = None

        def poll():
            deadline = time.monotonic() + 600
            with httpx.Client(timeout=1) as client:
                while not self.stop.is_set() and time.monotonic() < deadline:
                    now = time.monotonic()
                    if self.stopped is None:
                        try:
                            client.get(f"{url}/health")
                        except httpx.HTTPError:
                            self.stopped = now
                    if self.terminated is None and _state(env, instance_id) in ("shutting-down", "terminated"):
                        self.terminated = now
                    time.sleep(0.2)

        self.run(poll)

    def __exit__(self, *exc):
        time.sleep(1)  # one more poll after the playbook returned
        return super().__exit__(*exc)


def _lb_configs(fleet, lab_host_):
    return [lab_host_(lb).file("/etc/nginx/nginx.conf").content_string for lb in fleet.groups["load_balancers"]
            if fleet.region_of(lb) == REGION]


def test_a_cloud_pool_grows_by_a_vm_that_joins_and_shrinks_by_draining_it_before_it_is_terminated(
        fleet, lab_host, prometheus, moto, cloud_inventory):
    address = fleet.hostvars[SPARE]["ansible_host"]
    assert not lab_host(SPARE).service(f"model-server@{PORT}").is_running, "the spare container serves nothing"
    try:
        with PoolStreams(fleet, REGION, MODEL) as load:
            time.sleep(2)
            started = time.monotonic()
            out = _scale(cloud_inventory, moto, fleet, 3)
            joined_s = time.monotonic() - started
            assert out.returncode == 0, out.stdout[-5000:]
            desired, (vm,) = _vms(moto)
            assert desired == 1
            assert lab_host(SPARE).service(f"model-server@{PORT}").is_running
            assert all(f"{address}:{PORT}" in conf for conf in _lb_configs(fleet, lab_host))
            lab.wait_until(lambda: any(t["labels"].get("host") == vm and t["health"] == "up" for t in prometheus.get(
                "/api/v1/targets").json()["data"]["activeTargets"]), 60, f"Prometheus scrapes {vm}")
            time.sleep(3)
            with Watch(moto, vm, f"http://{address}:{PORT}") as watch:
                started = time.monotonic()
                back = _scale(cloud_inventory, moto, fleet, 2)
                left_s = time.monotonic() - started
            assert back.returncode == 0, back.stdout[-5000:]
            time.sleep(2)
        print(f"EC2 pool under load: VM joined in {joined_s:.0f} s, drained and terminated in {left_s:.0f} s; "
              f"instance stopped {watch.terminated - watch.stopped:.1f} s before EC2 terminated the VM; "
              f"{dict(load.outcomes)}")
        assert load.outcomes["ok"] > 20 and load.failures == [], load.failures[:10]
        assert watch.stopped is not None and watch.terminated is not None
        assert watch.stopped < watch.terminated, "the VM was terminated before its instance was drained and stopped"
        assert _vms(moto) == (0, [])
        unit = lab_host(SPARE).service(f"model-server@{PORT}")
        assert not unit.is_running and not unit.is_enabled
        assert all(address not in conf for conf in _lb_configs(fleet, lab_host))
    finally:
        # The lab's own inventory again: Prometheus scrapes the spare container by its own name.
        restore = lab.run_playbook("playbooks/monitoring.yml", "--tags", "prometheus")
        assert restore.returncode == 0, restore.stdout[-3000:]
