# Helpers for end-to-end scripts (sourced).
# expect_exit CODE CMD...: runs CMD, stdout -> $OUT, stderr -> $ERR, asserts exit CODE.
OUT=$PWD/.out; ERR=$PWD/.err
# The checkpoint logs (docs/security.md "Rollback anchors") of this test's
# stations, in its own directory: tests share station ids, never logs.
export XDG_STATE_HOME=$PWD/.state
expect_exit() {
	local want=$1 got=0; shift
	"$@" >"$OUT" 2>"$ERR" || got=$?
	if [ "$got" != "$want" ]; then
		echo "FAIL: '$*' exited $got, expected $want" >&2
		echo "--- stdout"; cat "$OUT"; echo "--- stderr"; cat "$ERR"
		exit 1
	fi
}
# fail MSG: abort the script with a message.
fail() { echo "FAIL: $*" >&2; exit 1; }
# count_lines FILE REGEX: how many lines of FILE match the extended REGEX (0
# while FILE does not exist yet).
count_lines() { local n; n=$(grep -Ec -- "$2" "$1" 2>/dev/null) || true; echo "${n:-0}"; }
# wait_lines FILE REGEX [COUNT [PID [SECONDS]]]: waits until COUNT (default 1)
# lines of FILE match REGEX; gives up early when process PID is gone, or after
# SECONDS (default 120: a deadline for a loaded machine, not a pace).  Returns
# 0 when they are there; the caller asserts with its own message.
wait_lines() {
	local file=$1 re=$2 want=${3:-1} pid=${4:-} end=$((EPOCHSECONDS + ${5:-120}))
	while [ "$EPOCHSECONDS" -lt "$end" ]; do
		[ "$(count_lines "$file" "$re")" -ge "$want" ] && return 0
		[ -z "$pid" ] || kill -0 "$pid" 2>/dev/null || break
		sleep 0.01
	done
	[ "$(count_lines "$file" "$re")" -ge "$want" ]
}
# new_db DB [STATION_ID]: creates database DB with `station init` (the only
# command that creates one; every other command refuses a missing --db).
new_db() {
	"$STATION" --db "$1" ${2:+--station-id "$2"} init >/dev/null ||
		fail "station init --db $1 failed"
}
