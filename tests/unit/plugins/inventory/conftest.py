"""Fixtures of the gpu_fleet inventory plugin tests; they live in gpu_fleet_testlib (a name no other
test directory uses, so that tests can import its helpers too)."""

from gpu_fleet_testlib import (  # noqa: F401 (pytest finds fixtures by name here)
    ansible_env,
    aws_env,
    collection_loader,
    gce_api,
    moto_ec2,
    moto_ec2_with_auth,
    parse_inventory,
)
