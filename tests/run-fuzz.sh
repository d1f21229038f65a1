#!/usr/bin/env bash
# Runs each libFuzzer target for a bounded time from its seed corpus in
# tests/fuzz/corpus/<target>/ (if any).  Fails on any crash.
# Arguments: TARGET or TARGET:SECONDS (the Makefile passes FUZZ_SECONDS_<target>);
# FUZZ_SECONDS in the environment overrides every target's time (default 25).
# A target is one process on one CPU: FUZZ_JOBS of them (default: the number of
# CPUs) run at once, each for its own time, so the fuzzing each gets is the same.
set -u -o pipefail   # a crash must fail the run, not the `tail`
top=$(cd "$(dirname "$0")/.." && pwd)
jobs=${FUZZ_JOBS:-$(nproc 2>/dev/null || echo 1)}
[ "$jobs" -ge 1 ] 2>/dev/null || jobs=1
results=$(mktemp -d "${TMPDIR:-/tmp}/station-fuzz-results.XXXXXX")
trap 'rm -rf "$results"' EXIT

fuzz_one() {
	local f=$1 secs=$2 name work seeds dirs
	name=$(basename "$f")
	work=$(mktemp -d "${TMPDIR:-/tmp}/station-fuzz-$name.XXXXXX")
	seeds="$top/tests/fuzz/corpus/$name"
	dirs=("$work")
	[ -d "$seeds" ] && dirs+=("$seeds")
	{
		echo "== fuzz $name for ${secs}s"
		if (cd "$work" && "$top/$f" -max_total_time="$secs" -max_len=4096 \
			-print_final_stats=1 "${dirs[@]}" 2>&1 | tail -n 6); then
			echo ok >"$results/$name.rc"; rm -rf "$work"
		else
			echo "FAILED: fuzz $name (artifacts in $work)"
		fi
	} >"$results/$name.out" 2>&1
}

running=0; n=0
for arg in "$@"; do
	f=${arg%%:*}
	secs=25
	[ "$f" != "$arg" ] && secs=${arg##*:}
	secs=${FUZZ_SECONDS:-$secs}
	while [ "$running" -ge "$jobs" ]; do
		wait -n 2>/dev/null || true
		running=$((running - 1))
	done
	fuzz_one "$f" "$secs" &
	running=$((running + 1)); n=$((n + 1))
done
wait
pass=0
for o in "$results"/*.out; do
	[ -e "$o" ] || continue
	cat "$o"
	[ -e "${o%.out}.rc" ] && pass=$((pass + 1))
done
echo "fuzz: $pass passed, $((n - pass)) failed"
[ "$pass" = "$n" ]
