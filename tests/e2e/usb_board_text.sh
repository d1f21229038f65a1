#!/usr/bin/env bash
# Board text is shown escaped (core/str.h str_sanitize): a USB serial number
# with a terminal escape sequence, a BEL and a backslash prints as visible
# escapes in `station usb list`, never as the raw bytes.  Through libusb
# (fx-usbemu's test device).
set -eu
source "$TOP/tests/lib.sh"
serial=$(printf 'AB\033]0;pwn\007C\\D')
expect_exit 0 "$BUILD/fx-usbemu" --quiet --testdev "1-1,serial=$serial" -- "$STATION" usb list
LC_ALL=C grep -q "$(printf '[\001-\037\177]')" "$OUT" && fail "raw control bytes in usb list: $(od -c "$OUT")"
grep -qxF '1-1 AB\x1b]0;pwn\x07C\\D' "$OUT" || fail "serial not escaped: $(cat "$OUT")"
echo "usb_board_text: ok"
