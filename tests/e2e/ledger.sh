# The factory ledger (docs/factory.md) on a throwaway PostgreSQL started and
# stopped here (tests/ledger-lib.sh): init, status, verify; one line for each
# bad input; two stations on one lot, a board provisioned at one REJECTed at
# the other naming the first; the server stopped mid-lot: units FAIL with
# ledger_unreachable (no bay held), the line resumes by itself, and the
# station's chain catches up in the ledger.
set -eu
. "$TOP/tests/lib.sh"
LINE_SID=ledger-A
. "$TOP/tests/line-lib.sh"
. "$TOP/tests/ledger-lib.sh"

pg_up
LO=(--ledger "$LEDGER" --ledger-password-file "$LEDGER_PW")
one_line() {   # the command failed with exactly one line matching $1
	grep -q -- "$1" "$ERR" || fail "expected '$1': $(cat "$ERR")"
	[ "$(wc -l < "$ERR")" = 1 ] || fail "more than one line: $(cat "$ERR")"
}

# ---- bad input, one line each ---------------------------------------------
expect_exit 1 "$STATION" ledger status "${LO[@]}"
one_line "the ledger has no schema: run station ledger init"
expect_exit 0 "$STATION" ledger init "${LO[@]}"
grep -Eq "version 0 -> [0-9]+$" "$OUT" || fail "init: $(cat "$OUT")"
expect_exit 0 "$STATION" ledger init "${LO[@]}"
grep -Eq "version [0-9]+ \(already current\)" "$OUT" || fail "init again: $(cat "$OUT")"
(umask 077; echo wrong-password > bad.pw)
expect_exit 1 "$STATION" ledger status --ledger "$LEDGER" --ledger-password-file bad.pw
one_line "refused the login (wrong password?)"
expect_exit 1 "$STATION" ledger status --ledger "$LEDGER"
one_line "refused the login: no password"
expect_exit 1 "$STATION" ledger status --ledger "host=127.0.0.1 port=1 dbname=x user=x"
one_line "ledger unreachable (connect): .*127.0.0.1.*port 1"
expect_exit 1 "$STATION" ledger status --ledger "$LEDGER password=$LEDGER_SECRET"
one_line "the connection string holds a password"
chmod 644 "$LEDGER_PW"
expect_exit 1 "$STATION" ledger status "${LO[@]}"
one_line "password file .* mode 0600"
chmod 600 "$LEDGER_PW"

# ---- two stations, one lot ------------------------------------------------
LINE_MAX_FAILURES=2 line_bench widget LG 14 --fault-mix "1*clone"
# board N: the Nth clean board (no fault, its id on no other board); the
# clone and its original are kept apart for the two-stations-at-once case
awk -F, 'NR > 1 { n[$2]++; row[NR] = $0 } END { for (i = 2; i <= NR; i++) {
	split(row[i], f, ","); if (f[3] == "" && n[f[2]] == 1) print row[i] } }' \
	mfg/LG-boards.csv > clean.csv
board() { sed -n "$1p" clean.csv | cut -d, -f1; }
uid() { sed -n "$1p" clean.csv | cut -d, -f2; }
[ "$(wc -l < clean.csv)" -ge 11 ] || fail "too few clean boards: $(cat mfg/LG-boards.csv)"
CLONE=$(grep ',clone of ' mfg/LG-boards.csv | head -1 | cut -d, -f1)
ORIG=mfg/boards/$(grep ',clone of ' mfg/LG-boards.csv | head -1 | sed 's/.*clone of //')
q "VACUUM INTO 'b.db'"     # station B: the same profile and allowlist, its own chain
run_at() {   # DB SID EVENTS MAX PORT=BOARD...
	local db=$1 sid=$2 ev=$3 max=$4 args=() pb
	shift 4
	for pb in "$@"; do
		case ${pb#*=} in
		mfg/*) args+=(--board "${pb%%=*}=$PWD/${pb#*=}") ;;
		*) args+=(--board "${pb%%=*}=$PWD/$(board "${pb#*=}")") ;;
		esac
	done
	timeout 60 "$BUILD/fx-usbemu" --quiet "${args[@]}" -- "$STATION" --db "$db" \
		--station-id "$sid" --user op-olga run --profile widget --lot LG --headless \
		--bays $# --max-units "$max" "${LO[@]}" > "$ev" 2> "$ev.err" ||
		fail "station $sid exited $?: $(cat "$ev.err")"
}
run_at st.db ledger-A a1.jsonl 2 1-1=1 1-2=2
[ "$(grep -c '"kind":"unit-result".*"outcome":"pass"' a1.jsonl)" = 2 ] ||
	fail "station A: $(grep unit-result a1.jsonl)"
grep -q '"kind":"ledger-state".*"outcome":"ok"' a1.jsonl || fail "no ledger-state ok event"

# board 1 moved to station B after its PASS at A; board 3 is new
run_at b.db ledger-B b1.jsonl 2 1-1=1 1-2=3
grep -q "\"kind\":\"unit-result\".*\"unique_id\":\"$(uid 1)\".*\"outcome\":\"reject\".*\"reason_code\":\"provisioned_elsewhere\"" b1.jsonl ||
	fail "board 1 at B: $(grep unit-result b1.jsonl)"
grep "\"kind\":\"unit-result\".*\"unique_id\":\"$(uid 1)\"" b1.jsonl |
	grep -q "already provisioned at station ledger-A" || fail "the REJECT does not name station A"
grep -q "\"kind\":\"unit-result\".*\"unique_id\":\"$(uid 3)\".*\"outcome\":\"pass\"" b1.jsonl ||
	fail "board 3 at B: $(grep unit-result b1.jsonl)"
[ "$(sqlite3 b.db "SELECT count(*) FROM certificates WHERE status IN ('reserved','issued')")" = 0 ] ||
	fail "station B left a certificate unaccounted for"
[ "$(sqlite3 b.db "SELECT count(*) FROM certificates c JOIN units u ON u.id = c.unit_id
	WHERE u.unique_id = '$(uid 1)'")" = 0 ] || fail "station B reserved a serial for board 1"

# ---- one id on two stations at once: a clone on both ----------------------
# the original at A and its clone at B, plugged together; a slow keygen keeps
# both units in flight past the other's hold
for b in "$ORIG" "$CLONE"; do sed -i 's/^keygen_ms = .*/keygen_ms = 2500/' "$b/knobs"; done
cuid=$(grep "^$CLONE," mfg/LG-boards.csv | cut -d, -f2)
run_at st.db ledger-A ca.jsonl 1 "1-1=$ORIG" &
pa=$!
run_at b.db ledger-B cb.jsonl 1 "1-1=$CLONE" &
pb=$!
wait $pa || fail "station A (clone)"
wait $pb || fail "station B (clone)"
for f in ca.jsonl cb.jsonl; do
	grep -q "\"kind\":\"unit-result\".*\"unique_id\":\"$cuid\".*\"outcome\":\"reject\".*\"reason_code\":\"clone_two_bays\"" $f ||
		fail "$f: the clone was not rejected as a clone: $(grep unit-result $f)"
done
grep -h '"kind":"unit-result"' ca.jsonl | grep -q "station ledger-B" || fail "A's REJECT does not name B"
grep -h '"kind":"unit-result"' cb.jsonl | grep -q "station ledger-A" || fail "B's REJECT does not name A"
for db in st.db b.db; do
	[ "$(sqlite3 $db "SELECT count(*) FROM certificates c JOIN units u ON u.id = c.unit_id
		WHERE u.unique_id = '$cuid'")" = 0 ] || fail "$db reserved a serial for the clone"
done

# ---- a lot imported once, into the ledger, seen by another station --------
# lot LH (board 10) is imported at an engineer's station E only; B's file
# has never heard of LH
{ echo "unique_id,lot,model,hw_revision"; grep "^$(uid 10)," mfg/LG.csv | sed 's/,LG,/,LH,/'; } > LH.csv
new_db e.db ledger-E
E() { "$STATION" --db e.db --user eng "$@"; }
expect_exit 2 E allowlist import LH.csv --lot LH --unsigned --ledger-password-file "$LEDGER_PW"
[ "$(sqlite3 e.db "SELECT count(*) FROM allowlist")" = 0 ] || fail "a refused import wrote"
expect_exit 0 E allowlist import LH.csv --lot LH --unsigned "${LO[@]}"
grep -q "^ledger: 1 ids added to lot LH (1 in the ledger)$" "$OUT" || fail "import LH: $(cat "$OUT")"
[ "$(sqlite3 b.db "SELECT count(*) FROM lots WHERE name='LH'")" = 0 ] || fail "B knows LH locally"
expect_exit 1 "$STATION" --db b.db --station-id ledger-B --user op-olga run --profile widget \
	--lot LH --headless
grep -q "no lot LH" "$ERR" || fail "B without the ledger: $(cat "$ERR")"
run_at b.db ledger-B b2.jsonl 1 1-1=10
grep -q "\"kind\":\"unit-result\".*\"unique_id\":\"$(uid 10)\".*\"outcome\":\"pass\"" b2.jsonl ||
	fail "board 10 at B on lot LH: $(grep unit-result b2.jsonl)"

# ---- a profile added once, into the ledger, read by another station --------
# gizmo (widget's product under another name) is added at E only; B reads it
# from the ledger at `run`, hash checked, and stores it as its own
sed 's/^name = widget$/name = gizmo/' widget.profile > gizmo.profile
expect_exit 0 E profile add gizmo.profile "${LO[@]}"
gsha=$(sed -n 's/^profile gizmo version 1 sha256 \([0-9a-f]*\)$/\1/p' "$OUT")
grep -q "^ledger: profile gizmo sha256 $gsha added$" "$OUT" || fail "profile add: $(cat "$OUT")"
expect_exit 0 E profile add gizmo.profile "${LO[@]}"
grep -q "^ledger: profile gizmo sha256 $gsha was there already$" "$OUT" || fail "again: $(cat "$OUT")"
q "VACUUM INTO 'c.db'"   # station C: no gizmo either, for the forged row below
run_p() {   # DB SID EVENTS BOARD: one unit of profile gizmo
	timeout 60 "$BUILD/fx-usbemu" --quiet --board "1-1=$PWD/$(board "$4")" -- "$STATION" \
		--db "$1" --station-id "$2" --user op-olga run --profile gizmo --lot LG --headless \
		--bays 1 --max-units 1 "${LO[@]}" > "$3" 2> "$3.err" || fail "station $2: $(cat "$3.err")"
}
[ "$(sqlite3 b.db "SELECT count(*) FROM profiles WHERE name = 'gizmo'")" = 0 ] || fail "B has gizmo"
run_p b.db ledger-B b3.jsonl 11
grep -q "\"kind\":\"unit-result\".*\"unique_id\":\"$(uid 11)\".*\"outcome\":\"pass\"" b3.jsonl ||
	fail "board 11 at B with gizmo: $(grep unit-result b3.jsonl)"
[ "$(sqlite3 b.db "SELECT sha256 FROM profiles WHERE name = 'gizmo'")" = "$gsha" ] ||
	fail "B stored another gizmo: $(sqlite3 b.db "SELECT name, sha256 FROM profiles")"
[ "$(sqlite3 b.db "SELECT profile_hash FROM units WHERE unique_id = '$(uid 11)'")" = "$gsha" ] ||
	fail "the unit does not carry the ledger's profile hash"
psql_ledger "UPDATE profiles SET content = replace(content, 'validity_days = 30', 'validity_days = 3650')
	WHERE name = 'gizmo'" >/dev/null
expect_exit 1 "$STATION" --db c.db --station-id ledger-C --user op-olga run --profile gizmo \
	--lot LG --headless "${LO[@]}"
one_line "run: ledger: profile gizmo in the ledger does not match its SHA-256"
[ "$(sqlite3 c.db "SELECT count(*) FROM profiles WHERE name = 'gizmo'")" = 0 ] || fail "C stored a forged profile"
expect_exit 1 "$STATION" --db c.db --station-id ledger-C --user op-olga run --profile nosuch \
	--lot LG --headless "${LO[@]}"
one_line "run: ledger: no profile nosuch in the ledger"

# ---- the server stops mid-lot ----------------------------------------------
N=6            # boards 4..9 through one bay
mkfifo ctl
operator() {
	local next=5 line results=0 down=0 state=up
	exec 3<>ctl
	while IFS= read -r line; do
		printf '%s\n' "$line" >> a2.jsonl
		case $line in
		*'"kind":"unit-result"'*) ;;
		*'"kind":"bay-held"'*) touch held; continue ;;
		*) continue ;;
		esac
		results=$((results + 1))
		case $line in *'"reason_code":"ledger_unreachable"'*) down=$((down + 1)) ;; esac
		if [ $state = up ] && [ $results = 1 ]; then
			pg_stop; state=down
		elif [ $state = down ] && [ $down -ge 2 ]; then
			pg_start; state=back; echo "$results" > outage.end
		fi
		[ $next -le $((N + 3)) ] || continue
		echo "unplug 1-1" >&3
		ln -sfn "$PWD/$(board $next)" bay
		echo "plug 1-1" >&3
		next=$((next + 1))
	done
	exec 3>&-
}
ln -sfn "$PWD/$(board 4)" bay
rc=0
timeout 60 "$BUILD/fx-usbemu" --quiet --control ctl --board "1-1=$PWD/bay" -- \
	"$STATION" --db st.db --station-id ledger-A --user op-olga run --profile widget \
	--lot LG --headless --bays 1 --max-units $N "${LO[@]}" 2> a2.err | operator || rc=$?
[ "$rc" = 0 ] || fail "station run exited $rc: $(cat a2.err)"
[ -e outage.end ] || fail "the outage never ended: $(grep unit-result a2.jsonl)"
[ ! -e held ] || fail "a bay was held for ledger failures"
[ "$(grep -c '"kind":"unit-result"' a2.jsonl)" = $N ] || fail "expected $N results"
grep '"kind":"unit-result".*"reason_code":"ledger_unreachable"' a2.jsonl |
	grep -q '"outcome":"fail".*factory ledger is unreachable' || fail "no ledger_unreachable FAIL"
grep -q '"kind":"ledger-state".*"outcome":"fail".*"reason_code":"ledger_unreachable"' a2.jsonl ||
	fail "no ledger-state fail event"
awk '/"kind":"ledger-state"/ && /"outcome":"fail"/ { down = 1 }
     /"kind":"ledger-state"/ && /"outcome":"ok"/ && down { back = 1 } END { exit !back }' \
	a2.jsonl || fail "no ledger-state ok after the outage"
after=$((N - $(cat outage.end)))
[ "$after" -ge 2 ] || fail "too few units after the outage ($after)"
[ "$(grep '"kind":"unit-result"' a2.jsonl | tail -n "$after" | grep -c '"outcome":"pass"')" = "$after" ] ||
	fail "units after the outage did not all pass: $(grep unit-result a2.jsonl)"
[ "$(q "SELECT count(*) FROM certificates WHERE status IN ('reserved','issued')")" = 0 ] ||
	fail "certificates unaccounted for"
expect_exit 0 S audit verify

# ---- the ledger agrees with both journals ----------------------------------
expect_exit 0 "$STATION" --db st.db ledger verify "${LO[@]}"
grep -q "^station ledger-A: [0-9]* events, chain intact, equal to the journal$" "$OUT" ||
	fail "verify A: $(cat "$OUT")"
expect_exit 0 "$STATION" --db b.db --station-id ledger-B ledger verify "${LO[@]}"
grep -q "^station ledger-B: [0-9]* events, chain intact, equal to the journal$" "$OUT" ||
	fail "verify B: $(cat "$OUT")"
expect_exit 0 "$STATION" ledger status "${LO[@]}"
grep -Eq "^ledger-A +([0-9]+) +\1 +0 " "$OUT" || fail "station A lags: $(cat "$OUT")"
pass_a=$(q "SELECT count(*) FROM units WHERE status='pass'")
[ "$(psql_ledger "SELECT count(*) FROM provisioned WHERE station_id='ledger-A' AND state='committed'")" = "$pass_a" ] ||
	fail "the ledger's committed claims of A differ from A's passes"
[ "$(psql_ledger "SELECT count(*) FROM provisioned WHERE state='claimed'") $(psql_ledger "SELECT count(*) FROM in_progress")" = "0 0" ] ||
	fail "claims or holds left: $(psql_ledger "SELECT * FROM provisioned WHERE state='claimed'")"
# every serial either station reserved was reserved in the ledger first, under its name
for sd in ledger-A:st.db ledger-B:b.db; do
	[ "$(psql_ledger "SELECT count(*) FROM serials WHERE station_id='${sd%%:*}'")" = \
	  "$(sqlite3 "${sd#*:}" "SELECT count(*) FROM certificates")" ] ||
		fail "${sd%%:*}: the ledger's serials differ from the journal's certificates"
done
[ "$(psql_ledger "SELECT count(*) FROM serials")" -gt 0 ] || fail "no serial in the ledger"
# an edited row in the ledger is named (the append-only trigger stops UPDATE;
# the owner can still disable it: verify recomputes each hash)
psql_ledger "ALTER TABLE events DISABLE TRIGGER events_append_only;
	UPDATE events SET actor='mallory' WHERE station_id='ledger-B' AND seq=2" >/dev/null
expect_exit 1 "$STATION" ledger verify "${LO[@]}"
grep -q "^station ledger-B: FAILED: event 2 was edited" "$OUT" || fail "edit not named: $(cat "$OUT")"

# ---- a station retired with a claim open: settled by an engineer ------------
# ledger-Z claimed a board and vanished before pushing any verdict
psql_ledger "INSERT INTO provisioned (unique_id, station_id, lot, pubkey_hash, unit_id, state)
	VALUES ('UID-Z', 'ledger-Z', 'LG', 'key-z', 5, 'claimed')" >/dev/null
expect_exit 2 S ledger settle "${LO[@]}"
grep -q "settle: which station" "$ERR" || fail "settle without --station: $(cat "$ERR")"
expect_exit 1 S ledger settle --station ledger-A "${LO[@]}"
one_line "ledger-A is this station"
q "SELECT 1 FROM roles WHERE role = 'engineer'" | grep -q 1 || S role grant eng engineer \
	--login "$(id -un)" >/dev/null
expect_exit 1 line_as olga ledger settle --station ledger-Z "${LO[@]}"
one_line "ledger settle"
expect_exit 0 S ledger settle --station ledger-Z "${LO[@]}"
grep -q "^station ledger-Z: 0 committed, 0 released, 0 put back (reworks), 1 left claimed" "$OUT" ||
	fail "settle: $(cat "$OUT")"
[ "$(psql_ledger "SELECT state FROM provisioned WHERE unique_id = 'UID-Z'")" = claimed ] ||
	fail "a claim without a verdict was settled"
expect_exit 0 S ledger settle --station ledger-Z --release-unknown "${LO[@]}"
grep -q "1 claim(s) without a verdict were released" "$OUT" || fail "settle --release-unknown: $(cat "$OUT")"
[ "$(psql_ledger "SELECT count(*) FROM provisioned WHERE unique_id = 'UID-Z'")" = 0 ] ||
	fail "the claim was not released"
[ "$(q "SELECT count(*) FROM events WHERE kind = 'ledger-settle' AND actor = 'eng'
	AND json_extract(detail, '$.station') = 'ledger-Z'")" = 2 ] || fail "settling is not in A's chain"
expect_exit 0 S audit verify

# ---- a newer schema: one line ----------------------------------------------
psql_ledger "INSERT INTO ledger_schema (version) VALUES (99)"
expect_exit 1 "$STATION" ledger status "${LO[@]}"
one_line "ledger schema version 99 is newer than this station.s ([0-9]*): upgrade the station"
expect_exit 1 S run --profile widget --lot LG --headless "${LO[@]}"
one_line "run: ledger: ledger schema version 99 is newer"
echo "ledger: ok"
