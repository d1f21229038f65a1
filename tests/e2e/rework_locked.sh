# Issue 13, end to end through emulated USB (fx-usbemu), SoftHSM and SQLite:
# 1. Recovery is never blocked by a value the audit log refuses: the station is
#    killed while a board is locking, and the unit left in progress is given an
#    operator name with a tab (as a database written before names were checked
#    at the command line could hold); the next run recovers it (interrupted) and
#    starts.
# 2. Rework reaches a board that such a unit left locked: plugged, it is refused
#    "needs rework"; `station rework` authorises it (audited); not reset it is
#    refused "still locked"; after the board's documented reset (fx-board wipe)
#    it passes, using the authorisation up.  `audit verify` is OK.
set -eu
. "$TOP/tests/lib.sh"
LINE_SID=rwl-$$
. "$TOP/tests/line-lib.sh"

line_bench widget LL 1
A=mfg/boards/LL-0001
UA=$(line_board_uid "$A")

run_bg() {   # one run of the line with board A in bay 1-1, in the background
	timeout 60 "$BUILD/fx-usbemu" --quiet --board "1-1=$PWD/$A" -- \
		"$STATION" --db st.db --station-id "$LINE_SID" --user op-olga run --profile widget \
		--lot LL --headless --bays 1 --max-units 1 > events.jsonl 2> run.err &
	emu=$!
}
plug() {
	local rc=0
	run_bg
	wait $emu || rc=$?
	[ "$rc" = 0 ] || { cat run.err; fail "station run exited $rc"; }
	grep -q '"kind":"unit-result"' events.jsonl || fail "no result: $(cat events.jsonl)"
}
result() { grep '"kind":"unit-result"' events.jsonl | tail -1; }

# --- killed while the board locks: LOCK is carried out, its reply never comes --------
"$BUILD/fx-board" set "$A" drop_reply lock >/dev/null
run_bg
# the knob is cleared once the board has taken the LOCK command
for _ in $(seq 1 3000); do
	grep -q '^drop_reply' "$A/knobs" 2>/dev/null || break
	kill -0 $emu 2>/dev/null || break
	sleep 0.01
done
! grep -q '^drop_reply' "$A/knobs" || fail "the board never took LOCK: $(tail -3 run.err)"
for p in $(line_station_pids " run "); do kill -KILL "$p" 2>/dev/null || true; done
wait $emu 2>/dev/null || true
[ "$(q "SELECT stage FROM units WHERE unique_id = '$UA' AND status = 'in-progress'")" = lock ] ||
	fail "no unit left in progress at lock: $(q "SELECT status, stage FROM units")"
"$BUILD/fx-board" show "$A" | grep -qi "lock.*yes\|locked" || fail "board not locked: $("$BUILD/fx-board" show "$A")"

# (A value the audit log refuses can no longer be crafted here with sqlite3: every row is
# under the chain and `run` refuses the edit.  Recovery of such a value, as a database
# written by an older version holds it, is tests/unit/line/test_recover_old.c.)

# --- recovery completes and the line starts; the locked board needs rework -----------
plug
grep -q '"outcome":"interrupted"' events.jsonl || fail "recovery: $(grep -i recover events.jsonl)"
[ "$(q "SELECT status FROM units WHERE unique_id = '$UA' ORDER BY id LIMIT 1")" = interrupted ] ||
	fail "the unit is not interrupted"
result | grep -q '"outcome":"reject"' || fail "locked board: $(result)"
result | grep -q "needs rework" || fail "locked board reason: $(result)"

# --- the engineer authorises; the board must be reset first ---------------------------
expect_exit 0 line_as eng-erik rework "$UA" --reason "locked by an interrupted unit"
grep -q "rework [0-9]* authorised for $UA (lot LL) by eng-erik" "$OUT" || fail "rework: $(cat "$OUT")"
grep -q "(interrupted at or after LOCK) left the board locked" "$OUT" || fail "rework: $(cat "$OUT")"
[ "$(q "SELECT count(*) FROM events WHERE kind = 'rework-authorised' AND actor = 'eng-erik'
	AND json_extract(detail, '$.old_status') = 'interrupted'")" = 1 ] || fail "rework event"
plug
result | grep -q "board is still locked: reset it on the rework bench" || fail "not reset: $(result)"
"$BUILD/fx-board" wipe "$A" >/dev/null
plug
result | grep -q '"outcome":"pass"' || fail "after the reset: $(result)"
[ "$(q "SELECT count(*) FROM reworks WHERE unique_id = '$UA' AND new_unit_id IS NOT NULL")" = 1 ] ||
	fail "the authorisation was not used"
expect_exit 0 S audit verify
echo "rework_locked: ok"
