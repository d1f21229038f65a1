#!/usr/bin/env bash
# Simulated boards (fixtures/board, made by fx-mfgkit) plugged in with
# fx-usbemu --board: the station lists them by bay with their unique id, reads
# INFO over the protocol; Debian's dfu-util flashes one and reads it back
# identical, then the station flashes the same board and image, and another; a board whose knob pulls its cable mid-flash fails its own bay
# and leaves the bench, the others carry on.  All through libusb.
set -eu
source "$TOP/tests/lib.sh"
command -v dfu-util >/dev/null || fail "dfu-util is not installed (make deps)"

"$BUILD/fx-mfgkit" --lot L1 --count 3 --out kit --knob flash_bps=2097152 > /dev/null
"$BUILD/fx-board" mkimage fw.bin --version 3.1.4 --size 300000
"$BUILD/fx-board" set kit/boards/L1-0003 unplug_at dfu_dnload
uid() { grep "^kit/boards/L1-000$1," kit/L1-boards.csv | cut -d, -f2; }

cat > run.sh <<'IN'
set -u
"$STATION" usb list > list1.txt
"$STATION" usb info --bay 1-1 > info1.txt
dfu-util -d 1209:0001 -p 1-1 -D fw.bin > dfu-dn.log 2>&1 || echo "dfu-util -D failed" >> errors.txt
dfu-util -d 1209:0001 -p 1-1 -U up.bin > dfu-up.log 2>&1 || echo "dfu-util -U failed" >> errors.txt
"$STATION" usb flash --bay 1-1 --image fw.bin > flash1.txt 2>&1 || echo "station flash 1-1 failed" >> errors.txt
"$STATION" usb flash --bay 1-2 --image fw.bin > flash2.txt 2>&1 || echo "station flash 1-2 failed" >> errors.txt
"$STATION" usb info --bay 1-2 > info2.txt
"$STATION" usb flash --bay 1-3 --image fw.bin > flash3.txt 2>&1; echo "rc3=$?" > rc3.txt
# the harness removes a board that pulled itself from its own thread: poll
end=$((EPOCHSECONDS + 60))
"$STATION" usb list > list2.txt
while grep -q '^1-3 ' list2.txt && [ "$EPOCHSECONDS" -lt "$end" ]; do
	sleep 0.05; "$STATION" usb list > list2.txt
done
IN
expect_exit 0 "$BUILD/fx-usbemu" --board 1-1=kit/boards/L1-0001 --board 1-2=kit/boards/L1-0002 \
	--board 1-3=kit/boards/L1-0003 -- bash run.sh
[ ! -e errors.txt ] || fail "$(cat errors.txt)"
[ "$(cat list1.txt)" = "1-1 $(uid 1)
1-2 $(uid 2)
1-3 $(uid 3)" ] || fail "list: $(cat list1.txt)"
grep -q "^unique_id $(uid 1)$" info1.txt || fail "info 1-1: $(cat info1.txt)"
grep -q "^state blank$" info1.txt || fail "info 1-1 state: $(cat info1.txt)"
cmp fw.bin up.bin || fail "dfu-util read back something else than it flashed"
grep -q "bay 1-1: flashed and verified 300072 bytes" flash1.txt || fail "flash 1-1: $(cat flash1.txt)"
grep -q "bay 1-2: flashed and verified 300072 bytes" flash2.txt || fail "flash 1-2: $(cat flash2.txt)"
grep -q "^fw_version 3.1.4$" info2.txt || fail "info 1-2: $(cat info2.txt)"
grep -q "^state flashed$" info2.txt || fail "info 1-2 state: $(cat info2.txt)"
grep -q "rc3=1" rc3.txt || fail "the unplugged board did not fail: $(cat rc3.txt flash3.txt)"
grep -q "station: bay 1-3: download, block 0: .*unplugged" flash3.txt || fail "reason: $(cat flash3.txt)"
[ "$(cut -d' ' -f1 list2.txt | tr '\n' ' ')" = "1-1 1-2 " ] || fail "after unplug: $(cat list2.txt)"
grep -q "fx-usbemu: 1-3 unplugged itself" "$ERR" || fail "fx-usbemu did not report the unplug: $(cat "$ERR")"
"$BUILD/fx-board" show kit/boards/L1-0001 | grep -q "^firmware: 3.1.4" || fail "board 1 image not committed"
# The control FIFO: a lot's next board goes into the bay the first one left.
mkfifo ctl
cat > run2.sh <<'IN'
set -eu
"$STATION" usb list > before.txt
echo "unplug 1-1" > ctl
echo "plug 1-1 kit/boards/L1-0002" > ctl
end=$((EPOCHSECONDS + 60))
until "$STATION" usb list > after.txt && grep -q "^1-1 $UID2$" after.txt ||
	[ "$EPOCHSECONDS" -ge "$end" ]; do sleep 0.05; done
IN
UID2=$(uid 2) expect_exit 0 "$BUILD/fx-usbemu" --quiet --board 1-1=kit/boards/L1-0001 --control ctl -- bash run2.sh
[ "$(cat before.txt)" = "1-1 $(uid 1)" ] || fail "before the swap: $(cat before.txt)"
[ "$(cat after.txt)" = "1-1 $(uid 2)" ] || fail "after the swap: $(cat after.txt)"
echo "usb_boards: ok"
