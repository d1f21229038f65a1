# The factory after faults (issue 16, docs/factory.md "Tests"): three
# stations (three journals, four bays each) on one lot, one remote CA token
# served by `p11-kit server`, one ledger (PostgreSQL).  Mid-lot, in turn:
# PostgreSQL stopped and started, the p11-kit server SIGKILLed and started, and
# station A SIGKILLed with units in flight and restarted (the interrupted
# boards are plugged again).  The operator of each station plugs a board that
# FAILed again into its bay (as on the line), and the next board of the
# station's queue after a PASS or a REJECT.
# Afterwards, across the factory:
#   - every journal: nothing reserved or issued; issued = injected + revoked;
#   - no unique id PASSed twice, no public key certified twice;
#   - `station ledger verify`: every station's chain intact and equal to its
#     journal, a lag of 0; no claim or hold left open; each station's
#     committed claims are its PASSes, its serials in the ledger its journal's;
#   - a board PASSed at A and one at C are REJECTed at B.
set -eu
. "$TOP/tests/lib.sh"
LINE_SID=fac-A
. "$TOP/tests/line-lib.sh"
. "$TOP/tests/ledger-lib.sh"

CLIENT=/usr/lib/x86_64-linux-gnu/pkcs11/p11-kit-client.so
SOFTHSM=/usr/lib/softhsm/libsofthsm2.so
command -v p11-kit >/dev/null || fail "p11-kit is needed (apt-get install p11-kit)"
[ -r "$CLIENT" ] || fail "$CLIENT is needed (apt-get install p11-kit-modules)"

pg_up
LO=(--ledger "$LEDGER" --ledger-password-file "$LEDGER_PW")
expect_exit 0 "$STATION" ledger init "${LO[@]}"
LINE_HSM_MODULE=$CLIENT line_bench widget LF 24
board() { sed -n "$(($1 + 1))p" mfg/LF-boards.csv | cut -d, -f1; }
# a slower proof of possession: a unit stays in flight long enough to be hit
for i in $(seq 1 24); do sed -i 's/^sign_ms = .*/sign_ms = 150/' "$(board $i)/knobs"; done
STATIONS="A B C"
PORTS="1-1 1-2 1-3 1-4"
for x in $STATIONS; do q "VACUUM INTO '$x.db'"; done
rm -f st.db
seq 1 12 > A.queue; seq 13 18 > B.queue; seq 19 24 > C.queue

line_p11_server "$SOFTHSM"
trap 'srv_stop; pg_gone' EXIT
srv_start

# The operator of station X, four bays: a FAILed board goes back into its bay
# (0.2 s later), any other verdict frees the bay for the next board of
# X.queue.  X.port.P names the board in bay P until its verdict (the boards a
# restart plugs again); X.done when every bay is through.
next_board() {   # X PORT: the next board of X's queue into X.port.PORT; 1 when none
	local i
	i=$(($(cat "$1.next") + 1))
	if [ "$i" -gt "$(wc -l < "$1.queue")" ]; then rm -f "$1.port.$2"; return 1; fi
	echo $i > "$1.next"
	echo "$PWD/$(board "$(sed -n "${i}p" "$1.queue")")" > "$1.port.$2"
}
operator() {
	local x=$1 line port
	declare -A tries=()
	exec 3<>"$x.ctl"
	while IFS= read -r line; do
		printf '%s\n' "$line" >> "$x.jsonl"
		case $line in
		*'"kind":"unit-result"'*'"outcome":"interrupted"'*) continue ;;   # the restart's recovery
		*'"kind":"unit-result"'*) ;;
		*'"kind":"bay-held"'*) touch "$x.held"; continue ;;
		*) continue ;;
		esac
		port=${line#*\"bay\":\"}; port=${port%%\"*}
		echo "unplug $port" >&3
		case $line in *'"outcome":"fail"'*)
			tries[$port]=$((${tries[$port]:-0} + 1))
			if [ "${tries[$port]}" -lt 40 ]; then sleep 0.2; echo "plug $port" >&3; continue; fi ;;
		esac
		tries[$port]=0
		if next_board "$x" "$port"; then
			echo "plug $port $(cat "$x.port.$port")" >&3
		elif ! ls "$x".port.* >/dev/null 2>&1; then
			touch "$x.done"
		fi
	done
	exec 3>&-
}
start() {   # X: station X in the background, each bay with the board X.port.P names
	local x=$1 p args=()
	for p in $PORTS; do
		[ ! -e "$x.port.$p" ] || args+=(--board "$p=$(cat "$x.port.$p")")
	done
	( timeout 90 "$BUILD/fx-usbemu" --quiet --control "$x.ctl" "${args[@]}" -- \
		"$STATION" --db "$x.db" --station-id "fac-$x" --user op-olga run --profile widget \
		--lot LF --headless --bays "${PORTS// /,}" "${LO[@]}" 2>> "$x.err" | operator "$x" ) &
	eval "pipe_$x=\$!"
}
deal() {   # X: the first boards of X's queue into its bays
	local p
	echo 0 > "$1.next"
	rm -f "$1".port.* "$1.done" "$1.jsonl"
	for p in $PORTS; do next_board "$1" "$p" || true; done
}
pids_of() { LINE_SID=fac-$1 line_station_pids " run "; }
results() { cat ./*.jsonl 2>/dev/null | grep -c '"kind":"unit-result"' || true; }
failed() { cat ./*.jsonl 2>/dev/null | grep '"kind":"unit-result"' | grep -c "\"reason_code\":\"$1\"" || true; }
until_() {   # DESCRIPTION CONDITION: within 30 s
	local end=$((EPOCHSECONDS + 30))
	until eval "$2"; do
		[ "$EPOCHSECONDS" -lt "$end" ] || fail "never: $1 ($(results) results; $(tail -2 ./*.err))"
		sleep 0.05
	done
}

t0=$EPOCHSECONDS
for x in $STATIONS; do deal "$x"; mkfifo "$x.ctl"; start "$x"; done

# a run does not start without the ledger: every station up before the faults
until_ "three stations running" \
	'[ "$(cat ./*.jsonl 2>/dev/null | grep -c "\"kind\":\"line-started\"")" = 3 ]'
# ---- the ledger goes away and comes back -----------------------------------
until_ "3 results" '[ "$(results)" -ge 3 ]'
pg_stop
until_ "2 ledger_unreachable FAILs" '[ "$(failed ledger_unreachable)" -ge 2 ]'
pg_start
# ---- the token's server is killed and started again ------------------------
r=$(results)
until_ "2 results after the ledger's outage" '[ "$(results)" -ge $((r + 2)) ]'
srv_stop KILL   # the server and its connections die at once, mid-conversation
until_ "2 hsm_unreachable FAILs" '[ "$(failed hsm_unreachable)" -ge 2 ]'
srv_start
# ---- station A killed with units in flight, and restarted ------------------
until_ "a unit in flight at A" \
	'[ "$(sqlite3 A.db "SELECT count(*) FROM units WHERE status = '"'in-progress'"'")" -ge 1 ]'
for p in $(pids_of A); do kill -KILL "$p" 2>/dev/null || true; done
wait "$pipe_A" 2>/dev/null || true
inflight=$(sqlite3 A.db "SELECT count(*) FROM units WHERE status = 'in-progress'")
[ "$inflight" -ge 1 ] || fail "A was not killed mid-unit"
[ ! -e A.done ] || fail "A's queue ended before the kill"
start A
# ---- the lot ends ------------------------------------------------------------
until_ "every queue through" '[ -e A.done ] && [ -e B.done ] && [ -e C.done ]'
for x in $STATIONS; do for p in $(pids_of "$x"); do kill -TERM "$p" 2>/dev/null || true; done; done
for x in $STATIONS; do eval "wait \$pipe_$x" || fail "station $x: $(cat "$x.err")"; done
echo "lot with faults: $((EPOCHSECONDS - t0)) s, $(results) results, $inflight unit(s) of A killed in flight"
for x in $STATIONS; do [ ! -e "$x.held" ] || fail "a bay of $x was held"; done
grep -q "\"kind\":\"log\".*recovered $inflight interrupted unit" A.jsonl ||
	fail "A's restart did not recover its $inflight unit(s): $(grep recovered A.jsonl)"
# the interrupted boards were plugged again at A and passed there; one killed
# at its lock stage may have been locked already, with no PASS recorded: the
# station refuses it as locked (board_locked, "needs rework"), never passes it
locked=0
for uid in $(grep '"kind":"unit-result".*"outcome":"interrupted"' A.jsonl |
	sed 's/.*"unique_id":"\([^"]*\)".*/\1/'); do
	[ "$(sqlite3 A.db "SELECT count(*) FROM units WHERE unique_id = '$uid' AND status = 'pass'")" = 1 ] &&
		continue
	[ "$(sqlite3 A.db "SELECT count(*) FROM units WHERE unique_id = '$uid'
		AND status = 'interrupted' AND stage = 'lock'")" = 1 ] &&
	[ "$(sqlite3 A.db "SELECT count(*) FROM units WHERE unique_id = '$uid'
		AND status = 'reject' AND reason_code = 'board_locked'")" -ge 1 ] ||
		fail "the interrupted board $uid was not provisioned after the restart"
	echo "board $uid: killed at its lock stage, refused as locked afterwards (needs rework)"
	locked=$((locked + 1))
done

# ---- the invariants, across the factory ---------------------------------------
for x in $STATIONS; do
	Q() { sqlite3 -batch -noheader "$x.db" "$@"; }
	[ "$(Q "SELECT count(*) FROM certificates WHERE status IN ('reserved','issued')")" = 0 ] ||
		fail "$x: certificates unaccounted for"
	pass=$(Q "SELECT count(*) FROM units WHERE status = 'pass'")
	[ "$(Q "SELECT count(*) FROM certificates WHERE status = 'injected'")" = "$pass" ] ||
		fail "$x: injected != pass"
	[ "$(Q "SELECT count(*) FROM certificates WHERE status <> 'void'")" = \
	  "$(Q "SELECT count(*) FROM certificates WHERE status IN ('injected','revoked')")" ] ||
		fail "$x: issued != injected + revoked"
	[ "$(psql_ledger "SELECT count(*) FROM provisioned WHERE station_id = 'fac-$x' AND state = 'committed'")" = "$pass" ] ||
		fail "$x: the ledger's committed claims differ from its $pass passes:" \
			"$(psql_ledger "SELECT unique_id, state, serial FROM provisioned WHERE station_id = 'fac-$x'")" \
			"journal: $(Q "SELECT unique_id, cert_serial FROM units WHERE status = 'pass'")"
	[ "$(psql_ledger "SELECT count(*) FROM serials WHERE station_id = 'fac-$x'")" = \
	  "$(Q "SELECT count(*) FROM certificates")" ] || fail "$x: the ledger's serials differ"
	expect_exit 0 "$STATION" --db "$x.db" --station-id "fac-$x" ledger verify "${LO[@]}"
	grep -q "^station fac-$x: [0-9]* events, chain intact, [0-9]* rows equal to their row events, equal to the journal$" "$OUT" ||
		fail "verify $x: $(cat "$OUT")"
	expect_exit 0 "$STATION" --db "$x.db" --station-id "fac-$x" audit verify
	echo "station $x: $pass passed, $(Q "SELECT count(*) FROM units WHERE status <> 'pass'") not"
done
for x in $STATIONS; do sqlite3 "$x.db" "SELECT unique_id FROM units WHERE status = 'pass'"; done |
	sort | uniq -d > twice
[ ! -s twice ] || fail "ids passed twice: $(cat twice)"
for x in $STATIONS; do sqlite3 "$x.db" "SELECT pubkey_hash FROM certificates
	WHERE status <> 'void' AND pubkey_hash <> ''"; done |
	sort | uniq -d > twice
[ ! -s twice ] || fail "keys certified twice: $(cat twice)"
[ "$(for x in $STATIONS; do sqlite3 "$x.db" "SELECT count(*) FROM units WHERE status = 'pass'"; done |
	awk "{ s += \$1 } END { print s }")" = $((24 - locked)) ] ||
	fail "not every board of the lot passed ($locked locked at the kill)"
[ "$(psql_ledger "SELECT count(*) FROM provisioned WHERE state = 'claimed'") $(psql_ledger "SELECT count(*) FROM in_progress")" = "0 0" ] ||
	fail "claims or holds left: $(psql_ledger "SELECT * FROM provisioned WHERE state = 'claimed'")"
expect_exit 0 "$STATION" ledger status "${LO[@]}"
for x in $STATIONS; do
	grep -Eq "^fac-$x +([0-9]+) +\1 +0 " "$OUT" || fail "station $x lags: $(cat "$OUT")"
done
[ "$(failed ledger_unreachable)" -ge 2 ] && [ "$(failed hsm_unreachable)" -ge 2 ] ||
	fail "the faults did not reach the units"

# ---- a board PASSed at A and one at C, at B at once: REJECTed -----------------
printf '%s\n' 1 19 > B.queue; deal B
start B
until_ "B's two boards" '[ -e B.done ]'
for p in $(pids_of B); do kill -TERM "$p" 2>/dev/null || true; done
wait "$pipe_B" || fail "station B: $(cat B.err)"
[ "$(grep '"kind":"unit-result"' B.jsonl | grep -c '"outcome":"reject".*"reason_code":"provisioned_elsewhere"')" = 2 ] ||
	fail "at B: $(grep unit-result B.jsonl)"
echo "ledger_factory: ok"
