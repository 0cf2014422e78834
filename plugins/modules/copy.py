# Copyright: gpufleet developers. Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
# The work is done by the action plugin of the same name: ansible.builtin.copy's, after a sha1sum and stat question.

from __future__ import annotations

DOCUMENTATION = r"""
module: copy
short_description: Copy a file or content to a host, asking sha1sum and stat before any module runs there
description:
  - M(ansible.builtin.copy), which it is apart from one question; before each file it asks C(sha1sum) and C(stat)
    over the connection (no Python module on the host).
  - When the destination already has the content, owner, group and mode, nothing runs on the host and the task
    reports no change. M(ansible.builtin.copy) runs the C(stat) module and then the C(file) module even then.
  - Otherwise it copies, validates and sets attributes exactly as M(ansible.builtin.copy); a file edited by hand
    has another checksum, so the next run writes it again.
version_added: "0.1.0"
options:
  src:
    description: Local file (the role's C(files/) or a path); mutually exclusive with O(content).
    type: path
  content:
    description: The file's content; mutually exclusive with O(src).
    type: str
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
  - The other options of M(ansible.builtin.copy) are passed on to it; with one not listed here (for example
    C(remote_src) or C(follow)) the builtin's own check runs.
seealso:
  - module: ansible.builtin.copy
  - module: gpufleet.llm.template
author:
  - gpufleet developers (@gpufleet)
"""

EXAMPLES = r"""
- name: Trust the site's CA bundle
  gpufleet.llm.copy:
    src: /etc/ssl/certs/ca-certificates.crt
    dest: /etc/gpufleet/ca-bundle.crt
    owner: root
    group: root
    mode: "0644"
"""

RETURN = r"""
dest:
  description: The file on the host.
  returned: always
  type: str
checksum:
  description: SHA1 of the file.
  returned: always
  type: str
"""
