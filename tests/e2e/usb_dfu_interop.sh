#!/usr/bin/env bash
# Interop: Debian's dfu-util flashes an emulated board and reads it back
# identical; the station's DFU host flashes the same board with the same image,
# and each reads back what the other wrote.  All through libusb + umockdev.
set -eu
source "$TOP/tests/lib.sh"
command -v dfu-util >/dev/null || fail "dfu-util is not installed (make deps)"

# 1 MiB + 1 byte: 256 full blocks and a short one.
head -c 1048577 /dev/urandom > image.bin

cat > run.sh <<'IN'
set -eu
dfu-util -d 1209:0001 -p 1-1 -D image.bin > dfu-dn.log 2>&1
dfu-util -d 1209:0001 -p 1-1 -U back1.bin > dfu-up.log 2>&1
cmp image.bin back1.bin
"$STATION" usb flash --bay 1-1 --image image.bin
dfu-util -d 1209:0001 -p 1-1 -U back2.bin > dfu-up2.log 2>&1
cmp image.bin back2.bin
# The other direction: the station writes a board dfu-util never touched.
"$STATION" usb flash --bay 1-2 --image image.bin --sha256 "$(sha256sum image.bin | cut -c1-64)"
dfu-util -d 1209:0001 -p 1-2 -U back3.bin > dfu-up3.log 2>&1
cmp image.bin back3.bin
IN
expect_exit 0 "$BUILD/fx-usbemu" --quiet --testdev 1-1,kib_s=4096 --testdev 1-2 -- bash run.sh
grep -q "Download done" dfu-dn.log || fail "dfu-util did not finish its download"
grep -q "bay 1-1: flashed and verified 1048577 bytes" "$OUT" || fail "station flash of 1-1: $(cat "$OUT")"
grep -q "bay 1-2: flashed and verified 1048577 bytes" "$OUT" || fail "station flash of 1-2: $(cat "$OUT")"
echo "usb_dfu_interop: ok"
