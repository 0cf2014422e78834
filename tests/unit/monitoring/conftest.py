"""Fixtures for the monitoring unit tests: promtool, and configuration rendered by the roles' own templates."""

from __future__ import annotations

import pytest
from monitoring_support import FIXTURE_INVENTORY, PRODUCTION_INVENTORIES, find_tool, render


@pytest.fixture(scope="session")
def promtool():
    return find_tool("promtool")


@pytest.fixture(scope="session")
def amtool():
    return find_tool("amtool")


class Renders(dict):
    """inventory path -> {monitoring host: directory of its rendered files}, rendered on first use."""

    def __init__(self, factory):
        super().__init__()
        self._factory = factory

    def __missing__(self, inventory):
        out = self._factory.mktemp(inventory.name)
        # Production inventories take the password from a vault this test does not have.
        extra = {"grafana_admin_password": "unit-test-only-password"} if inventory in PRODUCTION_INVENTORIES else {}
        code, output = render(inventory, out, extra)
        assert code == 0, f"rendering for {inventory} failed:\n{output[-4000:]}"
        self[inventory] = {path.name: path for path in out.iterdir() if path.is_dir()}
        return self[inventory]


@pytest.fixture(scope="session")
def rendered(tmp_path_factory):
    return Renders(tmp_path_factory)


@pytest.fixture(scope="session")
def fixture_render(rendered):
    """The fixture fleet's monitoring host, rendered with the roles' defaults."""
    return rendered[FIXTURE_INVENTORY]["mon1"]
