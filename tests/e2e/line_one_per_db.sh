# One line per database (issue 12): while a line holds st.db with a unit in
# flight (its certificate signed, the board slow to prove possession), a second
# `station run` on the same database exits 1 with one line naming the holder's
# host and pid, and changes nothing: no event, the first line's unit passes and
# its certificate is not revoked (the second line's recovery never ran).
# Then the database is rolled back to before that unit: `run` refuses to start
# on it, naming the rollback (the line's stop checkpoint is in the log).
set -eu
. "$TOP/tests/lib.sh"
LINE_SID=one-$$
. "$TOP/tests/line-lib.sh"

line_bench widget L1 1 --knob sign_ms=1500
A=mfg/boards/L1-0001
cp st.db early.db
mkfifo cmd
exec 4<>cmd
timeout 60 "$BUILD/fx-usbemu" --quiet --board "1-1=$PWD/$A" -- \
	"$STATION" --db st.db --station-id "$LINE_SID" --user op run --profile widget --lot L1 \
	--headless --bays 1 < cmd > events.jsonl 2> run.err & emu=$!
wait_lines events.jsonl '"kind":"stage-begin".*"stage":"prove"' 1 $emu 60 ||
	fail "the unit never reached prove: $(tail -3 events.jsonl; cat run.err)"
before=$(q "SELECT count(*) FROM events")
expect_exit 1 timeout 20 "$STATION" --db st.db --station-id "$LINE_SID" --user op run \
	--profile widget --lot L1 --headless --bays 1 < /dev/null
grep -Eq "^station: run: database st.db is in use by another line: host $(hostname) pid [0-9]+ since .* \(user op\)$" "$ERR" ||
	fail "second run: $(cat "$ERR")"
[ "$(wc -l < "$ERR")" = 1 ] || fail "more than one line: $(cat "$ERR")"
[ ! -s "$OUT" ] || fail "the second run printed events: $(cat "$OUT")"
[ "$(q "SELECT count(*) FROM events")" = "$before" ] || fail "the second run wrote events"
wait_lines events.jsonl '"kind":"unit-result"' 1 $emu 60 || true
echo quit >&4
wait $emu || fail "the first line exited $?: $(cat run.err)"
grep -q '"outcome":"pass"' events.jsonl || fail "the first line's unit: $(grep unit-result events.jsonl)"
[ "$(q "SELECT status FROM units")" = pass ] || fail "unit: $(q 'SELECT status, reason FROM units')"
[ "$(q "SELECT status FROM certificates WHERE serial = (SELECT cert_serial FROM units)")" = injected ] ||
	fail "certificate: $(q 'SELECT status FROM certificates')"
# the lock went with the first line; its row names the last holder
flock -n st.db.lock true || fail "st.db.lock is still held"
[ "$(q "SELECT actor FROM line_holder")" = op ] || fail "line_holder: $(q 'SELECT * FROM line_holder')"
expect_exit 0 S audit verify

cp early.db st.db
rm -f st.db-wal st.db-shm
before=$(q "SELECT count(*) FROM events")
expect_exit 1 timeout 20 "$STATION" --db st.db --station-id "$LINE_SID" --user op run \
	--profile widget --lot L1 --headless --bays 1 < /dev/null
grep -q "run: refusing to start: database rolled back: checkpoint log .* has seq [0-9]* head [0-9a-f]*\.\.\., database has head seq" "$ERR" ||
	fail "rolled back: $(cat "$ERR")"
[ "$(q "SELECT count(*) FROM events")" = "$before" ] || fail "the refused run wrote events"
echo "line_one_per_db: ok"
