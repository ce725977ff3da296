#!/bin/bash
# SPDX-License-Identifier: MIT
# Install, build, and open a shell in the built-in throwaway demo guest.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/deps.sh
./scripts/build.sh >/dev/null
if [ -t 0 ] && [ -t 1 ]; then
	echo "wicket: opening a shell in the demo guest (no network, read-only root); '~.' leaves"
	exec ./build/host-tool/wicket shell demo
fi
# No terminal (a script or CI): show the same guest through exec instead.
./build/host-tool/wicket exec demo -- uname -a
./build/host-tool/wicket exec demo -- sh -c 'echo "hostname: $(hostname)"; echo network interfaces:; tail -n +3 /proc/net/dev | cut -d: -f1; touch /probe 2>&1 || true'
