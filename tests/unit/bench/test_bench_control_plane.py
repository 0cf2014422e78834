"""The control-plane comparison's reading of ansible-playbook's output and the table it writes into the docs."""

from pathlib import Path

import control_plane

RERUN = (Path(__file__).parent / "fixtures" / "site-rerun-profile-roles.txt").read_text()


def test_the_recap_and_profile_roles_summary_of_a_real_rerun_are_read():
    hosts = control_plane.recap(RERUN)
    assert len(hosts) == 8 and all(host["changed"] == 0 and host["failed"] == 0 for host in hosts.values())
    roles = control_plane.role_seconds(RERUN)
    assert roles["model_server"] == 33.42 and roles["ansible.builtin.setup"] == 1.76
    # profile_roles' own total is the sum of the roles, not a role
    assert "total" not in roles and abs(sum(roles.values()) - 130.51) < 0.05


def _run(config: str, first: float, second: float) -> dict:
    roles = control_plane.role_seconds(RERUN)
    return {"config": config,
            "first": {"wall_s": first, "changed": 207, "roles_s": {role: s * 2 for role, s in roles.items()}},
            "second": {"wall_s": second, "changed": 0, "roles_s": roles}}


def test_the_table_gives_the_rerun_ratio_against_its_target_and_the_roles_by_their_rerun_cost():
    table = control_plane.markdown([_run("collection", 200.0, 120.0), _run("defaults", 230.0, 150.0),
                                    _run("collection", 220.0, 130.0), _run("defaults", 240.0, 160.0)])
    assert "| first converge (s) | 210 (200, 220) | 235 (230, 240) |" in table
    assert "| **second ÷ first** | **0.60** | **0.66** |" in table
    assert "0.60 against a target of at most 0.3 (**missed**)" in table
    rows = [line for line in table.splitlines() if line.startswith("| model_server") or line.startswith("| nginx_lb")]
    assert rows == ["| model_server | 66.8 | 33.4 | 0.50 |", "| nginx_lb | 33.0 | 16.5 | 0.50 |"]


def test_a_rerun_within_the_target_is_met_and_one_configuration_alone_makes_one_column():
    table = control_plane.markdown([_run("collection", 200.0, 50.0)])
    assert "| site.yml on the lab | collection's ansible.cfg |" in table and "defaults" not in table
    assert "0.25 against a target of at most 0.3 (met)" in table
