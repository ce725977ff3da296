#!/bin/bash
# SPDX-License-Identifier: MIT
# Install, build, and open a shell in a throwaway demo guest: a QEMU VM
# (KVM when usable, else TCG) booting this machine's Debian kernel with a
# tiny initramfs (busybox + wicketd), reached over virtio-serial.  The VM
# is stopped when the shell exits.  Without a terminal, a few
# `wicket exec` commands run in it instead.
#   ./scripts/demo.sh            the VM (falls back to the sandbox if no VM can boot)
#   ./scripts/demo.sh --sandbox  the bubblewrap sandbox (wicket's built-in `demo` target)
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/deps.sh
./scripts/build.sh >/dev/null

sandbox() {
	if [ -t 0 ] && [ -t 1 ]; then
		echo "wicket: opening a shell in the demo sandbox (no network, read-only root); '~.' leaves"
		exec ./build/host-tool/wicket shell demo
	fi
	# No terminal (a script or CI): show the same guest through exec instead.
	./build/host-tool/wicket exec demo -- uname -a
	./build/host-tool/wicket exec demo -- sh -c 'echo "hostname: $(hostname)"; echo network interfaces:; tail -n +3 /proc/net/dev | cut -d: -f1; touch /probe 2>&1 || true'
}

if [ "${1:-}" = --sandbox ]; then
	sandbox
	exit
fi
rc=0
python3 tests/vm/vmlib.py --demo || rc=$?
if [ "$rc" = 3 ]; then
	echo "wicket: falling back to the bubblewrap sandbox demo" >&2
	sandbox
	exit
fi
exit "$rc"
