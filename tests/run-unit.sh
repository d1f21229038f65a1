#!/usr/bin/env bash
# Runs each cmocka unit test binary given as an argument, in its own scratch dir.
# Prints each suite's own summary, then one closing line "N passed, N failed".
#
# Suites run UNIT_JOBS at a time (default: the number of CPUs, at most 4): each
# has its own scratch directory (and its own PostgreSQL or SoftHSM token when it
# needs one), so none shares a file with another.  Each suite's output is
# printed in one piece when it ends, in the order they end.
set -u
top=$(cd "$(dirname "$0")/.." && pwd)
export STATION_TOP="$top"
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:verify_asan_link_order=0}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"

jobs=${UNIT_JOBS:-$(nproc 2>/dev/null || echo 1)}
[ "$jobs" -ge 1 ] 2>/dev/null || jobs=1
[ "$jobs" -le 4 ] || jobs=4
results=$(mktemp -d "${TMPDIR:-/tmp}/station-unit-results.XXXXXX")
trap 'rm -rf "$results"' EXIT

# One suite: its verdict in $results/NAME.rc, its output in $results/NAME.out.
run_one() {
	local t=$1 name scratch t0 rc
	name=$(basename "$t")
	scratch=$(mktemp -d "${TMPDIR:-/tmp}/station-$name.XXXXXX")
	t0=$SECONDS
	(cd "$scratch" && STATION_SCRATCH="$scratch" timeout 600 "$top/$t") \
		>"$results/$name.log" 2>&1
	rc=$?
	{
		echo "== $name"
		cat "$results/$name.log"
		if [ "$rc" = 0 ]; then
			echo "-- $name: ok ($((SECONDS - t0)) s)"
			rm -rf "$scratch"
		else
			echo "-- $name: FAILED, exit $rc ($((SECONDS - t0)) s, scratch kept: $scratch)"
		fi
	} >"$results/$name.out"
	echo "$rc $scratch" >"$results/$name.rc"
}

shown=" "
flush() {
	local f name
	for f in "$results"/*.rc; do
		[ -e "$f" ] || continue
		name=$(basename "$f" .rc)
		case "$shown" in *" $name "*) continue ;; esac
		cat "$results/$name.out"
		shown="$shown$name "
	done
}

running=0
for t in "$@"; do
	while [ "$running" -ge "$jobs" ]; do
		wait -n 2>/dev/null || true
		running=$((running - 1))
		flush
	done
	run_one "$t" &
	running=$((running + 1))
done
wait
flush

pass=0; fail=0; failed=()
for f in "$results"/*.rc; do
	[ -e "$f" ] || continue
	read -r rc scratch <"$f"
	if [ "$rc" = 0 ]; then pass=$((pass + 1)); else
		fail=$((fail + 1)); failed+=("$(basename "$f" .rc) (scratch kept: $scratch)")
	fi
done
echo
for f in "${failed[@]+"${failed[@]}"}"; do echo "FAILED: $f"; done
echo "unit: $pass passed, $fail failed"
[ "$fail" = 0 ] && [ $((pass + fail)) = "$#" ]
