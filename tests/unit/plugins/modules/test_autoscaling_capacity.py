"""autoscaling_capacity against moto's Auto Scaling emulation (in process): only DesiredCapacity moves, within the
group's MinSize and MaxSize, and the module waits for the VMs; the group's other settings stay as they were."""

import pytest

boto3 = pytest.importorskip("boto3")
moto = pytest.importorskip("moto")

from ansible_collections.gpufleet.llm.plugins.modules.autoscaling_capacity import (  # noqa: E402
    CapacityError,
    GroupCapacity,
)

REGION = "us-east-1"


@pytest.fixture
def autoscaling(monkeypatch):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(name, "testing")
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with moto.mock_aws():
        ec2 = boto3.client("ec2", region_name=REGION)
        ec2.create_launch_template(LaunchTemplateName="gpu-vm", LaunchTemplateData={
            "ImageId": "ami-12345678", "InstanceType": "g5.xlarge"})
        client = boto3.client("autoscaling", region_name=REGION)
        client.create_auto_scaling_group(
            AutoScalingGroupName="chat", LaunchTemplate={"LaunchTemplateName": "gpu-vm", "Version": "$Latest"},
            MinSize=1, MaxSize=3, DesiredCapacity=1, AvailabilityZones=[f"{REGION}a"], HealthCheckType="ELB",
            HealthCheckGracePeriod=420, DefaultCooldown=120, TerminationPolicies=["OldestInstance"])
        client.enable_metrics_collection(AutoScalingGroupName="chat", Granularity="1Minute")
        yield client


def _settings(group):
    return {key: group[key] for key in ("HealthCheckType", "HealthCheckGracePeriod", "DefaultCooldown",
                                        "TerminationPolicies", "EnabledMetrics", "MinSize", "MaxSize")}


def test_the_capacity_moves_and_nothing_else_of_the_group_and_the_vms_are_waited_for(autoscaling):
    group = GroupCapacity(autoscaling, "chat", sleep=lambda _: None)
    before = _settings(group.describe())
    changed, previous, ready = group.set(3)
    assert (changed, previous, len(ready)) == (True, 1, 3)
    after = group.describe()
    assert after["DesiredCapacity"] == 3 and _settings(after) == before
    assert group.set(3) == (False, 3, ready)


def test_check_mode_reports_the_change_and_makes_none(autoscaling):
    group = GroupCapacity(autoscaling, "chat")
    assert group.set(2, check_mode=True)[:2] == (True, 1)
    assert group.describe()["DesiredCapacity"] == 1


@pytest.mark.parametrize("desired", [0, 4])
def test_a_capacity_outside_the_groups_bounds_fails_before_any_change(autoscaling, desired):
    group = GroupCapacity(autoscaling, "chat")
    with pytest.raises(CapacityError, match=f"desired capacity {desired} is outside its MinSize 1 and MaxSize 3"):
        group.set(desired)
    assert group.describe()["DesiredCapacity"] == 1


def test_a_missing_group_and_vms_that_never_come_up_are_errors(autoscaling):
    with pytest.raises(CapacityError, match="there is no Auto Scaling group nope"):
        GroupCapacity(autoscaling, "nope").set(1)
    clock = iter(range(0, 10_000, 5))
    group = GroupCapacity(autoscaling, "chat", sleep=lambda _: None, clock=lambda: next(clock))
    group.in_service = staticmethod(lambda described: [])  # VMs that stay Pending
    with pytest.raises(CapacityError, match="0 of 2 VMs are InService after 30 s"):
        group.set(2, wait_timeout=30)
