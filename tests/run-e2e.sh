#!/usr/bin/env bash
# Runs every tests/e2e/*.sh against the build in $BUILD.  Each script gets a fresh
# scratch directory as its working directory and these variables:
#   STATION   absolute path of the station binary
#   BUILD     absolute path of the build directory (fixture tools are $BUILD/fx-*)
#   TOP       the source tree
#   XDG_STATE_HOME, HOME  inside the scratch directory: what a script leaves in a
#             user's state (the checkpoint log, say) is its own, so scripts that
#             run at the same time never share a file.
# A script passes by exiting 0.  Closing line: "e2e: N passed, N failed".
#
# Scripts run E2E_JOBS at a time (default: the number of CPUs, at most 4): most
# of a script's time is spent waiting on boards, servers and deadlines, not on a
# CPU.  A script whose header has the line "# e2e: alone" (it measures time or
# load) runs after the others, by itself.  `tests/run-e2e.sh NAME...` runs only
# those scripts.  Each script's output is printed in one piece when it ends.
set -u
top=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "$top/${BUILD:-build}" && pwd)
export TOP="$top" BUILD="$build" STATION="$build/station"
. "$top/tests/jobs-lib.sh"
jobs_setup e2e "${E2E_JOBS:-}"
# a known leak inside libusb 1.0.26 only (the file says which and why)
export LSAN_OPTIONS="${LSAN_OPTIONS:-suppressions=$top/tests/e2e/lsan.supp:print_suppressions=0}"

scripts=()
if [ $# -gt 0 ]; then
	for n in "$@"; do scripts+=("$top/tests/e2e/${n%.sh}.sh"); done
else
	for t in "$top"/tests/e2e/*.sh; do [ -e "$t" ] && scripts+=("$t"); done
fi
together=(); alone=()
for t in "${scripts[@]}"; do
	if grep -q '^# e2e: alone' "$t"; then alone+=("$t"); else together+=("$t"); fi
done

# One script: its own scratch directory, HOME and state.
run_one() {
	local name scratch
	name=$(basename "$1" .sh)
	scratch=$(mktemp -d "${TMPDIR:-/tmp}/station-e2e-$name.XXXXXX")
	mkdir -p "$scratch/.home/state"
	jobs_one "$name" "== e2e $name" "$scratch" \
		env HOME="$scratch/.home" XDG_STATE_HOME="$scratch/.home/state" \
		timeout 900 bash "$1"
}

jobs_run "${together[@]+"${together[@]}"}"
for t in "${alone[@]+"${alone[@]}"}"; do
	run_one "$t"
	jobs_flush
done
jobs_summary e2e "${#scripts[@]}"
