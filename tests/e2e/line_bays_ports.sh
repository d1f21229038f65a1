# Bays are ports (issue 13), through libusb (fx-usbemu), SoftHSM and SQLite.
# 1. Two bays, two boards behind a hub on 1-2 (1-2.1, 1-2.2) take both; when they
#    leave, their bays are free, and a board plugged straight into 1-1 is taken.
# 2. --bays 1-2: the only bay is port 1-2; a board on 1-1 is ignored with one
#    log line while the board on 1-2 passes.
set -eu
. "$TOP/tests/lib.sh"
LINE_SID=bays-$$
. "$TOP/tests/line-lib.sh"

line_bench bp BP 5
b() { echo "$PWD/mfg/boards/BP-000$1"; }

mkfifo ctl
exec 3<>ctl
timeout -k 5 60 "$BUILD/fx-usbemu" --quiet --control ctl --board "1-2.1=$(b 1)" --board "1-2.2=$(b 2)" \
	--board "1-1=$(b 3)" --at 600:plug:1-1 -- \
	"$STATION" --db st.db --station-id "$LINE_SID" --user op run --profile bp --lot BP \
	--headless --bays 2 --max-units 3 > events.jsonl 2> run.err & emu=$!
wait_lines events.jsonl '"kind":"unit-result".*"outcome":"pass"' 2 $emu 30 ||
	fail "the two boards behind the hub should pass: $(grep unit-result events.jsonl; tail -3 run.err)"
echo "unplug 1-2.1" >&3
echo "unplug 1-2.2" >&3
wait_lines events.jsonl '"kind":"bay-left"' 2 $emu 30 || fail "the boards did not leave"
echo "plug 1-1" >&3
rc=0; wait $emu || rc=$?
exec 3>&-
[ "$rc" = 0 ] || fail "run exited $rc (the board on 1-1 was not taken?): $(tail -4 events.jsonl)"
third=$(line_board_uid mfg/boards/BP-0003)
grep -q "\"unit-result\",\"bay_index\":0,\"bay\":\"1-1\",\"unique_id\":\"$third\".*\"outcome\":\"pass\"" events.jsonl ||
	fail "the board on 1-1 should pass in bay 1: $(grep unit-result events.jsonl)"

# 2. configured ports
rm -f events.jsonl
timeout -k 5 60 "$BUILD/fx-usbemu" --quiet --board "1-1=$(b 4)" --board "1-2=$(b 5)" -- \
	"$STATION" --db st.db --station-id "$LINE_SID" --user op run --profile bp --lot BP \
	--headless --bays 1-2 --max-units 1 > events.jsonl 2> run.err ||
	fail "run with --bays 1-2: $(tail -3 run.err)"
fifth=$(line_board_uid mfg/boards/BP-0005)
grep -q "\"unit-result\",\"bay_index\":0,\"bay\":\"1-2\",\"unique_id\":\"$fifth\".*\"outcome\":\"pass\"" events.jsonl ||
	fail "the board on bay 1-2 should pass: $(grep unit-result events.jsonl)"
[ "$(count_lines events.jsonl '"kind":"log".*port 1-1 is not a bay: board ignored')" = 1 ] ||
	fail "expected one log line for port 1-1: $(grep '"kind":"log"' events.jsonl)"
[ "$(q "SELECT count(*) FROM units WHERE unique_id='$(line_board_uid mfg/boards/BP-0004)'")" = 0 ] ||
	fail "the board on 1-1 was taken"
expect_exit 2 S run --profile bp --lot BP --headless --bays '1-1,x'
grep -q "not a USB port path" "$ERR" || fail "bad --bays: $(cat "$ERR")"
echo "line_bays_ports: ok"
