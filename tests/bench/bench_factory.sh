# bench_factory: K = 1, 2, 4, 8 stations x 4 bays of emulated USB, all against
# one ledger (PostgreSQL, tests/ledger-lib.sh) and one remote CA token (one
# `p11-kit server` over SoftHSM), boards with KEYGEN_MS of key generation
# (issue 16: aggregate >= 0.9 x K x one station's rate, up to 32 bays).
#
# One lot of (1+2+4+8) x 4 x PER_BAY boards, imported once; each station is a
# copy of that database (its own journal and station id) that gets its own
# slice of the lot, its own fx-usbemu (one umockdev testbed per station
# process) and an operator swapping a board the moment its bay shows a result
# (tests/bench/lib/usb_lot.sh).  The K stations of a step start together:
# each has its own testbed (its own UMOCKDEV_DIR), so the libusb_init race of
# docs/qa.md (two libusb processes in one testbed) cannot happen between them.
# For each K:
#   units/s    PASSes of the K stations / (last line-stopped - first line-started)
#   sum        the sum of each station's own rate (its PASSes / its own
#              line-started .. line-stopped): the K starts are staggered by
#              the start-up work (token login, ledger, database) they share
#   vs K x 1   that rate / (K x the K = 1 rate of the same run)
#   commits    the ledger's committed transactions (pg_stat_database) per unit
#   p50, p99   units.duration_ms over the K stations' units (nearest rank)
#   CPU s      user + system seconds of the stations, of fx-usbemu (the
#              emulated boards, whose libusb side busy-polls), of the p11-kit
#              server (with its per-client children) and of PostgreSQL (every
#              process of the cluster), each process's whole life (start-up
#              included); cpu/u = their sum per unit, in ms; busy = the
#              machine's busy share of all cores over the step (/proc/stat),
#              other users of the machine included; load = 1-minute average
# The closing line: how many units/s the machine's cores could carry at the
# last step's CPU per unit, as a multiple of the one-station rate.
# PostgreSQL runs with fsync=off (as in the tests): a commit costs a round
# trip and the server's work, not a disk flush.
#
#   bash tests/bench/bench_factory.sh [PER_BAY] [KEYGEN_MS]   (defaults 5, 200)
#   BENCH_STATIONS="1 2 4 8" (the first is the baseline; keep it 1)
set -eu
. "$TOP/tests/lib.sh"
. "$TOP/tests/ledger-lib.sh"
. "$TOP/tests/bench/lib/usb_lot.sh"
LINE_SID=fac-template
. "$TOP/tests/line-lib.sh"
PER_BAY=${1:-5}
KEYGEN=${2:-200}
KS=${BENCH_STATIONS:-1 2 4 8}
BAYS=4
CLIENT=/usr/lib/x86_64-linux-gnu/pkcs11/p11-kit-client.so
command -v p11-kit >/dev/null || fail "p11-kit is needed (apt-get install p11-kit)"
[ -r "$CLIENT" ] || fail "$CLIENT is needed (apt-get install p11-kit-modules)"

LEDGER_KEEP=1 pg_up
line_p11_server /usr/lib/softhsm/libsofthsm2.so
trap 'srv_stop; pg_gone' EXIT
LO=(--ledger "$LEDGER" --ledger-password-file "$LEDGER_PW")
expect_exit 0 "$STATION" ledger init "${LO[@]}"
total=0
for k in $KS; do total=$((total + k * BAYS * PER_BAY)); done
LINE_MAX_FAILURES=100 LINE_HSM_MODULE=$CLIENT line_bench widget LF "$total" \
	--knob keygen_ms="$KEYGEN" >/dev/null
tail -n +2 mfg/LF-boards.csv | cut -d, -f1 | sed "s|^|$PWD/|" > all.queue
srv_start

# cpu_tree PID: CPU seconds of PID, its children reaped and its live children
cpu_tree() {
	cat /proc/[0-9]*/stat 2>/dev/null | awk -v root="$1" '{ pid = $1; sub(/^.*\) /, "")
		if (pid == root || $2 == root) s += $12 + $13 + $14 + $15 }
		END { printf "%.2f\n", s / 100 }'
}
busy_ticks() { awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 + $9, $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9 }' /proc/stat; }
commits() { psql_ledger "SELECT xact_commit FROM pg_stat_database WHERE datname = 'postgres'"; }

pg_pid=$(head -1 "$PGDIR/data/postmaster.pid")
p11_pid=$(cat srv.pid)
echo "bench_factory: K stations x $BAYS bays, one ledger, one remote token (p11-kit server);"
echo "  boards: keygen $KEYGEN ms, instant flash and signing; $PER_BAY units per bay; $(nproc) cores"
printf '%3s %4s %5s %7s %7s %7s %7s %8s %6s %6s | %7s %7s %7s %8s %6s %5s %5s\n' K bays units seconds \
	units/s sum "vs Kx1" commits/u p50ms p99ms "station" usbemu p11-kit postgres cpu/u busy load
used=0; r1=; status=0
for k in $KS; do
	pids=()
	c0=$(commits); p0=$(cpu_tree "$pg_pid"); s0=$(cpu_tree "$p11_pid"); read -r b0 a0 < <(busy_ticks)
	for s in $(seq 1 "$k"); do
		name=k$k-s$s
		sqlite3 st.db "VACUUM INTO '$name.db'"
		sed -n "$((used + 1)),$((used + BAYS * PER_BAY))p" all.queue > "$name.queue"
		used=$((used + BAYS * PER_BAY))
		USB_LOT_TIME=1 usb_lot_run "$name" "$name.db" "fac-$name" widget LF "$BAYS" \
			"$name.queue" "${LO[@]}" &
		pids+=($!)
	done
	for p in "${pids[@]}"; do wait "$p" || { status=1; echo "a station of K=$k failed"; }; done
	read -r b1 a1 < <(busy_ticks); load=$(cut -d' ' -f1 /proc/loadavg)
	sleep 0.5   # the backends' last statistics
	c1=$(commits); p1=$(cpu_tree "$pg_pid"); s1=$(cpu_tree "$p11_pid")
	[ "$status" = 0 ] || { tail -3 k"$k"-s*.err; break; }
	units=0
	for s in $(seq 1 "$k"); do units=$((units + $(usb_lot_pass "k$k-s$s.db"))); done
	[ "$units" = "$((k * BAYS * PER_BAY))" ] || { status=1; echo "K=$k: $units of $((k * BAYS * PER_BAY)) passed"; }
	read -r t0 t1 < <(usb_lot_span k"$k"-s*.jsonl)
	rate=$(awk -v u="$units" -v a="$t0" -v b="$t1" 'BEGIN { print u * 1000 / (b - a) }')
	[ -n "$r1" ] || r1=$rate
	sum=$(for s in $(seq 1 "$k"); do
		read -r a b < <(usb_lot_span "k$k-s$s.jsonl")
		echo "$(usb_lot_pass "k$k-s$s.db") $a $b"
	done | awk '{ r += $1 * 1000 / ($3 - $2) } END { print r }')
	for s in $(seq 1 "$k"); do
		sqlite3 -batch -noheader "k$k-s$s.db" "SELECT coalesce(duration_ms, finished_ms - started_ms)
			FROM units WHERE status = 'pass'"
	done | sort -n > "k$k.durations"
	read -r st emu < <(cat k"$k"-s*.cpu | awk '{ s += $1; e += $2 } END { print s, e }')
	awk -v k="$k" -v bays=$((k * BAYS)) -v u="$units" -v a="$t0" -v b="$t1" -v r="$rate" \
		-v r1="$r1" -v c="$((c1 - c0))" -v st="$st" -v emu="$emu" -v p11="$(awk -v x="$s0" -v y="$s1" 'BEGIN { print y - x }')" \
		-v pg="$(awk -v x="$p0" -v y="$p1" 'BEGIN { print y - x }')" \
		-v busy="$(awk -v b0="$b0" -v b1="$b1" -v a0="$a0" -v a1="$a1" 'BEGIN { print 100 * (b1 - b0) / (a1 - a0) }')" \
		-v load="$load" -v sum="$sum" '{ d[NR] = $1 }
		END { p50 = d[int((NR * 50 + 99) / 100)]; p99 = d[int((NR * 99 + 99) / 100)]
			printf "%3d %4d %5d %7.2f %7.2f %7.2f %7.3f %8.1f %6d %6d | %7.1f %7.1f %7.1f %8.1f %6.0f %4.0f%% %5.2f\n",
				k, bays, u, (b - a) / 1000, r, sum, r / (k * r1), c / u, p50, p99, st, emu, p11, pg,
				1000 * (st + emu + p11 + pg) / u, busy, load }' \
		"k$k.durations" | tee "k$k.row"
done
[ "$status" != 0 ] || awk -v n="$(nproc)" -v r1="$r1" '{ c = $16 } END {
	printf "%d cores at %d ms of CPU per unit carry at most %.1f units/s = %.1f x one station\n",
		n, c, n * 1000 / c, n * 1000 / c / r1 }' "k$k.row"
exit $status
