#!/usr/bin/env bash
# Runs each cmocka unit test binary given as an argument, in its own scratch dir.
# Prints each suite's own summary, then one closing line "N passed, N failed".
set -u
pass=0; fail=0; failed=()
top=$(cd "$(dirname "$0")/.." && pwd)
export STATION_TOP="$top"
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:verify_asan_link_order=0}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
for t in "$@"; do
	name=$(basename "$t")
	scratch=$(mktemp -d "${TMPDIR:-/tmp}/station-$name.XXXXXX")
	echo "== $name"
	t0=$SECONDS
	if (cd "$scratch" && STATION_SCRATCH="$scratch" timeout 600 "$top/$t"); then
		pass=$((pass + 1)); rm -rf "$scratch"
		echo "-- $name: ok ($((SECONDS - t0)) s)"
	else
		fail=$((fail + 1)); failed+=("$name (scratch kept: $scratch)")
	fi
done
echo
for f in "${failed[@]+"${failed[@]}"}"; do echo "FAILED: $f"; done
echo "unit: $pass passed, $fail failed"
[ "$fail" = 0 ]
