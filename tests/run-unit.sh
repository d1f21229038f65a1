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
. "$top/tests/jobs-lib.sh"
jobs_setup unit "${UNIT_JOBS:-}"

# One suite in its own scratch directory.
run_one() {
	local name scratch
	name=$(basename "$1")
	scratch=$(mktemp -d "${TMPDIR:-/tmp}/station-$name.XXXXXX")
	jobs_one "$name" "== $name" "$scratch" \
		env STATION_SCRATCH="$scratch" timeout 600 "$top/$1"
}

jobs_run "$@"
jobs_summary unit "$#"
