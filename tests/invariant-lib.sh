# Helpers for the invariant tests (tests/e2e/invariant_*.sh; sourced after
# tests/lib.sh, in the test's scratch directory).
#
# inv_bench LOT COUNT [fx-mfgkit options...]
#   A bench like the line's: a SoftHSM token in hsm/ (hsm/softhsm-setup.sh), a
#   lot of COUNT simulated boards in mfg/ (fast knobs unless overridden), a
#   firmware image, the profile "inv" (widget.profile) added, the lot's
#   allowlist imported.  The PIN source is hsm/pin unless INV_PIN_ENV names a
#   variable (then the profile says pin_env = $INV_PIN_ENV).
# inv_uid BOARD_DIR     the unique id of a board made by inv_bench
# inv_hex FILE          FILE's bytes as one line of lower-case hex
# inv_find HAYSTACK_HEX PATTERN_FILE
#   0 when any pattern (lower-case hex, one a line) occurs in the hex string
#   in file HAYSTACK_HEX

S() { "$STATION" --db st.db --station-id inv-1 --user eng "$@"; }
q() { sqlite3 -batch -noheader st.db "$@"; }

inv_bench() {
	local lot=$1 count=$2 pin_line
	shift 2
	command -v sqlite3 >/dev/null || fail "the sqlite3 shell is needed"
	command -v openssl >/dev/null || fail "openssl is needed"
	"$TOP/hsm/softhsm-setup.sh" --dir hsm --label inv-ca >/dev/null
	"$BUILD/fx-mfgkit" --lot "$lot" --count "$count" --out mfg --knob flash_bps=0 \
		--knob keygen_ms=0 --knob sign_ms=0 "$@" >/dev/null
	"$BUILD/fx-board" mkimage fw.bin --version 1.0 --size 20000 >/dev/null
	pin_line="pin_file = hsm/pin"
	[ -z "${INV_PIN_ENV:-}" ] || pin_line="pin_env = $INV_PIN_ENV"
	cat > widget.profile <<EOF
[product]
name = inv
usb = 1209:0001
[firmware]
image = fw.bin
sha256 = $(sha256sum fw.bin | cut -d' ' -f1)
[certificate]
validity_days = 30
[hsm]
module = /usr/lib/softhsm/libsofthsm2.so
softhsm2_conf = hsm/softhsm2.conf
token = inv-ca
ca_key = station-ca-key
ca_cert = hsm/ca.pem
audit_key = station-audit-key
$pin_line
[attestation]
manufacturer_ca = mfg/mfr-ca.pem
[policy]
max_failures_in_row = 50
EOF
	expect_exit 0 S profile add widget.profile
	expect_exit 0 S allowlist import "mfg/$lot.csv" --lot "$lot" --sig "mfg/$lot.csv.sig" \
		--manufacturer-cert mfg/mfr-ca.pem
}

inv_uid() { grep "^$1," mfg/*-boards.csv | head -1 | cut -d, -f2; }

inv_hex() { od -An -v -tx1 "$1" | tr -d ' \n'; }

inv_find() { grep -q -F -f "$2" "$1"; }
