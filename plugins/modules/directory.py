# Copyright: gpufleet developers. Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
# The work is done by the action plugin of the same name: stat's answer, then ansible.builtin.file only if needed.

from __future__ import annotations

DOCUMENTATION = r"""
module: directory
short_description: Make sure a directory exists with an owner, group and mode, asking stat before the module
description:
  - Asks C(stat) over the connection (no Python module on the host) what O(path) is. When it is a directory with
    the given owner, group and mode, it reports no change and does not call the module.
  - Otherwise it runs M(ansible.builtin.file) with C(state=directory) and the same options, and returns that
    module's result; so a directory whose owner or mode was changed by hand is put right by the next run.
version_added: "0.1.0"
options:
  path:
    description:
      - Absolute path of the directory; missing parents are created as M(ansible.builtin.file) does.
      - A path that starts with C(~) is left to the module, which expands it for the connection's user.
    type: path
    required: true
  owner:
    description: User name or uid that owns the directory; left as it is when not given.
    type: str
  group:
    description: Group name or gid of the directory; left as it is when not given.
    type: str
  mode:
    description: Octal mode as a quoted string, for example C("0750"); left as it is when not given.
    type: str
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - ansible.builtin.action_common_attributes.flow
  - gpufleet.llm.ask_first
attributes:
  diff_mode:
    support: none
seealso:
  - module: ansible.builtin.file
author:
  - gpufleet developers (@gpufleet)
"""

EXAMPLES = r"""
- name: Create the exporter's configuration directory
  gpufleet.llm.directory:
    path: /etc/gpufleet/exporter
    owner: root
    group: prometheus
    mode: "0750"
"""

RETURN = r"""
msg:
  description:
    - C(Nothing to do ...) when the directory was as wanted; otherwise the result is that of M(ansible.builtin.file).
  returned: always
  type: str
"""
