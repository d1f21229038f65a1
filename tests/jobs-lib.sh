# Sourced by tests/run-unit.sh and tests/run-e2e.sh: runs a suite's items a few
# at a time and prints each one's output in one piece when it ends.
#
# The caller calls jobs_setup, then defines run_one ITEM, which calls jobs_one.

# jobs_setup KIND WANTED: $jobs = WANTED (default: the CPUs), 1 to 4; $results
# = a directory for the items' outputs and verdicts (not a stub: each run's
# own, removed on exit).  Also the sanitizers' options, if not set already.
jobs_setup() {
	jobs=${2:-$(nproc 2>/dev/null || echo 1)}
	[ "$jobs" -ge 1 ] 2>/dev/null || jobs=1
	[ "$jobs" -le 4 ] || jobs=4
	results=$(mktemp -d "${TMPDIR:-/tmp}/station-$1-results.XXXXXX")
	trap 'rm -rf "$results"' EXIT
	export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:verify_asan_link_order=0}"
	export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
}

# jobs_one NAME HEADER SCRATCH COMMAND...: runs COMMAND in SCRATCH; leaves
# $results/NAME.out (HEADER, the output, a verdict line) and then
# $results/NAME.rc ("EXIT-STATUS SCRATCH").  SCRATCH is removed on success.
jobs_one() {
	local name=$1 header=$2 scratch=$3 t0=$SECONDS rc
	shift 3
	(cd "$scratch" && "$@") >"$results/$name.log" 2>&1
	rc=$?
	{
		echo "$header"
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

# Prints each finished item's output once, in the order they end.
jobs_shown=" "
jobs_flush() {
	local f name
	for f in "$results"/*.rc; do
		[ -e "$f" ] || continue
		name=$(basename "$f" .rc)
		case "$jobs_shown" in *" $name "*) continue ;; esac
		cat "$results/$name.out"
		jobs_shown="$jobs_shown$name "
	done
}

# jobs_run ITEM...: run_one for each, at most $jobs at a time.
jobs_run() {
	local running=0 t
	for t in "$@"; do
		while [ "$running" -ge "$jobs" ]; do
			wait -n 2>/dev/null || true
			running=$((running - 1))
			jobs_flush
		done
		run_one "$t" &
		running=$((running + 1))
	done
	wait
	jobs_flush
}

# jobs_summary KIND COUNT: the failed items, then "KIND: N passed, N failed";
# true when all COUNT items ran and passed.
jobs_summary() {
	local kind=$1 count=$2 f rc scratch pass=0 fail=0 failed=()
	for f in "$results"/*.rc; do
		[ -e "$f" ] || continue
		read -r rc scratch <"$f"
		if [ "$rc" = 0 ]; then pass=$((pass + 1)); else
			fail=$((fail + 1)); failed+=("$(basename "$f" .rc) (scratch kept: $scratch)")
		fi
	done
	echo
	for f in "${failed[@]+"${failed[@]}"}"; do echo "FAILED: $f"; done
	echo "$kind: $pass passed, $fail failed"
	[ "$fail" = 0 ] && [ $((pass + fail)) = "$count" ]
}
