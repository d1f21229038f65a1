# Helpers for the end-to-end tests of the line (tests/e2e/line_*.sh): the bench
# every such test needs (a SoftHSM token, a simulated lot, a firmware image, a
# profile, the lot's allowlist) and the waiting around a running `station run`.
# Sourced after tests/lib.sh, in the test's scratch directory.  Anything that
# needs the same bench (e.g. tests/invariant-lib.sh) can source it too.
#
# LINE_SID (set it before sourcing; default line-$$)
#   the station id every command here uses.  Keep it unique on the machine
#   when the test looks processes up (line_station_pids).
#
# S ARGS...             station as user "eng" on st.db
# line_as USER ARGS...  station as USER on st.db (e.g. the operator's `run`)
# q SQL                 one query on st.db (sqlite3 shell, no header)
#
# line_bench PROFILE LOT COUNT [fx-mfgkit options...]
#   hsm/: a SoftHSM token (hsm/softhsm-setup.sh); mfg/: a lot of COUNT boards
#   that answer at once (flash_bps=0 keygen_ms=0 sign_ms=0; a --knob given
#   after overrides, --fault-mix adds faults); fw.bin: a firmware image;
#   PROFILE.profile, added as profile PROFILE; the lot's allowlist imported.
#   Shell variables read at the call (e.g. `LINE_FW_SIZE=32000 line_bench ...`):
#     LINE_TOKEN (line-ca)      the token's label
#     LINE_PROFILE_FILE         the profile's file, PROFILE.profile when empty
#     LINE_FW_VERSION (1.0), LINE_FW_SIZE (20000)   the image
#     LINE_VALIDITY (30)        certificate validity_days
#     LINE_SAN                  [certificate] san, none when empty
#     LINE_MAX_FAILURES         [policy] max_failures_in_row, default when empty
#     LINE_PIN_ENV              pin_env = VAR instead of pin_file = hsm/pin
#     LINE_PROFILE_EXTRA        lines appended to the profile (e.g. a [deadlines]
#                               section; [policy] keys need LINE_MAX_FAILURES set)
#     LINE_HSM_MODULE           [hsm] module (default SoftHSM's, with its
#                               softhsm2_conf); another module gets no softhsm2_conf
#                               (e.g. p11-kit-client.so: tests/e2e/hsm_remote.sh)
#
# line_board_uid BOARD_DIR  the unique id of a board made by line_bench
# line_station_pids MATCH
#   pids of the station processes working in this scratch directory with
#   station id $LINE_SID whose command line contains MATCH; the same test may
#   be running in another checkout on this machine, so only those count.
# (waiting for events: wait_lines and count_lines in tests/lib.sh)

LINE_SID=${LINE_SID:-line-$$}

line_as() { local user=$1; shift; "$STATION" --db st.db --station-id "$LINE_SID" --user "$user" "$@"; }
S() { line_as eng "$@"; }
q() { sqlite3 -batch -noheader st.db "$@"; }

line_bench() {
	local profile=$1 lot=$2 count=$3 pin_line san_line="" policy="" module_lines
	local token=${LINE_TOKEN:-line-ca} file=${LINE_PROFILE_FILE:-$1.profile}
	shift 3
	command -v sqlite3 >/dev/null || fail "the sqlite3 shell is needed"
	command -v openssl >/dev/null || fail "openssl is needed"
	"$TOP/hsm/softhsm-setup.sh" --dir hsm --label "$token" >/dev/null
	"$BUILD/fx-mfgkit" --lot "$lot" --count "$count" --out mfg --knob flash_bps=0 \
		--knob keygen_ms=0 --knob sign_ms=0 "$@" >/dev/null
	"$BUILD/fx-board" mkimage fw.bin --version "${LINE_FW_VERSION:-1.0}" \
		--size "${LINE_FW_SIZE:-20000}" >/dev/null
	pin_line="pin_file = hsm/pin"
	[ -z "${LINE_PIN_ENV:-}" ] || pin_line="pin_env = $LINE_PIN_ENV"
	[ -z "${LINE_SAN:-}" ] || san_line="san = $LINE_SAN"
	module_lines=$(printf 'module = /usr/lib/softhsm/libsofthsm2.so\nsofthsm2_conf = hsm/softhsm2.conf')
	[ -z "${LINE_HSM_MODULE:-}" ] || module_lines="module = $LINE_HSM_MODULE"
	[ -z "${LINE_MAX_FAILURES:-}" ] ||
		policy=$(printf '[policy]\nmax_failures_in_row = %s' "$LINE_MAX_FAILURES")
	cat > "$file" <<EOF
[product]
name = $profile
usb = 1209:0001
[firmware]
image = fw.bin
sha256 = $(sha256sum fw.bin | cut -d' ' -f1)
[certificate]
validity_days = ${LINE_VALIDITY:-30}
$san_line
[hsm]
$module_lines
token = $token
ca_key = station-ca-key
ca_cert = hsm/ca.pem
audit_key = station-audit-key
$pin_line
[attestation]
manufacturer_ca = mfg/mfr-ca.pem
$policy
${LINE_PROFILE_EXTRA:-}
EOF
	[ -e st.db ] || new_db st.db "$LINE_SID"
	expect_exit 0 S profile add "$file"
	expect_exit 0 S allowlist import "mfg/$lot.csv" --lot "$lot" --sig "mfg/$lot.csv.sig" \
		--manufacturer-cert mfg/mfr-signer.pem --manufacturer-ca mfg/mfr-ca.pem
}

line_board_uid() { grep "^$1," mfg/*-boards.csv | head -1 | cut -d, -f2; }

line_station_pids() {
	local p
	for p in $(pgrep -x station || true); do
		[ "$(readlink "/proc/$p/cwd" 2>/dev/null)" = "$PWD" ] || continue
		tr '\0' ' ' < "/proc/$p/cmdline" 2>/dev/null |
			grep -q -F -- "--station-id $LINE_SID " || continue
		tr '\0' ' ' < "/proc/$p/cmdline" 2>/dev/null | grep -q -F -- "$1" && echo "$p"
	done
	return 0
}

# line_p11_server PROVIDER: the token line-ca served by `p11-kit server` on
# $PWD/p11.sock (SOCK; P11_KIT_SERVER_ADDRESS exported for p11-kit-client.so).
# srv_start and srv_stop (below) start and stop it: the server runs in its own
# process group, so a stop takes its children too; each wait has a deadline.
line_p11_server() {
	LINE_P11_PROVIDER=$1
	SOCK=$PWD/p11.sock
	export P11_KIT_SERVER_ADDRESS="unix:path=$SOCK"
}
srv_start() {
	local end=$((EPOCHSECONDS + 15))
	rm -f "$SOCK"
	SOFTHSM2_CONF=$PWD/hsm/softhsm2.conf setsid p11-kit server -f --provider "$LINE_P11_PROVIDER" \
		-n "$SOCK" "pkcs11:token=line-ca" >/dev/null 2>>srv.err &
	echo $! > srv.pid
	while [ ! -S "$SOCK" ]; do
		[ "$EPOCHSECONDS" -lt "$end" ] || fail "p11-kit server made no socket: $(cat srv.err)"
		sleep 0.02
	done
}
srv_stop() {   # [SIGNAL]: TERM by default; KILL for a server that dies
	local p end=$((EPOCHSECONDS + 10))
	p=$(cat srv.pid 2>/dev/null) || return 0
	kill -"${1:-TERM}" -- -"$p" 2>/dev/null || true
	while kill -0 -- -"$p" 2>/dev/null; do
		[ "$EPOCHSECONDS" -lt "$end" ] || { kill -9 -- -"$p" 2>/dev/null || true; break; }
		sleep 0.02
	done
	rm -f srv.pid "$SOCK"
}
