# bench_remote: one station's throughput with its CA token served by
# `p11-kit server` (p11-kit-client.so over a unix socket), then with that
# remote token and the ledger (PostgreSQL, tests/ledger-lib.sh), each against
# the same station with a local SoftHSM token and SQLite alone (issue 16:
# remote token + ledger >= 0.5x local).
#
# Each run: a lot of N instant boards (no flash, keygen or signing time)
# through 4 bays of emulated USB, the real station binary, the operator
# swapping a board as soon as its bay shows the result (tests/bench/lib/
# usb_lot.sh).  Rate = units between line-started and line-stopped.  The
# three runs in the same invocation, local first; the figures are the ratios.
# The ledger's PostgreSQL runs with fsync=off (as in the tests): its commits
# cost a round trip and the server's work, not a disk flush.
#
#   bash tests/bench/bench_remote.sh [N]     (default 40; make bench runs it)
set -eu
. "$TOP/tests/lib.sh"
. "$TOP/tests/ledger-lib.sh"
. "$TOP/tests/bench/lib/usb_lot.sh"
N=${1:-40}
CLIENT=/usr/lib/x86_64-linux-gnu/pkcs11/p11-kit-client.so
here=$PWD

LEDGER_KEEP=1 pg_up
trap pg_gone EXIT
expect_exit 0 "$STATION" ledger init --ledger "$LEDGER" --ledger-password-file "$LEDGER_PW"

# run_lot DIR [MODULE [run options...]]: prints units/s
run_lot() {
	local dir=$1 module=${2:-} rc=0
	shift 2 || shift $#
	mkdir "$here/$dir" && cd "$here/$dir"
	LINE_SID=bench-$dir
	. "$TOP/tests/line-lib.sh"
	LINE_MAX_FAILURES=100 LINE_HSM_MODULE=$module line_bench widget LB "$N" >/dev/null
	if [ -n "$module" ]; then
		line_p11_server /usr/lib/softhsm/libsofthsm2.so
		trap srv_stop EXIT   # a subshell: its own trap
		srv_start
	fi
	tail -n +2 mfg/LB-boards.csv | cut -d, -f1 | sed "s|^|$PWD/|" > queue
	usb_lot_run lot "$PWD/st.db" "$LINE_SID" widget LB 4 queue "$@" || rc=$?
	[ "$rc" = 0 ] || fail "$dir: station run exited $rc: $(tail -3 lot.err)"
	[ "$(usb_lot_pass st.db)" = "$N" ] ||
		fail "$dir: not every unit passed: $(q "SELECT status, reason FROM units WHERE status <> 'pass' LIMIT 3")"
	[ -z "$module" ] || srv_stop
	read -r t0 t1 < <(usb_lot_span lot.jsonl)
	awk -v n="$N" -v t0="$t0" -v t1="$t1" 'BEGIN { printf "%.2f\n", n * 1000 / (t1 - t0) }'
	cd "$here"
}

local_rate=$(run_lot local)
remote_rate=$(run_lot remote "$CLIENT")
ledger_rate=$(run_lot ledger "$CLIENT" --ledger "$LEDGER" --ledger-password-file "$LEDGER_PW")
committed=$(psql_ledger "SELECT count(*) FROM provisioned WHERE station_id = 'bench-ledger' AND state = 'committed'")
[ "$committed" = "$N" ] || fail "the ledger committed $committed claims of $N passes"
echo "one station, $N instant boards, 4 emulated bays:"
echo "  local SoftHSM token, SQLite:                   $local_rate units/s"
echo "  remote token (p11-kit-client.so):              $remote_rate units/s"
echo "  remote token + ledger (PostgreSQL, fsync off): $ledger_rate units/s"
awk -v l="$local_rate" -v r="$remote_rate" -v g="$ledger_rate" 'BEGIN {
	printf "  remote / local:          %.2fx\n", r / l
	printf "  remote + ledger / local: %.2fx (issue 16 asks >= 0.5x)\n", g / l }'
