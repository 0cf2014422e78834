"""Parsing of nvidia-smi, /proc and DKMS output, and detection from fixture sysfs/proc trees."""

from pathlib import Path

import pytest
from ansible_collections.gpufleet.llm.plugins.module_utils import nvidia

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "nvidia"
SMI = FIXTURES / "smi"


def smi(name):
    return (SMI / name).read_text()


@pytest.mark.parametrize("fixture,count,expected", [
    ("query_h100_sxm_8.csv", 8, ("NVIDIA H100 80GB HBM3", 81559, "9.0", "disabled")),
    ("query_h200_sxm_8.csv", 8, ("NVIDIA H200", 143771, "9.0", "disabled")),
    ("query_a100_sxm4_mig.csv", 4, ("NVIDIA A100-SXM4-80GB", 81920, "8.0", "enabled")),
    ("query_l4_2.csv", 2, ("NVIDIA L4", 23034, "8.9", None)),
    ("query_t4_1.csv", 1, ("Tesla T4", 15360, "7.5", None)),
])
def test_parse_query_gpu(fixture, count, expected):
    gpus = nvidia.parse_query_gpu(smi(fixture))
    assert len(gpus) == count
    first = gpus[0]
    assert first["index"] == 0
    assert (first["name"], first["memory_total_mib"], first["compute_capability"], first["mig_mode"]) == expected
    assert first["uuid"].startswith("GPU-")
    assert [gpu["index"] for gpu in gpus] == list(range(count))


def test_parse_query_gpu_normalizes_bus_ids_to_sysfs_form():
    gpus = nvidia.parse_query_gpu(smi("query_h100_sxm_8.csv"))
    assert gpus[1]["pci_bus_id"] == "0000:2a:00.0"
    assert gpus[0]["driver_version"] == "550.54.15"


def test_parse_query_gpu_mixed_mig_modes():
    modes = [gpu["mig_mode"] for gpu in nvidia.parse_query_gpu(smi("query_a100_sxm4_mig.csv"))]
    assert modes == ["enabled", "enabled", "disabled", "disabled"]


def test_parse_query_gpu_without_compute_cap_field():
    fields = tuple(f for f in nvidia.QUERY_FIELDS if f != "compute_cap")
    (gpu,) = nvidia.parse_query_gpu(smi("query_t4_old_driver.csv"), fields)
    assert gpu["compute_capability"] is None
    assert gpu["driver_version"] == "470.223.02"


def test_parse_query_gpu_rejects_rows_of_another_shape():
    with pytest.raises(nvidia.NvidiaParseError, match="expected 8 fields, got 2"):
        nvidia.parse_query_gpu("0, Tesla T4\n")


def test_split_query_gpu_keeps_rows_around_a_device_handle_error():
    gpus, problems = nvidia.split_query_gpu(smi("query_h100_sxm_8_device_handle_error.csv"))
    assert [g["index"] for g in gpus] == [0, 1, 2, 4, 5, 6, 7]
    assert gpus[3]["pci_bus_id"] == "0000:9a:00.0"
    assert problems == ["Unable to determine the device handle for GPU 0000:5D:00.0: Unknown Error"]


def test_split_query_gpu_reports_inforom_warning_and_keeps_all_rows():
    gpus, problems = nvidia.split_query_gpu(smi("query_l4_2_inforom_warning.csv"))
    assert [g["name"] for g in gpus] == ["NVIDIA L4"] * 2
    assert problems == ["WARNING: infoROM is corrupted at gpu 0000:41:00.0"]


def test_split_query_gpu_row_with_a_non_numeric_index_is_a_problem():
    # Eight cells, but the first is text: a message with seven commas must not become GPU "Unable...".
    line = "Unable, to, determine, the, device, handle, for, GPU"
    assert nvidia.split_query_gpu(line + "\n") == ([], [line])


def test_parse_query_gpu_with_fields_left_out_sets_them_none():
    fields = tuple(f for f in nvidia.QUERY_FIELDS if f not in ("compute_cap", "mig.mode.current"))
    (gpu,) = nvidia.parse_query_gpu(smi("query_t4_418_driver.csv"), fields)
    assert (gpu["compute_capability"], gpu["mig_mode"], gpu["memory_total_mib"]) == (None, None, 15109)


@pytest.mark.parametrize("fixture,expected", [
    ("err_compute_cap_field.txt", ["compute_cap"]),
    ("err_mig_mode_field.txt", ["mig.mode.current"]),
    ("err_no_driver.txt", []),
])
def test_invalid_query_fields(fixture, expected):
    assert nvidia.invalid_query_fields(smi(fixture)) == expected


def test_parse_query_gpu_empty_output_is_no_gpu():
    assert nvidia.parse_query_gpu("\n") == []


def test_parse_nvlink_status_counts_active_links():
    assert nvidia.parse_nvlink_status(smi("nvlink_h100_sxm_8.txt")) == {i: 18 for i in range(8)}
    assert nvidia.parse_nvlink_status(smi("nvlink_a100_partial.txt")) == {0: 12, 1: 11, 2: 12, 3: 0}
    assert nvidia.parse_nvlink_status(smi("nvlink_l4_2.txt")) == {0: 0, 1: 0}


def test_parse_nvlink_status_gpu_without_nvlink_counts_zero():
    assert nvidia.parse_nvlink_status(smi("nvlink_a100_pcie_none.txt")) == {0: 0, 1: 0}


@pytest.mark.parametrize("fixture,expected", [
    ("proc_version_proprietary.txt", {"version": "535.154.05", "flavor": "proprietary"}),
    ("proc_version_open.txt", {"version": "550.54.15", "flavor": "open"}),
])
def test_parse_proc_driver_version(fixture, expected):
    assert nvidia.parse_proc_driver_version(smi(fixture)) == expected


def test_parse_proc_driver_version_without_driver():
    assert nvidia.parse_proc_driver_version(None) is None
    assert nvidia.parse_proc_driver_version("garbage") is None


def test_parse_dkms_status_both_formats():
    new = nvidia.parse_dkms_status(smi("dkms_status_new.txt"))
    old = nvidia.parse_dkms_status(smi("dkms_status_old_kernel_only.txt"))
    assert new[0] == {"module": "nvidia-current", "version": "535.309.01", "kernel": "6.1.0-18-amd64",
                      "arch": "x86_64", "state": "installed"}
    assert old[0]["module"] == "nvidia-current" and old[0]["kernel"] == "6.1.0-18-amd64"


def test_dkms_failure_none_when_built_for_running_kernel():
    entries = nvidia.parse_dkms_status(smi("dkms_status_new.txt"))
    assert nvidia.dkms_failure(entries, "nvidia-current", "535.309.01", "6.1.0-21-amd64") is None


def test_dkms_failure_after_kernel_upgrade_names_kernels():
    entries = nvidia.parse_dkms_status(smi("dkms_status_old_kernel_only.txt"))
    message = nvidia.dkms_failure(entries, "nvidia-current", "535.309.01", "6.1.0-21-amd64")
    assert message == ("DKMS module nvidia-current/535.309.01 is not built for the running kernel 6.1.0-21-amd64 "
                       "(built only for: 6.1.0-18-amd64)")


def test_dkms_failure_built_but_not_installed():
    entries = nvidia.parse_dkms_status(smi("dkms_status_built.txt"))
    message = nvidia.dkms_failure(entries, "nvidia-srv", "535.183.01", "5.15.0-113-generic")
    assert message == "DKMS module nvidia-srv/535.183.01 is 'built' for kernel 5.15.0-113-generic"


def test_detect_hgx_h100_gpus_and_nvswitches(nvidia_roots):
    state = nvidia.read_host_state(str(nvidia_roots / "hgx_h100"))
    assert state["pci_gpu_count"] == 8
    assert state["nvswitch_count"] == 4
    assert (state["driver_loaded"], state["driver_loaded_version"], state["driver_loaded_flavor"]) == (
        True, "550.54.15", "proprietary")
    assert (state["secure_boot"], state["efi"], state["container"], state["nouveau_loaded"]) == (
        False, True, False, False)


def test_detect_gpus_without_driver_from_pci(nvidia_roots):
    state = nvidia.read_host_state(str(nvidia_roots / "hgx_h200_no_driver"))
    gpus = nvidia.gpus_from_pci(state["pci_devices"])
    assert state["driver_loaded"] is False
    assert state["nvswitch_count"] == 4
    assert [gpu["pci_bus_id"] for gpu in gpus][:2] == ["0000:1b:00.0", "0000:43:00.0"]
    assert {gpu["name"] for gpu in gpus} == {"NVIDIA H200"}
    assert {gpu["kernel_driver"] for gpu in gpus} == {None}
    assert gpus[0]["uuid"] is None and gpus[0]["compute_capability"] == "9.0"


def test_detect_secure_boot_and_open_module(nvidia_roots):
    state = nvidia.read_host_state(str(nvidia_roots / "l4_secure_boot"))
    assert state["secure_boot"] is True
    assert state["driver_loaded_flavor"] == "open"
    assert state["pci_gpu_count"] == 2 and state["nvswitch_count"] == 0


def test_detect_wrong_module_loaded(nvidia_roots):
    state = nvidia.read_host_state(str(nvidia_roots / "t4_nouveau"))
    (gpu,) = nvidia.gpus_from_pci(state["pci_devices"])
    assert state["nouveau_loaded"] is True
    assert state["driver_loaded"] is False
    assert gpu["kernel_driver"] == "nouveau" and gpu["name"] == "Tesla T4"
    assert (state["secure_boot"], state["efi"]) == (False, False)


def test_detect_no_gpu(nvidia_roots):
    state = nvidia.read_host_state(str(nvidia_roots / "no_gpu"))
    assert state["pci_gpu_count"] == 0 and state["pci_devices"] == []
    assert state["container"] is False


def test_detect_container_from_marker_and_detect_virt(nvidia_roots, tmp_path):
    assert nvidia.read_host_state(str(nvidia_roots / "podman_container"))["container"] is True
    assert nvidia.in_container(str(tmp_path), "podman\n") is True
    assert nvidia.in_container(str(tmp_path), "none\n") is False
    (tmp_path / ".dockerenv").write_text("")
    assert nvidia.in_container(str(tmp_path), "none\n") is True


def test_detect_container_from_pid1_environment(tmp_path):
    (tmp_path / "proc" / "1").mkdir(parents=True)
    (tmp_path / "proc" / "1" / "environ").write_bytes(b"PATH=/usr/bin\0container=lxc\0")
    assert nvidia.in_container(str(tmp_path)) is True


def one_gpu_root(root, device_id, pci_ids=None):
    """A root with one NVIDIA 3D controller of `device_id`, and optionally a pci.ids at Debian's path."""
    device = root / "sys/bus/pci/devices/0000:01:00.0"
    device.mkdir(parents=True)
    (device / "vendor").write_text("0x10de\n")
    (device / "device").write_text(f"0x{device_id:04x}\n")
    (device / "class").write_text("0x030200\n")
    if pci_ids is not None:
        (root / "usr/share/misc").mkdir(parents=True)
        (root / "usr/share/misc/pci.ids").write_text(pci_ids)
    return str(root)


def test_unknown_nvidia_device_without_pci_ids_is_named_by_id(tmp_path):
    root = one_gpu_root(tmp_path, 0x2B85)
    (gpu,) = nvidia.gpus_from_pci(nvidia.scan_pci(root), nvidia.read_pci_ids(root))
    assert gpu["name"] == "NVIDIA device 0x2b85" and gpu["compute_capability"] is None
    assert gpu["pci_device_name"] is None


def test_device_missing_from_the_table_is_named_from_the_hosts_pci_ids(tmp_path):
    root = one_gpu_root(tmp_path, 0x2B85, (FIXTURES / "pci_ids_excerpt.txt").read_text())
    (gpu,) = nvidia.gpus_from_pci(nvidia.scan_pci(root), nvidia.read_pci_ids(root))
    assert (gpu["name"], gpu["pci_device_name"]) == ("NVIDIA GeForce RTX 5090", "GB202 [GeForce RTX 5090]")


def test_table_name_wins_over_pci_ids_so_both_sources_agree(tmp_path):
    root = one_gpu_root(tmp_path, 0x2335, (FIXTURES / "pci_ids_excerpt.txt").read_text())
    (gpu,) = nvidia.gpus_from_pci(nvidia.scan_pci(root), nvidia.read_pci_ids(root))
    assert (gpu["name"], gpu["compute_capability"]) == ("NVIDIA H200", "9.0")
    assert gpu["pci_device_name"] == "GH100 [H200 SXM 141GB]"


def test_parse_pci_ids_reads_only_nvidia_devices():
    names = nvidia.parse_pci_ids((FIXTURES / "pci_ids_excerpt.txt").read_text())
    # Intel's 2335 and the subsystem line under 0020 are not NVIDIA devices; the class list is not either.
    assert names == {0x0020: "NV4 [Riva TNT]", 0x2335: "GH100 [H200 SXM 141GB]", 0x2B85: "GB202 [GeForce RTX 5090]"}


@pytest.mark.parametrize("device_id,name", [
    (0x2330, "NVIDIA H100 80GB HBM3"), (0x2331, "NVIDIA H100 PCIe"), (0x2335, "NVIDIA H200"),
    (0x20B0, "NVIDIA A100-SXM4-40GB"), (0x20B2, "NVIDIA A100-SXM4-80GB"), (0x20F1, "NVIDIA A100-PCIE-40GB"),
    (0x20B5, "NVIDIA A100 80GB PCIe"), (0x2236, "NVIDIA A10"), (0x2237, "NVIDIA A10G"), (0x27B8, "NVIDIA L4"),
    (0x26B9, "NVIDIA L40S"), (0x1EB8, "Tesla T4"), (0x1DB5, "Tesla V100-SXM2-32GB"),
    (0x26B1, "NVIDIA RTX 6000 Ada Generation"), (0x2901, "NVIDIA B200"),
])
def test_common_gpus_are_named_without_a_driver_or_pci_ids(tmp_path, device_id, name):
    (gpu,) = nvidia.gpus_from_pci(nvidia.scan_pci(one_gpu_root(tmp_path, device_id)))
    assert gpu["name"] == name and gpu["compute_capability"] is not None


def test_gpu_model_is_the_majority_name():
    gpus = [{"name": "NVIDIA L4"}, {"name": "Tesla T4"}, {"name": "Tesla T4"}]
    assert nvidia.gpu_model(gpus) == "Tesla T4"
    assert nvidia.gpu_model(gpus[:2]) == "NVIDIA L4"
    assert nvidia.gpu_model([]) == ""


@pytest.mark.parametrize("wanted,installed,loaded,nouveau,action", [
    ("535.309.01", "535.309.01", "535.309.01", False, "none"),
    ("535.309.01", None, "535.309.01", False, "none"),
    ("535.309.01", "535.309.01", None, False, "load"),
    ("535.309.01", "535.309.01", "535.261.03", False, "reboot"),
    ("535.309.01", "535.309.01", None, True, "reboot"),
])
def test_driver_action(wanted, installed, loaded, nouveau, action):
    assert nvidia.driver_action(wanted, installed, loaded, nouveau) == action
