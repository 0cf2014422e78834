"""The Debian path of nvidia_driver and cuda_toolkit in a GPU-less container."""

import json

# podman exec instead of one ansible run per command: the same container, a tenth of the time.
testinfra_hosts = ["podman://gpu-stack-debian12"]

DRIVER = "535.309.01"
CUDA = "11.8.89~11.8.0-5~deb12u1"
HELD = {
    "nvidia-smi": DRIVER,
    "libcuda1": DRIVER,
    "libnvidia-ml1": DRIVER,
    "nvidia-cuda-toolkit": CUDA,
}


def test_packages_installed_at_pinned_versions_and_held(host):
    names = sorted(HELD)
    installed = host.check_output("dpkg-query -W -f '${Package} ${Version} ${Status}\\n' " + " ".join(names))
    rows = {line.split()[0]: line.split()[1:] for line in installed.splitlines()}
    for name in names:
        version, want, _error, status = rows[name]
        assert version.startswith(HELD[name]), name
        assert (want, status) == ("hold", "installed"), name


def test_kernel_packages_left_to_the_container_host(host):
    for name in ("nvidia-kernel-dkms", "nvidia-open-kernel-dkms", "nvidia-persistenced"):
        assert not host.package(name).is_installed


def test_nonfree_components_enabled(host):
    sources = host.file("/etc/apt/sources.list.d/gpufleet-debian-nonfree.sources").content_string
    assert "Components: contrib non-free non-free-firmware" in sources


def test_driver_pinned_in_apt_preferences(host):
    preferences = host.file("/etc/apt/preferences.d/gpufleet-nvidia-driver").content_string
    assert f"Pin: version {DRIVER}-*" in preferences
    assert "Pin-Priority: 1001" in preferences


def test_nouveau_blacklisted(host):
    blacklist = host.file("/etc/modprobe.d/gpufleet-blacklist-nouveau.conf")
    assert blacklist.exists
    assert "blacklist nouveau" in blacklist.content_string.splitlines()


def test_kernel_driver_skip_recorded(host):
    facts = json.loads(host.file("/etc/ansible/facts.d/gpufleet_nvidia_driver.fact").content_string)
    assert facts["kernel_module"] is False
    assert facts["skip_reason"].startswith("container: the kernel module belongs to the container host")


def test_no_reboot_happened(host):
    # PID 1 must have started before prepare wrote its marker: a reboot would have restarted it.
    boot_time = int(host.check_output("awk '/^btime/ {print $2}' /proc/stat"))
    ticks_per_second = int(host.check_output("getconf CLK_TCK"))
    start_ticks = int(host.file("/proc/1/stat").content_string.rsplit(")", 1)[1].split()[19])
    pid1_started = boot_time + start_ticks / ticks_per_second
    prepared = int(host.check_output("stat -c %Y /root/.gpu-stack-prepared"))
    assert pid1_started <= prepared + 1


def test_usr_local_cuda_selected_by_alternatives(host):
    assert host.file("/usr/local/cuda").linked_to == "/usr/lib/nvidia-cuda-toolkit"


def test_nvcc_prints_the_pinned_version(host):
    out = host.check_output("/usr/local/cuda/bin/nvcc --version")
    assert "release 11.8, V11.8.89" in out


def test_nvcc_on_login_shell_path(host):
    out = host.check_output("bash -lc 'command -v nvcc && echo $CUDA_HOME'")
    assert out.splitlines() == ["/usr/local/cuda/bin/nvcc", "/usr/local/cuda"]


def test_model_server_units_get_cuda_environment(host):
    dropin = host.file("/etc/systemd/system/model-server@.service.d/gpufleet-cuda.conf").content_string
    assert "Environment=CUDA_HOME=/usr/local/cuda" in dropin
    assert "/usr/local/cuda/bin:" in dropin
