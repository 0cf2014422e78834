# Copyright: gpufleet developers. Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""Controller-only: a layout function's own error, raised from a filter as Ansible's filter error."""

from __future__ import annotations

from ansible.errors import AnsibleFilterError


def raising_filter_errors(function, error_type):
    """function as a filter: an error_type it raises becomes an AnsibleFilterError with its message."""
    def filter_(*args, **kwargs):
        try:
            return function(*args, **kwargs)
        except error_type as exc:
            raise AnsibleFilterError(str(exc)) from exc
    filter_.__name__ = function.__name__
    filter_.__doc__ = function.__doc__
    return filter_
