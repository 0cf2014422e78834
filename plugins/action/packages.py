# Copyright: gpufleet developers. Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""Debian packages present: asks dpkg first, and runs ansible.builtin.apt only when dpkg lacks one of them.

The apt module loads the apt cache on every call and, with cache_valid_time, refreshes the package lists once they
are older than that, even when every package is installed.
"""

from __future__ import annotations

import fnmatch
import shlex

from ansible.errors import AnsibleActionFail
from ansible_collections.gpufleet.llm.plugins.plugin_utils.ask_first import AskFirstAction

# the apt module's options this action passes on
APT_OPTIONS = frozenset((
    "allow_change_held_packages", "allow_downgrade", "cache_valid_time", "install_recommends", "policy_rc_d",
    "update_cache",
))
# db:Status-Abbrev: wanted (i install, h hold), status (i installed), error flag (blank: none)
_QUERY = "dpkg-query -W -f='${Package}\\t${Version}\\t${db:Status-Abbrev}\\n' -- "


def parse(entry: str) -> tuple[str, str | None]:
    """'name' or 'name=version' (the version may end in apt's * wildcard) -> (name, version or None)."""
    name, equals, version = entry.partition("=")
    if not name or ":" in name or any(char in name for char in "*?[") or (equals and not version):
        raise ValueError(entry)
    return name, version or None


def installed(dpkg_output: str) -> dict[str, set[str]]:
    """dpkg-query's lines -> {package: versions installed}; packages known to dpkg but not installed are left out."""
    versions: dict[str, set[str]] = {}
    for line in dpkg_output.splitlines():
        fields = line.split("\t")
        if len(fields) == 3 and fields[2].rstrip() in ("ii", "hi"):
            versions.setdefault(fields[0], set()).add(fields[1])
    return versions


def missing(names: list[str], dpkg_output: str) -> list[str]:
    """The entries of names that dpkg does not have installed (at the wanted version where one is given)."""
    have = installed(dpkg_output)
    absent = []
    for entry in names:
        name, version = parse(entry)
        if name not in have or (version is not None and not any(fnmatch.fnmatchcase(v, version) for v in have[name])):
            absent.append(entry)
    return absent


class ActionModule(AskFirstAction):
    MODULE = "ansible.builtin.apt"
    _VALID_ARGS = frozenset(("name",)) | APT_OPTIONS

    def arguments(self):
        names = self._task.args.get("name")
        names = [names] if isinstance(names, str) else names
        if not names or not all(isinstance(name, str) for name in names):
            raise AnsibleActionFail("name must be a package name or a list of them")
        for entry in names:
            try:
                parse(entry)
            except ValueError:
                raise AnsibleActionFail(f"name: {entry} is not a package name (name or name=version, without an "
                                        "architecture or a pattern): pass it to ansible.builtin.apt") from None
        return dict(self._task.args, name=names)

    def question(self, args):
        return _QUERY + " ".join(shlex.quote(parse(entry)[0]) for entry in args["name"])

    def settled(self, args, rc, stdout):
        # dpkg-query exits 1 when a name is unknown to it; its output then lacks that name, which is missing
        return rc in (0, 1) and not missing(args["name"], stdout)

    def module_args(self, args):
        return dict(args, state="present")
