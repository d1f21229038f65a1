# Every table under the audit chain (issue 12), on a real database: one board
# through the line (emulated USB, SoftHSM), a role, a rework (the certificate
# revoked as superseded), a signed checkpoint and a CRL.  Then one tampering
# per table, each on a copy: `audit verify` names the table, the key and the
# field; `export` and `crl` (and once `run`) refuse with the same line.  Last, the CRL number
# with the clock set back still goes up by one (STATION_TEST_CLOCK_OFFSET_MS).
set -eu
. "$TOP/tests/lib.sh"
LINE_SID=rows-1
. "$TOP/tests/line-lib.sh"

line_bench widget LR 1
A=mfg/boards/LR-0001
UA=$(line_board_uid "$A")
timeout 60 "$BUILD/fx-usbemu" --quiet --board "1-1=$PWD/$A" -- \
	"$STATION" --db st.db --station-id "$LINE_SID" --user op-olga run --profile widget \
	--lot LR --headless --bays 1 --max-units 1 > events.jsonl 2> run.err || { cat run.err; fail "run"; }
grep -q '"outcome":"pass"' events.jsonl || fail "no pass: $(cat events.jsonl)"
SER=$(q "SELECT cert_serial FROM units WHERE status = 'pass'")
expect_exit 0 S role grant eng engineer --login "$(id -un)"
expect_exit 0 S rework "$UA" --reason "radio module replaced"
expect_exit 0 S checkpoint --hsm-config hsm/hsm.ini
expect_exit 0 S crl --out c1.crl --hsm-config hsm/hsm.ini
expect_exit 0 S audit verify

T() { "$STATION" --db "$1" --station-id "$LINE_SID" --user eng "${@:2}"; }
# tamper NAME SQL REGEX: on a copy, verify names it (REGEX), export and crl refuse.
tamper() {
	local db=$1.db
	cp st.db "$db"
	sqlite3 "$db" "$2"
	expect_exit 1 T "$db" audit verify
	grep -Eq "$3" "$ERR" || fail "$1: verify said: $(cat "$ERR")"
	expect_exit 1 T "$db" export --lot LR --format csv --out "$1.csv"
	grep -Eq "export: refusing to act on a database that does not verify: $3" "$ERR" ||
		fail "$1: export said: $(cat "$ERR")"
	[ ! -e "$1.csv" ] || fail "$1: export wrote a file"
	expect_exit 1 T "$db" crl --out "$1.crl" --hsm-config hsm/hsm.ini
	grep -Eq "crl: refusing to act on a database that does not verify: $3" "$ERR" ||
		fail "$1: crl said: $(cat "$ERR")"
}
tamper verdict "UPDATE units SET status = 'fail' WHERE id = 1" \
	'row units id=1 differs from its latest row event \(seq [0-9]+\): field status'
tamper unit-id "UPDATE units SET id = 99 WHERE id = 1" 'row units id=99 has no row event'
tamper cert-status "UPDATE certificates SET status = 'injected', revoked_ms = NULL,
	revoke_reason = NULL WHERE serial = '$SER'" "row certificates serial=$SER differs .*: field status"
tamper cert-der "UPDATE certificates SET der = x'3000' WHERE serial = '$SER'" \
	"row certificates serial=$SER differs .*: field der"
tamper allowlist "INSERT INTO allowlist (lot_id, unique_id, import_sha256, line)
	VALUES (1, '0000000000000000000000FF', 'x', 9)" 'row allowlist id=[0-9]+ has no row event'
tamper profile "UPDATE profiles SET content = replace(content, 'libsofthsm2.so', 'evil.so')" \
	'row profiles id=1 differs .*: field content'
tamper role "UPDATE roles SET granted_by = 'mallory'" 'row roles name=eng differs .*: field granted_by'
tamper rework "UPDATE reworks SET reason = 'none'" 'row reworks id=1 differs .*: field reason'
tamper checkpoint "DELETE FROM checkpoints" 'row checkpoints id=1 is missing'
tamper crl "UPDATE crls SET entries = 0" 'row crls number=1 differs .*: field entries'
# a table (or trigger, view, index) the migrations did not make: not even opened
cp st.db new-table.db
sqlite3 new-table.db "CREATE TABLE shadow (x)"
for cmd in "audit verify" "export --lot LR --format csv --out nt.csv" "crl --out nt.crl --hsm-config hsm/hsm.ini"; do
	# shellcheck disable=SC2086
	expect_exit 1 T new-table.db $cmd
	grep -q "schema is not the station's (not the station's: table shadow" "$ERR" ||
		fail "new-table: $cmd said: $(cat "$ERR")"
done
# run refuses too, before it opens a bay or the token
expect_exit 1 timeout 30 "$STATION" --db verdict.db --station-id "$LINE_SID" --user eng run \
	--profile widget --lot LR --headless --bays 1 --max-units 1
grep -q 'run: refusing to act on a database that does not verify: row units id=1 differs' "$ERR" ||
	fail "run on an edited database: $(cat "$ERR")"
# the profile's module path repointed in the database: run never loads it
expect_exit 1 timeout 30 "$STATION" --db profile.db --station-id "$LINE_SID" --user eng run \
	--profile widget --lot LR --headless --bays 1 --max-units 1
grep -q 'run: refusing to act on a database that does not verify: row profiles id=1 differs' \
	"$ERR" || fail "run with a repointed module: $(cat "$ERR")"

# The CRL lists the revoked serial from the chain; its number is 1, 2, ...
# whatever the clock says.
crl_no() { openssl crl -in "$1" -noout -text | grep -A1 'X509v3 CRL Number' | tail -1 | tr -d ' '; }
[ "$(crl_no c1.crl)" = 1 ] || fail "first CRL number: $(crl_no c1.crl)"
openssl crl -in c1.crl -noout -text | tr A-F a-f | grep -q "Serial Number: 0*$SER" ||
	fail "the revoked serial $SER is not on the CRL"
STATION_TEST_CLOCK_OFFSET_MS=-86400000 expect_exit 0 S crl --out c2.crl --hsm-config hsm/hsm.ini
[ "$(crl_no c2.crl)" = 2 ] || fail "CRL number after the clock went back: $(crl_no c2.crl)"
u1=$(date -d "$(openssl crl -in c1.crl -noout -lastupdate | cut -d= -f2)" +%s)
u2=$(date -d "$(openssl crl -in c2.crl -noout -lastupdate | cut -d= -f2)" +%s)
[ "$u2" -lt "$u1" ] || fail "the clock override did not set the clock back ($u1 -> $u2)"
# a stored number that went backwards is refused
cp st.db back.db
sqlite3 back.db "UPDATE crls SET number = 7 WHERE number = 2"
expect_exit 1 T back.db crl --out back.crl --hsm-config hsm/hsm.ini
grep -q 'row crls number=7 has no row event' "$ERR" || fail "CRL number backwards: $(cat "$ERR")"
expect_exit 0 S audit verify

# The trust anchors are pinned in the audited profile: another certificate
# put at the CA's or the manufacturer CA's path stops the line at start.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout other.key \
	-subj "/CN=Acme Manufacturer CA" -days 2 -addext basicConstraints=critical,CA:TRUE \
	-out other.pem 2>/dev/null
for anchor in hsm/ca.pem mfg/mfr-ca.pem; do
	cp "$anchor" anchor.keep
	cp other.pem "$anchor"
	expect_exit 1 timeout 30 "$STATION" --db st.db --station-id "$LINE_SID" --user eng run \
		--profile widget --lot LR --headless --bays 1 --max-units 1
	grep -q "$anchor has SHA-256 [0-9a-f]*, not the pinned [0-9a-f]*: refused" "$ERR" ||
		fail "run with $anchor replaced: $(cat "$ERR")"
	cp anchor.keep "$anchor"
done
echo "audit_rows: ok (11 tamperings named and refused, CRL numbers 1, 2, anchors pinned)"
