# The record of a unit interrupted by a crash names the stage it was in (not
# just the last durable milestone): the station is killed with SIGKILL as the
# flash, keygen and attest stages begin; after the restart each unit is
# `interrupted` with "during stage <that stage>", reason code interrupted, and
# the times of the stages it finished (issue 15).  Through libusb (fx-usbemu),
# SoftHSM and SQLite.
set -eu
. "$TOP/tests/lib.sh"
LINE_SID=cst-$$
. "$TOP/tests/line-lib.sh"
SID=$LINE_SID
# each killed stage lasts long enough for the kill to land inside it
LINE_TOKEN=cst-ca LINE_FW_SIZE=60000 line_bench cst LK 3 --knob flash_bps=40000 \
	--knob keygen_ms=1500 --knob sign_ms=1500

i=0
for s in flash keygen attest; do
	i=$((i + 1))
	board=mfg/boards/$(printf 'LK-%04d' $i)
	uid=$(line_board_uid "$board")
	rm -f ev
	timeout 60 "$BUILD/fx-usbemu" --quiet --board "1-1=$PWD/$board" -- \
		"$STATION" --db st.db --station-id $SID --user op run --profile cst --lot LK \
		--headless --bays 1 --max-units 1 > ev 2> run.err & emu=$!
	for _ in $(seq 1 3000); do
		grep -q "\"kind\":\"stage-begin\".*\"stage\":\"$s\"" ev 2>/dev/null && break
		kill -0 $emu 2>/dev/null || break
		sleep 0.01
	done
	grep -q "\"kind\":\"stage-begin\".*\"stage\":\"$s\"" ev ||
		fail "stage $s never began: $(tail -2 ev; tail -3 run.err)"
	for p in $(line_station_pids " run "); do kill -KILL "$p" 2>/dev/null || true; done
	wait $emu 2>/dev/null || true
	! grep -q '"kind":"unit-result"' ev || fail "$s: the unit finished before the kill"
	got=$(q "SELECT stage FROM units WHERE unique_id='$uid' AND status='in-progress'")
	[ "$got" = "$s" ] || fail "killed in $s, the unit row says '$got'"

	# restart (the board at full speed): recovery marks the unit first
	"$BUILD/fx-board" set "$board" flash_bps 0 keygen_ms 0 sign_ms 0 >/dev/null
	rc=0
	timeout 60 "$BUILD/fx-usbemu" --quiet --board "1-1=$PWD/$board" -- \
		"$STATION" --db st.db --station-id $SID --user op run --profile cst --lot LK \
		--headless --bays 1 --max-units 1 > ev2 2> run.err || rc=$?
	[ "$rc" = 0 ] || fail "$s: the restart exited $rc: $(tail -3 run.err)"
	reason=$(q "SELECT reason FROM units WHERE unique_id='$uid' AND status='interrupted'")
	case $reason in
	*"during stage $s") ;;
	*) fail "$s: interrupted unit's reason is '$reason'" ;;
	esac
	grep -q "\"outcome\":\"interrupted\".*during stage $s" ev2 ||
		fail "$s: no interrupted event naming the stage"
	# its code, its words without ids, and the times of the stages it finished
	[ "$(q "SELECT reason_code || '|' || reason_plain FROM units WHERE unique_id='$uid' AND status='interrupted'")" = \
	  "interrupted|$s: the station stopped with the unit in flight" ] ||
		fail "$s: code and words: $(q "SELECT reason_code, reason_plain FROM units WHERE unique_id='$uid'")"
	[ "$(q "SELECT json_extract(stage_ms, '\$.identify') >= 0 AND json_extract(stage_ms, '\$.$s') IS NULL
		FROM units WHERE unique_id='$uid' AND status='interrupted'")" = 1 ] ||
		fail "$s: stage times of the interrupted unit: $(q "SELECT stage_ms FROM units WHERE unique_id='$uid'")"
done
[ "$(q "SELECT count(*) FROM units WHERE status='in-progress'")" = 0 ] || fail "a unit left in progress"
[ "$(q "SELECT count(*) FROM certificates WHERE status IN ('reserved','issued')")" = 0 ] ||
	fail "an orphan certificate left unrevoked"
expect_exit 0 S audit verify
echo "line2_crash_stage: ok"
