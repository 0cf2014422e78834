# Copyright: gpufleet developers. Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""Which packages from which repository make up a host's NVIDIA stack.

The package names live in the roles' vars/ (the `table` arguments); this module only
chooses among them, so the choice can be unit tested against the real tables.
"""

from __future__ import annotations

from ansible_collections.gpufleet.llm.plugins.module_utils.nvidia import (
    check_cuda_driver,
    cuda_major_minor,
    version_tuple,
)

SOURCES = ("distribution", "nvidia")
FLAVORS = ("open", "proprietary")


def os_key(distribution, version):
    """`Debian`, `12.9` -> `Debian-12`; `Ubuntu`, `22.04` -> `Ubuntu-22.04` (Ubuntu's minor is its release)."""
    major = str(version).split(".", maxsplit=1)[0]
    return f"{distribution}-{version}" if distribution == "Ubuntu" else f"{distribution}-{major}"


def _entry(table, source, key, what):
    if source not in SOURCES:
        raise PlanError(f"{what}_source must be one of {', '.join(SOURCES)}, got {source!r}")
    entry = table.get(source, {}).get(key)
    if entry is None:
        supported = ", ".join(sorted(table.get(source, {})))
        raise PlanError(f"{key} is not supported with {what}_source={source} (supported: {supported})")
    return entry


def _names(templates, **values):
    return [template.format(**values) for template in templates]


def package_name(spec):
    """`nvidia-smi=535.309.01-*` -> `nvidia-smi`."""
    return spec.split("=", 1)[0]


class PlanError(ValueError):
    """A combination of settings that cannot be installed."""


def plan_driver(table, key, source, *, flavor, branch, version, host, container_userspace=False):
    """The driver install for one host.

    `host` is the gpu_facts `gpu_host` dict plus `gpu_count`. Returns the packages to
    install (with version pins), the names to hold, and what to set up around them.
    """
    entry = _entry(table, source, key, "nvidia_driver")
    if flavor not in FLAVORS:
        raise PlanError(f"nvidia_driver_flavor must be one of {', '.join(FLAVORS)}, got {flavor!r}")
    branch = str(branch)
    if branch not in [str(b) for b in entry["branches"][flavor]]:
        raise PlanError(
            f"driver branch {branch} ({flavor}) is not available from {source} on {key}; "
            f"available: {', '.join(str(b) for b in entry['branches'][flavor]) or 'none'}")
    if version_tuple(version)[:1] != version_tuple(branch)[:1]:
        raise PlanError(f"nvidia_driver_version {version} does not belong to nvidia_driver_branch {branch}")
    values = {"branch": branch, "version": version}
    plan = {
        "repository": entry["repository"], "repo_dir": entry.get("repo_dir"), "kernel_module": False, "packages": [],
        "persistenced": False, "fabricmanager": False, "skip_reason": None,
        "dkms_module": entry["dkms_module"][flavor], "module_name": entry["module_name"][flavor],
        "pin_packages": entry["pin_packages"], "pin_version": entry["pin_version"].format(**values),
    }
    if host["container"]:
        plan["skip_reason"] = ("container: the kernel module belongs to the container host; "
                               + ("installing user-space packages only" if container_userspace
                                  else "set nvidia_driver_container_userspace to install user-space packages"))
        if container_userspace:
            plan["packages"] = _names(entry["container_userspace"], **values)
    elif not host["pci_gpu_count"] and not host["gpu_count"]:
        plan["skip_reason"] = "no NVIDIA GPU on PCI (vendor 0x10de): no kernel driver installed"
    else:
        plan.update(kernel_module=True, persistenced=True)
        plan["packages"] = _names(entry["kernel"][flavor] + entry["userspace"][flavor], **values)
        if host["nvswitch_count"]:
            if not entry["fabricmanager"]:
                raise PlanError(
                    f"{host['nvswitch_count']} NVSwitch(es) found but {source} on {key} ships no Fabric Manager; "
                    "set nvidia_driver_source: nvidia")
            plan["fabricmanager"] = True
            plan["packages"] += _names(entry["fabricmanager"], **values)
    if not plan["packages"]:
        plan["repository"] = "none"
    plan["hold"] = [package_name(spec) for spec in plan["packages"]]
    return plan


def plan_cuda(table, key, source, versions, *, default_version=None, driver_version=None, strict=False):
    """The CUDA toolkits for one host: packages, install homes and the default for /usr/local/cuda."""
    entry = _entry(table, source, key, "cuda_toolkit")
    versions = [str(v) for v in versions]
    if len(versions) > 1 and not entry["side_by_side"]:
        raise PlanError(f"{source} on {key} ships one CUDA toolkit; several versions need cuda_toolkit_source: nvidia")
    toolkits = []
    for version in versions:
        release = cuda_major_minor(version)
        if entry["releases"] and release not in entry["releases"]:
            raise PlanError(f"CUDA {version} is not available from {source} on {key} "
                            f"(available: {', '.join(entry['releases'])})")
        if driver_version:
            error = check_cuda_driver(version, driver_version, strict)
            if error:
                raise PlanError(error)
        major, minor = release.split(".")
        values = {"version": version, "major": major, "minor": minor}
        toolkits.append({
            "version": version, "release": release, "home": entry["home"].format(**values),
            "packages": _names(entry["packages"], **values),
        })
    default = str(default_version) if default_version else (versions[-1] if versions else None)
    if default is not None and default not in versions:
        raise PlanError(f"cuda_toolkit_default_version {default} is not in cuda_toolkit_versions")
    packages = [spec for toolkit in toolkits for spec in toolkit["packages"]]
    return {
        "repository": entry["repository"] if toolkits else "none",
        "repo_dir": entry.get("repo_dir"),
        "toolkits": toolkits,
        "packages": packages,
        "hold": [package_name(spec) for spec in packages],
        "default_home": next((t["home"] for t in toolkits if t["version"] == default), None),
    }
