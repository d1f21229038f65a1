# Allowlist import: a good signed file imports in one go; every class of bad
# input is rejected with FILE:LINE and writes nothing; signatures are checked
# before anything else.
set -eu
. "$TOP/tests/lib.sh"
command -v sqlite3 >/dev/null || fail "the sqlite3 shell is needed"

DB=var/station.db
S() { "$STATION" --db "$DB" --station-id st1 --user eng1 "$@"; }
new_db "$DB" st1
uid() { printf '%024X' "$1"; }
HDR=unique_id,lot,model,hw_revision

# The manufacturer's CA and the signer certificate it issued (keyUsage
# digitalSignature); an impostor: a self-signed "CN=Acme Manufacturer CA"
# (issue 12); and the manufacturer's key certified without digitalSignature.
EC="-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes"
# shellcheck disable=SC2086
openssl req -x509 $EC -keyout mca.key -out mca.pem -days 30 -subj "/CN=Acme Manufacturer CA" \
	-addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign 2>/dev/null
# shellcheck disable=SC2086
openssl req -new $EC -keyout mfr.key -out mfr.csr -subj /CN=Acme-Manufacturing 2>/dev/null
echo keyUsage=critical,digitalSignature > ku.ext
echo keyUsage=critical,keyAgreement > noku.ext
openssl x509 -req -in mfr.csr -CA mca.pem -CAkey mca.key -days 30 -extfile ku.ext \
	-out mfr.pem 2>/dev/null
openssl x509 -req -in mfr.csr -CA mca.pem -CAkey mca.key -days 30 -extfile noku.ext \
	-out noku.pem 2>/dev/null
# shellcheck disable=SC2086
openssl req -x509 $EC -keyout evil.key -out evil.pem -days 30 -subj "/CN=Acme Manufacturer CA" \
	2>/dev/null
sign() { openssl dgst -sha256 -sign "${2:-mfr.key}" -out "$1.sig" "$1"; }

# counts: rows in lots, allowlist, events.
counts() { sqlite3 "$DB" "SELECT (SELECT count(*) FROM lots) || ' ' || (SELECT count(*) FROM allowlist) || ' ' || (SELECT count(*) FROM events)"; }

{ echo $HDR; for i in 1 2 3; do echo "$(uid $i),LOT-A,Widget Pro,B2"; done; } > good.csv
sign good.csv
expect_exit 0 S allowlist import good.csv --lot LOT-A --sig good.csv.sig --manufacturer-cert mfr.pem --manufacturer-ca mca.pem
grep -qx 'imported 3 ids into lot LOT-A (signature verified)' "$OUT" || fail "good: $(cat "$OUT")"
[ "$(stat -c %a $DB)" = 600 ] || fail "db mode $(stat -c %a $DB)"
expect_exit 0 S allowlist list --lot LOT-A
[ "$(head -1 "$OUT")" = "3 ids on lot LOT-A" ] || fail "list: $(head -1 "$OUT")"
grep -qx "$(uid 2)" "$OUT" || fail "list lacks $(uid 2)"
# The audit event names actor, file hash, row count, lot and signer.
sha=$(sha256sum good.csv | cut -d' ' -f1)
expect_exit 0 S audit log
grep -q $'allowlist-import\teng1\t.*"lot":"LOT-A".*"rows":3.*"sha256":"'"$sha"'".*"signed":true,"signer":"/CN=Acme-Manufacturing"' "$OUT" ||
	fail "audit event: $(cat "$OUT")"
before=$(counts)

# reject FILE LINE-REGEX [import options...]: rejected, message names the
# file:line and the reason, and nothing was written.
reject() {
	local file=$1 want=$2 unsigned=--unsigned; shift 2
	case " $* " in *" --sig "*) unsigned= ;; esac
	expect_exit 1 S allowlist import "$file" "$@" $unsigned
	grep -Eq "^station: allowlist import: $want" "$ERR" ||
		fail "$file: expected '$want', got: $(cat "$ERR")"
	[ "$(counts)" = "$before" ] || fail "$file: rows written ($before -> $(counts))"
}

# Re-importing the same file (same SHA-256, same lot) is a no-op that says so;
# another file with ids already known is refused.
expect_exit 0 S allowlist import good.csv --lot LOT-A --sig good.csv.sig --manufacturer-cert mfr.pem --manufacturer-ca mca.pem
grep -qx 'good.csv is already imported for lot LOT-A: nothing to do' "$OUT" || fail "again: $(cat "$OUT")"
[ "$(counts)" = "$before" ] || fail "a repeated import wrote ($before -> $(counts))"
{ cat good.csv; echo "$(uid 12),LOT-A,W,1"; } > again.csv
reject again.csv "again.csv:2: unique id $(uid 1) was already imported for lot LOT-A" --lot LOT-A
{ echo $HDR; echo "$(uid 9),LOT-B,W,1"; echo "$(uid 3),LOT-B,W,1"; } > dup-old.csv
reject dup-old.csv "dup-old.csv:3: unique id $(uid 3) was already imported for lot LOT-A" --lot LOT-B

{ echo $HDR; echo "$(uid 10),LOT-B,W,1"; echo "$(uid 11),LOT-B,W,1"; echo "$(uid 10),LOT-B,W,1"; } > dup.csv
reject dup.csv "dup.csv:4: duplicate unique id $(uid 10) \(first on line 2 of this file\)" --lot LOT-B

{ echo "unique_id,lot,model"; echo "$(uid 12),LOT-B,W"; } > hdr.csv
reject hdr.csv "hdr.csv:1: expected 4 fields" --lot LOT-B
{ echo "uid,lot,model,hw_revision"; echo "$(uid 12),LOT-B,W,1"; } > hdr2.csv
reject hdr2.csv 'hdr2.csv:1: header must be exactly' --lot LOT-B
{ echo $HDR; echo "$(uid 12),LOT-B,W,1"; echo "0123456789abcdef01234567,LOT-B,W,1"; } > lower.csv
reject lower.csv 'lower.csv:3: unique id "0123456789abcdef01234567" is not 24 upper-case hex digits' --lot LOT-B
{ echo $HDR; echo "ABC,LOT-B,W,1"; } > short.csv
reject short.csv 'short.csv:2: unique id "ABC" is not 24' --lot LOT-B
{ echo $HDR; echo "$(uid 12),LOT-B,W,1"; echo "$(uid 13),LOT-C,W,1"; } > lot.csv
reject lot.csv 'lot.csv:3: lot "LOT-C" does not match --lot LOT-B' --lot LOT-B
{ echo $HDR; echo "$(uid 12),LOT-B,W,1,extra"; } > fields.csv
reject fields.csv 'fields.csv:2: expected 4 fields .*found 5' --lot LOT-B
{ echo $HDR; echo "$(uid 12),LOT-B,,1"; } > empty-model.csv
reject empty-model.csv 'empty-model.csv:2: model must be 1..64' --lot LOT-B
{ echo $HDR; echo "$(uid 12),LOT-B,$(printf 'M%.0s' $(seq 65)),1"; } > long-model.csv
reject long-model.csv 'long-model.csv:2: model must be 1..64' --lot LOT-B
{ echo $HDR; printf '%s,LOT-B,W,\001\n' "$(uid 12)"; } > ctrl.csv
reject ctrl.csv 'ctrl.csv:2: hw_revision must be' --lot LOT-B
{ echo $HDR; printf '%s,LOT-B,W,\377\n' "$(uid 12)"; } > utf8.csv
reject utf8.csv 'utf8.csv:2: hw_revision must be' --lot LOT-B
{ echo $HDR; echo "$(uid 12),LOT-B,$(printf 'x%.0s' $(seq 300)),1"; } > big-field.csv
reject big-field.csv 'big-field.csv:2: field 3 is longer than 256 bytes' --lot LOT-B
{ echo $HDR; echo "$(uid 12),LOT-B,\"W,1"; echo "$(uid 13),LOT-B,W,1"; } > quote.csv
reject quote.csv 'quote.csv:[23]: (malformed CSV|model must be)' --lot LOT-B
{ echo $HDR; echo "$(uid 12),LOT-B,W\"x,1"; } > quote2.csv
reject quote2.csv 'quote2.csv:2: malformed CSV' --lot LOT-B
: > empty.csv
reject empty.csv 'empty.csv:1: empty file' --lot LOT-B
echo $HDR > header-only.csv
reject header-only.csv 'header-only.csv: no rows after the header' --lot LOT-B
truncate -s 65M huge.csv
reject huge.csv 'huge.csv: allowlist is larger than' --lot LOT-B
mkdir dir.csv
reject dir.csv 'dir.csv: allowlist is not a regular file' --lot LOT-B
reject missing.csv 'missing.csv: cannot open allowlist' --lot LOT-B
# a bad lot name is refused where it enters, as a usage error (exit 2)
expect_exit 2 S allowlist import good.csv --lot 'bad lot' --unsigned
grep -q "a lot name is 1..64 printable characters" "$ERR" || fail "bad lot: $(cat "$ERR")"
[ "$(counts)" = "$before" ] || fail "bad lot: rows written"
# listing a lot that does not exist fails and names the lots that do
expect_exit 1 S allowlist list --lot NOPE
grep -q "no lot NOPE in this database; the lots are: LOT-A" "$ERR" || fail "list NOPE: $(cat "$ERR")"

# Signatures: checked before the file is parsed; any mismatch imports nothing.
{ echo $HDR; echo "$(uid 20),LOT-S,W,1"; echo "$(uid 21),LOT-S,W,1"; } > signed.csv
sign signed.csv
openssl dgst -sha256 -sign evil.key -out evil.sig signed.csv
# the impostor, signing with its own key: it does not chain to the CA
reject signed.csv 'evil.pem \(/CN=Acme Manufacturer CA\) does not chain to the manufacturer CA mca.pem' \
	--lot LOT-S --sig evil.sig --manufacturer-cert evil.pem --manufacturer-ca mca.pem
# the manufacturer's own key, certified without digitalSignature
reject signed.csv 'noku.pem \(/CN=Acme-Manufacturing\) has no digitalSignature key usage' \
	--lot LOT-S --sig signed.csv.sig --manufacturer-cert noku.pem --manufacturer-ca mca.pem
reject signed.csv 'evil.sig: signature does not verify' --lot LOT-S --sig evil.sig --manufacturer-cert mfr.pem --manufacturer-ca mca.pem
cp signed.csv tampered.csv; echo "$(uid 22),LOT-S,W,1" >> tampered.csv
reject tampered.csv 'signed.csv.sig: signature does not verify' --lot LOT-S --sig signed.csv.sig --manufacturer-cert mfr.pem --manufacturer-ca mca.pem
reject signed.csv 'mfr.key: not a PEM certificate' --lot LOT-S --sig signed.csv.sig --manufacturer-cert mfr.key --manufacturer-ca mca.pem
# A bad signature wins over bad content: the file is never parsed.
sign lower.csv
openssl dgst -sha256 -sign evil.key -out lower.csv.sig lower.csv
reject lower.csv 'lower.csv.sig: signature does not verify' --lot LOT-B --sig lower.csv.sig --manufacturer-cert mfr.pem --manufacturer-ca mca.pem
expect_exit 2 S allowlist import signed.csv --lot LOT-S --sig signed.csv.sig
expect_exit 2 S allowlist import signed.csv
expect_exit 2 S allowlist import --lot LOT-S
# No signature is an explicit choice: without --unsigned the file is refused untouched.
expect_exit 2 S allowlist import good.csv --lot LOT-Z
grep -q 'no --sig: give the manufacturer' "$ERR" || fail "unsigned refusal: $(cat "$ERR")"
expect_exit 2 S allowlist import signed.csv --lot LOT-S --sig signed.csv.sig --manufacturer-cert mfr.pem --manufacturer-ca mca.pem --unsigned
[ "$(counts)" = "$before" ] || fail "refused imports wrote rows"
expect_exit 2 S allowlist frob
expect_exit 0 S allowlist --help

# A spreadsheet export: byte order mark and CRLF line endings are fine.
printf '\357\273\277%s\r\n%s,LOT-S,"Widget, Pro",B\r\n' $HDR "$(uid 30)" > excel.csv
expect_exit 0 S allowlist import excel.csv --lot LOT-S --unsigned
grep -q 'imported 1 ids into lot LOT-S (unsigned)' "$OUT" || fail "excel: $(cat "$OUT")"
expect_exit 0 S allowlist import signed.csv --lot LOT-S --sig signed.csv.sig --manufacturer-cert mfr.pem --manufacturer-ca mca.pem
expect_exit 0 S allowlist list --lot LOT-S
[ "$(head -1 "$OUT")" = "3 ids on lot LOT-S" ] || fail "LOT-S: $(head -1 "$OUT")"
expect_exit 0 S audit verify
grep -qx 'OK 13 events, 0 checkpoints' "$OUT" || fail "audit: $(cat "$OUT")"
echo "allowlist_import: ok"
