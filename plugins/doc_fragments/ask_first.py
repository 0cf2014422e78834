# Copyright: gpufleet developers. Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""What the modules that ask the host first (packages, service_started, directory, copy, template) share."""

from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
attributes:
  check_mode:
    support: full
  platform:
    platforms: posix
  action:
    support: full
  async:
    support: none
  bypass_host_loop:
    support: none
notes:
  - The question is a shell command over the task's connection (become included), so no Python runs on the host
    unless the module has to. It reads the host on every run and nothing is remembered between runs, so a host
    changed by hand is put right by the next run as the built-in module would.
"""

    FILE = r"""
options:
  owner:
    description: Owner of the file, a name or uid.
    type: str
  group:
    description: Group of the file, a name or gid.
    type: str
  mode:
    description:
      - Mode of the file. Only an octal mode in a string (C("0644")) lets the question settle the task; other modes
        are left to the built-in module.
    type: raw
  validate:
    description: Command that checks the new file (C(%s) is its path) before it replaces the old one.
    type: str
  backup:
    description: Keep the old file with a timestamp when the file changes.
    type: bool
    default: false
"""
