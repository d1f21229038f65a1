# Stop with a stalled board (issue 13): the board answers BUSY for an hour at
# PROVE (after its certificate was signed and written).  SIGTERM with --grace 2:
# the station waits 2 s, abandons the unit, records it interrupted with its
# certificate revoked, tells the tile to unplug the board, and exits within
# grace + 5 s.  Through libusb (fx-usbemu), SoftHSM and SQLite.
set -eu
. "$TOP/tests/lib.sh"
LINE_SID=grace-$$   # unique on this machine: see line_station_pids
. "$TOP/tests/line-lib.sh"

line_bench gr GR 1
"$BUILD/fx-board" set mfg/boards/GR-0001 hang_at prove >/dev/null
timeout -k 5 120 "$BUILD/fx-usbemu" --quiet --board "1-1=$PWD/mfg/boards/GR-0001" -- \
	"$STATION" --db st.db --station-id "$LINE_SID" --user op run --profile gr --lot GR \
	--headless --bays 1 --grace 2 > events.jsonl 2> run.err & emu=$!
wait_lines events.jsonl '"kind":"stage-begin".*"stage":"prove"' 1 $emu ||
	fail "the unit never reached prove: $(tail -3 events.jsonl; tail -3 run.err)"
sleep 0.5   # in the BUSY wait
pid=$(line_station_pids " run ")
[ -n "$pid" ] || fail "no station process"
start=$(date +%s%N)
kill -TERM "$pid"
rc=0; wait $emu || rc=$?
ms=$((($(date +%s%N) - start) / 1000000))
[ "$rc" = 0 ] || fail "station run exited $rc: $(tail -3 run.err)"
[ "$ms" -le 7000 ] || fail "exit took ${ms} ms, more than grace (2 s) + 5 s"
[ "$ms" -ge 1900 ] || fail "exit took ${ms} ms: the grace period was not waited"

uid=$(line_board_uid mfg/boards/GR-0001)
grep -q '"kind":"log".*grace period over: abandoning 1 unit' events.jsonl ||
	fail "no abandon log: $(tail -5 events.jsonl)"
grep -q "\"unit-result\".*\"unique_id\":\"$uid\".*\"outcome\":\"interrupted\".*unplug the board.*\"reason_code\":\"interrupted\"" events.jsonl ||
	fail "the unit should end interrupted: $(grep unit-result events.jsonl)"
grep -q '"kind":"line-stopped"' events.jsonl || fail "no line-stopped"
[ "$(q "SELECT status || ' ' || reason_code FROM units WHERE unique_id='$uid'")" = "interrupted interrupted" ] ||
	fail "unit row: $(q "SELECT * FROM units WHERE unique_id='$uid'")"
[ "$(q "SELECT count(*) FROM certificates WHERE unique_id='$uid' AND status='revoked'")" = 1 ] ||
	fail "its certificate must be revoked: $(q "SELECT serial, status FROM certificates")"
[ "$(q "SELECT count(*) FROM certificates WHERE status IN ('reserved','issued','injected')")" = 0 ] ||
	fail "a certificate left unrevoked: $(q "SELECT serial, status FROM certificates")"
expect_exit 0 S audit verify
echo "line_grace: ok (exit ${ms} ms after SIGTERM)"
