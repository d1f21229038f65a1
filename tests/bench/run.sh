#!/usr/bin/env bash
# Runs every benchmark: each $BUILD/bench/* binary, then each tests/bench/*.sh,
# one at a time (they measure time), each in its own scratch directory under
# $BUILD/bench-run (on disk, not tmpfs: fsync costs are part of the figures).
# Benchmarks print their own figures as ratios against a same-run baseline.
# Closing line: "bench: N ran, N failed".
set -u
top=$(cd "$(dirname "$0")/../.." && pwd)
build=$(cd "$top/${BUILD:-build}" && pwd)
export TOP="$top" BUILD="$build" STATION="$build/station"
ran=0; failed=()
run_one() {
	local name=$1; shift
	local scratch
	scratch=$(mktemp -d "$build/bench-run.$name.XXXXXX")
	echo "== bench $name ($(date -u +%FT%TZ), $(nproc) cpu, load $(cut -d' ' -f1 /proc/loadavg))"
	if (cd "$scratch" && "$@"); then
		ran=$((ran + 1)); rm -rf "$scratch"
	else
		failed+=("$name (scratch kept: $scratch)")
	fi
}
for b in "$build"/bench/*; do
	[ -x "$b" ] || continue
	run_one "$(basename "$b")" "$b"
done
for s in "$top"/tests/bench/*.sh; do
	[ -e "$s" ] || continue
	[ "$(basename "$s")" = run.sh ] && continue
	run_one "$(basename "$s" .sh)" bash "$s"
done
for f in "${failed[@]+"${failed[@]}"}"; do echo "FAILED: $f"; done
echo "bench: $ran ran, ${#failed[@]} failed"
[ "${#failed[@]}" = 0 ]
