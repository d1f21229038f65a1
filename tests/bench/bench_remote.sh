# bench_remote: one station's throughput with its CA token served by
# `p11-kit server` (p11-kit-client.so over a unix socket) against the same
# station with a local SoftHSM token (issue 16: >= 0.5x, with the ledger too;
# the ledger is not built yet, so this is the token's share alone).
#
# Each run: a lot of N instant boards (no flash, keygen or signing time)
# through 4 bays of emulated USB, the real station binary, the operator
# swapping a board as soon as its bay shows the result.  Rate = units between
# line-started and line-stopped.  Both runs in the same invocation, local
# first; the figure is the ratio.
#
#   bash tests/bench/bench_remote.sh [N]     (default 40; make bench runs it)
set -eu
. "$TOP/tests/lib.sh"
N=${1:-40}
PORTS="1-1 1-2 1-3 1-4"
CLIENT=/usr/lib/x86_64-linux-gnu/pkcs11/p11-kit-client.so
here=$PWD
srv_pid=

cleanup() { [ -z "$srv_pid" ] || kill -- -"$srv_pid" 2>/dev/null || true; }
trap cleanup EXIT

# run_lot DIR [MODULE]: prints units/s
run_lot() {
	local dir=$1 module=${2:-} i=0 boardargs=() rc=0
	trap cleanup EXIT   # a subshell: its own trap
	mkdir "$here/$dir" && cd "$here/$dir"
	LINE_SID=bench-$dir
	. "$TOP/tests/line-lib.sh"
	LINE_MAX_FAILURES=100 LINE_HSM_MODULE=$module line_bench widget LB "$N" >/dev/null
	if [ -n "$module" ]; then
		export P11_KIT_SERVER_ADDRESS="unix:path=$PWD/p11.sock"
		SOFTHSM2_CONF=$PWD/hsm/softhsm2.conf setsid p11-kit server -f \
			--provider /usr/lib/softhsm/libsofthsm2.so -n "$PWD/p11.sock" \
			"pkcs11:token=line-ca" >/dev/null 2>srv.err &
		srv_pid=$!
		local end=$((EPOCHSECONDS + 15))
		while [ ! -S p11.sock ]; do
			[ "$EPOCHSECONDS" -lt "$end" ] || fail "p11-kit server made no socket"
			sleep 0.02
		done
	fi
	board() { sed -n "$(($1 + 1))p" mfg/LB-boards.csv | cut -d, -f1; }
	for p in $PORTS; do
		i=$((i + 1))
		ln -sfn "$PWD/$(board $i)" "bay-$p"
		boardargs+=(--board "$p=$PWD/bay-$p")
	done
	mkfifo ctl
	operator() {
		local next=5 line port
		exec 3<>ctl
		while IFS= read -r line; do
			printf '%s\n' "$line" >> events.jsonl
			case $line in *'"kind":"unit-result"'*) ;; *) continue ;; esac
			port=$(printf '%s' "$line" | sed -n 's/.*"bay":"\([^"]*\)".*/\1/p')
			[ $next -le $N ] || continue
			echo "unplug $port" >&3
			ln -sfn "$PWD/$(board $next)" "bay-$port"
			echo "plug $port" >&3
			next=$((next + 1))
		done
		exec 3>&-
	}
	timeout 300 "$BUILD/fx-usbemu" --quiet --control ctl "${boardargs[@]}" -- \
		"$STATION" --db st.db --station-id "$LINE_SID" --user op-olga run --profile widget \
		--lot LB --headless --bays 4 --max-units "$N" 2> run.err | operator || rc=$?
	[ "$rc" = 0 ] || fail "$dir: station run exited $rc: $(tail -3 run.err)"
	[ "$(q "SELECT count(*) FROM units WHERE status='pass'")" = "$N" ] ||
		fail "$dir: not every unit passed: $(q "SELECT status, reason FROM units WHERE status <> 'pass' LIMIT 3")"
	cleanup; srv_pid=
	unset P11_KIT_SERVER_ADDRESS
	awk -v n="$N" '/"kind":"line-started"/ { match($0, /"t_ms":[0-9]+/); t0 = substr($0, RSTART + 7, RLENGTH - 7) }
		/"kind":"line-stopped"/ { match($0, /"t_ms":[0-9]+/); t1 = substr($0, RSTART + 7, RLENGTH - 7) }
		END { printf "%.2f\n", n * 1000 / (t1 - t0) }' events.jsonl
	cd "$here"
}

local_rate=$(run_lot local)
remote_rate=$(run_lot remote "$CLIENT")
echo "one station, $N instant boards, 4 emulated bays:"
echo "  local SoftHSM token:                 $local_rate units/s"
echo "  remote token (p11-kit-client.so):    $remote_rate units/s"
awk -v l="$local_rate" -v r="$remote_rate" 'BEGIN {
	printf "  remote / local: %.2fx (issue 16 asks >= 0.5x, with the ledger)\n", r / l }'
