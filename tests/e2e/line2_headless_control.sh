# Headless line commands on stdin (station run --headless, stdin a FIFO):
# a bad command is answered with a fail log event and the line runs on; a bay
# held after a failure is cleared by "clear 1-1"; "pause" keeps a board that
# arrives from starting until "resume"; "quit" stops the line (exit 0).  A
# second run with stdin at end of file from the start still provisions its
# board.  The failures' reasons are plain words in the events, with the code and
# the technical detail kept in the unit row.  Through libusb (fx-usbemu),
# SoftHSM and SQLite.
set -eu
. "$TOP/tests/lib.sh"
LINE_SID=hctl-$$
. "$TOP/tests/line-lib.sh"
SID=$LINE_SID
LINE_TOKEN=hctl-ca LINE_MAX_FAILURES=1 line_bench hctl LH 4
# the first board's flash fails once: one FAIL holds its bay
"$BUILD/fx-board" set mfg/boards/LH-0001 flash_error_at dfu_dnload >/dev/null
# the fourth refuses LOCK
"$BUILD/fx-board" set mfg/boards/LH-0004 refuse_lock 1 >/dev/null

# waits (bounded) until events.jsonl has a line matching $1; fails with $2
wait_for() {
	for _ in $(seq 1 1500); do
		grep -q -- "$1" "${3:-events.jsonl}" 2>/dev/null && return 0
		kill -0 $emu 2>/dev/null || break
		sleep 0.01
	done
	fail "$2: $(tail -3 "${3:-events.jsonl}" 2>/dev/null)"
}
log_ok='"kind":"log".*"outcome":"ok"'
log_fail='"kind":"log".*"outcome":"fail"'

# --- run 1: commands through a FIFO; board 2 is plugged through fx-usbemu's
# control FIFO while the line is paused
mkfifo ctl cmd
exec 3<>ctl
exec 4<>cmd
timeout 120 "$BUILD/fx-usbemu" --quiet --control ctl --board "1-1=$PWD/mfg/boards/LH-0001" \
	--board "1-2=$PWD/mfg/boards/LH-0002" --at 600:plug:1-2 -- \
	"$STATION" --db st.db --station-id $SID --user op run --profile hctl --lot LH \
	--headless --bays 2 < cmd > events.jsonl 2> run.err & emu=$!

wait_for '"kind":"bay-held"' "board 1's failure should hold bay 1"
echo "bogus" >&4
wait_for "$log_fail.*unknown command 'bogus'" "an unknown command must be answered"
echo "clear 2" >&4
wait_for "$log_fail.*clear 2: bay 2 is not held" "clearing a bay that is not held must fail"
echo "clear 7" >&4
wait_for "$log_fail.*clear 7: no such bay" "clearing a bay that does not exist must fail"
printf 'p\001\377x\n' >&4
wait_for "$log_fail.*unknown command 'p??x'" "bytes that are not printable must be answered as '?'"
echo "pause now" >&4
wait_for "$log_fail.*command 'pause' takes no argument" "a stray argument must be refused"
echo "clear 1-1" >&4
wait_for '"kind":"bay-cleared".*"bay":"1-1"' "clear 1-1 should clear the held bay"
wait_for "$log_ok.*bay 1 cleared" "clear must be acknowledged"

echo "pause" >&4
wait_for '"kind":"line-paused"' "pause should pause the line"
echo "plug 1-2" >&3
wait_for '"kind":"bay-arrived".*"bay":"1-2".*"intake":"paused"' "board 2 should arrive while paused, waiting"
sleep 0.5
! grep -q '"kind":"stage-begin".*"bay":"1-2"' events.jsonl ||
	fail "a board started while the line was paused"
echo "resume" >&4
wait_for '"kind":"line-resumed"' "resume should resume the line"
wait_for '"kind":"unit-result".*"bay":"1-2".*"outcome":"pass"' "board 2 should pass after resume"
echo "quit" >&4
rc=0; wait $emu || rc=$?
exec 3>&- 4>&-
[ "$rc" = 0 ] || { tail -5 run.err; fail "station run exited $rc after quit"; }
grep -q '"kind":"line-stopped"' events.jsonl || fail "quit should stop the line"
[ "$(q "SELECT count(*) FROM units WHERE status='pass'")" = 1 ] || fail "one pass expected"
[ "$(q "SELECT count(*) FROM units WHERE status='fail' AND stage='flash'")" = 1 ] ||
	fail "one FAIL at flash expected: $(q "SELECT status, stage, reason FROM units")"
grep -q '"kind":"unit-result".*"bay":"1-1".*"stage":"flash","outcome":"fail","reason":"writing the image failed (board error)"' events.jsonl ||
	fail "the flash failure should read in plain words: $(grep unit-result events.jsonl | head -1)"
q "SELECT reason FROM units WHERE status='fail'" | grep -q '^writing the image failed (board error) (EIO: bay 1-1: ' ||
	fail "the unit row should keep the code and detail: $(q "SELECT reason FROM units WHERE status='fail'")"
# the cause as a stable code, in the event and in the row (docs/architecture.md "Reason codes")
grep -q '"kind":"unit-result".*"bay":"1-1".*"outcome":"fail","reason":"[^"]*","reason_code":"flash_error"' events.jsonl ||
	fail "the flash failure should carry reason_code flash_error: $(grep unit-result events.jsonl | head -1)"
[ "$(q "SELECT reason_code FROM units WHERE status='fail'")" = flash_error ] ||
	fail "the unit row should keep reason_code flash_error: $(q "SELECT reason_code FROM units")"

# --- run 2: stdin at end of file from the start: the line runs on
timeout 60 "$BUILD/fx-usbemu" --quiet --board "1-1=$PWD/mfg/boards/LH-0003" \
	--board "1-2=$PWD/mfg/boards/LH-0004" -- \
	"$STATION" --db st.db --station-id $SID --user op run --profile hctl --lot LH \
	--headless --bays 2 --max-units 2 < /dev/null > events2.jsonl 2> run2.err & emu=$!
rc=0; wait $emu || rc=$?
[ "$rc" = 0 ] || { tail -5 run2.err; fail "station run with stdin at EOF exited $rc"; }
grep -q '"kind":"unit-result".*"outcome":"pass"' events2.jsonl ||
	fail "with stdin at EOF the board should still pass: $(tail -3 events2.jsonl)"
! grep -q '"kind":"log".*command' events2.jsonl || fail "EOF must not read as a command"
grep -q '"kind":"unit-result".*"bay":"1-2".*"stage":"lock","outcome":"fail","reason":"board refused to lock"' events2.jsonl ||
	fail "a refused LOCK should read 'board refused to lock': $(grep unit-result events2.jsonl)"
q "SELECT reason FROM units WHERE stage='lock'" | grep -q '^board refused to lock (EPOLICY: bay 1-2: LOCK: board answered EREFUSED' ||
	fail "the unit row should keep the board's answer: $(q "SELECT reason FROM units WHERE stage='lock'")"
grep -q '"kind":"unit-result".*"bay":"1-2".*"reason":"board refused to lock","reason_code":"lock_refused"' events2.jsonl ||
	fail "a refused LOCK should carry reason_code lock_refused: $(grep unit-result events2.jsonl)"
[ "$(q "SELECT reason_code FROM units WHERE stage='lock'")" = lock_refused ] ||
	fail "the unit row should keep reason_code lock_refused: $(q "SELECT reason_code FROM units")"
expect_exit 0 S audit verify
echo "line2_headless_control: ok"
