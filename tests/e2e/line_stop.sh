# `station run` stops when told (SIGTERM) only after the units in flight have
# finished: both boards in flight pass, the line reports stopping then stopped,
# it exits 0, and a board plugged after the signal is not taken.  Through
# libusb (fx-usbemu), SoftHSM and SQLite.
set -eu
. "$TOP/tests/lib.sh"
command -v sqlite3 >/dev/null || fail "the sqlite3 shell is needed"

SID=stop-$$
S() { "$STATION" --db st.db --station-id $SID --user eng "$@"; }
q() { sqlite3 -batch -noheader st.db "$@"; }

"$TOP/hsm/softhsm-setup.sh" --dir hsm --label stop-ca >/dev/null
# keygen takes 1.5 s: the signal lands while both units are in flight
"$BUILD/fx-mfgkit" --lot LS --count 3 --out mfg --knob flash_bps=0 --knob keygen_ms=1500 \
	--knob sign_ms=0 >/dev/null
"$BUILD/fx-board" mkimage fw.bin --version 1.0 --size 20000 >/dev/null
cat > p.profile <<EOF
[product]
name = stopper
usb = 1209:0001
[firmware]
image = fw.bin
sha256 = $(sha256sum fw.bin | cut -d' ' -f1)
[certificate]
validity_days = 30
[hsm]
module = /usr/lib/softhsm/libsofthsm2.so
softhsm2_conf = hsm/softhsm2.conf
token = stop-ca
ca_key = station-ca-key
ca_cert = hsm/ca.pem
audit_key = station-audit-key
pin_file = hsm/pin
[attestation]
manufacturer_ca = mfg/mfr-ca.pem
EOF
expect_exit 0 S profile add p.profile
expect_exit 0 S allowlist import mfg/LS.csv --lot LS --sig mfg/LS.csv.sig --manufacturer-cert mfg/mfr-ca.pem

station_pid() {
	local p
	for p in $(pgrep -x station || true); do
		[ "$(readlink "/proc/$p/cwd" 2>/dev/null)" = "$PWD" ] || continue
		tr '\0' ' ' < "/proc/$p/cmdline" 2>/dev/null | grep -q -- "--station-id $SID " &&
			echo "$p"
	done
	return 0
}

# the third board starts unplugged (its first scheduled event is a plug far
# away) and is plugged through the control FIFO right after the signal
mkfifo ctl
exec 3<>ctl
timeout 120 "$BUILD/fx-usbemu" --quiet --control ctl --board "1-1=$PWD/mfg/boards/LS-0001" \
	--board "1-2=$PWD/mfg/boards/LS-0002" --board "1-3=$PWD/mfg/boards/LS-0003" \
	--at 600:plug:1-3 -- \
	"$STATION" --db st.db --station-id $SID --user op run --profile stopper --lot LS \
	--headless --bays 3 > events.jsonl 2> run.err & emu=$!
for _ in $(seq 1 1000); do
	[ "$(grep -c '"stage":"keygen"' events.jsonl 2>/dev/null || true)" -ge 2 ] && break
	kill -0 $emu 2>/dev/null || break
	sleep 0.01
done
[ "$(grep -c '"kind":"stage-begin".*"stage":"keygen"' events.jsonl)" = 2 ] ||
	fail "two units should be in keygen: $(tail -3 events.jsonl)"
pid=$(station_pid)
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
third=$(grep '^mfg/boards/LS-0003,' mfg/LS-boards.csv | cut -d, -f2)
[ "$(q "SELECT count(*) FROM units WHERE unique_id='$third'")" = 0 ] || fail "a board was taken after the signal"
# the run is on the audit record, with who ran it and what came of it
S audit log | grep -q 'line-start	op	.*"lot":"LS","profile":"stopper"' || fail "no line-start audit event"
S audit log | grep -q 'line-stop	op	.*"pass":2' || fail "no line-stop audit event"
expect_exit 0 S audit verify
echo "line_stop: ok"
