#!/usr/bin/env bash
# Bays through libusb: boards are listed by USB port path (hubs included), a
# board of another VID:PID is ignored, a board is added and removed while
# another one is being flashed, and a board unplugged mid-flash fails its own
# bay with a clear reason while the others finish.
set -eu
source "$TOP/tests/lib.sh"
head -c 400000 /dev/urandom > image.bin
emu="$BUILD/fx-usbemu"

# Listing: 8 bays, one behind a hub, and a foreign device.
args=()
for p in 1 2 3 4 5 6 7; do args+=(--testdev "1-$p"); done
expect_exit 0 "$emu" --quiet "${args[@]}" --testdev 1-8.2 --testdev 2-1,pid=0002 -- "$STATION" usb list
[ "$(wc -l < "$OUT")" = 8 ] || fail "expected 8 bays: $(cat "$OUT")"
grep -q '^1-8.2 [0-9A-F]\{24\}$' "$OUT" || fail "bay behind the hub missing: $(cat "$OUT")"
grep -q '^2-1' "$OUT" && fail "a board with another VID:PID was listed"
expect_exit 0 "$emu" --quiet --testdev 2-1,pid=0002 -- "$STATION" usb list --device 1209:0002
grep -q '^2-1 ' "$OUT" || fail "--device did not select the other product"

# Hotplug and polling: 1-2 arrives and leaves while 1-1 is being flashed by
# another station process, and a foreign device (1-3) arrives.  The watcher
# starts after the flasher on purpose: the umockdev preload names each
# process's uevent socket after its fd number, so of two libusb processes only
# the one that bound last gets uevents (see docs/usb-emulation.md); the
# flasher's first transfer in the trace shows its libusb is up.  1-2 and 1-3
# start unplugged (their first scheduled event is a plug far away) and are
# plugged through the control FIFO once the watcher has listed 1-1, each step
# waiting for the watcher's report: no step depends on how fast anything runs.
for mode in "" --poll; do
	rm -f ctl trace watch.log flash.log
	mkfifo ctl
	cat > run.sh <<IN
set -eu
. "\$TOP/tests/lib.sh"
exec 3<>ctl
"\$STATION" usb flash --bay 1-1 --image image.bin > flash.log 2>&1 & flash=\$!
wait_lines trace '^1-1 ' 1 \$flash || fail "flash never started: \$(cat flash.log)"
"\$STATION" usb watch --seconds 300 $mode > watch.log 2> watch.err & watch=\$!
wait_lines watch.log '^\\+ 1-1\$' 1 \$watch ||
	fail "watch$mode: 1-1 not reported: \$(cat watch.log watch.err)"
echo "plug 1-3" >&3
echo "plug 1-2" >&3
wait_lines watch.log '^\\+ 1-2\$' 1 \$watch ||
	fail "watch$mode: arrival of 1-2 not seen: \$(cat watch.log watch.err)"
echo "unplug 1-2" >&3
wait_lines watch.log '^- 1-2\$' 1 \$watch ||
	fail "watch$mode: removal of 1-2 not seen: \$(cat watch.log watch.err)"
kill \$watch
wait \$watch || true
wait \$flash || fail "flash during hotplug: \$(cat flash.log)"
IN
	expect_exit 0 timeout 300 "$emu" --quiet --control ctl --trace trace \
		--testdev 1-1,kib_s=128 --testdev 1-2 --testdev 1-3,pid=0002 \
		--at 600:plug:1-2 --at 600:plug:1-3 -- bash run.sh
	grep -q "1-3" watch.log && fail "watch$mode: a foreign device was reported"
	grep -q "flashed and verified 400000 bytes" flash.log || fail "flash during hotplug: $(cat flash.log)"
done

# Unplug mid-flash: 1-1's cable is pulled as DNLOAD block 30 arrives (the
# test device answers nothing from then on, however late the harness gets to
# removing it), so the station must fail that bay at that block, in the
# download stage, for the unplug; 1-2 and 1-3, slower, are still flashing and
# carry on to a verified image.  The flashers start one after the other, each
# once the previous one's first transfer is in the trace: libusb_init in two
# processes at once races on the preload's uevent socket name (libusb_init
# then fails, "Other error"), and 1-1 starts last so that no libusb_init runs
# while it is being pulled (libusb 1.0.26 leaks a device then, see
# station/usb/usb.c).
cat > run.sh <<'IN'
. "$TOP/tests/lib.sh"
"$STATION" usb flash --bay 1-2 --image image.bin > f2.log 2>&1 & b=$!
wait_lines trace '^1-2 ' 1 $b || true
"$STATION" usb flash --bay 1-3 --image image.bin > f3.log 2>&1 & c=$!
wait_lines trace '^1-3 ' 1 $c || true
"$STATION" usb flash --bay 1-1 --image image.bin > f1.log 2>&1 & a=$!
wait $a; echo "rc1=$?" > rc.log
wait $b; echo "rc2=$?" >> rc.log
wait $c; echo "rc3=$?" >> rc.log
IN
rm -f trace
expect_exit 0 timeout 120 "$emu" --quiet --trace trace --testdev 1-1,kib_s=2048,unplug_block=30 \
	--testdev 1-2,kib_s=256 --testdev 1-3,kib_s=256 -- bash run.sh
grep -qx "rc1=1" rc.log || fail "the unplugged bay did not fail: $(cat rc.log f1.log)"
grep -qx "rc2=0" rc.log && grep -qx "rc3=0" rc.log || fail "other bays failed: $(cat rc.log f2.log f3.log)"
for f in f2.log f3.log; do
	grep -q "flashed and verified 400000 bytes" $f || fail "$f: no verified image: $(cat $f)"
done
grep -q "flashed and verified" f1.log && fail "the unplugged bay claims success: $(cat f1.log)"
grep -q "^station: bay 1-1: download, block 30: .*unplugged" f1.log ||
	fail "no unplug reason for bay 1-1, download, block 30: $(cat f1.log)"
echo "usb_bays: ok"
