#!/usr/bin/env bash
# Runs each libFuzzer target for a bounded time from its seed corpus in
# tests/fuzz/corpus/<target>/ (if any).  Fails on any crash.
# Arguments: TARGET or TARGET:SECONDS (the Makefile passes FUZZ_SECONDS_<target>);
# FUZZ_SECONDS in the environment overrides every target's time (default 25).
set -u -o pipefail   # a crash must fail the run, not the `tail`
top=$(cd "$(dirname "$0")/.." && pwd)
pass=0; fail=0
for arg in "$@"; do
	f=${arg%%:*}
	secs=25
	[ "$f" != "$arg" ] && secs=${arg##*:}
	secs=${FUZZ_SECONDS:-$secs}
	name=$(basename "$f")
	work=$(mktemp -d "${TMPDIR:-/tmp}/station-fuzz-$name.XXXXXX")
	seeds="$top/tests/fuzz/corpus/$name"
	dirs=("$work")
	[ -d "$seeds" ] && dirs+=("$seeds")
	echo "== fuzz $name for ${secs}s"
	if (cd "$work" && "$top/$f" -max_total_time="$secs" -max_len=4096 -print_final_stats=1 "${dirs[@]}" 2>&1 | tail -n 6); then
		pass=$((pass + 1)); rm -rf "$work"
	else
		fail=$((fail + 1)); echo "FAILED: fuzz $name (artifacts in $work)"
	fi
done
echo "fuzz: $pass passed, $fail failed"
[ "$fail" = 0 ]
