"""gpu_facts end to end: captured nvidia-smi outputs through a mocked run_command, fixture sysfs/proc roots."""

import json
from pathlib import Path
from unittest import mock

import pytest
from ansible.module_utils import basic
from ansible.module_utils.testing import patch_module_args
from ansible_collections.gpufleet.llm.plugins.modules import gpu_facts

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "nvidia"
SMI_PATH = "/usr/bin/nvidia-smi"


def smi(name):
    return (FIXTURES / "smi" / name).read_text()


class Commands:
    """A fake run_command answering from (argv prefix -> (rc, out, err)) and recording calls."""

    def __init__(self, answers):
        self.answers = answers
        self.calls = []
        self.warnings = []

    def __call__(self, args, **_kwargs):
        self.calls.append(list(args))
        for prefix, answer in self.answers.items():
            if list(args[:len(prefix)]) == list(prefix):
                return answer
        raise AssertionError(f"unexpected command {args}")


def query(*, compute_cap=True):
    fields = [f for f in gpu_facts.QUERY_FIELDS if compute_cap or f != "compute_cap"]
    return (SMI_PATH, "--query-gpu=" + ",".join(fields))


def run(args, answers, binaries=("nvidia-smi",), kernel="6.1.0-21-amd64", expect_failure=False):
    commands = Commands(answers)

    def get_bin_path(_self, name, *_args, **_kwargs):
        return f"/usr/bin/{name}" if name in binaries else None

    # AnsibleModule.warn is recorded rather than read back from the result: where ansible-core delivers a
    # module's warnings changes once its controller side has been imported by another test in the process.
    with patch_module_args(args), \
            mock.patch.object(basic.AnsibleModule, "warn", lambda _self, msg: commands.warnings.append(msg)), \
            mock.patch.object(basic.AnsibleModule, "run_command", lambda _self, a, **k: commands(a, **k)), \
            mock.patch.object(basic.AnsibleModule, "get_bin_path", get_bin_path), \
            mock.patch.object(gpu_facts.platform, "release", return_value=kernel), \
            mock.patch("sys.stdout.write") as write, pytest.raises(SystemExit) as exit_info:
        gpu_facts.main()
    output = json.loads("".join(call.args[0] for call in write.call_args_list))
    assert exit_info.value.code == (1 if expect_failure else 0), output
    return output, commands


def test_hgx_h100_with_driver(nvidia_roots):
    out, commands = run({"root": str(nvidia_roots / "hgx_h100"), "_ansible_check_mode": True}, {
        query(): (0, smi("query_h100_sxm_8.csv"), ""),
        (SMI_PATH, "nvlink", "-s"): (0, smi("nvlink_h100_sxm_8.txt"), ""),
    })
    facts = out["ansible_facts"]
    assert out["changed"] is False
    assert facts["nvidia_gpu_count"] == 8
    assert facts["nvidia_gpu_model"] == "NVIDIA H100 80GB HBM3"
    gpu = facts["gpus"][0]
    assert gpu == {
        "index": 0, "name": "NVIDIA H100 80GB HBM3", "uuid": gpu["uuid"], "memory_total_mib": 81559,
        "driver_version": "550.54.15", "compute_capability": "9.0", "pci_bus_id": "0000:18:00.0",
        "mig_mode": "disabled", "nvlink": True, "nvlink_links": 18, "nvswitch": True,
    }
    host = facts["gpu_host"]
    assert (host["source"], host["nvidia_smi_error"], host["nvswitch_count"]) == ("nvidia-smi", None, 4)
    assert host["kernel_module"] is None
    assert len(commands.calls) == 2


def test_l4_without_nvlink_and_mig_not_supported(nvidia_roots):
    out, _ = run({"root": str(nvidia_roots / "l4_secure_boot")}, {
        query(): (0, smi("query_l4_2.csv"), ""),
        (SMI_PATH, "nvlink", "-s"): (0, smi("nvlink_l4_2.txt"), ""),
    })
    facts = out["ansible_facts"]
    assert [(g["nvlink"], g["nvlink_links"], g["mig_mode"], g["nvswitch"]) for g in facts["gpus"]] == [
        (False, 0, None, False)] * 2
    assert facts["gpu_host"]["secure_boot"] is True


def test_a100_mig_enabled(nvidia_roots):
    out, _ = run({"root": str(nvidia_roots / "no_gpu")}, {
        query(): (0, smi("query_a100_sxm4_mig.csv"), ""),
        (SMI_PATH, "nvlink", "-s"): (0, smi("nvlink_a100_partial.txt"), ""),
    })
    gpus = out["ansible_facts"]["gpus"]
    assert [g["mig_mode"] for g in gpus] == ["enabled", "enabled", "disabled", "disabled"]
    assert [g["nvlink"] for g in gpus] == [True, True, True, False]


def test_driver_not_loaded_falls_back_to_pci(nvidia_roots):
    out, commands = run({"root": str(nvidia_roots / "hgx_h200_no_driver")}, {
        query(): (9, smi("err_no_driver.txt"), ""),
    })
    facts = out["ansible_facts"]
    assert facts["nvidia_gpu_count"] == 8 and facts["nvidia_gpu_model"] == "NVIDIA H200"
    assert facts["gpus"][0]["driver_version"] is None and facts["gpus"][0]["nvlink_links"] is None
    assert all(g["nvswitch"] for g in facts["gpus"])
    host = facts["gpu_host"]
    assert host["source"] == "pci"
    assert host["nvidia_smi_error"].startswith("NVIDIA-SMI has failed because it couldn't communicate")
    # The failure is the reason, not a problem line to warn about.
    assert out["nvidia_smi_problems"] == [] and commands.warnings == []
    assert [c[1] for c in commands.calls] == [query()[1]]


def test_driver_library_mismatch_falls_back_to_pci(nvidia_roots):
    out, _ = run({"root": str(nvidia_roots / "hgx_h100")}, {query(): (18, smi("err_driver_mismatch.txt"), "")})
    assert out["ansible_facts"]["nvidia_gpu_count"] == 8
    assert out["ansible_facts"]["gpu_host"]["nvidia_smi_error"].startswith("Failed to initialize NVML")


def test_no_nvidia_smi_and_no_gpu(nvidia_roots):
    out, commands = run({"root": str(nvidia_roots / "no_gpu")}, {}, binaries=())
    facts = out["ansible_facts"]
    assert (facts["gpus"], facts["nvidia_gpu_count"], facts["nvidia_gpu_model"]) == ([], 0, "")
    assert facts["gpu_host"]["nvidia_smi_error"] == "nvidia-smi not found"
    assert commands.calls == []


def test_nvidia_smi_finds_no_devices_in_a_container(nvidia_roots):
    out, _ = run({"root": str(nvidia_roots / "podman_container")}, {query(): (6, smi("err_no_devices.txt"), "")})
    facts = out["ansible_facts"]
    assert facts["nvidia_gpu_count"] == 0
    assert facts["gpu_host"]["container"] is True


def test_old_driver_without_compute_cap_field(nvidia_roots):
    out, commands = run({"root": str(nvidia_roots / "t4_nouveau")}, {
        query(): (2, smi("err_compute_cap_field.txt"), ""),
        query(compute_cap=False): (0, smi("query_t4_old_driver.csv"), ""),
        (SMI_PATH, "nvlink", "-s"): (0, "", ""),
    })
    (gpu,) = out["ansible_facts"]["gpus"]
    assert gpu["driver_version"] == "470.223.02" and gpu["compute_capability"] is None
    assert len(commands.calls) == 3


def test_wrong_module_loaded_needs_reboot(nvidia_roots):
    out, _ = run({"root": str(nvidia_roots / "t4_nouveau"), "kernel_module": "nvidia-current",
                  "dkms_module": "nvidia-current", "driver_version": "535.309.01"}, {
        query(): (9, smi("err_no_driver.txt"), ""),
        ("/usr/bin/modinfo",): (0, "535.309.01\n", ""),
        ("/usr/bin/dkms", "status", "-m", "nvidia-current"): (0, smi("dkms_status_new.txt"), ""),
    }, binaries=("nvidia-smi", "modinfo", "dkms"))
    host = out["ansible_facts"]["gpu_host"]
    assert host["nouveau_loaded"] is True
    assert out["ansible_facts"]["gpus"][0]["kernel_driver"] == "nouveau"
    assert host["kernel_module"] == {"installed_version": "535.309.01", "dkms_error": None, "action": "reboot"}


def test_wanted_driver_already_running_is_left_alone(nvidia_roots):
    out, commands = run({"root": str(nvidia_roots / "hgx_h100"), "kernel_module": "nvidia", "dkms_module": "nvidia",
                         "driver_version": "550.54.15"}, {
        query(): (0, smi("query_h100_sxm_8.csv"), ""),
        (SMI_PATH, "nvlink", "-s"): (0, smi("nvlink_h100_sxm_8.txt"), ""),
        ("/usr/bin/modinfo",): (0, "550.54.15\n", ""),
        ("/usr/bin/dkms",): (0, "nvidia/550.54.15, 6.1.0-21-amd64, x86_64: installed\n", ""),
    }, binaries=("nvidia-smi", "modinfo", "dkms"))
    assert out["ansible_facts"]["gpu_host"]["kernel_module"]["action"] == "none"
    assert ["/usr/bin/modinfo", "-k", "6.1.0-21-amd64", "-F", "version", "nvidia"] in commands.calls


def test_module_not_built_for_running_kernel(nvidia_roots):
    out, _ = run({"root": str(nvidia_roots / "hgx_h200_no_driver"), "kernel_module": "nvidia-current",
                  "dkms_module": "nvidia-current", "driver_version": "535.309.01"}, {
        query(): (9, smi("err_no_driver.txt"), ""),
        ("/usr/bin/modinfo",): (1, "", "modinfo: ERROR: Module nvidia-current not found.\n"),
        ("/usr/bin/dkms",): (0, smi("dkms_status_old_kernel_only.txt"), ""),
    }, binaries=("nvidia-smi", "modinfo", "dkms"))
    module = out["ansible_facts"]["gpu_host"]["kernel_module"]
    assert module["installed_version"] is None
    assert module["dkms_error"].endswith("running kernel 6.1.0-21-amd64 (built only for: 6.1.0-18-amd64)")
    assert module["action"] == "load"


def test_container_detected_by_systemd_detect_virt(tmp_path):
    with mock.patch.object(gpu_facts.os.path, "realpath", return_value="/"):
        out, commands = run({"root": str(tmp_path)}, {
            ("/usr/bin/systemd-detect-virt", "--container"): (0, "podman\n", ""),
        }, binaries=("systemd-detect-virt",))
    assert out["ansible_facts"]["gpu_host"]["container"] is True
    assert commands.calls == [["/usr/bin/systemd-detect-virt", "--container"]]


def test_expected_gpu_count_met(nvidia_roots):
    out, _ = run({"root": str(nvidia_roots / "l4_secure_boot"), "expected_gpu_count": 2}, {
        query(): (9, smi("err_no_driver.txt"), ""),
    })
    assert out["ansible_facts"]["nvidia_gpu_count"] == 2 and "failed" not in out


def test_expected_gpu_count_above_found_fails_with_both_numbers(nvidia_roots):
    with mock.patch.object(gpu_facts.platform, "node", return_value="gpu7"):
        out, _ = run({"root": str(nvidia_roots / "l4_secure_boot"), "expected_gpu_count": 4}, {
            query(): (9, smi("err_no_driver.txt"), ""),
        }, expect_failure=True)
    assert out["failed"] is True
    assert out["msg"].startswith("gpu7: the inventory sets gpu_count=4 but only 2 NVIDIA GPU(s) were found")


def test_lost_gpu_line_keeps_the_other_gpus_and_is_warned(nvidia_roots):
    # nvidia-smi prints the error where GPU 3's row would be and exits 255 ("other error").
    out, commands = run({"root": str(nvidia_roots / "hgx_h100")}, {
        query(): (255, smi("query_h100_sxm_8_device_handle_error.csv"), ""),
        (SMI_PATH, "nvlink", "-s"): (0, smi("nvlink_h100_sxm_8.txt"), ""),
    })
    facts = out["ansible_facts"]
    assert facts["gpu_host"]["source"] == "nvidia-smi" and facts["gpu_host"]["nvidia_smi_error"] is None
    assert [g["index"] for g in facts["gpus"]] == [0, 1, 2, 4, 5, 6, 7]
    assert facts["nvidia_gpu_count"] == 7
    problem = "Unable to determine the device handle for GPU 0000:5D:00.0: Unknown Error"
    assert out["nvidia_smi_problems"] == [problem]
    assert commands.warnings == [f"nvidia-smi: {problem}"]


def test_gpu_fallen_off_the_bus_with_mig_rows_around_it(nvidia_roots):
    out, _ = run({"root": str(nvidia_roots / "no_gpu")}, {
        query(): (15, smi("query_a100_gpu_lost.csv"), ""),
        (SMI_PATH, "nvlink", "-s"): (0, smi("nvlink_a100_partial.txt"), ""),
    })
    gpus = out["ansible_facts"]["gpus"]
    assert [(g["index"], g["mig_mode"]) for g in gpus] == [(0, "enabled"), (1, "enabled"), (3, "disabled")]
    assert out["nvidia_smi_problems"][0].endswith("GPU is lost.  Reboot the system to recover this GPU")


def test_inforom_warning_before_the_rows_is_reported(nvidia_roots):
    # nvidia-smi exits 14 for a corrupted infoROM although every row is there.
    out, commands = run({"root": str(nvidia_roots / "l4_secure_boot")}, {
        query(): (14, smi("query_l4_2_inforom_warning.csv"), ""),
        (SMI_PATH, "nvlink", "-s"): (0, smi("nvlink_l4_2.txt"), ""),
    })
    assert out["ansible_facts"]["nvidia_gpu_count"] == 2
    assert out["nvidia_smi_problems"] == ["WARNING: infoROM is corrupted at gpu 0000:41:00.0"]
    assert commands.warnings == ["nvidia-smi: WARNING: infoROM is corrupted at gpu 0000:41:00.0"]


def test_only_unusable_lines_falls_back_to_pci_and_says_why(nvidia_roots):
    out, _ = run({"root": str(nvidia_roots / "hgx_h200_no_driver")}, {
        query(): (0, "Unable to determine the device handle for GPU 0000:18:00.0: Unknown Error\n", ""),
    })
    host = out["ansible_facts"]["gpu_host"]
    assert host["source"] == "pci" and out["ansible_facts"]["nvidia_gpu_count"] == 8
    assert host["nvidia_smi_error"] == (
        "unexpected nvidia-smi output: Unable to determine the device handle for GPU 0000:18:00.0: Unknown Error")


def test_each_field_an_old_driver_rejects_is_dropped_and_left_none(nvidia_roots):
    # A 418 driver knows neither compute_cap (510) nor mig.mode.current, and names one per try.
    without_cap = [f for f in gpu_facts.QUERY_FIELDS if f != "compute_cap"]
    without_both = [f for f in without_cap if f != "mig.mode.current"]
    out, commands = run({"root": str(nvidia_roots / "t4_nouveau")}, {
        (SMI_PATH, "--query-gpu=" + ",".join(without_both)): (0, smi("query_t4_418_driver.csv"), ""),
        (SMI_PATH, "--query-gpu=" + ",".join(without_cap)): (2, smi("err_mig_mode_field.txt"), ""),
        query(): (2, smi("err_compute_cap_field.txt"), ""),
        (SMI_PATH, "nvlink", "-s"): (0, "", ""),
    })
    (gpu,) = out["ansible_facts"]["gpus"]
    assert (gpu["name"], gpu["driver_version"], gpu["compute_capability"], gpu["mig_mode"]) == (
        "Tesla T4", "418.87.01", None, None)
    assert gpu["pci_bus_id"] == "0000:00:1e.0"
    assert out["ansible_facts"]["gpu_host"]["nvidia_smi_missing_fields"] == ["compute_cap", "mig.mode.current"]
    assert out["ansible_facts"]["gpu_host"]["source"] == "nvidia-smi"
    assert out["nvidia_smi_problems"] == []
    assert len(commands.calls) == 4


def test_nvlink_status_failing_for_one_gpu_keeps_the_links_of_the_others(nvidia_roots):
    # When nvidia-smi nvlink -s exits non-zero but prints the blocks it could read, every GPU used to lose
    # its NVLink. That MIG mode is what makes it exit non-zero is an assumption: no MIG capture exists here.
    out, _ = run({"root": str(nvidia_roots / "no_gpu")}, {
        query(): (0, smi("query_a100_sxm4_mig.csv"), ""),
        (SMI_PATH, "nvlink", "-s"): (255, smi("nvlink_a100_partial.txt"), ""),
    })
    gpus = out["ansible_facts"]["gpus"]
    assert [(g["mig_mode"], g["nvlink"], g["nvlink_links"]) for g in gpus] == [
        ("enabled", True, 12), ("enabled", True, 11), ("disabled", True, 12), ("disabled", False, 0)]
