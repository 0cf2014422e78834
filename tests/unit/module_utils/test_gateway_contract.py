"""The gateway's part of the contract: keys, limits and models, each refused with one message naming host and
variable before any host changes, and never a key's value in a message."""

import pytest
from ansible_collections.gpufleet.llm.plugins.plugin_utils.fleet import fleet_model_servers, validate_fleet
from ansible_collections.gpufleet.llm.plugins.plugin_utils.fleet_defaults import role_defaults
from ansible_collections.gpufleet.llm.plugins.plugin_utils.gateway import key_limits, limit_zones, validate_gateway

GOOD = "k" * 40


def _fleet(keys=None, *, model_a="chat", model_b="small", **lb):
    """A GPU node and a load balancer in each of two regions; the checks look at ``lb`` (east)."""
    hostvars = {
        "gpu-a": {"gpufleet_region": "east", "gpu_count": 1, "gpu_model": "h100", "gpufleet_model": model_a},
        "gpu-b": {"gpufleet_region": "west", "gpu_count": 1, "gpu_model": "l4", "gpufleet_model": model_b},
        "lb": {"gpufleet_region": "east", "nginx_lb_api_keys": keys if keys is not None else [
            {"name": "team", "key": GOOD}], **lb},
        "lb-west": {"gpufleet_region": "west", "nginx_lb_api_keys": [{"name": "team", "key": GOOD}]},
    }
    groups = {"all": list(hostvars), "gpu_nodes": ["gpu-a", "gpu-b"], "load_balancers": ["lb", "lb-west"],
              "region_east": ["gpu-a", "lb"], "region_west": ["gpu-b", "lb-west"]}
    return hostvars, groups


def _problems(hostvars, groups):
    defaults = role_defaults()
    return validate_fleet(hostvars, groups, None, defaults) + validate_gateway(hostvars, groups, defaults)


def test_a_good_gateway_has_no_problem_and_each_node_serves_its_model():
    hostvars, groups = _fleet()
    assert _problems(hostvars, groups) == []
    assert {s["host"]: s["model"] for s in fleet_model_servers(hostvars, groups["gpu_nodes"])} == {
        "gpu-a": "chat", "gpu-b": "small"}


@pytest.mark.parametrize(("keys", "expected"), [
    ([{"name": "a", "key": GOOD}, {"name": "a", "key": "z" * 40}],
     "lb: nginx_lb_api_keys[1]: name 'a' is also the name of nginx_lb_api_keys[0]"),
    ([{"name": "a", "key": GOOD}, {"name": "b", "key": GOOD}],
     "lb: nginx_lb_api_keys[1] has the same key as nginx_lb_api_keys[0]"),
    ([{"name": "a", "key": "short-key"}], "lb: nginx_lb_api_keys[0] (a): key must be at least 32"),
    ([{"name": "a", "key": GOOD, "rate": 0}], "lb: nginx_lb_api_keys[0] (a): rate must be an integer of at least 1"),
    ([{"name": "a", "key": GOOD, "concurrency": 0}], "concurrency must be an integer of at least 1"),
    ([{"name": "a", "key": GOOD, "models": ["nobody-serves-this"]}],
     "lb: nginx_lb_api_keys[0] (a): model 'nobody-serves-this' is served by no GPU node"),
    ([{"name": "a b", "key": GOOD}], "lb: nginx_lb_api_keys[0]: name must be letters"),
    ([], "lb: nginx_lb_auth is true but nginx_lb_api_keys is empty"),
])
def test_bad_keys_get_one_message_naming_host_and_variable_and_never_the_key(keys, expected):
    hostvars, groups = _fleet(keys)
    problems = _problems(hostvars, groups)
    assert len([p for p in problems if expected in p]) == 1, problems
    assert not any(GOOD in p for p in problems)


def test_a_limit_of_zero_on_the_load_balancer_is_refused():
    hostvars, groups = _fleet(nginx_lb_key_rate=0)
    assert "lb: nginx_lb_key_rate: the value must be an integer of at least 1, got 0" in _problems(hostvars, groups)


@pytest.mark.parametrize("model", ["my model", 'quoted"model', "it's", "-leading-dash", "back\\slash"])
def test_a_model_name_nginx_cannot_route_is_refused(model):
    hostvars, groups = _fleet(model_a=model)
    problems = _problems(hostvars, groups)
    assert any(p.startswith("gpu-a: gpufleet_model must be a model name") for p in problems), problems


def test_a_model_served_only_where_no_load_balancer_is_names_its_hosts():
    hostvars, groups = _fleet()
    del hostvars["lb-west"]
    groups["all"].remove("lb-west")
    groups["load_balancers"], groups["region_west"] = ["lb"], ["gpu-b"]
    problems = _problems(hostvars, groups)
    assert problems == ["gpu-b: gpufleet_model 'small' is served only in region(s) west, which have no load balancer"]


def test_keys_become_hashes_and_share_a_zone_per_limit():
    keys = [key_limits(entry, 20, 40, 64, ["chat", "small"]) for entry in (
        {"name": "a", "key": GOOD}, {"name": "b", "key": "m" * 40, "models": ["small"]},
        {"name": "c", "key": "n" * 40, "rate": 5, "burst": 0})]
    assert all(GOOD not in str(key) for key in keys)
    assert keys[1]["models"] == ["small"] and keys[0]["models"] == ["chat", "small"]
    zones = limit_zones(keys)
    assert [(z["name"], z["members"]) for z in zones] == [
        ("gpufleet_rate_5_0", ["c"]), ("gpufleet_rate_20_40", ["a", "b"]), ("gpufleet_concurrency_64", ["a", "b", "c"])]
