# Floods hold a bay (issue 13): a board REJECTed max_rejects (3, the default)
# times within reject_window_s holds its bay with an alert, as FAILs in a row
# do; plugged a fourth time it is not taken.  Through libusb (fx-usbemu),
# SoftHSM and SQLite; the board's attestation is by a foreign key (REJECT).
set -eu
. "$TOP/tests/lib.sh"
LINE_SID=flood-$$
. "$TOP/tests/line-lib.sh"

line_bench fl FL 1 --fault-mix 1*foreign_attest
mkfifo ctl
exec 3<>ctl
timeout -k 5 60 "$BUILD/fx-usbemu" --quiet --control ctl --board "1-1=$PWD/mfg/boards/FL-0001" -- \
	"$STATION" --db st.db --station-id "$LINE_SID" --user op run --profile fl --lot FL \
	--headless --bays 1 > events.jsonl 2> run.err & emu=$!
for n in 1 2 3; do
	wait_lines events.jsonl '"kind":"unit-result".*"outcome":"reject"' $n $emu 30 ||
		fail "reject $n: $(grep unit-result events.jsonl; tail -3 run.err)"
	echo "unplug 1-1" >&3
	wait_lines events.jsonl '"kind":"bay-left"' $n $emu 30 || fail "unplug $n not seen"
	echo "plug 1-1" >&3
done
wait_lines events.jsonl '"kind":"bay-arrived"' 4 $emu 30 || fail "the fourth plug was not seen"
uid=$(line_board_uid mfg/boards/FL-0001)
grep -q "\"kind\":\"bay-held\",\"bay_index\":0,\"bay\":\"1-1\",\"unique_id\":\"$uid\".*rejected 3 times" events.jsonl ||
	fail "no bay-held: $(grep -E 'held|alert' events.jsonl)"
grep -q "\"kind\":\"alert\".*rejected 3 times within 600 s: bay held" events.jsonl ||
	fail "no alert for the flood: $(grep alert events.jsonl)"
sleep 1   # a held bay takes no unit: still three after the fourth plug
pid=$(line_station_pids " run ")
kill -TERM "$pid"
wait $emu || fail "run exited non-zero: $(tail -3 run.err)"
exec 3>&-
[ "$(count_lines events.jsonl '"kind":"unit-result"')" = 3 ] ||
	fail "a held bay took a unit: $(grep unit-result events.jsonl)"
[ "$(q "SELECT count(*) FROM units")" = 3 ] || fail "units: $(q "SELECT id, status FROM units")"
echo "line_flood: ok"
