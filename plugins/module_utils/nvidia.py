# Copyright: gpufleet developers. Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""What a host's NVIDIA hardware and driver look like, read from nvidia-smi, PCI sysfs and /proc.

Shared by the gpu_facts module (and through it the nvidia_driver, cuda_toolkit and
model_server roles) so that GPU detection is written once. Everything here is a pure
function of command output or of files under a root directory, so tests can feed
captured outputs and fixture trees.
"""

from __future__ import annotations

import os
import re
from collections import Counter

NVIDIA_VENDOR = 0x10DE
# PCI class codes (class/subclass, prog-if dropped): VGA controller and 3D controller
# are GPUs; "bridge, other" from NVIDIA is an NVSwitch.
GPU_CLASSES = (0x0300, 0x0302)
NVSWITCH_CLASS = 0x0680

QUERY_FIELDS = (
    "index", "name", "uuid", "memory.total", "driver_version",
    "compute_cap", "pci.bus_id", "mig.mode.current",
)

# nvidia-smi's own names, so that facts read without a driver match those read with one (the inventory's
# `facts` source copies the name into gpu_model). Device ids from the PCI ID database, pciutils/pciids
# pci.ids version 2026.08.22 (commit c1c12547d626), whose own names are in the comments.
PCI_DEVICE_NAMES = {
    0x1DB1: ("Tesla V100-SXM2-16GB", "7.0"),         # GV100GL [Tesla V100 SXM2 16GB]
    0x1DB4: ("Tesla V100-PCIE-16GB", "7.0"),         # GV100GL [Tesla V100 PCIe 16GB]
    0x1DB5: ("Tesla V100-SXM2-32GB", "7.0"),         # GV100GL [Tesla V100 SXM2 32GB]
    0x1DB6: ("Tesla V100-PCIE-32GB", "7.0"),         # GV100GL [Tesla V100 PCIe 32GB]
    0x1DF6: ("Tesla V100S-PCIE-32GB", "7.0"),        # GV100GL [Tesla V100S PCIe 32GB]
    0x1EB8: ("Tesla T4", "7.5"),                     # TU104GL [Tesla T4]
    0x20B0: ("NVIDIA A100-SXM4-40GB", "8.0"),        # GA100 [A100 SXM4 40GB]
    0x20B1: ("NVIDIA A100-PCIE-40GB", "8.0"),        # GA100 [A100 PCIe 40GB]
    0x20B2: ("NVIDIA A100-SXM4-80GB", "8.0"),        # GA100 [A100 SXM4 80GB]
    0x20B5: ("NVIDIA A100 80GB PCIe", "8.0"),        # GA100 [A100 PCIe 80GB]
    0x20F1: ("NVIDIA A100-PCIE-40GB", "8.0"),        # GA100 [A100 PCIe 40GB]
    0x2236: ("NVIDIA A10", "8.6"),                   # GA102GL [A10]
    0x2237: ("NVIDIA A10G", "8.6"),                  # GA102GL [A10G]
    0x2321: ("NVIDIA H100 NVL", "9.0"),              # GH100 [H100L 94GB]
    0x2330: ("NVIDIA H100 80GB HBM3", "9.0"),        # GH100 [H100 SXM5 80GB]
    0x2331: ("NVIDIA H100 PCIe", "9.0"),             # GH100 [H100 PCIe]
    0x2335: ("NVIDIA H200", "9.0"),                  # GH100 [H200 SXM 141GB]
    0x233B: ("NVIDIA H200 NVL", "9.0"),              # GH100 [H200 NVL]
    0x26B1: ("NVIDIA RTX 6000 Ada Generation", "8.9"),  # AD102GL [RTX 6000 Ada Generation]
    0x26B9: ("NVIDIA L40S", "8.9"),                  # AD102GL [L40S]
    0x27B8: ("NVIDIA L4", "8.9"),                    # AD104GL [L4]
    0x2901: ("NVIDIA B200", "10.0"),                 # GB100 [B200]
}

# Where distributions put the PCI ID database (Debian/Ubuntu pci.ids, Fedora/RHEL hwdata, others).
PCI_IDS_PATHS = ("usr/share/misc/pci.ids", "usr/share/hwdata/pci.ids", "usr/share/pci.ids")

EFI_GLOBAL_GUID = "8be4df61-93ca-11d2-aa0d-00e098032b8c"
CONTAINER_MARKERS = ("run/.containerenv", ".dockerenv")
_MISSING = ("", "N/A", "[N/A]", "[Not Supported]", "Not Supported", "[Unknown Error]")


class NvidiaParseError(ValueError):
    """Output that does not have the shape nvidia-smi documents."""


def _value(text):
    text = text.strip()
    return None if text in _MISSING else text


def _int_or_none(text):
    value = _value(text)
    return None if value is None else int(float(value))


def normalize_bus_id(bus_id):
    """nvidia-smi writes 00000000:18:00.0, sysfs 0000:18:00.0; keep the sysfs form."""
    if bus_id is None:
        return None
    domain, _sep, rest = bus_id.strip().lower().rpartition(":")
    domain, _sep, bus = domain.rpartition(":") if ":" in domain else ("", "", domain)
    domain = domain[-4:].rjust(4, "0") if domain else "0000"
    return f"{domain}:{bus}:{rest}"


def _gpu_row(line, fields):
    """One CSV row as a GPU dict; NvidiaParseError when the line is not a row of these fields."""
    cells = [cell.strip() for cell in line.split(",")]
    if len(cells) != len(fields):
        raise NvidiaParseError(f"expected {len(fields)} fields, got {len(cells)} in {line!r}")
    row = dict(zip(fields, cells, strict=True))
    try:
        index = int(row["index"])
    except ValueError:
        raise NvidiaParseError(f"GPU index {row['index']!r} is not a number in {line!r}") from None
    # A field missing from `fields` (an older driver rejected it) is None, like a value the GPU does not report.
    mig = _value(row.get("mig.mode.current", ""))
    return {
        "index": index,
        "name": _value(row.get("name", "")),
        "uuid": _value(row.get("uuid", "")),
        "memory_total_mib": _int_or_none(row.get("memory.total", "")),
        "driver_version": _value(row.get("driver_version", "")),
        "compute_capability": _value(row.get("compute_cap", "")),
        "pci_bus_id": normalize_bus_id(_value(row.get("pci.bus_id", ""))),
        "mig_mode": mig.lower() if mig else None,
    }


def split_query_gpu(text, fields=QUERY_FIELDS):
    """`nvidia-smi --query-gpu` output -> (GPU dicts by index, lines that are not GPU rows).

    nvidia-smi writes warnings and per-GPU errors to stdout among the rows ("WARNING: infoROM is
    corrupted at gpu ...", "Unable to determine the device handle for GPU ...: Unknown Error" or
    "...: GPU is lost"); one such line must not cost the other GPUs, so it is returned, not raised.
    """
    gpus, problems = [], []
    for line in text.splitlines():
        if not line.strip():
            continue
        try:
            gpus.append(_gpu_row(line, fields))
        except NvidiaParseError:
            problems.append(line.strip())
    return sorted(gpus, key=lambda gpu: gpu["index"]), problems


def parse_query_gpu(text, fields=QUERY_FIELDS):
    """Rows of `nvidia-smi --query-gpu=<fields> --format=csv,noheader,nounits` as dicts; strict."""
    for line in text.splitlines():
        if line.strip():
            _gpu_row(line, fields)
    return split_query_gpu(text, fields)[0]


_INVALID_FIELD = re.compile(r'Field "(?P<field>[^"]+)" is not a valid field to query')


def invalid_query_fields(text):
    """Fields an older nvidia-smi rejects: `Field "compute_cap" is not a valid field to query.`"""
    return [match.group("field") for match in _INVALID_FIELD.finditer(text or "")]


_NVLINK_GPU = re.compile(r"^\s*GPU (\d+):")
_NVLINK_LINK = re.compile(r"^\s*Link \d+:\s*(.+)$")


def parse_nvlink_status(text):
    """`nvidia-smi nvlink -s` -> {gpu index: number of active links}.

    A GPU without NVLink prints "NVML: Unable to retrieve NVLink information as all links are inActive"
    under its header and counts 0; other lines under a header (errors, MIG devices) are not links.
    """
    links = {}
    current = None
    for line in text.splitlines():
        gpu = _NVLINK_GPU.match(line)
        if gpu:
            current = int(gpu.group(1))
            links[current] = 0
            continue
        link = _NVLINK_LINK.match(line)
        if link and current is not None and "inactive" not in link.group(1).lower():
            links[current] += 1
    return links


_NVRM = re.compile(r"NVRM version:\s+NVIDIA UNIX (?P<kind>.*?Kernel Module.*?)\s+(?P<version>\d+\.\d+(?:\.\d+)?)\s")


def parse_proc_driver_version(text):
    """/proc/driver/nvidia/version -> {version, flavor} of the loaded kernel module."""
    match = _NVRM.search(text or "")
    if not match:
        return None
    flavor = "open" if "Open Kernel Module" in match.group("kind") else "proprietary"
    return {"version": match.group("version"), "flavor": flavor}


def parse_loaded_modules(text):
    """/proc/modules -> set of module names."""
    return {line.split()[0] for line in (text or "").splitlines() if line.strip()}


_DKMS_LINE = re.compile(
    r"^(?P<module>[^/,\s]+)[/,]\s*(?P<version>[^,\s]+),\s*(?P<kernel>[^,\s]+)(?:,\s*(?P<arch>[^:\s]+))?:\s*(?P<state>\w+)")


def parse_dkms_status(text):
    """`dkms status` in both the old (`m, v, k, a: s`) and new (`m/v, k, a: s`) formats."""
    entries = []
    for line in (text or "").splitlines():
        match = _DKMS_LINE.match(line.strip())
        if match:
            entries.append(match.groupdict())
    return entries


def dkms_failure(entries, module, version, kernel):
    """None when `module` `version` is installed for `kernel`, else the reason."""
    for entry in entries:
        if entry["module"] == module and entry["version"].startswith(version) and entry["kernel"] == kernel:
            if entry["state"] == "installed":
                return None
            return f"DKMS module {module}/{entry['version']} is '{entry['state']}' for kernel {kernel}"
    built = sorted({e["kernel"] for e in entries if e["module"] == module and e["state"] == "installed"})
    where = f" (built only for: {', '.join(built)})" if built else ""
    return f"DKMS module {module}/{version} is not built for the running kernel {kernel}{where}"


def secure_boot_enabled(efivar_bytes):
    """The SecureBoot EFI variable: 4 attribute bytes, then 1 when enabled. None without EFI."""
    if efivar_bytes is None:
        return None
    return len(efivar_bytes) >= 5 and efivar_bytes[4] == 1


def _read(path, binary=False):
    try:
        with open(path, "rb" if binary else "r") as handle:
            return handle.read()
    except OSError:
        return None


def _hex(path):
    value = _read(path)
    return int(value.strip(), 16) if value else None


def scan_pci(root="/"):
    """NVIDIA PCI functions under <root>/sys/bus/pci/devices, no driver needed."""
    base = os.path.join(root, "sys/bus/pci/devices")
    try:
        addresses = sorted(os.listdir(base))
    except OSError:
        return []
    devices = []
    for address in addresses:
        path = os.path.join(base, address)
        if _hex(os.path.join(path, "vendor")) != NVIDIA_VENDOR:
            continue
        pci_class = _hex(os.path.join(path, "class")) or 0
        driver = os.path.join(path, "driver")
        devices.append({
            "address": address.lower(),
            "device": _hex(os.path.join(path, "device")),
            "class": pci_class >> 8,
            "driver": os.path.basename(os.readlink(driver)) if os.path.islink(driver) else None,
        })
    return devices


def parse_pci_ids(text, vendor=NVIDIA_VENDOR):
    """pci.ids -> {device id: name} for one vendor; subsystem lines (two tabs) and other vendors are skipped."""
    names, in_vendor = {}, False
    for line in (text or "").splitlines():
        if not line or line.startswith("#"):
            continue
        if not line.startswith("\t"):
            # A vendor line ("10de  NVIDIA Corporation"), or the device classes ("C 03  ...") that end the list.
            head = line.split(None, 1)[0]
            in_vendor = len(head) == 4 and head.lower() == f"{vendor:04x}"
            continue
        if in_vendor and not line.startswith("\t\t"):
            device, _sep, name = line.strip().partition(" ")
            try:
                names[int(device, 16)] = name.strip()
            except ValueError:
                continue
    return names


def read_pci_ids(root="/"):
    """NVIDIA device names from the host's pci.ids, or {} when it has none."""
    for path in PCI_IDS_PATHS:
        text = _read(os.path.join(root, path))
        if text is not None:
            return parse_pci_ids(text)
    return {}


def _pci_ids_name(name):
    """pci.ids writes "GH100 [H200 SXM 141GB]": the product is in brackets, the chip before them."""
    match = re.search(r"\[([^\]]+)\]", name)
    return "NVIDIA " + (match.group(1) if match else name).strip()


def gpus_from_pci(devices, pci_ids=None):
    """GPU facts from PCI alone: what is known without a driver, None for the rest.

    Names come from the shipped table (nvidia-smi's spelling), then the host's pci.ids, then the bare id.
    """
    pci_ids = pci_ids or {}
    gpus = []
    for index, device in enumerate(d for d in devices if d["class"] in GPU_CLASSES):
        device_id = device["device"]
        name, capability = PCI_DEVICE_NAMES.get(device_id, (None, None))
        if name is None:
            name = _pci_ids_name(pci_ids[device_id]) if device_id in pci_ids else f"NVIDIA device 0x{device_id:04x}"
        gpus.append({
            "index": index, "name": name, "uuid": None, "memory_total_mib": None,
            "driver_version": None, "compute_capability": capability,
            "pci_bus_id": device["address"], "mig_mode": None,
            "pci_device_id": f"0x{device_id:04x}", "pci_device_name": pci_ids.get(device_id),
            "kernel_driver": device["driver"],
        })
    return gpus


def nvswitch_count(devices):
    return sum(1 for device in devices if device["class"] == NVSWITCH_CLASS)


def in_container(root="/", detect_virt_output=None):
    """True inside podman/docker/lxc/systemd-nspawn, where the kernel module belongs to the host."""
    if detect_virt_output and detect_virt_output.strip() not in ("", "none"):
        return True
    if any(os.path.exists(os.path.join(root, marker)) for marker in CONTAINER_MARKERS):
        return True
    environ = _read(os.path.join(root, "proc/1/environ"), binary=True) or b""
    return any(item.startswith(b"container=") for item in environ.split(b"\0"))


def read_host_state(root="/", detect_virt_output=None):
    """Everything about the host that needs no nvidia-smi: PCI, loaded modules, Secure Boot, container."""
    devices = scan_pci(root)
    loaded = parse_proc_driver_version(_read(os.path.join(root, "proc/driver/nvidia/version")))
    modules = parse_loaded_modules(_read(os.path.join(root, "proc/modules")))
    efivar = os.path.join(root, "sys/firmware/efi/efivars", f"SecureBoot-{EFI_GLOBAL_GUID}")
    return {
        "pci_devices": devices,
        "pci_gpu_count": sum(1 for d in devices if d["class"] in GPU_CLASSES),
        "nvswitch_count": nvswitch_count(devices),
        "driver_loaded": loaded is not None,
        "driver_loaded_version": loaded["version"] if loaded else None,
        "driver_loaded_flavor": loaded["flavor"] if loaded else None,
        "nouveau_loaded": "nouveau" in modules,
        "secure_boot": bool(secure_boot_enabled(_read(efivar, binary=True))),
        "efi": os.path.isdir(os.path.join(root, "sys/firmware/efi")),
        "container": in_container(root, detect_virt_output),
    }


def gpu_model(gpus):
    """The host's GPU model: the most common name (a mixed host is named by its majority)."""
    names = [gpu["name"] for gpu in gpus if gpu.get("name")]
    if not names:
        return ""
    counts = Counter(names)
    return max(names, key=lambda name: (counts[name], -names.index(name)))


def check_inventory_gpus(declared, found, host="this host"):
    """The model_server preflight: None when the inventory's gpu_count fits the GPUs found."""
    if isinstance(declared, bool):
        return f"{host}: gpu_count must be an integer, got {declared!r}"
    try:
        wanted = int(declared)
    except (TypeError, ValueError):
        return f"{host}: gpu_count must be an integer, got {declared!r}"
    if wanted < 1:
        return f"{host}: gpu_count must be at least 1, got {wanted}"
    if wanted > found:
        return (f"{host}: the inventory sets gpu_count={wanted} but only {found} NVIDIA GPU(s) were found; "
                f"lower gpu_count or check the host (nvidia-smi, lspci -d 10de:)")
    return None


def version_tuple(version):
    return tuple(int(part) for part in re.findall(r"\d+", str(version)))


# NVIDIA's minimum Linux x86_64 driver for each CUDA major release with minor version
# compatibility, and the driver each toolkit release ships with (CUDA Toolkit release notes,
# tables 2 and 3). A toolkit newer than its driver runs PTX-free code only under minor version
# compatibility; `strict` demands the driver the toolkit release shipped with.
CUDA_MINIMUM_DRIVER = {"11": "450.80.02", "12": "525.60.13", "13": "580.65.06"}
CUDA_TOOLKIT_DRIVER = {
    "11.0": "450.36.06", "11.1": "455.23", "11.2": "460.27.03", "11.3": "465.19.01",
    "11.4": "470.42.01", "11.5": "495.29.05", "11.6": "510.39.01", "11.7": "515.43.04",
    "11.8": "520.61.05", "12.0": "525.60.13", "12.1": "530.30.02", "12.2": "535.54.03",
    "12.3": "545.23.06", "12.4": "550.54.14", "12.5": "555.42.02", "12.6": "560.28.03",
    "12.8": "570.26", "12.9": "575.51.03", "13.0": "580.65.06",
}


def cuda_major_minor(version):
    parts = version_tuple(version)
    if len(parts) < 2:
        raise ValueError(f"CUDA version {version!r} is not of the form MAJOR.MINOR[.PATCH]")
    return f"{parts[0]}.{parts[1]}"


def minimum_driver_for_cuda(cuda_version, strict=False):
    release = cuda_major_minor(cuda_version)
    table = CUDA_TOOLKIT_DRIVER if strict else CUDA_MINIMUM_DRIVER
    key = release if strict else release.split(".")[0]
    if key not in table:
        raise ValueError(f"CUDA {cuda_version} is not in the driver compatibility table (known: {', '.join(table)})")
    return table[key]


def check_cuda_driver(cuda_version, driver_version, strict=False):
    """None when `driver_version` can run CUDA `cuda_version`, else a message naming both."""
    try:
        minimum = minimum_driver_for_cuda(cuda_version, strict)
    except ValueError as error:
        return str(error)
    if version_tuple(driver_version) < version_tuple(minimum):
        return (f"CUDA {cuda_version} needs NVIDIA driver >= {minimum}, but the driver is {driver_version}: "
                f"upgrade the driver (nvidia_driver_version) or choose an older CUDA version")
    return None


def driver_action(wanted_version, installed_version, loaded_version, nouveau_loaded):
    """What makes the wanted kernel module the running one: 'none', 'load' or 'reboot'.

    A reboot is needed only when a different module is in the kernel (an old nvidia or
    nouveau); a GPU already running the wanted version is never rebooted.
    """
    if loaded_version and loaded_version == (installed_version or wanted_version):
        return "none"
    if loaded_version or nouveau_loaded:
        return "reboot"
    return "load"
