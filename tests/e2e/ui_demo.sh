# The operator's screen against a real run: fixtures/demo.sh (what `make run`
# opens) in tmux -- SoftHSM token, a simulated lot with faults, emulated boards
# through libusb, `station run` with the screen.  Tiles show PASS, FAIL and
# REJECT with reasons, counters move, and q waits for the units in flight.
set -eu
. "$TOP/tests/lib.sh"
command -v tmux >/dev/null || fail "tmux is not installed (make deps)"

sock="ui-demo-$$"
tm() { tmux -L "$sock" -f /dev/null "$@"; }
trap 'tm kill-server 2>/dev/null || true' EXIT
pane() { tm capture-pane -p -t demo; }
# wait_for PATTERN [SECONDS]: until the screen shows PATTERN now (seen=) or has
# shown it at any capture so far (seen=ever: tiles change as boards move on).
: > seen.txt
wait_for() {
	local pat=$1 n=$(( ${2:-30} * 10 )) where=${seen:-now}
	while [ $n -gt 0 ]; do
		pane > now.txt 2>/dev/null || true
		cat now.txt >> seen.txt
		if [ "$where" = ever ]; then
			grep -qE -- "$pat" seen.txt && return 0
		else
			grep -qE -- "$pat" now.txt && return 0
		fi
		sleep 0.1; n=$((n - 1))
	done
	echo "--- pane:"; pane; echo "--- log:"; tail -5 var/demo/station.log 2>/dev/null
	fail "screen never showed /$pat/"
}

rm -f rc
tm new-session -d -s demo -x 100 -y 30 \
	"env BUILD='$BUILD' DEMO_VAR='$PWD/var' DEMO_BOARDS=4 DEMO_HOLD=1 '$TOP/fixtures/demo.sh'; echo \$? > '$PWD/rc'; sleep 60"

wait_for '^ STATION demo-01 \| operator newcomer \| profile widget \| lot DEMO-' 60
wait_for 'HSM ready'
# every verdict, each with its reason on the tile (the first wave of boards
# brings a clean one, one refusing LOCK and one not on the allowlist)
seen=ever wait_for '( +PASS +|PPPP)'
seen=ever wait_for ' FAIL( |$)|FFFF  AAA'
seen=ever wait_for 'why: board refused to lock'
seen=ever wait_for 'put it in the rework tray'
seen=ever wait_for ' REJECT( |$)|RRRR  EEEEE'
seen=ever wait_for "why: not on this lot's list"
seen=ever wait_for 'do not retry: put it in the QA tray'
seen=ever wait_for 'PASS [1-9][0-9]* +FAIL [1-9][0-9]* +REJECT [1-9][0-9]* +ALERTS [1-9]'
# the log names the verdicts too
seen=ever wait_for 'bay [1-4] \(1-[1-4]\): PASS [0-9A-F]{24}'
seen=ever wait_for 'bay [1-4] \(1-[1-4]\): REJECT [0-9A-F]{24} at allowlist'

# q while a board is being flashed (2 s at the demo's speed, then the rest of
# its stages: the unit is surely still in flight when q lands, even on a slow
# machine): the screen waits for it, then the run ends
wait_for 'working: flash' 60
tm send-keys -t demo q
seen=ever wait_for 'STOPPING: waiting for [1-9][0-9]* units? in flight' 60
# results shown when q was pressed: the unit(s) in flight must add to them
at_q=$(grep -oE 'PASS [0-9]+ +FAIL [0-9]+ +REJECT [0-9]+' now.txt | tail -1 |
	awk '{ print $2 + $4 + $6 }')
n=0; until [ -e rc ] || [ $n -ge 300 ]; do sleep 0.1; n=$((n + 1)); done
[ -e rc ] || { pane; fail "the demo did not end after q"; }
[ "$(cat rc)" = 0 ] || { cat var/demo/station.log; fail "the demo exited $(cat rc)"; }

# nothing left in flight, and the records agree with what the screen showed
db=var/demo/station.db
[ "$(sqlite3 "$db" "SELECT count(*) FROM units WHERE status = 'in-progress'")" = 0 ] ||
	fail "units left in progress after q"
done_units=$(sqlite3 "$db" "SELECT count(*) FROM units WHERE status IN ('pass', 'fail', 'reject')")
[ "$done_units" -gt "$at_q" ] || fail "the unit in flight at q was not finished ($done_units vs $at_q)"
for v in pass fail reject; do
	[ "$(sqlite3 "$db" "SELECT count(*) FROM units WHERE status = '$v'")" -ge 1 ] ||
		fail "no $v unit recorded"
done
"$STATION" --db "$db" audit verify >/dev/null || fail "audit chain of the demo run does not verify"
echo "ui_demo: ok"
