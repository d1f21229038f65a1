# The CA token shared over PKCS#11 remoting (issue 16): a SoftHSM token made
# here is served by `p11-kit server` on a unix socket in the scratch directory,
# and the station reaches it through p11-kit-client.so, with the same libp11
# code as a local token.
#  1. A lot of 16 through 2 bays of emulated boards; the server (and the
#     p11-kit-remote process serving the station) is killed mid-lot and
#     started again: units during the outage FAIL with reason hsm_unreachable
#     at the sign stage, no bay is held for them, the screen's header is told
#     (hsm-state fail/ok), the line resumes by itself and later units PASS.
#     Afterwards issued = injected + revoked and the audit chain verifies.
#  0. With no server, `station run` refuses with one line naming the address.
#  2. Three stations (three databases, one remote token) started at the same
#     instant all pass pre-flight and each provisions its board.
set -eu
. "$TOP/tests/lib.sh"
LINE_SID=remote-1
. "$TOP/tests/line-lib.sh"

CLIENT=/usr/lib/x86_64-linux-gnu/pkcs11/p11-kit-client.so
SOFTHSM=/usr/lib/softhsm/libsofthsm2.so
command -v p11-kit >/dev/null || fail "p11-kit is needed (apt-get install p11-kit)"
[ -r "$CLIENT" ] || fail "$CLIENT is needed (apt-get install p11-kit-modules)"

N=16
PORTS="1-1 1-2"
LINE_MAX_FAILURES=2 LINE_HSM_MODULE=$CLIENT line_bench widget LR $((N + 3))
board() { sed -n "$(($1 + 1))p" mfg/LR-boards.csv | cut -d, -f1; }   # the Nth board's dir

# --- the server: its own process group, so a kill takes its children too -----
line_p11_server "$SOFTHSM"
trap srv_stop EXIT

# --- no server: one clear line naming the address, within the start-up deadline
t0=$EPOCHSECONDS
expect_exit 1 S run --profile widget --lot LR --headless
grep -q "HSM pre-flight failed: .*no answer from the p11-kit server at unix:path=$SOCK" "$ERR" ||
	fail "no-server refusal: $(cat "$ERR")"
[ "$(wc -l < "$ERR")" = 1 ] || fail "more than one line: $(cat "$ERR")"
[ $((EPOCHSECONDS - t0)) -le 15 ] || fail "the refusal took $((EPOCHSECONDS - t0)) s"
[ "$(q "SELECT count(*) FROM units")" = 0 ] || fail "a refused run recorded units"

srv_start

# --- 1. the lot, with the server killed and started again ---------------------
i=0; boardargs=()
for p in $PORTS; do
	i=$((i + 1))
	ln -sfn "$PWD/$(board $i)" "bay-$p"
	boardargs+=(--board "$p=$PWD/bay-$p")
done
mkfifo ctl
# the operator swaps each finished board for the next; the outage starts after
# the 4th result and ends once 4 units have failed on it
operator() {
	local next=3 line port results=0 down=0 state=up
	exec 3<>ctl
	while IFS= read -r line; do
		printf '%s\n' "$line" >> events.jsonl
		case $line in
		*'"kind":"unit-result"'*) ;;
		*'"kind":"bay-held"'*)   # the lot would never finish: stop now
			touch held; kill $(line_station_pids run) 2>/dev/null || true; continue ;;
		*) continue ;;
		esac
		results=$((results + 1))
		case $line in *'"reason_code":"hsm_unreachable"'*) down=$((down + 1)) ;; esac
		if [ $state = up ] && [ $results -ge 4 ]; then
			srv_stop; state=down; echo "$results" > outage.start
		elif [ $state = down ] && [ $down -ge 4 ]; then
			srv_start; state=back; echo "$results" > outage.end
		fi
		port=$(printf '%s' "$line" | sed -n 's/.*"bay":"\([^"]*\)".*/\1/p')
		[ $next -le $N ] || continue
		echo "unplug $port" >&3
		ln -sfn "$PWD/$(board $next)" "bay-$port"
		echo "plug $port" >&3
		next=$((next + 1))
	done
	exec 3>&-
}
t0=$EPOCHSECONDS
rc=0
timeout 60 "$BUILD/fx-usbemu" --quiet --control ctl "${boardargs[@]}" -- \
	"$STATION" --db st.db --station-id "$LINE_SID" --user op-olga run --profile widget \
	--lot LR --headless --bays 2 --max-units $N 2> run.err | operator || rc=$?
[ ! -e held ] || fail "a bay was held for HSM failures"
[ "$rc" = 0 ] || { cat run.err; fail "station run exited $rc"; }
[ -e outage.end ] || fail "the outage never ended: $(grep -c hsm_unreachable events.jsonl) unreachable"
echo "lot with outage: $((EPOCHSECONDS - t0)) s"

[ "$(grep -c '"kind":"unit-result"' events.jsonl)" = $N ] || fail "expected $N results"
grep -q '"kind":"bay-held"' events.jsonl && fail "a bay was held for HSM failures"
# the header was told: down with the code, then back
grep -q '"kind":"hsm-state".*"outcome":"fail".*"reason_code":"hsm_unreachable"' events.jsonl ||
	fail "no hsm-state fail event with reason_code hsm_unreachable"
awk '/"kind":"hsm-state"/ && /"outcome":"fail"/ { down = 1 }
     /"kind":"hsm-state"/ && /"outcome":"ok"/ && down { back = 1 } END { exit !back }' \
	events.jsonl || fail "no hsm-state ok after the outage"
unreach=$(q "SELECT count(*) FROM units WHERE reason_code='hsm_unreachable'")
[ "$unreach" -ge 4 ] || fail "only $unreach units failed hsm_unreachable"
[ "$(q "SELECT count(*) FROM units WHERE reason_code='hsm_unreachable'
	AND (status <> 'fail' OR stage <> 'sign')")" = 0 ] ||
	fail "hsm_unreachable outside a FAIL at sign: $(q "SELECT status, stage FROM units WHERE reason_code='hsm_unreachable'")"
[ "$(q "SELECT count(*) FROM units WHERE status <> 'pass' AND reason_code <> 'hsm_unreachable'")" = 0 ] ||
	fail "a unit failed for another reason: $(q "SELECT status, stage, reason FROM units WHERE status <> 'pass' AND reason_code <> 'hsm_unreachable'")"
grep 'hsm_unreachable' events.jsonl | grep -q '"kind":"unit-result".*the HSM is unreachable' ||
	fail "the tile does not say the HSM is unreachable"
# the line resumed by itself: every unit after the outage passed
tail_n=$((N - $(cat outage.end) - 2))
[ "$tail_n" -ge 4 ] || fail "too few units after the outage ($tail_n)"
[ "$(grep '"kind":"unit-result"' events.jsonl | tail -n "$tail_n" | grep -c '"outcome":"pass"')" = "$tail_n" ] ||
	fail "units after the outage did not all pass"
pass=$(q "SELECT count(*) FROM units WHERE status='pass'")
# invariant 2: nothing left reserved or issued; issued = injected + revoked
[ "$(q "SELECT count(*) FROM certificates WHERE status IN ('reserved','issued')")" = 0 ] ||
	fail "certificates unaccounted for: $(q "SELECT serial, status FROM certificates WHERE status IN ('reserved','issued')")"
[ "$(q "SELECT count(*) FROM certificates WHERE status='injected'")" = "$pass" ] || fail "injected != pass"
revoked=$(q "SELECT count(*) FROM certificates WHERE status='revoked'")
[ "$(q "SELECT count(*) FROM certificates WHERE status <> 'void'")" = $((pass + revoked)) ] ||
	fail "issued != injected + revoked"
expect_exit 0 S audit verify
for uid in $(q "SELECT unique_id FROM units WHERE status='pass'"); do
	dir=$(grep ",$uid," mfg/LR-boards.csv | cut -d, -f1)
	openssl verify -CAfile hsm/ca.pem "$dir/cert.pem" >/dev/null || fail "$uid: certificate does not verify"
done
echo "remote lot: $pass passed, $unreach failed hsm_unreachable, $revoked revoked"

# --- 2. three stations, one remote token, started at the same instant ---------
# Each has its own database (a copy of the configured one: profile and
# allowlist) and its own station id and board.
for k in 1 2 3; do
	mkdir "st$k"
	q "VACUUM INTO 'st$k/st.db'"
done
t0=$EPOCHSECONDS
pids=()
for k in 1 2 3; do
	bd=$PWD/$(board $((N + k)))
	(cd "st$k" && exec timeout 60 "$BUILD/fx-usbemu" --quiet --board "1-1=$bd" -- \
		"$STATION" --db st.db --station-id "remote-$((k + 1))" --user op-olga run \
		--profile widget --lot LR --headless --bays 1 --max-units 1 > events.jsonl 2> run.err) &
	pids+=($!)
done
for k in 1 2 3; do
	rc=0; wait "${pids[$((k - 1))]}" || rc=$?
	[ "$rc" = 0 ] || fail "station $k exited $rc: $(cat "st$k/run.err")"
	grep -q '"kind":"unit-result".*"outcome":"pass"' "st$k/events.jsonl" ||
		fail "station $k did not pass its board: $(grep unit-result "st$k/events.jsonl")"
done
echo "three stations: $((EPOCHSECONDS - t0)) s"
echo "hsm_remote: ok"
