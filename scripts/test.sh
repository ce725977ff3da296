#!/bin/bash
# SPDX-License-Identifier: MIT
# Install, build, and run the whole test suite; ends with "N passed, N failed, N skipped".
#
#   scripts/test.sh [--asan] [MESON-TEST-ARGS...]
#
# --asan: build into ./build-asan with AddressSanitizer + UndefinedBehaviorSanitizer
# (-Db_sanitize=address,undefined) and run the same suite there: every
# report (leaks included) aborts the process that made it, so the test
# that ran it fails.  Timeouts are tripled for the slower binaries.
# -Dseccomp=disabled there: the sanitizer runtimes make syscalls (sigaltstack
# at exit; LSan's ptrace/clone) that the agent's seccomp allowlists kill.
set -uo pipefail
cd "$(dirname "$0")/.."
asan=0
if [ "${1:-}" = --asan ]; then
	asan=1
	shift
fi
./scripts/deps.sh || exit 1
extra=()
if [ $asan = 1 ]; then
	B=build-asan
	if [ ! -f $B/build.ninja ]; then
		log=$(mktemp)
		meson setup $B -Db_sanitize=address,undefined -Db_lundef=false -Dseccomp=disabled >"$log" 2>&1 ||
			{ cat "$log"; rm -f "$log"; echo "build failed"; exit 1; }
		rm -f "$log"
	fi
	ninja -C $B >/dev/null || { echo "build failed"; ninja -C $B; exit 1; }
	export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
	# Known, reported findings are listed (and explained) in ubsan.supp.
	export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1:suppressions=$PWD/tests/fuzz/ubsan.supp
	# The packaging suite builds its own packages from the sources: nothing
	# sanitized to test there, so it runs once, in the normal build.
	extra=(--timeout-multiplier 3 --no-suite packaging)
else
	B=build
	./scripts/build.sh >/dev/null || { echo "build failed"; ninja -C build; exit 1; }
fi
meson test -C $B --print-errorlogs --num-processes 2 "${extra[@]}" "$@"
rc=$?
python3 - $B/meson-logs/testlog.json <<'PY'
import json, sys
counts = {}
for line in open(sys.argv[1]):
    r = json.loads(line)
    counts[r["result"]] = counts.get(r["result"], 0) + 1
ok = counts.get("OK", 0) + counts.get("EXPECTEDFAIL", 0)
bad = sum(v for k, v in counts.items() if k not in ("OK", "EXPECTEDFAIL", "SKIP"))
# The failing subtests again, right above the summary, where a CI log
# that keeps only its head and tail still shows them.
for line in open(sys.argv[1]):
    r = json.loads(line)
    if r["result"] in ("OK", "EXPECTEDFAIL", "SKIP"):
        continue
    out = (r.get("stdout") or "").splitlines()
    bad_lines = [i for i, l in enumerate(out) if l.startswith("not ok") or l.startswith("Bail out")]
    print(f"FAILED {r['name']} ({r['result']}):")
    for i in bad_lines[:5]:
        for l in out[i:i + 12]:
            print("    " + l[:300])
    if not bad_lines:
        for l in out[-15:]:
            print("    " + l[:300])
print(f"{ok} passed, {bad} failed, {counts.get('SKIP', 0)} skipped")
PY
exit $rc
