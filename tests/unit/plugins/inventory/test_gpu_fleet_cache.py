"""The inventory cache: no API call while it is fresh, and a stand-in when the API is down."""

from __future__ import annotations

import time

import pytest
from gpu_fleet_testlib import PROJECT, inventory_list, write_config

pytest.importorskip("google.cloud.compute_v1")


def cached_config(tmp_path, api, url=None, cache_timeout=3600, **source_options):
    return {
        "cache": True, "cache_plugin": "ansible.builtin.jsonfile", "cache_connection": str(tmp_path / "cache"),
        "cache_timeout": cache_timeout,
        "sources": [{"source": "gce", "projects": [PROJECT], "api_endpoint": url or api.url, "anonymous": True,
                     "timeout": 5, **source_options}],
    }


def snapshot(parsed):
    return {host: parsed.hostvars(host) for host in parsed.hosts}, parsed.group_hosts("gpu_nodes")


def test_second_parse_with_cache_does_not_call_the_api(tmp_path, parse_inventory, gce_api):
    path = write_config(tmp_path, cached_config(tmp_path, gce_api))
    first = parse_inventory(path)
    calls = len(gce_api.api_requests())
    assert calls > 0
    second = parse_inventory(path)
    assert len(gce_api.api_requests()) == calls
    assert snapshot(second) == snapshot(first)
    assert second.warnings == []


def test_flush_cache_calls_the_api_again(tmp_path, parse_inventory, gce_api):
    path = write_config(tmp_path, cached_config(tmp_path, gce_api))
    parse_inventory(path)
    calls = len(gce_api.api_requests())
    parse_inventory(path, cache=False)  # what --flush-cache asks for
    assert len(gce_api.api_requests()) == 2 * calls


def test_without_cache_option_every_parse_calls_the_api(tmp_path, parse_inventory, gce_api):
    config = cached_config(tmp_path, gce_api)
    config["cache"] = False
    path = write_config(tmp_path, config)
    parse_inventory(path)
    calls = len(gce_api.api_requests())
    parse_inventory(path)
    assert len(gce_api.api_requests()) == 2 * calls
    assert not (tmp_path / "cache").exists()


def test_changed_source_settings_are_not_served_from_the_cache(tmp_path, parse_inventory, gce_api):
    parse_inventory(write_config(tmp_path, cached_config(tmp_path, gce_api)))
    calls = len(gce_api.api_requests())
    narrower = parse_inventory(write_config(tmp_path, cached_config(tmp_path, gce_api, zones=["europe-west4-a"])))
    assert len(gce_api.api_requests()) > calls
    assert narrower.hosts == ["g2-euw-1", "mon-euw-1", "n1-t4-euw-dev"]


def test_unreachable_api_with_fresh_cache_uses_it(tmp_path, parse_inventory, gce_api):
    url = gce_api.url
    path = write_config(tmp_path, cached_config(tmp_path, gce_api, url=url))
    first = parse_inventory(path)
    gce_api.stop()
    refreshed = parse_inventory(path, cache=False)  # a refresh is asked for, but the API is gone
    assert snapshot(refreshed) == snapshot(first)
    assert len(refreshed.warnings) == 1
    assert "cannot reach the Compute Engine API" in refreshed.warnings[0]
    assert "using the inventory cache" in refreshed.warnings[0]


def test_unreachable_api_with_stale_cache_is_an_error(tmp_path, parse_inventory, gce_api):
    from ansible.errors import AnsibleParserError

    url = gce_api.url
    path = write_config(tmp_path, cached_config(tmp_path, gce_api, url=url, cache_timeout=1))
    parse_inventory(path)
    gce_api.stop()
    time.sleep(1.2)
    with pytest.raises(AnsibleParserError, match="cannot reach the Compute Engine API"):
        parse_inventory(path)


def test_refused_credentials_with_fresh_cache_uses_it(tmp_path, parse_inventory, gce_api):
    path = write_config(tmp_path, cached_config(tmp_path, gce_api))
    first = parse_inventory(path)
    gce_api.fail_with = 401
    refreshed = parse_inventory(path, cache=False)
    assert snapshot(refreshed) == snapshot(first)
    assert "refused the credentials" in refreshed.warnings[0]


def test_ansible_inventory_reads_the_cache_it_wrote(tmp_path, ansible_env, gce_api):
    path = write_config(tmp_path, cached_config(tmp_path, gce_api))
    first = inventory_list(path, ansible_env)
    calls = len(gce_api.api_requests())
    gce_api.fail_with = 503  # any API call now fails, so the second listing must come from the cache
    assert inventory_list(path, ansible_env) == first
    assert len(gce_api.api_requests()) == calls
    assert sorted(first["gpu_nodes"]["hosts"]) == ["a2-usc-1", "a3-usc-1", "g2-euw-1", "n1-t4-euw-dev"]
