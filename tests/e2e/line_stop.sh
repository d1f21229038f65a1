# `station run` stops when told (SIGTERM) only after the units in flight have
# finished: both boards in flight pass, the line reports stopping then stopped,
# it exits 0, and a board plugged after the signal is not taken.  Through
# libusb (fx-usbemu), SoftHSM and SQLite.
set -eu
. "$TOP/tests/lib.sh"
LINE_SID=stop-$$   # unique on this machine: see line_station_pids
. "$TOP/tests/line-lib.sh"

# keygen takes 1.5 s: the signal lands while both units are in flight
line_bench stopper LS 3 --knob keygen_ms=1500

# the third board starts unplugged (its first scheduled event is a plug far
# away) and is plugged through the control FIFO right after the signal
mkfifo ctl
exec 3<>ctl
timeout 120 "$BUILD/fx-usbemu" --quiet --control ctl --board "1-1=$PWD/mfg/boards/LS-0001" \
	--board "1-2=$PWD/mfg/boards/LS-0002" --board "1-3=$PWD/mfg/boards/LS-0003" \
	--at 600:plug:1-3 -- \
	"$STATION" --db st.db --station-id "$LINE_SID" --user op run --profile stopper --lot LS \
	--headless --bays 3 > events.jsonl 2> run.err & emu=$!
wait_lines events.jsonl '"kind":"stage-begin".*"stage":"keygen"' 2 $emu || true
[ "$(count_lines events.jsonl '"kind":"stage-begin".*"stage":"keygen"')" = 2 ] ||
	fail "two units should be in keygen: $(tail -3 events.jsonl; tail -3 run.err)"
pid=$(line_station_pids " run ")
[ -n "$pid" ] || fail "no station process"
kill -TERM "$pid"
echo "plug 1-3" >&3
rc=0; wait $emu || rc=$?
exec 3>&-
[ "$rc" = 0 ] || { tail -5 run.err; fail "station run exited $rc after SIGTERM"; }

stopping=$(grep -n '"kind":"line-stopping"' events.jsonl | cut -d: -f1)
stopped=$(grep -n '"kind":"line-stopped"' events.jsonl | cut -d: -f1)
[ -n "$stopping" ] && [ -n "$stopped" ] || fail "no line-stopping / line-stopped"
grep -q '"kind":"line-stopping".*"2 unit(s) in flight"' events.jsonl ||
	fail "stopping should report 2 units in flight: $(grep line-stopping events.jsonl)"
results=$(grep -n '"kind":"unit-result"' events.jsonl | cut -d: -f1)
[ "$(printf '%s\n' $results | grep -c .)" = 2 ] || fail "expected 2 results: $(grep unit-result events.jsonl)"
for r in $results; do
	[ "$r" -gt "$stopping" ] && [ "$r" -lt "$stopped" ] || fail "a unit finished outside stopping..stopped"
done
[ "$(grep -c '"kind":"unit-result".*"outcome":"pass"' events.jsonl)" = 2 ] || fail "the units in flight must pass"
[ "$(q "SELECT count(*) FROM units WHERE status='pass'")" = 2 ] || fail "two passes in the database"
[ "$(q "SELECT count(*) FROM units WHERE status='in-progress'")" = 0 ] || fail "a unit left in progress"
third=$(line_board_uid mfg/boards/LS-0003)
[ "$(q "SELECT count(*) FROM units WHERE unique_id='$third'")" = 0 ] || fail "a board was taken after the signal"
# the run is on the audit record, with who ran it and what came of it
S audit log | grep -q 'line-start	op	.*"lot":"LS","profile":"stopper"' || fail "no line-start audit event"
S audit log | grep -q 'line-stop	op	.*"pass":2' || fail "no line-stop audit event"
expect_exit 0 S audit verify
echo "line_stop: ok"
