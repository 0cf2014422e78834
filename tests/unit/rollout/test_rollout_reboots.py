"""Driver reboots through the rollout: a host is never split, regions keep serving, the role's decision."""

import pytest
from ansible_collections.gpufleet.llm.plugins.plugin_utils.rollout import (
    RolloutError,
    driver_reboot_mode,
    fleet_rollout_batches,
    fleet_rollout_plan,
    reboot_hosts,
    rollout_batches,
    serving_ports,
)

REBOOT = {"driver_version": "550.163.01", "reboot_timeout": 1800, "detection_root": "/"}


def _items(region, host, ports, action="restart", batch=1):
    extra = REBOOT if action == "reboot" else {}
    return [{"host": host, "region": region, "address": f"{host}.lab", "port": p, "action": action,
             "batch": batch, **extra} for p in ports]


def _servers(region, host, ports):
    return [{"host": host, "region": region, "address": f"{host}.lab", "port": p} for p in ports]


def _hosts_of(batch):
    return {item["host"] for item in batch}


def _split_hosts(batches):
    """Hosts with a reboot item whose items are in more than one batch."""
    rebooting = {i["host"] for b in batches for i in b if i["action"] == "reboot"}
    return {h for h in rebooting if sum(any(i["host"] == h for i in b) for b in batches) > 1}


def test_a_rebooting_host_is_never_split_and_its_region_keeps_serving():
    # us: three hosts of two instances, batch 2: each batch takes one whole host, the region keeps four serving.
    pending = [i for h in ("u1", "u2", "u3") for i in _items("us", h, [8000, 8001], "reboot", batch=2)]
    servers = [s for h in ("u1", "u2", "u3") for s in _servers("us", h, [8000, 8001])]
    batches = fleet_rollout_batches(pending, servers)
    assert [sorted(_hosts_of(b)) for b in batches] == [["u1"], ["u2"], ["u3"]]
    assert all(len(b) == 2 for b in batches)
    assert _split_hosts(batches) == set()


def test_hosts_pack_whole_into_a_batch_that_fits_them():
    pending = [i for h in ("u1", "u2", "u3", "u4") for i in _items("us", h, [8000], "reboot", batch="50%")]
    servers = [s for h in ("u1", "u2", "u3", "u4") for s in _servers("us", h, [8000])]
    batches = fleet_rollout_batches(pending, servers)
    assert [sorted(_hosts_of(b)) for b in batches] == [["u1", "u2"], ["u3", "u4"]]


def test_a_host_larger_than_the_batch_rolls_alone_and_the_plan_says_so():
    # Batch 1 but two instances per host: a reboot cannot take half a host, so each host is a batch of its own,
    # and no batch mixes it with another host of the region: the region keeps the other host serving.
    pending = _items("us", "u1", [8000, 8001], "reboot") + _items("us", "u2", [8000, 8001], "reboot")
    servers = _servers("us", "u1", [8000, 8001]) + _servers("us", "u2", [8000, 8001])
    batches = fleet_rollout_batches(pending, servers)
    assert [sorted(_hosts_of(b)) for b in batches] == [["u1"], ["u2"]]
    plan = fleet_rollout_plan(pending, servers)
    assert plan[0].startswith("batch 1/2: drain, then reboot u1 8000, reboot u1 8001; "
                              "reboot host u1 into driver 550.163.01")
    assert "u1 reboots with its 2 instances, more than model_server_rollout_batch of region us (1) allows" in plan[0]
    assert "whole region" not in plan[0]


def test_the_only_host_of_a_region_rolls_alone_and_the_plan_names_the_whole_region():
    pending = _items("solo", "s1", [8000, 8001], "reboot")
    plan = fleet_rollout_plan(pending, _servers("solo", "s1", [8000, 8001]))
    assert len(plan) == 1 and "the whole region, served meanwhile by the other regions' backups" in plan[0]


def test_restarts_of_other_hosts_do_not_share_a_batch_with_a_host_too_large_for_it():
    pending = (_items("us", "u1", [8000]) + _items("us", "u2", [8000, 8001], "reboot")
               + _items("us", "u3", [8000, 8001]))
    servers = [s for h in ("u1", "u2", "u3") for s in _servers("us", h, [8000, 8001])]
    batches = fleet_rollout_batches(pending, servers)
    assert [[(i["host"], i["port"], i["action"]) for i in b] for b in batches] == [
        [("u1", 8000, "restart")], [("u2", 8000, "reboot"), ("u2", 8001, "reboot")],
        [("u3", 8000, "restart")], [("u3", 8001, "restart")]]


def test_stops_on_a_rebooting_host_join_its_batch_and_other_regions_roll_in_parallel():
    pending = (_items("us", "u1", [8000], "reboot") + _items("eu", "e1", [8000, 8001])
               + _items("us", "u1", [8001], "stop"))
    pending = sorted(pending, key=lambda i: i["region"] != "us")
    batches = rollout_batches(pending, {"us": 4, "eu": 3}, {"us": 2, "eu": 1})
    assert [[(i["host"], i["port"], i["action"]) for i in b] for b in batches] == [
        [("e1", 8000, "restart"), ("u1", 8000, "reboot"), ("u1", 8001, "stop")], [("e1", 8001, "restart")]]
    for batch in batches:
        for region, size in {"us": 4, "eu": 3}.items():
            assert sum(i["region"] == region for i in batch) <= size - 1


def test_reboot_hosts_lists_each_host_once_with_its_driver():
    batch = _items("us", "u1", [8000, 8001], "reboot") + _items("us", "u2", [8000]) + _items("eu", "e1", [8000],
                                                                                            "reboot")
    assert reboot_hosts(batch) == [{"host": "u1", **REBOOT}, {"host": "e1", **REBOOT}]
    assert reboot_hosts(_items("us", "u2", [8000])) == []


def test_a_reboot_item_without_its_driver_settings_is_refused():
    item = _items("us", "u1", [8000], "reboot")[0]
    del item["driver_version"]
    with pytest.raises(RolloutError, match="u1 model-server@8000: a reboot item needs driver_version"):
        rollout_batches([item], {"us": 2}, {})


SERVING = {"model-server@8000.service": {"name": "model-server@8000.service", "state": "running"},
           "model-server@8001.service": {"name": "model-server@8001.service", "state": "stopped"},
           "model-server@.service": {"name": "model-server@.service", "state": "unknown"},
           "nginx.service": {"name": "nginx.service", "state": "running"}}
OLD = {"driver_loaded_version": "535.309.01", "nouveau_loaded": False,
       "kernel_module": {"action": "reboot", "installed_version": "550.163.01"}}


def test_serving_ports_are_the_running_model_server_units():
    assert serving_ports(SERVING) == [8000]
    assert serving_ports({}) == [] and serving_ports(None) == []


@pytest.mark.parametrize(("host", "reboot", "services", "planned", "mode"), [
    # A live fleet: the rollout drains the host before it reboots.
    (OLD, True, SERVING, False, "rollout"),
    # A first converge: nothing serves, the role reboots at once (the fast path).
    (OLD, True, {"nginx.service": {"state": "running"}}, False, "now"),
    (OLD, True, {}, False, "now"),
    (OLD, False, SERVING, False, "off"),
    (OLD, "false", SERVING, False, "off"),
    ({**OLD, "kernel_module": {"action": "load"}}, True, SERVING, False, "none"),
    ({**OLD, "kernel_module": {"action": "none"}}, True, SERVING, False, "none"),
    # Check mode: the old module is still on disk, so the decision compares the loaded one to the wanted one.
    ({**OLD, "kernel_module": None}, True, SERVING, True, "rollout"),
    ({"driver_loaded_version": "550.163.01", "nouveau_loaded": False, "kernel_module": None}, True, SERVING,
     True, "none"),
    ({"driver_loaded_version": None, "nouveau_loaded": True, "kernel_module": None}, True, {}, True, "now"),
    ({"driver_loaded_version": None, "nouveau_loaded": False, "kernel_module": None}, True, {}, True, "none"),
])
def test_who_reboots_the_host(host, reboot, services, planned, mode):
    assert driver_reboot_mode(host, "550.163.01", reboot, services, planned) == mode


def test_a_reboot_setting_that_is_not_a_boolean_is_refused():
    with pytest.raises(RolloutError, match="nvidia_driver_reboot must be a boolean"):
        driver_reboot_mode(OLD, "550.163.01", "sometimes", SERVING)
