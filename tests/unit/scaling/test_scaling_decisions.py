"""What the scaling loop does with each alert of an Alertmanager notification: only firing, fresh alerts of a pool
act; the count stays within the pool's bounds; only standby nodes move; a pool waits its cooldown after an action.
The notification's shape is Alertmanager's webhook body (version 4), as its documentation gives it:
https://prometheus.io/docs/alerting/latest/configuration/#webhook_config"""

from datetime import datetime

import pytest
from ansible_collections.gpufleet.llm.plugins.plugin_utils.scaling import ScalingError, scaling_decisions


def _epoch(text):
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


NOW = _epoch("2027-01-15T08:00:00Z")
POOLS = [{"region": "east", "model": "chat", "min": 2, "max": 6, "instances": 2, "capacity": 6}]


def _servers(in_service=()):
    """g1: two fixed instances; s1 and s2: standby nodes of two instances each, in service when named."""
    servers = [{"host": "g1", "region": "east", "model": "chat", "port": p, "in_service": True, "standby": False}
               for p in (8000, 8001)]
    for host in ("s1", "s2"):
        servers += [{"host": host, "region": "east", "model": "chat", "port": p, "in_service": host in in_service,
                     "standby": True} for p in (8000, 8001)]
    return servers


def _alert(desired, direction="out", status="firing", ends="2027-01-15T08:00:10.123456789Z", **labels):
    return {"status": status, "startsAt": "2027-01-15T07:59:00Z", "endsAt": ends,
            "labels": dict({"alertname": "PoolNeedsMoreInstances" if direction == "out" else "PoolCanGiveBackInstances",
                            "region": "east", "model_name": "chat", "gpufleet_scaling": direction}, **labels),
            "annotations": {"desired": str(desired)}}


def _decide(*alerts, in_service=(), last_actions=None, now=NOW, cooldown=45):
    return scaling_decisions({"version": "4", "status": "firing", "alerts": list(alerts)}, POOLS,
                             _servers(in_service), last_actions or {}, now=now, cooldown=cooldown)


def test_scale_out_brings_standby_nodes_in_until_the_desired_count():
    (decision,) = _decide(_alert(4))
    assert (decision["action"], decision["hosts"], decision["current"], decision["reached"]) == ("out", ["s1"], 2, 4)
    (decision,) = _decide(_alert(5))
    assert decision["hosts"] == ["s1", "s2"] and decision["reached"] == 6


def test_scale_in_takes_standby_nodes_out_never_below_the_desired_count_and_never_a_fixed_node():
    (decision,) = _decide(_alert(3, "in"), in_service=("s1", "s2"))
    assert (decision["action"], decision["hosts"], decision["reached"]) == ("in", ["s2"], 4)
    (decision,) = _decide(_alert(1, "in"), in_service=("s1", "s2"))  # clamped to min 2: g1's two stay
    assert (decision["desired"], decision["hosts"], decision["reached"]) == (2, ["s2", "s1"], 2)


def test_the_desired_count_is_bounded_by_the_pool_again():
    (decision,) = _decide(_alert(40))
    assert (decision["desired"], decision["reached"]) == (6, 6)


@pytest.mark.parametrize(("alert", "reason"), [
    (_alert(4, status="resolved"), "the alert is resolved, not firing"),
    (_alert(4, ends="2027-01-15T07:58:00Z"), "stale: the alert ended"),
    (_alert(4, region="west"), "no scaling pool is this region and model"),
    (_alert("NaN?"), "the desired count 'NaN?' is not a number"),
    (_alert(2), "the pool has 2 instances, the alert asks out 2"),
    (_alert(3, "in"), "the pool has 2 instances, the alert asks in 3"),
], ids=["resolved", "stale", "unknown-pool", "not-a-number", "already-there", "in-alert-asking-more"])
def test_an_alert_that_must_not_act_is_logged_with_its_reason(alert, reason):
    (decision,) = _decide(alert)
    assert decision["action"] == "none" and decision["hosts"] == []
    assert decision["reason"].startswith(reason)


def test_a_pool_waits_its_cooldown_after_an_action_even_within_one_notification():
    now = NOW
    first, second = _decide(_alert(4), _alert(6), now=now)
    assert first["action"] == "out" and second["action"] == "none" and second["reason"].startswith("cooldown")
    (waiting,) = _decide(_alert(4), last_actions={"east/chat": now - 30}, now=now)
    assert waiting["reason"] == "cooldown: the pool last changed 30 s ago, under 45.0 s"
    (after,) = _decide(_alert(4), last_actions={"east/chat": now - 46}, now=now)
    assert after["action"] == "out"


def test_an_alert_raised_by_hand_does_not_wait_the_cooldown():
    now = NOW
    manual = _alert(4)
    del manual["labels"]["alertname"]
    (decision,) = _decide(manual, last_actions={"east/chat": now - 1}, now=now)
    assert (decision["trigger"], decision["action"]) == ("manual", "out")


def test_no_standby_capacity_left_is_said_not_acted_on():
    (decision,) = _decide(_alert(6), in_service=("s1", "s2"))
    assert decision["reason"] == "the pool has 6 instances, the alert asks out 6"
    pools = [dict(POOLS[0], max=8)]
    (decision,) = scaling_decisions({"alerts": [_alert(8)]}, pools, _servers(("s1", "s2")), {}, now=NOW, cooldown=45)
    assert decision["reason"] == "out: no standby node of the pool is left out of service"


def test_a_notification_without_alerts_is_refused():
    with pytest.raises(ScalingError, match="needs a list of alerts"):
        scaling_decisions({"status": "firing"}, POOLS, _servers(), {}, now=NOW, cooldown=45)


# A cloud pool: g1's two fixed instances and the VMs of the EC2 Auto Scaling group "chat-east", one instance each.
# The group as amazon.aws.autoscaling_group_info describes it (only the keys the decision reads, named as it names
# them: https://docs.ansible.com/ansible/latest/collections/amazon/aws/autoscaling_group_info_module.html).
GROUP_POOLS = [{"region": "east", "model": "chat", "min": 2, "max": 5, "instances": 2, "capacity": None,
                "autoscaling_group": {"name": "chat-east", "region": "us-east-1", "instances_per_vm": 1}}]


def _group(desired, low=0, high=3):
    return [{"auto_scaling_group_name": "chat-east", "min_size": low, "max_size": high, "desired_capacity": desired}]


def _vm_servers(vms):
    servers = [{"host": "g1", "region": "east", "model": "chat", "port": p, "in_service": True, "standby": False}
               for p in (8000, 8001)]
    return servers + [{"host": f"vm{n}", "region": "east", "model": "chat", "port": 8000, "in_service": True,
                       "standby": False, "autoscaling_group": "chat-east", "instance_id": f"i-{n:04x}"}
                      for n in range(1, vms + 1)]


def _decide_group(alert, vms, group, pools=GROUP_POOLS):
    return scaling_decisions({"alerts": [alert]}, pools, _vm_servers(vms), {}, now=NOW, cooldown=45,
                             autoscaling=group)


def test_a_cloud_pool_scales_out_by_raising_its_groups_desired_capacity_within_its_max_size():
    (decision,) = _decide_group(_alert(4), 0, _group(0))
    assert (decision["action"], decision["hosts"], decision["current"], decision["reached"]) == ("out", [], 2, 4)
    assert decision["autoscaling_group"] == {"name": "chat-east", "region": "us-east-1", "desired_capacity": 2}
    # VMs still booting count: the group already wants one, which the inventory does not list yet.
    (decision,) = _decide_group(_alert(4), 0, _group(1))
    assert (decision["current"], decision["autoscaling_group"]["desired_capacity"]) == (3, 2)
    (decision,) = _decide_group(_alert(5), 3, _group(3))
    assert decision["action"] == "none" and decision["reason"] == "the pool has 5 instances, the alert asks out 5"


def test_a_cloud_pool_scales_in_by_naming_the_last_vms_for_the_drain_never_below_the_groups_min_size():
    (decision,) = _decide_group(_alert(3, "in"), 3, _group(3))
    assert (decision["action"], decision["hosts"], decision["reached"]) == ("in", ["vm3", "vm2"], 3)
    assert decision["autoscaling_group"] == {"name": "chat-east", "region": "us-east-1", "desired_capacity": 1,
                                             "instance_ids": ["i-0003", "i-0002"]}
    (decision,) = _decide_group(_alert(2, "in"), 3, _group(3, low=2))
    assert (decision["hosts"], decision["reached"]) == (["vm3"], 4)
    (decision,) = _decide_group(_alert(2, "in"), 2, _group(2, low=2))
    assert decision["action"] == "none" and decision["reason"].endswith("the group's MinSize of 2")


def test_a_cloud_pool_whose_max_the_group_cannot_reach_or_whose_group_is_missing_fails_the_run():
    with pytest.raises(ScalingError, match=r"the pool's max 5 is beyond its capacity of 4 instances \(2 fixed, "
                                           r"1 on each of the group's at most 2 VMs\)"):
        _decide_group(_alert(4), 0, _group(0, high=2))
    with pytest.raises(ScalingError, match=r"Auto Scaling group chat-east \(us-east-1\) is not in the EC2 API"):
        _decide_group(_alert(4), 0, [])
    pools = [dict(GROUP_POOLS[0], autoscaling_group=dict(GROUP_POOLS[0]["autoscaling_group"], instances_per_vm=2))]
    with pytest.raises(ScalingError, match="VM vm1 runs 1 instances, the pool's instances_per_vm says 2"):
        _decide_group(_alert(4), 1, _group(1), pools)
