# Copyright: gpufleet developers. Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
# The work is done by the action plugin of the same name: ansible.builtin.template's, with gpufleet.llm.copy's copy.

from __future__ import annotations

DOCUMENTATION = r"""
module: template
short_description: Render a template to a host, asking sha1sum and stat before any module runs there
description:
  - M(ansible.builtin.template), whose rendering, validation, diff and check mode it uses unchanged, with one
    difference; the rendered file goes to the host through M(gpufleet.llm.copy), which asks C(sha1sum) and C(stat)
    over the connection (no Python module on the host) first.
  - When the destination already has the rendered content, owner, group and mode, nothing runs on the host and the
    task reports no change. M(ansible.builtin.template) runs the C(stat) module and then the C(file) module even then.
  - Otherwise the file is copied, validated and its attributes set exactly as by M(ansible.builtin.template); a file
    edited by hand has another checksum, so the next run writes it again.
version_added: "0.1.0"
options:
  src:
    description: The template, found as M(ansible.builtin.template) finds it (the role's C(templates/)).
    type: path
    required: true
  dest:
    description: The file on the host.
    type: path
    required: true
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - ansible.builtin.action_common_attributes.flow
  - gpufleet.llm.ask_first
  - gpufleet.llm.ask_first.file
attributes:
  diff_mode:
    support: full
notes:
  - The other options of M(ansible.builtin.template) are passed on to it; with one not listed here (for example
    C(follow)) the builtin's own check runs.
seealso:
  - module: ansible.builtin.template
  - module: gpufleet.llm.copy
author:
  - gpufleet developers (@gpufleet)
"""

EXAMPLES = r"""
- name: Render the load balancer's configuration, checked by NGINX before it replaces the old one
  gpufleet.llm.template:
    src: nginx.conf.j2
    dest: /etc/nginx/nginx.conf
    owner: root
    group: root
    mode: "0644"
    validate: nginx -t -c %s
"""

RETURN = r"""
dest:
  description: The file on the host.
  returned: always
  type: str
checksum:
  description: SHA1 of the rendered file.
  returned: always
  type: str
"""
