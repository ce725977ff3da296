#!/bin/bash
# SPDX-License-Identifier: MIT
# Install what wicket needs to build and test on Debian 12 (run as root or with sudo).
set -euo pipefail

PACKAGES=(
	# build
	gcc meson ninja-build pkg-config
	libseccomp-dev zlib1g-dev libssl-dev libvirt-dev libselinux1-dev
	# run the demo guests: bubblewrap sandbox, and a throwaway QEMU VM (TCG or KVM)
	bubblewrap
	# docker/NAME tests: a dockerd of their own (containerd, runc come along)
	docker.io
	qemu-system-x86 linux-image-amd64 busybox-static
	# bench/bench_vm.py: qemu-ga in the guest as the peer
	qemu-guest-agent
	# vm/NAME tests: a libvirtd of their own (QEMU driver) and virsh
	libvirt-daemon libvirt-daemon-driver-qemu libvirt-clients
	# podman/NAME tests and bench: podman with runc (crun refuses this kernel's
	# hybrid cgroups), newuidmap/newgidmap for rootless podman
	podman runc uidmap
	# tests and benchmarks: real peers and a real terminal
	putty-tools tmux python3 openssh-client openssh-sftp-server
	# the SSH wrapper: sshd -i in bench_ssh.py, a third client, rsync -e ssh;
	# paramiko (no AEAD ciphers: aes*-ctr + hmac) and curl sftp:// (libssh2)
	python3-paramiko curl
	openssh-server python3-asyncssh rsync
	# bench/report.py: plots of every benchmark
	python3-matplotlib
	# fuzzing (scripts/fuzz.sh: clang + libFuzzer) and the SELinux module build
	clang libclang-rt-14-dev selinux-policy-dev
	# man pages: tests/integration/test_docs.py lints them (mandoc -T lint);
	# and drives the fish and zsh completions
	mandoc fish zsh
	# packaging (scripts/build-deb.sh, build-rpm.sh, the packaging test):
	# debhelper for dpkg-buildpackage, lintian, rpmbuild from Debian's rpm
	debhelper lintian rpm
	# the pkg-guest test: a systemd Debian guest root from Debian's archive
	mmdebstrap
)

SUDO=
if [ "$(id -u)" != 0 ]; then
	if command -v sudo >/dev/null; then
		SUDO=sudo
	else
		echo "deps.sh: run as root (apt-get needs it) or install sudo" >&2
		exit 1
	fi
fi

missing=()
for p in "${PACKAGES[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ] || [ "${WICKET_FORCE_APT:-}" = 1 ]; then
	export DEBIAN_FRONTEND=noninteractive
	$SUDO apt-get update -q
	$SUDO apt-get install -y -q --no-install-recommends "${PACKAGES[@]}"
fi
