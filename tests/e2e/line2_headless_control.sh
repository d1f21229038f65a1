# Headless line commands on stdin (station run --headless, stdin a FIFO):
# a bad command is answered with a fail log event and the line runs on; a bay
# held after a failure is cleared by "clear 1-1"; "pause" keeps a board that
# arrives from starting until "resume"; "quit" stops the line (exit 0).  A
# second run with stdin at end of file from the start still provisions its
# board.  Through libusb (fx-usbemu), SoftHSM and SQLite.
set -eu
. "$TOP/tests/lib.sh"
command -v sqlite3 >/dev/null || fail "the sqlite3 shell is needed"

SID=hctl-$$
S() { "$STATION" --db st.db --station-id $SID --user eng "$@"; }
q() { sqlite3 -batch -noheader st.db "$@"; }

"$TOP/hsm/softhsm-setup.sh" --dir hsm --label hctl-ca >/dev/null
"$BUILD/fx-mfgkit" --lot LH --count 3 --out mfg --knob flash_bps=0 --knob keygen_ms=0 \
	--knob sign_ms=0 >/dev/null
"$BUILD/fx-board" mkimage fw.bin --version 1.0 --size 20000 >/dev/null
cat > p.profile <<EOF
[product]
name = hctl
usb = 1209:0001
[firmware]
image = fw.bin
sha256 = $(sha256sum fw.bin | cut -d' ' -f1)
[certificate]
validity_days = 30
[hsm]
module = /usr/lib/softhsm/libsofthsm2.so
softhsm2_conf = hsm/softhsm2.conf
token = hctl-ca
ca_key = station-ca-key
ca_cert = hsm/ca.pem
audit_key = station-audit-key
pin_file = hsm/pin
[attestation]
manufacturer_ca = mfg/mfr-ca.pem
[policy]
max_failures_in_row = 1
EOF
expect_exit 0 S profile add p.profile
expect_exit 0 S allowlist import mfg/LH.csv --lot LH --sig mfg/LH.csv.sig --manufacturer-cert mfg/mfr-ca.pem
# the first board's flash fails once: one FAIL holds its bay
"$BUILD/fx-board" set mfg/boards/LH-0001 flash_error_at dfu_dnload >/dev/null

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
echo "pause now" >&4
wait_for "$log_fail.*command 'pause' takes no argument" "a stray argument must be refused"
echo "clear 1-1" >&4
wait_for '"kind":"bay-cleared".*"bay":"1-1"' "clear 1-1 should clear the held bay"
wait_for "$log_ok.*bay 1 cleared" "clear must be acknowledged"

echo "pause" >&4
wait_for '"kind":"line-paused"' "pause should pause the line"
echo "plug 1-2" >&3
wait_for '"kind":"bay-arrived".*"bay":"1-2"' "board 2 should arrive while paused"
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

# --- run 2: stdin at end of file from the start: the line runs on
timeout 60 "$BUILD/fx-usbemu" --quiet --board "1-1=$PWD/mfg/boards/LH-0003" -- \
	"$STATION" --db st.db --station-id $SID --user op run --profile hctl --lot LH \
	--headless --bays 1 --max-units 1 < /dev/null > events2.jsonl 2> run2.err & emu=$!
rc=0; wait $emu || rc=$?
[ "$rc" = 0 ] || { tail -5 run2.err; fail "station run with stdin at EOF exited $rc"; }
grep -q '"kind":"unit-result".*"outcome":"pass"' events2.jsonl ||
	fail "with stdin at EOF the board should still pass: $(tail -3 events2.jsonl)"
! grep -q '"kind":"log".*command' events2.jsonl || fail "EOF must not read as a command"
expect_exit 0 S audit verify
echo "line2_headless_control: ok"
