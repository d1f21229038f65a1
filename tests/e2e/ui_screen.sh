# The operator's screen driven in tmux with fx-events standing in for the line:
# verdicts with reasons, counters, help, pause, clearing a held bay, resizing to
# 80x24 and back, and q waiting for the unit in flight.  tmux provides the pty,
# so this runs without a terminal.  Polls the pane instead of sleeping.
set -eu
. "$TOP/tests/lib.sh"
command -v tmux >/dev/null || fail "tmux is not installed (make deps)"

sock="ui-e2e-$$"
tm() { tmux -L "$sock" -f /dev/null "$@"; }
trap 'tm kill-server 2>/dev/null || true' EXIT
pane() { tm capture-pane -p -t ui; }

# wait_for PATTERN [SECONDS]: until the pane matches (grep -E), else fail with
# the pane.  The default deadline is for a loaded machine (ASan, 2 cores shared),
# not a pace: a screen that works matches at once.
wait_for() {
	local pat=$1 n=$(( ${2:-60} * 20 ))
	while [ $n -gt 0 ]; do
		pane | grep -qE -- "$pat" && return 0
		sleep 0.05; n=$((n - 1))
	done
	echo "--- pane:"; pane; fail "screen never showed /$pat/"
}
wait_gone() {
	local pat=$1 n=$(( ${2:-60} * 20 ))
	while [ $n -gt 0 ]; do
		pane | grep -qE -- "$pat" || return 0
		sleep 0.05; n=$((n - 1))
	done
	echo "--- pane:"; pane; fail "screen still shows /$pat/"
}
# readable W H: the pane is W x H, nothing wider, and the essentials are on it.
readable() {
	local w=$1 h=$2 p
	wait_for 'q quit'       # past the flash of the REJECT / held bay
	p=$(pane)
	[ "$(printf '%s\n' "$p" | wc -l)" -le "$h" ] || fail "pane taller than $h"
	printf '%s\n' "$p" | awk -v w="$w" 'length($0) > w { exit 1 }' || fail "line wider than $w"
	for want in 'STATION st-07' 'BAY 1' 'BAY 4' ' PASS ' ' FAIL ' ' REJECT ' \
		    'board stopped answering' "not on this lot's list" 'PASS 1 +FAIL 1 +REJECT 1' \
		    'working: flash' 'q quit' 'put it in the rework tray' 'put it in the QA tray'; do
		printf '%s\n' "$p" | grep -qE -- "$want" || { echo "$p"; fail "${w}x$h: '$want' missing"; }
	done
}

rm -f rc
# Plain C locale: the screen must not depend on UTF-8.
tm new-session -d -s ui -x 100 -y 30 \
	"env LC_ALL=C LANG=C '$BUILD/fx-events' '$TOP/tests/e2e/ui_four_bays.events'; echo \$? > '$PWD/rc'; sleep 30"

# Verdicts with reasons, counters, header, progress of the unit in flight.
wait_for 'PASS 1 +FAIL 1 +REJECT 1 +ALERTS 1 +first-pass yield 33\.3%'
wait_for 'in flight 1'
wait_for 'HSM ready \| db var/station.db'
wait_for '\[#+\.+\] +10%'
wait_for 'ALERTS 1'
readable 100 30

# Help opens and closes.
tm send-keys -t ui '?'
wait_for 'press \? to close'
wait_for 'REJECT +magenta, / fill: do not retry'
tm send-keys -t ui '?'
wait_gone 'press \? to close'

# Pause and resume intake (the replay answers with line-paused / line-resumed).
tm send-keys -t ui p
wait_for 'PAUSED - intake stopped'
wait_for 'intake paused: by the operator'
tm send-keys -t ui p
wait_for 'intake resumed'
wait_for ' RUNNING *$'

# Bay 2 is the only held bay: c clears it without asking.
wait_for 'HELD: call an engineer - c clears'
tm send-keys -t ui c
wait_for 'bay 2 \(1-1\.2\): cleared by the operator'
wait_gone ' {2,}HELD: |HELD *$'

# Resize to 80x24 and back: everything still there and within the width.
tm resize-window -t ui -x 80 -y 24
wait_for '^ STATION' && sleep 0.3
n=0; until [ "$(pane | awk 'length($0) > 80' | wc -l)" = 0 ] || [ $n -ge 1200 ]; do sleep 0.05; n=$((n+1)); done
readable 80 24
tm resize-window -t ui -x 100 -y 30
n=0; until pane | grep -qE '^ BAY 1 .{40,} BAY 2' || [ $n -ge 1200 ]; do sleep 0.05; n=$((n+1)); done
readable 100 30

# q: the line stops intake and the screen waits for the unit flashing in bay 4
# (the replay finishes it 5 s after q: long enough that the checks below see
# the wait even when this machine is slow to capture the pane).
[ ! -e rc ] || fail "fx-events exited early: $(cat rc)"
tm send-keys -t ui q
wait_for 'STOPPING: waiting for 1 unit in flight'
sleep 0.5
[ ! -e rc ] || fail "the screen quit before the unit in flight finished"
pane | grep -q 'STOPPING: waiting for 1 unit in flight' || fail "stopped waiting too early"
n=0; until [ -e rc ] || [ $n -ge 1200 ]; do sleep 0.05; n=$((n+1)); done
[ -e rc ] || { pane; fail "the screen did not exit after the unit finished"; }
[ "$(cat rc)" = 0 ] || fail "fx-events exited $(cat rc)"

# Several held bays: c asks which one; a key that is not a held bay clears nothing.
cat > held.events <<'EOT'
+0 line-started station=st-08 operator=bo profile=p lot=L
+0 bay-held bay_index=1 bay=2-1 reason="3 failures in a row"
+0 bay-held bay_index=2 bay=2-2 reason="3 failures in a row"
+0 log reason="both held"
EOT
rm -f rc
tm new-session -d -s held -x 80 -y 24 "'$BUILD/fx-events' held.events; echo \$? > '$PWD/rc'; sleep 30"
hp() { tm capture-pane -p -t held; }
n=0; until hp | grep -q 'both held' || [ $n -ge 1200 ]; do sleep 0.05; n=$((n+1)); done
[ "$(hp | grep -cE 'HELD *$')" = 2 ] || { hp; fail "two held tiles expected"; }
tm send-keys -t held c
n=0; until hp | grep -q 'Clear which bay' || [ $n -ge 1200 ]; do sleep 0.05; n=$((n+1)); done
tm send-keys -t held 1
n=0; until hp | grep -q 'no held bay has that key' || [ $n -ge 1200 ]; do sleep 0.05; n=$((n+1)); done
hp | grep -q 'no held bay has that key' || { hp; fail "bay 1 is not held: expected a notice"; }
tm send-keys -t held c 3
n=0; until hp | grep -q 'bay 3 (2-2): cleared' || [ $n -ge 1200 ]; do sleep 0.05; n=$((n+1)); done
[ "$(hp | grep -cE 'HELD *$')" = 1 ] || { hp; fail "bay 3 should be cleared, bay 2 still held"; }
tm send-keys -t held c       # one held bay left: cleared without asking
n=0; until hp | grep -q 'bay 2 (2-1): cleared' || [ $n -ge 1200 ]; do sleep 0.05; n=$((n+1)); done
[ "$(hp | grep -cE 'HELD *$')" = 0 ] || { hp; fail "bay 2 should be cleared"; }
tm send-keys -t held q
n=0; until [ -e rc ] || [ $n -ge 1200 ]; do sleep 0.05; n=$((n+1)); done
[ "$(cat rc 2>/dev/null)" = 0 ] || fail "held run did not quit cleanly"

# The line stopping on its own (a signal, a unit limit) closes the screen too;
# the STOPPING line stays up 3 s, so a slow pane capture still sees it.
printf '+0 line-started\n+0 hsm-state outcome=fail reason="token not present"\n+0 log reason="about to stop"\n+300 line-stopping\n+3000 line-stopped\n' > stop.events
rm -f rc
tm new-session -d -s stop -x 80 -y 24 "'$BUILD/fx-events' stop.events; echo \$? > '$PWD/rc'; sleep 30"
n=0; until tm capture-pane -p -t stop | grep -q 'STOPPING: waiting for 0 units in flight' || [ $n -ge 1200 ]; do sleep 0.05; n=$((n+1)); done
tm capture-pane -p -t stop | grep -q 'STOPPING: waiting for 0 units' || fail "no STOPPING line before the stop"
tm capture-pane -p -t stop | grep -q '^ HSM ERROR (token not present) | db' || fail "HSM error not in the header"
n=0; until [ -e rc ] || [ $n -ge 1200 ]; do sleep 0.05; n=$((n+1)); done
[ "$(cat rc 2>/dev/null)" = 0 ] || fail "screen did not close when the line stopped"

# Monochrome terminal: verdicts still shown (bold/reverse), q still works.
rm -f rc
tm new-session -d -s mono -x 80 -y 24 \
	"env TERM=vt100 '$BUILD/fx-events' --speed 4 '$TOP/tests/e2e/ui_four_bays.events'; echo \$? > '$PWD/rc'; sleep 30"
n=0; until tm capture-pane -p -t mono | grep -qE 'PASS 1 +FAIL 1 +REJECT 1' || [ $n -ge 1200 ]; do sleep 0.05; n=$((n+1)); done
tm capture-pane -p -t mono | grep -q ' REJECT ' || fail "monochrome: no REJECT tile"
tm send-keys -t mono q
n=0; until [ -e rc ] || [ $n -ge 1200 ]; do sleep 0.05; n=$((n+1)); done
[ "$(cat rc 2>/dev/null)" = 0 ] || fail "monochrome run did not quit cleanly"
echo "ui_screen: ok"
