#!/usr/bin/env bash
# Runs every tests/e2e/*.sh against the build in $BUILD.  Each script gets a fresh
# scratch directory as its working directory and these variables:
#   STATION   absolute path of the station binary
#   BUILD     absolute path of the build directory (fixture tools are $BUILD/fx-*)
#   TOP       the source tree
# A script passes by exiting 0.  Closing line: "e2e: N passed, N failed".
set -u
top=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "$top/${BUILD:-build}" && pwd)
export TOP="$top" BUILD="$build" STATION="$build/station"
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:verify_asan_link_order=0}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
pass=0; fail=0; failed=()
for t in "$top"/tests/e2e/*.sh; do
	[ -e "$t" ] || continue
	name=$(basename "$t" .sh)
	scratch=$(mktemp -d "${TMPDIR:-/tmp}/station-e2e-$name.XXXXXX")
	echo "== e2e $name"
	t0=$SECONDS
	if (cd "$scratch" && timeout 900 bash "$t"); then
		pass=$((pass + 1)); rm -rf "$scratch"
		echo "-- $name: ok ($((SECONDS - t0)) s)"
	else
		fail=$((fail + 1)); failed+=("$name (scratch kept: $scratch)")
	fi
done
echo
for f in "${failed[@]+"${failed[@]}"}"; do echo "FAILED: $f"; done
echo "e2e: $pass passed, $fail failed"
[ "$fail" = 0 ]
