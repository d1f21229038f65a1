# The HSM from the command line, on SoftHSM tokens made here by
# hsm/softhsm-setup.sh: setup is idempotent; revoke + crl list exactly the
# revoked serials in a CRL that openssl verifies; checkpoint signs the audit
# head and `audit verify --key` accepts it; crl refuses a database whose
# certificates were written outside the station; wrong PIN, missing token, a PIN on
# the command line are refused with clear errors.
set -eu
. "$TOP/tests/lib.sh"
command -v sqlite3 >/dev/null || fail "the sqlite3 shell is needed"

S() { "$STATION" --db st.db --station-id st1 --user qa "$@"; }

# --- token setup: isolated, idempotent, PIN file 0600 -----------------------
expect_exit 0 "$TOP/hsm/softhsm-setup.sh" --dir hsm --label e2e-ca
grep -q "ready" "$OUT" || fail "setup: $(cat "$OUT")"
expect_exit 0 "$TOP/hsm/softhsm-setup.sh" --dir hsm --label e2e-ca
grep -q "nothing to do" "$OUT" || fail "second setup not idempotent: $(cat "$OUT")"
[ "$(stat -c %a hsm/pin)" = 600 ] || fail "PIN file mode $(stat -c %a hsm/pin)"
grep -q "^token = e2e-ca" hsm/hsm.ini || fail "hsm.ini: $(cat hsm/hsm.ini)"
expect_exit 2 "$TOP/hsm/softhsm-setup.sh" --dir hsm2 --key-type ec-p521

# --- certificates in the database to revoke ----------------------------------
expect_exit 1 S revoke 1a2b --reason keyCompromise
grep -q "database st.db does not exist" "$ERR" || fail "missing database: $(cat "$ERR")"
[ ! -e st.db ] || fail "a refused command created st.db"
new_db st.db st1
printf 'unique_id,lot,model,hw_revision\n000000000000000000000001,LOT1,Widget,B\n' > lot.csv
expect_exit 0 S allowlist import lot.csv --lot LOT1 --unsigned
for s in 1a2b3c4d5e6f708192a3b4c5d6e7f809 7f00000000000000000000000000000a 2c0ffee0000000000000000000000001; do
	sqlite3 st.db "INSERT INTO certificates (serial, unique_id, pubkey_hash, status, der, reserved_ms)
		VALUES ('$s', '000000000000000000000001', 'pk-$s', 'issued', x'3000', 0)"
done

expect_exit 2 S revoke 1a2b3c4d5e6f708192a3b4c5d6e7f809
grep -q "missing --reason" "$ERR" || fail "revoke without reason: $(cat "$ERR")"
expect_exit 2 S revoke 1a2b3c4d5e6f708192a3b4c5d6e7f809 --reason stolen
expect_exit 2 S revoke not-hex --reason keyCompromise
expect_exit 0 S revoke 1a2b3c4d5e6f708192a3b4c5d6e7f809 --reason keyCompromise
expect_exit 0 S revoke --reason superseded 0x2C:0F:FE:E0:00:00:00:00:00:00:00:00:00:00:00:01
grep -q "revoked 2c0ffee0000000000000000000000001 (superseded)" "$OUT" || fail "revoke: $(cat "$OUT")"
expect_exit 1 S revoke 1a2b3c4d5e6f708192a3b4c5d6e7f809 --reason keyCompromise
expect_exit 1 S revoke 99 --reason keyCompromise

# Those certificates were written with the sqlite3 shell, outside the station:
# no CRL is signed from that database (issue 12; docs/database.md "Rows under
# the chain").  The CRL's content from real certificates is in rework.sh.
expect_exit 1 S crl --out x.crl --hsm-config hsm/hsm.ini
grep -q "refusing to act on a database that does not verify: row certificates serial=7f00000000000000000000000000000a has no row event" "$ERR" ||
	fail "crl on an edited database: $(cat "$ERR")"
[ ! -e x.crl ] || fail "a CRL was written from an edited database"
rm -f st.db st.db-wal st.db-shm
new_db st.db st1
expect_exit 0 S allowlist import lot.csv --lot LOT1 --unsigned

# --- CRL signed in the HSM -----------------------------------------------------
expect_exit 0 S crl --out ca.crl --hsm-config hsm/hsm.ini
grep -q "0 revoked certificates" "$OUT" || fail "crl: $(cat "$OUT")"
openssl crl -in ca.crl -CAfile hsm/ca.pem -noout 2>&1 | grep -q "verify OK" || fail "CRL does not verify"
openssl crl -in ca.crl -noout -text | grep -A1 "X509v3 CRL Number" | grep -qx ' *1' ||
	fail "first CRL number: $(openssl crl -in ca.crl -noout -text)"

# explicit options instead of the file (SOFTHSM2_CONF from the environment)
SOFTHSM2_CONF=$PWD/hsm/softhsm2.conf expect_exit 0 S crl --out ca2.crl --der --token e2e-ca \
	--ca-key station-ca-key --ca-cert hsm/ca.pem --pin-file hsm/pin
openssl crl -inform DER -in ca2.crl -CAfile hsm/ca.pem -noout 2>&1 | grep -q "verify OK" ||
	fail "DER CRL does not verify"

# --- refusals ------------------------------------------------------------------
BAD_PIN=123456 expect_exit 1 S crl --out x.crl --hsm-config hsm/hsm.ini --pin-env BAD_PIN
grep -q "wrong PIN" "$ERR" || fail "wrong PIN message: $(cat "$ERR")"
grep -q 123456 "$ERR" && fail "the PIN appears in the error"
[ ! -e x.crl ] || fail "a CRL was written after a failed login"
# the right PIN still works: one failed attempt does not lock the token
expect_exit 0 S crl --out ca3.crl --hsm-config hsm/hsm.ini
expect_exit 1 S crl --out x.crl --hsm-config hsm/hsm.ini --token no-such-token
grep -q "no token labelled 'no-such-token'" "$ERR" || fail "missing token: $(cat "$ERR")"
expect_exit 2 S crl --out x.crl --hsm-config hsm/hsm.ini --pin 1234
expect_exit 2 S crl --hsm-config hsm/hsm.ini
chmod 644 hsm/pin
expect_exit 1 S crl --out x.crl --hsm-config hsm/hsm.ini
grep -q "chmod 600" "$ERR" || fail "world-readable PIN file: $(cat "$ERR")"
chmod 600 hsm/pin

# --- PIN typed at the terminal prompt (a pty from script(1)): not echoed --------
if command -v script >/dev/null; then
	grep -v '^pin_file' hsm/hsm.ini > nopin.ini
	rm -f in.fifo; mkfifo in.fifo
	script -qec "'$STATION' --db st.db crl --out tty.crl --hsm-config nopin.ini" /dev/null \
		<in.fifo >transcript.txt 2>&1 &
	spid=$!
	exec 3>in.fifo
	wait_lines transcript.txt "PIN for token 'e2e-ca'" 1 $spid 60 || true
	grep -q "PIN for token 'e2e-ca'" transcript.txt || fail "no PIN prompt: $(cat transcript.txt)"
	printf '%s\n' "$(cat hsm/pin)" >&3
	exec 3>&-
	wait $spid || fail "crl with a typed PIN failed: $(cat transcript.txt)"
	grep -qF "$(cat hsm/pin)" transcript.txt && fail "the typed PIN was echoed"
	grep -q "wrote tty.crl" transcript.txt || fail "typed PIN: $(cat transcript.txt)"
fi

# --- signed audit checkpoint ---------------------------------------------------
expect_exit 0 S checkpoint --hsm-config hsm/hsm.ini
grep -q "signed checkpoint of st1 at seq" "$OUT" || fail "checkpoint: $(cat "$OUT")"
SOFTHSM2_CONF=$PWD/hsm/softhsm2.conf pkcs11-tool --module /usr/lib/softhsm/libsofthsm2.so \
	--token-label e2e-ca --read-object --type pubkey --label station-audit-key \
	-o audit.der >/dev/null 2>&1 || fail "cannot read the audit public key"
openssl pkey -pubin -inform DER -in audit.der -out audit.pub
expect_exit 0 S audit verify --key audit.pub
grep -q "1 checkpoint" "$OUT" || fail "audit verify: $(cat "$OUT")"
openssl ecparam -name prime256v1 -genkey -noout -out other.pem 2>/dev/null
openssl pkey -in other.pem -pubout -out other.pub
expect_exit 1 S audit verify --key other.pub

# --- an RSA-3072 CA signs CRLs too ---------------------------------------------
expect_exit 0 "$TOP/hsm/softhsm-setup.sh" --dir hsm-rsa --label e2e-rsa --key-type rsa-3072
expect_exit 0 S crl --out rsa.crl --hsm-config hsm-rsa/hsm.ini
openssl crl -in rsa.crl -CAfile hsm-rsa/ca.pem -noout 2>&1 | grep -q "verify OK" || fail "RSA CRL"
echo "hsm_cli: ok"
