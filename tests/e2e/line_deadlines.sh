# Deadlines and the DFU host's limits (issue 13), three bays at once through
# libusb (fx-usbemu), SoftHSM and SQLite: a board that flashes at 1 byte/s (its
# bwPollTimeout asks for hours) FAILs at flash when the profile's flash deadline
# (2 s) is reached; a board advertising a 1-byte DFU wTransferSize is refused
# before anything is written; the third board passes meanwhile.
set -eu
. "$TOP/tests/lib.sh"
LINE_SID=deadl-$$
. "$TOP/tests/line-lib.sh"

LINE_PROFILE_EXTRA=$(printf '[deadlines]\nflash_s = 2\nunit_s = 30') line_bench dl DL 3
"$BUILD/fx-board" set mfg/boards/DL-0001 flash_bps 1 >/dev/null
"$BUILD/fx-board" set mfg/boards/DL-0003 dfu_transfer_size 1 >/dev/null
start=$EPOCHSECONDS
rc=0
timeout -k 5 60 "$BUILD/fx-usbemu" --quiet --board "1-1=$PWD/mfg/boards/DL-0001" \
	--board "1-2=$PWD/mfg/boards/DL-0002" --board "1-3=$PWD/mfg/boards/DL-0003" -- \
	"$STATION" --db st.db --station-id "$LINE_SID" --user op run --profile dl --lot DL \
	--headless --bays 3 --max-units 3 > events.jsonl 2> run.err || rc=$?
took=$((EPOCHSECONDS - start))
[ "$rc" = 0 ] || fail "station run exited $rc after ${took}s: $(tail -3 run.err; tail -3 events.jsonl)"
[ "$took" -le 20 ] || fail "the run took ${took}s: the flash deadline (2 s) did not hold"

slow=$(line_board_uid mfg/boards/DL-0001)
tiny=$(line_board_uid mfg/boards/DL-0003)
good=$(line_board_uid mfg/boards/DL-0002)
grep -q "\"unit-result\".*\"unique_id\":\"$slow\".*\"stage\":\"flash\",\"outcome\":\"fail\".*\"reason_code\":\"stage_deadline\"" events.jsonl ||
	fail "the 1 byte/s board should fail at flash on its deadline: $(grep unit-result events.jsonl)"
grep -q "\"unit-result\".*\"unique_id\":\"$tiny\".*\"stage\":\"flash\",\"outcome\":\"fail\".*\"reason_code\":\"flash_transfer_size\"" events.jsonl ||
	fail "the 1-byte transfer size should be refused: $(grep unit-result events.jsonl)"
grep -q "\"unit-result\".*\"unique_id\":\"$good\".*\"outcome\":\"pass\"" events.jsonl ||
	fail "the other bay should pass: $(grep unit-result events.jsonl)"
# refused before flashing: the board never got a DNLOAD (no image staged)
[ "$(q "SELECT reason_code FROM units WHERE unique_id='$tiny'")" = flash_transfer_size ] ||
	fail "unit row: $(q "SELECT * FROM units WHERE unique_id='$tiny'")"
q "SELECT reason FROM units WHERE unique_id='$tiny'" | grep -q "wTransferSize 1 is below 64" ||
	fail "reason: $(q "SELECT reason FROM units WHERE unique_id='$tiny'")"
[ "$(q "SELECT reason_code FROM units WHERE unique_id='$slow'")" = stage_deadline ] ||
	fail "unit row: $(q "SELECT * FROM units WHERE unique_id='$slow'")"
echo "line_deadlines: ok (${took}s)"
