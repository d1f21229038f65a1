# Invariant 8: a bad input file is rejected whole, with file:line, and nothing
# is written.  The per-format cases live in allowlist_import.sh, profile_add.sh
# and hsm_cli.sh; this test checks "whole" and "nothing" across the station's
# input files at once: each file is long and valid except for its LAST line,
# so a reader that committed row by row would have written something.  After
# each refusal every table of the database has the rows it had, and no output
# file appeared.
set -eu
. "$TOP/tests/lib.sh"
. "$TOP/tests/invariant-lib.sh"

inv_bench LI 2
# every table's row count, one line
snapshot() {
	q "SELECT name FROM sqlite_master WHERE type='table' ORDER BY name" |
		while read -r t; do printf '%s=%s ' "$t" "$(q "SELECT count(*) FROM \"$t\"")"; done
}
before=$(snapshot)
unchanged() { [ "$(snapshot)" = "$before" ] || fail "$1: the db changed: $before -> $(snapshot)"; }
# refused CMD...: CMD fails (a usage or an operation error), stderr in $ERR
refused() {
	local rc=0
	"$@" > "$OUT" 2> "$ERR" || rc=$?
	[ "$rc" = 1 ] || [ "$rc" = 2 ] || fail "'$*' exited $rc: $(cat "$ERR")"
}

# --- allowlist: 400 good rows, then one bad row (line 402), signed -----------
{
	echo unique_id,lot,model,hw_revision
	for i in $(seq 1 400); do printf '%024X,LJ,SB-100,A\n' $((0x1000 + i)); done
	echo "0123456789abcdef01234567,LJ,SB-100,A"
} > long.csv
openssl dgst -sha256 -sign mfg/mfr-signer-key.pem -out long.csv.sig long.csv
expect_exit 1 S allowlist import long.csv --lot LJ --sig long.csv.sig --manufacturer-cert mfg/mfr-signer.pem --manufacturer-ca mfg/mfr-ca.pem
grep -q "long.csv:402: " "$ERR" || fail "allowlist: no file:line: $(cat "$ERR")"
unchanged "allowlist"
# the same file without its bad line imports: the refusal was the last line's
head -n 401 long.csv > good.csv
openssl dgst -sha256 -sign mfg/mfr-signer-key.pem -out good.csv.sig good.csv
expect_exit 0 S allowlist import good.csv --lot LJ --sig good.csv.sig --manufacturer-cert mfg/mfr-signer.pem --manufacturer-ca mfg/mfr-ca.pem
[ "$(q "SELECT count(*) FROM allowlist a JOIN lots l ON l.id = a.lot_id WHERE l.name='LJ'")" = 400 ] || fail "the good file did not import"
before=$(snapshot)

# --- profile: a good profile, a new version, with a bad last line ------------
{ sed 's/^validity_days = 30/validity_days = 60/' widget.profile; echo "colour = red"; } > bad.profile
n=$(wc -l < bad.profile)
expect_exit 1 S profile add bad.profile
grep -q "bad.profile:$n: " "$ERR" || fail "profile: no file:line: $(cat "$ERR")"
unchanged "profile"

# --- [hsm] settings file: good keys, then an unknown one ----------------------
{ cat hsm/hsm.ini; echo "colour = red"; } > bad.ini
n=$(wc -l < bad.ini)
refused S crl --out crl.pem --hsm-config bad.ini
grep -q "bad.ini:$n: " "$ERR" || fail "hsm ini: no file:line: $(cat "$ERR")"
[ ! -e crl.pem ] || fail "a CRL was written from a bad settings file"
refused S checkpoint --hsm-config bad.ini
grep -q "bad.ini:$n: " "$ERR" || fail "hsm ini (checkpoint): no file:line: $(cat "$ERR")"
unchanged "hsm settings"
ls crl.pem* 2>/dev/null && fail "CRL temporary files left behind"

# --- a run whose profile's files are bad: refused before any board -----------
printf 'x' >> fw.bin
expect_exit 1 S run --profile inv --lot LI --headless
grep -q "firmware image" "$ERR" || fail "image: $(cat "$ERR")"
unchanged "run with a changed image"
S audit verify >/dev/null || fail "audit chain"
echo "invariant_inputs: ok (allowlist, profile, hsm settings, image: rejected whole, db unchanged)"
