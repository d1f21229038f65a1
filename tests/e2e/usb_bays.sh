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
# another station process.  The watcher starts last on purpose: the umockdev
# preload names each process's uevent socket after its fd number, so of two
# libusb processes only the one that bound last gets uevents (see
# docs/usb-emulation.md).
for mode in "" --poll; do
	cat > run.sh <<IN
set -eu
"\$STATION" usb flash --bay 1-1 --image image.bin > flash.log 2>&1 &
flash=\$!
sleep 0.4
"\$STATION" usb watch --seconds 2.2 $mode > watch.log
wait \$flash
IN
	expect_exit 0 "$emu" --quiet --testdev 1-1,kib_s=128 --testdev 1-2 --testdev 1-3,pid=0002 \
		--at 1.0:plug:1-2 --at 1.8:unplug:1-2 --at 1.2:plug:1-3 -- bash run.sh
	grep -q "^+ 1-1$" watch.log || fail "watch$mode: 1-1 not reported: $(cat watch.log)"
	grep -q "^+ 1-2$" watch.log || fail "watch$mode: arrival of 1-2 not seen: $(cat watch.log)"
	grep -q "^- 1-2$" watch.log || fail "watch$mode: removal of 1-2 not seen: $(cat watch.log)"
	grep -q "1-3" watch.log && fail "watch$mode: a foreign device was reported"
	grep -q "flashed and verified 400000 bytes" flash.log || fail "flash during hotplug: $(cat flash.log)"
done

# Unplug mid-flash: 1-1's cable is pulled as DNLOAD block 30 arrives (the
# test device answers nothing from then on, however late the harness gets to
# removing it), so the station must fail that bay at that block, in the
# download stage, for the unplug; 1-2 and 1-3 carry on to a verified image.
cat > run.sh <<'IN'
"$STATION" usb flash --bay 1-1 --image image.bin > f1.log 2>&1 & a=$!
"$STATION" usb flash --bay 1-2 --image image.bin > f2.log 2>&1 & b=$!
"$STATION" usb flash --bay 1-3 --image image.bin > f3.log 2>&1 & c=$!
wait $a; echo "rc1=$?" > rc.log
wait $b; echo "rc2=$?" >> rc.log
wait $c; echo "rc3=$?" >> rc.log
IN
expect_exit 0 timeout 120 "$emu" --quiet --testdev 1-1,kib_s=2048,unplug_block=30 \
	--testdev 1-2,kib_s=2048 --testdev 1-3,kib_s=2048 -- bash run.sh
grep -qx "rc1=1" rc.log || fail "the unplugged bay did not fail: $(cat rc.log f1.log)"
grep -qx "rc2=0" rc.log && grep -qx "rc3=0" rc.log || fail "other bays failed: $(cat rc.log f2.log f3.log)"
for f in f2.log f3.log; do
	grep -q "flashed and verified 400000 bytes" $f || fail "$f: no verified image: $(cat $f)"
done
grep -q "flashed and verified" f1.log && fail "the unplugged bay claims success: $(cat f1.log)"
grep -q "^station: bay 1-1: download, block 30: .*unplugged" f1.log ||
	fail "no unplug reason for bay 1-1, download, block 30: $(cat f1.log)"
echo "usb_bays: ok"
