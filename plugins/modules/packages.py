# Copyright: gpufleet developers. Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
# The work is done by the action plugin of the same name: a dpkg query, then ansible.builtin.apt only if needed.

from __future__ import annotations

DOCUMENTATION = r"""
module: packages
short_description: Make sure Debian packages are installed, asking dpkg before apt
description:
  - Asks C(dpkg-query) over the connection (no Python module on the host) which of the packages are installed.
    When all are, at the wanted version where one is given, it reports no change and does not call apt.
  - Otherwise it runs M(ansible.builtin.apt) with O(name), C(state=present) and the other options, and returns
    that module's result.
  - So a rerun on a converged host neither loads the apt cache nor refreshes the package lists because
    O(cache_valid_time) has passed, which M(ansible.builtin.apt) does on every call even when nothing is missing.
  - A package removed by hand is missing to dpkg, so the next run installs it again.
version_added: "0.1.0"
options:
  name:
    description:
      - Package names, each optionally with C(=version); the version may end in C(*) as apt allows.
      - Names with an architecture, patterns and C(.deb) files are not accepted; use M(ansible.builtin.apt) for them.
    type: list
    elements: str
    required: true
  install_recommends:
    description: Passed to M(ansible.builtin.apt) when it runs.
    type: bool
  cache_valid_time:
    description: Passed to M(ansible.builtin.apt) when it runs; it refreshes the package lists older than this.
    type: int
  update_cache:
    description: Passed to M(ansible.builtin.apt) when it runs.
    type: bool
  policy_rc_d:
    description: Passed to M(ansible.builtin.apt) when it runs (C(101) keeps a package's service from starting).
    type: int
  allow_change_held_packages:
    description: Passed to M(ansible.builtin.apt) when it runs.
    type: bool
  allow_downgrade:
    description: Passed to M(ansible.builtin.apt) when it runs.
    type: bool
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - ansible.builtin.action_common_attributes.flow
  - gpufleet.llm.ask_first
attributes:
  diff_mode:
    support: none
  platform:
    platforms: debian
seealso:
  - module: ansible.builtin.apt
author:
  - gpufleet developers (@gpufleet)
"""

EXAMPLES = r"""
- name: Install NGINX and its JavaScript module, without starting NGINX before it is configured
  gpufleet.llm.packages:
    name: [nginx, libnginx-mod-http-js]
    install_recommends: false
    cache_valid_time: 3600
    policy_rc_d: 101

- name: Install a pinned driver
  gpufleet.llm.packages:
    name: ["nvidia-driver=535.216.01-1~deb12u1"]
    allow_downgrade: true
"""

RETURN = r"""
msg:
  description:
    - C(Nothing to do ...) when dpkg had every package; otherwise the result is that of M(ansible.builtin.apt).
  returned: always
  type: str
"""
