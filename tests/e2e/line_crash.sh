# Crash recovery (invariant 7): the station is killed with SIGKILL as each stage
# of the pipeline begins, in turn, with a fresh board each time, then restarted
# on the same board.  After every restart: no unit is left in progress (the
# killed one is marked interrupted), no certificate is left reserved or issued
# (orphans revoked, and on the CRL), nothing committed is lost, and no board is
# provisioned twice.  Through libusb (fx-usbemu), SoftHSM and SQLite.
# e2e: alone (a kill must land inside a stage of milliseconds: no other script beside it)
set -eu
. "$TOP/tests/lib.sh"
LINE_SID=crash-$$   # unique on this machine: see line_station_pids
. "$TOP/tests/line-lib.sh"

STAGES="detect identify allowlist flash verify-image keygen csr csr-policy attest reserve sign inject prove lock commit"
n=0
for s in $STAGES; do n=$((n + 1)); done

# slow enough that a kill lands inside the long stages (flash ~0.25 s, keygen
# 0.25 s, CSR/attest/prove 0.15 s each); the quick ones are hit when they can be
LINE_FW_SIZE=32000 line_bench crashy LC $n --knob flash_bps=131072 --knob keygen_ms=250 \
	--knob sign_ms=150

# One run of the line on one board: headless, 1 bay, stops after one result.
run_line() {   # BOARD_DIR EVENTS_FILE
	timeout 120 "$BUILD/fx-usbemu" --quiet --board "1-1=$PWD/$1" -- \
		"$STATION" --db st.db --station-id "$LINE_SID" --user op run --profile crashy \
		--lot LC --headless --bays 1 --max-units 1 > "$2" 2>> run.err
}

check_at_rest() {   # CONTEXT
	[ "$(q "SELECT count(*) FROM units WHERE status='in-progress'")" = 0 ] ||
		fail "$1: a unit is still in progress"
	[ "$(q "SELECT count(*) FROM certificates WHERE status IN ('reserved','issued')")" = 0 ] ||
		fail "$1: certificates not settled: $(q "SELECT serial, status FROM certificates WHERE status IN ('reserved','issued')")"
	[ "$(q "SELECT count(*) FROM certificates WHERE status='injected'")" = \
	  "$(q "SELECT count(*) FROM units WHERE status='pass'")" ] || fail "$1: injected != pass"
	[ "$(q "SELECT count(*) FROM (SELECT unique_id FROM units WHERE status='pass'
		GROUP BY unique_id HAVING count(*) > 1)")" = 0 ] || fail "$1: a board provisioned twice"
	S audit verify >/dev/null || fail "$1: audit chain"
}

i=0; killed_mid_unit=0
for s in $STAGES; do
	i=$((i + 1))
	board=mfg/boards/$(printf 'LC-%04d' $i)
	uid=$(line_board_uid "$board")
	passes_before=$(q "SELECT count(*) FROM units WHERE status='pass'")

	# --- run and kill the station as stage $s begins
	rm -f ev1
	SECONDS=0
	run_line "$board" ev1 & emu=$!
	if ! wait_lines ev1 "\"kind\":\"stage-begin\".*\"stage\":\"$s\"" 1 $emu; then
		erc=0; wait $emu || erc=$?
		fail "stage $s never began (the run exited $erc after $SECONDS s): $(tail -2 ev1; tail -5 run.err)"
	fi
	for p in $(line_station_pids "--user op run"); do kill -KILL "$p" 2>/dev/null || true; done
	wait $emu 2>/dev/null || true
	if grep -q '"kind":"unit-result"' ev1; then
		echo "  $s: the unit finished before the kill landed"
	elif [ "$(q "SELECT count(*) FROM units WHERE unique_id='$uid' AND status != 'in-progress'")" -ge 1 ]; then
		# a fresh board: the kill landed after its unit's commit, before the result event
		echo "  $s: the unit was committed before the kill landed"
	else
		killed_mid_unit=$((killed_mid_unit + 1))
		[ "$(q "SELECT count(*) FROM units WHERE unique_id='$uid' AND status='in-progress'")" = 1 ] ||
			[ "$s" = detect ] || [ "$s" = identify ] ||
			fail "$s: the killed unit has no in-progress record"
	fi

	# --- restart: recovery first, then the same board again (at full speed)
	"$BUILD/fx-board" set "$board" flash_bps 0 keygen_ms 0 sign_ms 0 >/dev/null
	rm -f ev2
	run_line "$board" ev2 || fail "$s: restart failed: $(tail -3 run.err)"
	check_at_rest "after a kill at $s"
	if grep -q '"outcome":"interrupted"' ev2; then
		[ "$(q "SELECT count(*) FROM units WHERE unique_id='$uid' AND status='interrupted'")" -ge 1 ] ||
			fail "$s: the interrupted unit is not marked"
		# recovery came before the board was taken
		first_int=$(grep -n '"outcome":"interrupted"' ev2 | head -1 | cut -d: -f1)
		first_arr=$(grep -n '"kind":"bay-arrived"' ev2 | head -1 | cut -d: -f1)
		[ "$first_int" -lt "$first_arr" ] || fail "$s: a board was accepted before recovery"
	fi
	# the board ends provisioned once, or refused because a crash left it locked
	verdict=$(q "SELECT status FROM units WHERE unique_id='$uid' ORDER BY id DESC LIMIT 1")
	case $verdict in
	pass) ;;
	reject) q "SELECT reason FROM units WHERE unique_id='$uid' ORDER BY id DESC LIMIT 1" |
		grep -Eq 'already provisioned|locked but has no committed unit' ||
		fail "$s: unexpected reject: $(q "SELECT reason FROM units WHERE unique_id='$uid'")" ;;
	*) fail "$s: board ended $verdict: $(q "SELECT reason FROM units WHERE unique_id='$uid' ORDER BY id DESC LIMIT 1")" ;;
	esac
	[ "$(q "SELECT count(*) FROM units WHERE unique_id='$uid' AND status='pass'")" -le 1 ] ||
		fail "$s: board provisioned twice"
	echo "  killed at $s: $(q "SELECT group_concat(status || '@' || stage, ' -> ') FROM
		(SELECT status, stage FROM units WHERE unique_id='$uid' ORDER BY id)")"
	[ "$(q "SELECT count(*) FROM units WHERE status='pass'")" -ge "$passes_before" ] ||
		fail "$s: a committed unit was lost"
done
[ "$killed_mid_unit" -ge 8 ] || fail "only $killed_mid_unit kills landed inside a unit"

# orphans are on the CRL
expect_exit 0 S crl --out crl.pem --hsm-config hsm/hsm.ini
revoked=$(q "SELECT count(*) FROM certificates WHERE status='revoked'")
[ "$(openssl crl -in crl.pem -noout -text | grep -c 'Serial Number')" = "$revoked" ] ||
	fail "CRL does not list the $revoked revoked certificates"
echo "line_crash: ok ($killed_mid_unit kills inside a unit, $revoked orphans revoked)"
