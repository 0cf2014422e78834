#!/usr/bin/env bash
# Builds the lab image: a Debian 12 root file system with systemd as PID 1,
# made by debootstrap from Debian's packages because no registry can be pulled from.
# Usage: build-image.sh IMAGE_TAG MIRROR CA_BUNDLE
set -euo pipefail

tag=$1
mirror=$2
ca_bundle=$3

rootfs=$(mktemp -d /var/tmp/gpufleet-lab-rootfs.XXXXXX)
trap 'rm -rf "$rootfs"' EXIT

# openssh-server: Ansible reaches lab hosts as it reaches real ones, over SSH with pipelining.
# python3-apt: Ansible's apt module needs it, and every real Debian host has it.
debootstrap --variant=minbase \
  --include=systemd,systemd-sysv,dbus,openssh-server,sudo,python3,python3-apt,ca-certificates,iproute2,procps \
  bookworm "$rootfs" "$mirror"

cat >"$rootfs/etc/apt/sources.list" <<SOURCES
deb $mirror bookworm main
deb $mirror bookworm-updates main
SOURCES

# The fleet's containers reach package indexes through this machine's TLS path,
# so they must trust what this machine trusts.
install -m 0644 "$ca_bundle" "$rootfs/usr/local/share/ca-certificates/gpufleet-lab-host.crt"
cp "$ca_bundle" "$rootfs/etc/ssl/certs/ca-certificates.crt"

# Units that make no sense in a container and slow down its boot.
for unit in getty.target systemd-logind.service apt-daily.timer apt-daily-upgrade.timer \
            systemd-timesyncd.service; do
  ln -sf /dev/null "$rootfs/etc/systemd/system/$unit"
done
echo 'APT::Install-Recommends "false";' >"$rootfs/etc/apt/apt.conf.d/90gpufleet-lab"

chroot "$rootfs" apt-get clean
rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin
# An empty, old package index: the roles' cache_valid_time must see it as stale.
touch -d @0 "$rootfs/var/lib/apt/lists"

tar -C "$rootfs" --numeric-owner -c . |
  podman import --change 'CMD ["/lib/systemd/systemd"]' --change 'STOPSIGNAL SIGRTMIN+3' - "$tag"
