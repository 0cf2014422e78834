"""scale.yml provisions the VMs an Auto Scaling group launched with exactly the roles site.yml gives a GPU node,
in site.yml's order, so that a VM that joined by scaling is the same as one that was there at the first converge."""

from pathlib import Path

import yaml

PLAYBOOKS = Path(__file__).resolve().parents[3] / "playbooks"


def _plays(name):
    for play in yaml.safe_load((PLAYBOOKS / name).read_text()):
        if "ansible.builtin.import_playbook" in play:
            yield from _plays(play["ansible.builtin.import_playbook"])
        else:
            yield play


def _roles(play):
    return [role["role"] if isinstance(role, dict) else role for role in play.get("roles", [])]


def test_a_vm_that_joins_gets_the_roles_site_yml_gives_a_gpu_node_in_its_order():
    gpu_node_roles = [role for play in _plays("site.yml") if play.get("hosts") in ("all", "gpu_nodes")
                      for role in _roles(play)]
    (join,) = [play for play in _plays("scale.yml") if play.get("hosts") == "gpufleet_scale_join" and "roles" in play]
    assert _roles(join) == gpu_node_roles
    assert "gpufleet.llm.model_server" in gpu_node_roles and "gpufleet.llm.gpu_exporter" in gpu_node_roles


def test_a_vm_is_terminated_only_after_the_rollout_that_drains_it():
    plays = list(_plays("scale.yml"))
    names = [play.get("name") for play in plays]
    retire = names.index("Retire the VMs that leave")
    drain = next(i for i, play in enumerate(plays) if play.get("name") == "Roll changed model server instances through "
                 "the load balancers")
    terminate = names.index("Terminate the drained VMs")
    assert retire < drain < terminate
