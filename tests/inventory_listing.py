"""Reading `ansible-inventory --list` output, the one way every test suite of the project needs it."""

from __future__ import annotations


def group_hosts(listing: dict, group: str) -> set[str]:
    """Hosts of ``group``, directly or through its child groups."""
    node = listing.get(group, {})
    hosts = set(node.get("hosts", []))
    for child in node.get("children", []):
        hosts |= group_hosts(listing, child)
    return hosts
