#!/usr/bin/python
# Copyright: gpufleet developers. Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: autoscaling_capacity
short_description: Set the desired capacity of an EC2 Auto Scaling group, and wait for its VMs
version_added: "0.1.0"
description:
  - Sets an existing EC2 Auto Scaling group's C(DesiredCapacity) (the C(SetDesiredCapacity) call an autoscaler
    makes), changing nothing else of the group, then waits until as many of its VMs are C(InService).
  - M(amazon.aws.autoscaling_group) writes the group's whole configuration on every update, its own defaults for
    the options not given (health check, cooldown, termination policies, metrics collection); a scaling loop
    must move the capacity and leave the rest to whoever owns the group.
  - A capacity outside the group's C(MinSize) and C(MaxSize) fails before any change.
  - Credentials, and the endpoint (C(AWS_ENDPOINT_URL)), come from boto3's own chain.
  - Used by C(gpufleet.llm.scale) for the pools that have an C(autoscaling_group).
options:
  name:
    description: The Auto Scaling group.
    type: str
    required: true
  region:
    description: The group's AWS region.
    type: str
    required: true
  desired_capacity:
    description: The VMs the group should run.
    type: int
    required: true
  profile:
    description: A named profile of the AWS configuration files; boto3's default chain when unset.
    type: str
  wait_timeout:
    description: Seconds to wait until O(desired_capacity) VMs of the group are C(InService); C(0) does not wait.
    type: int
    default: 600
requirements:
  - boto3
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
  platform:
    platforms: posix
author:
  - gpufleet developers (@gpufleet)
"""

EXAMPLES = r"""
- name: Run four VMs in the pool's group
  gpufleet.llm.autoscaling_capacity:
    name: chat-us-east
    region: us-east-1
    desired_capacity: 4
  delegate_to: localhost
"""

RETURN = r"""
desired_capacity:
  description: The group's desired capacity now.
  returned: always
  type: int
  sample: 4
previous_capacity:
  description: The group's desired capacity before.
  returned: always
  type: int
  sample: 2
instances:
  description: The ids of the group's VMs that are C(InService).
  returned: always
  type: list
  elements: str
  sample: [i-0123456789abcdef0]
"""

import time

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

try:
    import boto3
    import botocore.exceptions
except ImportError:
    boto3 = None


class CapacityError(Exception):
    """The group is missing, or the capacity asked for is outside its bounds, or its VMs did not come up."""


class GroupCapacity:
    """One Auto Scaling group's desired capacity, through an ``autoscaling`` client."""

    def __init__(self, client, name, sleep=time.sleep, clock=time.monotonic):
        self.client, self.name, self.sleep, self.clock = client, name, sleep, clock

    def describe(self):
        groups = self.client.describe_auto_scaling_groups(AutoScalingGroupNames=[self.name])["AutoScalingGroups"]
        if not groups:
            raise CapacityError(f"there is no Auto Scaling group {self.name}")
        return groups[0]

    @staticmethod
    def in_service(group):
        return sorted(instance["InstanceId"] for instance in group.get("Instances", [])
                      if instance.get("LifecycleState") == "InService")

    def set(self, desired, *, check_mode=False, wait_timeout=600, poll=5):
        """(changed, previous capacity, ids in service): the group at ``desired`` VMs, waited for."""
        group = self.describe()
        previous = group["DesiredCapacity"]
        if not group["MinSize"] <= desired <= group["MaxSize"]:
            raise CapacityError(f"Auto Scaling group {self.name}: desired capacity {desired} is outside its "
                                f"MinSize {group['MinSize']} and MaxSize {group['MaxSize']}")
        changed = desired != previous
        if changed and not check_mode:
            self.client.set_desired_capacity(AutoScalingGroupName=self.name, DesiredCapacity=desired,
                                             HonorCooldown=False)
        if check_mode or wait_timeout <= 0:
            return changed, previous, self.in_service(group)
        deadline = self.clock() + wait_timeout
        while True:
            ready = self.in_service(self.describe())
            if len(ready) >= desired:
                return changed, previous, ready
            if self.clock() >= deadline:
                raise CapacityError(f"Auto Scaling group {self.name}: {len(ready)} of {desired} VMs are InService "
                                    f"after {wait_timeout} s")
            self.sleep(poll)


def main():
    module = AnsibleModule(
        argument_spec={
            "name": {"type": "str", "required": True},
            "region": {"type": "str", "required": True},
            "desired_capacity": {"type": "int", "required": True},
            "profile": {"type": "str"},
            "wait_timeout": {"type": "int", "default": 600},
        },
        supports_check_mode=True,
    )
    if boto3 is None:
        module.fail_json(msg=missing_required_lib("boto3"))
    params = module.params
    if params["desired_capacity"] < 0:
        module.fail_json(msg=f"desired_capacity must be 0 or more, got {params['desired_capacity']}")
    try:
        session = boto3.Session(profile_name=params["profile"], region_name=params["region"])
        group = GroupCapacity(session.client("autoscaling"), params["name"])
        changed, previous, ready = group.set(params["desired_capacity"], check_mode=module.check_mode,
                                             wait_timeout=params["wait_timeout"])
    except CapacityError as error:
        module.fail_json(msg=str(error))
    except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as error:
        module.fail_json(msg=f"Auto Scaling group {params['name']} ({params['region']}): {error}")
    module.exit_json(changed=changed, desired_capacity=params["desired_capacity"], previous_capacity=previous,
                     instances=ready, diff={"before": {"desired_capacity": previous},
                                            "after": {"desired_capacity": params["desired_capacity"]}})


if __name__ == "__main__":
    main()
