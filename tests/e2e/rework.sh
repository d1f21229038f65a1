# Rework (invariant 3) end to end, through emulated USB (fx-usbemu, the
# station's libusb code), SoftHSM and SQLite: a board passes; plugged again it
# is refused ("already provisioned"); `station rework` refuses ids that never
# passed or are on no allowlist, then authorises it (old certificate revoked,
# superseded); not reset on the bench it is refused as still locked; after the
# bench reset (fx-board wipe) it passes with a new certificate and key, which
# uses the authorisation up; the CRL lists the old serial as superseded; a
# third plug is refused again; `audit verify` is OK.
set -eu
. "$TOP/tests/lib.sh"
LINE_SID=rework-1
. "$TOP/tests/line-lib.sh"

line_bench widget LR 2
A=mfg/boards/LR-0001
B=mfg/boards/LR-0002
[ -d "$A" ] && [ -d "$B" ] || fail "the bench has no boards $A $B: $(ls mfg/boards)"
UA=$(line_board_uid "$A")
UB=$(line_board_uid "$B")

plug() {   # BOARD_DIR: one run of the line with that board in bay 1-1
	local rc=0
	timeout 60 "$BUILD/fx-usbemu" --quiet --board "1-1=$PWD/$1" -- \
		"$STATION" --db st.db --station-id "$LINE_SID" --user op-olga run --profile widget \
		--lot LR --headless --bays 1 --max-units 1 > events.jsonl 2> run.err || rc=$?
	[ "$rc" = 0 ] || { cat run.err; fail "station run exited $rc"; }
	grep -q '"kind":"unit-result"' events.jsonl || fail "no result: $(cat events.jsonl)"
}
result() { grep '"kind":"unit-result"' events.jsonl | tail -1; }
board_serial() { openssl x509 -in "$1/cert.pem" -noout -serial | cut -d= -f2 | tr 'A-F' 'a-f' | sed 's/^0*//'; }

# --- first pass -------------------------------------------------------------------
plug "$A"
result | grep -q '"outcome":"pass"' || fail "first plug: $(result)"
S1=$(q "SELECT cert_serial FROM units WHERE unique_id='$UA' AND status='pass'")
[ -n "$S1" ] && [ "$(board_serial "$A")" = "$S1" ] || fail "first certificate: db '$S1', board $(board_serial "$A")"
K1=$(q "SELECT pubkey_hash FROM units WHERE cert_serial='$S1'")

# --- plugged again: refused, as without rework -------------------------------------
plug "$A"
result | grep -q '"outcome":"reject"' || fail "second plug: $(result)"
result | grep -q "already provisioned" || fail "second plug reason: $(result)"

# --- refusals: nothing written -------------------------------------------------------
events=$(q "SELECT count(*) FROM events")
expect_exit 1 S rework "$UB" --reason "never passed"
grep -q "has no PASS unit" "$ERR" || fail "rework of an id without a PASS: $(cat "$ERR")"
expect_exit 1 S rework 0123456789ABCDEF01234567 --reason "a stranger"
grep -q "on no lot's allowlist" "$ERR" || fail "rework off the allowlist: $(cat "$ERR")"
expect_exit 2 S rework "$UA"
grep -q "missing --reason" "$ERR" || fail "rework without a reason: $(cat "$ERR")"
expect_exit 2 S rework abc --reason x
expect_exit 1 S --db nosuch.db rework "$UA" --reason x
expect_exit 0 S rework --help
grep -q "usage: station rework UNIQUE_ID --reason TEXT" "$OUT" || fail "rework --help"
[ "$(q "SELECT count(*) FROM events")" = "$events" ] || fail "a refused rework wrote events"
[ "$(q "SELECT status FROM certificates WHERE serial='$S1'")" = injected ] || fail "a refused rework revoked"

# --- the engineer authorises -----------------------------------------------------------
expect_exit 0 line_as eng-erik rework "$UA" --reason "replaced the radio module"
grep -q "certificate $S1 revoked (superseded)" "$OUT" || fail "rework output: $(cat "$OUT")"
[ "$(q "SELECT status || ' ' || revoke_reason FROM certificates WHERE serial='$S1'")" = "revoked superseded" ] ||
	fail "old certificate: $(q "SELECT status, revoke_reason FROM certificates WHERE serial='$S1'")"
[ "$(q "SELECT authorised_by || '|' || reason FROM reworks WHERE unique_id='$UA' AND new_unit_id IS NULL")" = \
	"eng-erik|replaced the radio module" ] || fail "authorisation: $(q "SELECT * FROM reworks")"
[ "$(q "SELECT actor FROM events WHERE kind='rework-authorised'")" = eng-erik ] || fail "rework-authorised event"
expect_exit 1 S rework "$UA" --reason "twice"
grep -q "open rework authorisation" "$ERR" || fail "second authorisation: $(cat "$ERR")"

# --- not reset on the bench: still locked ----------------------------------------------
plug "$A"
result | grep -q '"outcome":"reject"' || fail "locked plug: $(result)"
result | grep -q "still locked" || fail "locked plug reason: $(result)"
grep -q "rework authorised by eng-erik: replaced the radio module" events.jsonl ||
	fail "the operator is not told of the rework: $(cat events.jsonl)"
[ "$(q "SELECT count(*) FROM reworks WHERE new_unit_id IS NULL")" = 1 ] || fail "a refused attempt used the authorisation"

# --- reset, provisioned again --------------------------------------------------------------
"$BUILD/fx-board" wipe "$A"
plug "$A"
result | grep -q '"outcome":"pass"' || fail "reworked plug: $(result) $(cat run.err)"
result | grep -q "(rework)" || fail "the operator's tile does not say rework: $(result)"
S2=$(q "SELECT cert_serial FROM units WHERE unique_id='$UA' AND status='pass' AND superseded_by IS NULL")
[ -n "$S2" ] && [ "$S2" != "$S1" ] || fail "new certificate: '$S2' (old $S1)"
[ "$(board_serial "$A")" = "$S2" ] || fail "the board holds $(board_serial "$A"), not $S2"
openssl verify -CAfile hsm/ca.pem "$A/cert.pem" >/dev/null || fail "new certificate does not verify"
[ "$(q "SELECT pubkey_hash FROM units WHERE cert_serial='$S2'")" != "$K1" ] || fail "the board kept its old key"
[ "$(q "SELECT count(*) FROM units u JOIN reworks r ON r.id = u.rework_id
	WHERE u.cert_serial='$S2' AND r.new_unit_id = u.id AND r.old_serial='$S1'")" = 1 ] ||
	fail "the new unit does not name the authorisation it used"
[ "$(q "SELECT count(*) FROM events WHERE kind='rework-consumed' AND actor='op-olga'")" = 1 ] ||
	fail "rework-consumed event"
[ "$(q "SELECT status FROM certificates WHERE serial='$S2'")" = injected ] || fail "new certificate state"

# --- and once more: refused, the authorisation was single-use ---------------------------
plug "$A"
result | grep -q "already provisioned" || fail "plug after rework: $(result)"

# --- the CRL lists the old serial, superseded; the chain verifies --------------------------
expect_exit 0 S crl --out crl.pem --hsm-config hsm/hsm.ini
openssl crl -in crl.pem -noout -text > crl.txt
grep -A5 -i "Serial Number: *0*$(printf '%s' "$S1" | tr a-f A-F)\$" crl.txt | grep -q "Superseded" ||
	fail "CRL does not list $S1 as superseded: $(cat crl.txt)"
grep -qi "Serial Number: *0*$(printf '%s' "$S2" | tr a-f A-F)\$" crl.txt && fail "CRL lists the new certificate"
expect_exit 0 S audit verify
echo "rework: ok (old $S1 revoked, new $S2)"
