# Claims left open by an outage (docs/factory.md, "Open claims after an
# outage"): the ledger goes away while a station works, the station is
# SIGKILLed, the ledger comes back, the station restarts; its start settles
# the claims it left open from its own journal:
#   board 2 PASSed while the ledger was down (its `done` was only queued):
#          committed with the journal's serial; refused at station B as
#          provisioned at A (not "in progress there");
#   board 3 was killed mid-unit while the ledger was down: released; it
#          passes at station B.
# Afterwards no claim and no hold is left open.
set -eu
. "$TOP/tests/lib.sh"
LINE_SID=recon-A
. "$TOP/tests/line-lib.sh"
. "$TOP/tests/ledger-lib.sh"

pg_up
LO=(--ledger "$LEDGER" --ledger-password-file "$LEDGER_PW")
expect_exit 0 "$STATION" ledger init "${LO[@]}"
line_bench widget LR 4
q "VACUUM INTO 'b.db'"     # station B: the same profile and allowlist
B1=mfg/boards/LR-0001 B2=mfg/boards/LR-0002 B3=mfg/boards/LR-0003 B4=mfg/boards/LR-0004
U2=$(line_board_uid $B2) U3=$(line_board_uid $B3)
# a slow proof of possession keeps a unit in flight after its claim
# (board 3's longer: it must still be in flight after the checks and a
# server stop that take seconds on a loaded machine)
sed -i 's/^sign_ms = .*/sign_ms = 1500/' "$B2/knobs"
sed -i 's/^sign_ms = .*/sign_ms = 5000/' "$B3/knobs"

run_bg() {   # DB SID EVENTS MAX PORT=BOARD...: a station in the background ($emu)
	local db=$1 sid=$2 ev=$3 max=$4 args=() pb
	shift 4
	for pb in "$@"; do args+=(--board "${pb%%=*}=$PWD/${pb#*=}"); done
	timeout 60 "$BUILD/fx-usbemu" --quiet "${args[@]}" -- "$STATION" --db "$db" \
		--station-id "$sid" --user op-olga run --profile widget --lot LR --headless \
		--bays $# --max-units "$max" "${LO[@]}" > "$ev" 2> "$ev.err" &
	emu=$!
}
wait_for() {   # CONDITION-COMMAND...: up to 20 s
	for _ in $(seq 1 400); do "$@" && return 0; kill -0 $emu 2>/dev/null || break; sleep 0.05; done
	"$@"
}
claimed() { [ "$(psql_ledger "SELECT state FROM provisioned WHERE unique_id = '$1'" 2>/dev/null)" = claimed ]; }
passed() { grep -q "\"kind\":\"unit-result\".*\"unique_id\":\"$1\".*\"outcome\":\"pass\"" "$2"; }
kill_a() {
	for p in $(line_station_pids " run "); do kill -KILL "$p" 2>/dev/null || true; done
	wait $emu 2>/dev/null || true
}

# ---- 1. board 2 passes while the ledger is down; the station is killed -----
# board 1 first (fast): the station's batch of serials is reserved in the
# ledger, so board 2 needs the ledger only for its claim and its done
run_bg st.db recon-A a1.jsonl 2 1-1=$B1 1-2=$B2
wait_for claimed "$U2" || fail "board 2 never claimed: $(cat a1.jsonl.err)"
pg_stop
wait_for passed "$U2" a1.jsonl || fail "board 2 did not pass: $(grep unit-result a1.jsonl)"
kill_a

# ---- 2. restart with the ledger back: board 2 is committed -----------------
# board 3 is then killed mid-unit with the ledger down again
pg_start
run_bg st.db recon-A a2.jsonl 1 1-1=$B3
wait_for claimed "$U3" || fail "board 3 never claimed: $(cat a2.jsonl.err)"
[ "$(psql_ledger "SELECT state, serial FROM provisioned WHERE unique_id = '$U2'")" = \
  "committed|$(q "SELECT cert_serial FROM units WHERE unique_id = '$U2' AND status = 'pass'")" ] ||
	fail "board 2 not committed with its serial: $(psql_ledger "SELECT * FROM provisioned")"
grep -q '"kind":"log".*open claim(s) of this station settled from the journal: 1 committed, 0 released' a2.jsonl ||
	fail "no settle line: $(grep -i ledger a2.jsonl)"
pg_stop
kill_a
[ "$(q "SELECT status FROM units WHERE unique_id = '$U3'")" = in-progress ] ||
	fail "board 3 was not killed mid-unit: $(q "SELECT status, stage FROM units WHERE unique_id = '$U3'")"

# ---- 3. restart: board 3's claim is released --------------------------------
pg_start
run_bg st.db recon-A a3.jsonl 1 1-1=$B4
wait $emu || fail "station A exited: $(cat a3.jsonl.err)"
passed "$(line_board_uid $B4)" a3.jsonl || fail "board 4: $(grep unit-result a3.jsonl)"
grep -q '"kind":"log".*open claim(s) of this station settled from the journal: 0 committed, 1 released' a3.jsonl ||
	fail "no settle line: $(grep -i ledger a3.jsonl)"
[ "$(psql_ledger "SELECT count(*) FROM provisioned WHERE state = 'claimed'") $(psql_ledger "SELECT count(*) FROM in_progress")" = "0 0" ] ||
	fail "claims or holds left: $(psql_ledger "SELECT * FROM provisioned")"

# ---- 4. station B: board 2 refused (committed at A), board 3 accepted ------
sed -i 's/^sign_ms = .*/sign_ms = 0/' $B3/knobs
run_bg b.db recon-B b.jsonl 2 1-1=$B2 1-2=$B3
wait $emu || fail "station B exited: $(cat b.jsonl.err)"
grep "\"kind\":\"unit-result\".*\"unique_id\":\"$U2\"" b.jsonl |
	grep -q '"outcome":"reject".*"reason_code":"provisioned_elsewhere"' ||
	fail "board 2 at B: $(grep unit-result b.jsonl)"
grep "\"kind\":\"unit-result\".*\"unique_id\":\"$U2\"" b.jsonl | grep -q "station recon-A" ||
	fail "B's REJECT does not name A"
! grep "\"kind\":\"unit-result\".*\"unique_id\":\"$U2\"" b.jsonl | grep -q "in progress there" ||
	fail "board 2 still in progress at A"
passed "$U3" b.jsonl || fail "board 3 at B: $(grep unit-result b.jsonl)"
[ "$(psql_ledger "SELECT station_id, state FROM provisioned WHERE unique_id = '$U3'")" = "recon-B|committed" ] ||
	fail "board 3 not B's: $(psql_ledger "SELECT * FROM provisioned")"
expect_exit 0 "$STATION" --db st.db --station-id recon-A ledger verify "${LO[@]}"
expect_exit 0 S audit verify
echo "ledger_reconcile: ok"
