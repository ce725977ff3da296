#!/bin/bash
# SPDX-License-Identifier: MIT
# Install, build, and run the whole test suite; ends with "N passed, N failed".
set -uo pipefail
cd "$(dirname "$0")/.."
./scripts/deps.sh || exit 1
./scripts/build.sh >/dev/null || { echo "build failed"; ninja -C build; exit 1; }
meson test -C build --print-errorlogs --num-processes 2 "$@"
rc=$?
python3 - build/meson-logs/testlog.json <<'PY'
import json, sys
counts = {}
for line in open(sys.argv[1]):
    r = json.loads(line)
    counts[r["result"]] = counts.get(r["result"], 0) + 1
ok = counts.get("OK", 0) + counts.get("EXPECTEDFAIL", 0)
bad = sum(v for k, v in counts.items() if k not in ("OK", "EXPECTEDFAIL", "SKIP"))
print(f"{ok} passed, {bad} failed, {counts.get('SKIP', 0)} skipped")
PY
exit $rc
