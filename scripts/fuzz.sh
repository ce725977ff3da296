#!/bin/bash
# SPDX-License-Identifier: MIT
# Build the libFuzzer targets of tests/fuzz with clang + ASan + UBSan into
# ./build-fuzz and run each for MINUTES minutes (one process, one core each,
# one after the other), starting from its seed corpus.
#
#   scripts/fuzz.sh [MINUTES] [TARGET...]      default: 5 minutes, every target
#
# Per target: CPU time used, executions, coverage, and crashes (any crash,
# sanitizer report, leak, timeout or out-of-memory is an artifact).  A
# crashing input is minimized next to it; copy it into
# tests/fuzz/corpus/TARGET/ so `meson test` replays it from then on.
# New inputs found go to build-fuzz/fuzz-out/TARGET/corpus (not the seeds).
# Exit status: 0 when no target crashed, 1 otherwise, 2 for usage/build errors.
set -uo pipefail
cd "$(dirname "$0")/.."

minutes=${1:-5}
shift || true
case $minutes in
'' | *[!0-9.]*) echo "usage: $0 [MINUTES] [TARGET...]" >&2; exit 2 ;;
esac
all_targets=(conn sftp ssh authkeys sshkey mux)
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=("${all_targets[@]}")

# Largest input per target: big enough for several packets, small enough
# to keep executions fast.
declare -A max_len=([conn]=16384 [sftp]=16384 [ssh]=16384 [authkeys]=8192 [sshkey]=8192 [mux]=16384)

if ! command -v clang >/dev/null || ! compgen -G '/usr/lib/llvm-*/lib/clang/*/lib/linux/libclang_rt.fuzzer-x86_64.a' >/dev/null; then
	./scripts/deps.sh || exit 2
fi

B=build-fuzz
if [ ! -f $B/build.ninja ]; then
	# werror off: clang's warnings differ from gcc's, and only the fuzz
	# executables are built here.
	log=$(mktemp)
	CC=clang meson setup $B -Dfuzzing=true -Dwerror=false -Dbuildtype=debugoptimized >"$log" 2>&1 ||
		{ cat "$log"; rm -f "$log"; echo "fuzz.sh: meson setup failed" >&2; exit 2; }
	rm -f "$log"
fi
exes=()
for t in "${targets[@]}"; do
	[ -n "${max_len[$t]:-}" ] || { echo "fuzz.sh: unknown target '$t' (${all_targets[*]})" >&2; exit 2; }
	exes+=("tests/fuzz/fuzz-$t")
done
ninja -C $B "${exes[@]}" >$B/fuzz-build.log 2>&1 ||
	{ tail -40 $B/fuzz-build.log; echo "fuzz.sh: build failed (missing targets need libcrypto)" >&2; exit 2; }

secs=$(awk -v m="$minutes" 'BEGIN { printf "%d", m * 60 }')
export ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=1:detect_leaks=1:symbolize=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1:suppressions=$PWD/tests/fuzz/ubsan.supp}
summary=()
total_crashes=0
for t in "${targets[@]}"; do
	out=$B/fuzz-out/$t
	mkdir -p "$out/corpus" "$out/artifacts"
	rm -f "$out"/artifacts/*
	echo "== fuzz-$t: $minutes min (log: $out/log)"
	# The harnesses use temporary directories and /dev/shm; run from $out
	# so any stray file lands there.
	/usr/bin/time -f '%U %S' -o "$out/cpu" \
		"$B/tests/fuzz/fuzz-$t" -max_total_time="$secs" -max_len="${max_len[$t]}" \
		-timeout=20 -rss_limit_mb=2560 -handle_xfsz=0 -print_final_stats=1 \
		-artifact_prefix="$out/artifacts/" \
		"$out/corpus" "tests/fuzz/corpus/$t" >"$out/log" 2>&1
	rc=$?
	cpu=$(tail -1 "$out/cpu" 2>/dev/null | awk '{ printf "%.1f", ($1 + $2) / 60 }')
	execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$out/log" | tail -1)
	cov=$(grep -o 'cov: [0-9]*' "$out/log" | tail -1 | cut -d' ' -f2)
	ncrash=$(find "$out/artifacts" -type f | wc -l)
	if [ "$rc" != 0 ] && [ "$ncrash" = 0 ]; then
		ncrash=1 # died without an artifact (e.g. killed): count it
	fi
	for a in "$out"/artifacts/*; do
		[ -f "$a" ] || continue
		case $a in *.min) continue ;; esac
		"$B/tests/fuzz/fuzz-$t" -minimize_crash=1 -max_total_time=60 -exact_artifact_path="$a.min" "$a" \
			>"$a.minimize.log" 2>&1 || true
		echo "   crash: $a (minimized: $a.min)"
		grep -m3 -E 'ERROR: |runtime error|SUMMARY' "$out/log" | sed 's/^/   /'
	done
	total_crashes=$((total_crashes + ncrash))
	line=$(printf '%-9s %6s CPU-min  %12s execs  cov %6s  %d crashes' "$t" "$cpu" "${execs:-?}" "${cov:-?}" "$ncrash")
	echo "   $line"
	summary+=("$line")
done
echo
echo "fuzz summary ($minutes min per target, ASan+UBSan):"
printf '  %s\n' "${summary[@]}"
[ "$total_crashes" = 0 ]
