# The engineer's per-lot export (station export): a real lot of 4 simulated
# boards (one refuses LOCK: FAIL, certificate revoked) provisioned through
# emulated USB, SoftHSM and SQLite; then CSV, JSON lines and the signed
# manifest are exported and checked against the database, the manifest is
# verified by `station export verify` AND independently with openssl (the JWS
# signing input re-made, r||s turned into DER), and tampered manifests fail.
set -eu
. "$TOP/tests/lib.sh"
LINE_SID=export-$$
. "$TOP/tests/line-lib.sh"
command -v python3 >/dev/null || fail "python3 is needed"

N=4
LINE_MAX_FAILURES=50 line_bench widget LX $N --fault-mix "1*refuse_lock=1"
i=0; bargs=()
for b in $(tail -n +2 mfg/LX-boards.csv | cut -d, -f1); do
	i=$((i + 1)); bargs+=(--board "1-$i=$PWD/$b")
done
rc=0
timeout 120 "$BUILD/fx-usbemu" --quiet "${bargs[@]}" -- \
	"$STATION" --db st.db --station-id "$LINE_SID" --user op-olga run --profile widget \
	--lot LX --headless --bays $N --max-units $N > events.jsonl 2> run.err || rc=$?
[ "$rc" = 0 ] || { cat run.err; fail "station run exited $rc"; }
[ "$(q "SELECT count(*) FROM units WHERE status='pass'")" = 3 ] ||
	fail "3 boards should pass: $(q "SELECT unique_id, status, stage, reason FROM units")"
[ "$(q "SELECT count(*) FROM certificates WHERE status='revoked'")" = 1 ] || fail "one revoked"
HSM=(--hsm-config hsm/hsm.ini)

# --- usage errors (2), refusals (1), nothing written ------------------------
expect_exit 0 S export --help
grep -q "usage: station export" "$OUT" || fail "help"
expect_exit 2 S export
expect_exit 2 S export --lot LX
expect_exit 2 S export --lot LX --format xml
grep -q "format must be csv, jsonl, manifest, manifest-microchip or openhtf" "$ERR" || fail "format: $(cat "$ERR")"
expect_exit 2 S export --lot LX --format csv --token line-ca
expect_exit 2 S export --lot LX --format csv extra
expect_exit 2 S export --lot LX --format manifest          # no HSM options
expect_exit 2 S export verify
expect_exit 2 S export verify some.manifest                  # no --signer
expect_exit 1 S export --lot NOPE --format csv --out nope.csv
grep -q "no lot NOPE in this database; the lots are: LX" "$ERR" || fail "unknown lot: $(cat "$ERR")"
expect_exit 1 S export --lot 'L X' --format jsonl
grep -q 'lot name "L X" is not valid' "$ERR" || fail "bad lot: $(cat "$ERR")"
expect_exit 1 "$STATION" --db none.db export --lot LX --format csv
grep -q "database none.db does not exist" "$ERR" || fail "missing db: $(cat "$ERR")"
[ ! -e nope.csv ] && [ ! -e none.db ] || fail "a refused export left a file"
ls nope.csv.tmp* >/dev/null 2>&1 && fail "a temporary file was left"
[ "$(q "SELECT count(*) FROM events WHERE kind='export'")" = 0 ] || fail "a refusal was audited"

# --- CSV: one row per unit, checked against the database ---------------------
expect_exit 0 S export --lot LX --format csv --out lx.csv
grep -q "^exported lot LX (csv): 4 units: 3 pass, 1 fail, 0 reject, 0 interrupted, 0 in progress; yield 75.0% (3 of 4 boards on the allowlist), first-pass yield 75.0%; 0 strangers (0 units) not counted; sha256 $(sha256sum lx.csv | cut -d' ' -f1) -> lx.csv$" "$OUT" ||
	fail "csv summary: $(cat "$OUT")"
[ "$(stat -c %a lx.csv)" = 644 ] || fail "mode $(stat -c %a lx.csv)"
expect_exit 0 S export --lot LX --format csv
cmp -s "$OUT" lx.csv || fail "stdout and --out differ"
grep -q "^exported lot LX (csv)" "$ERR" || fail "summary on stderr with stdout output"
q "SELECT id, unique_id, status, stage, cert_serial, bay, operator FROM units ORDER BY id" > db.units
q "SELECT serial, status, hex(der) FROM certificates WHERE status <> 'reserved' ORDER BY serial" > db.certs
python3 - lx.csv db.units db.certs <<'PY'
import base64, csv, sys
hdr = ("unit_id,unique_id,lot,status,stage,reason,bay,station_id,operator,profile_name,"
       "profile_version,profile_sha256,firmware_sha256,pubkey_sha256,started,finished,"
       "superseded_by,rework_id,cert_serial,cert_status,cert_issued,cert_revoked,"
       "cert_revoke_reason,cert_der_base64,reason_code,reason_plain,duration_ms,model,"
       "hw_revision,on_allowlist")
raw = open(sys.argv[1], 'rb').read()
assert raw.startswith(hdr.encode() + b'\r\n'), "header"
assert raw.count(b'\r\n') == raw.count(b'\n'), "CRLF line ends"
rows = list(csv.DictReader(open(sys.argv[1], newline='')))
units = [l.split('|') for l in open(sys.argv[2]).read().splitlines()]
certs = {l.split('|')[0]: l.split('|') for l in open(sys.argv[3]).read().splitlines()}
assert len(rows) == len(units) == 4, len(rows)
for r, (uid_, uniq, status, stage, serial, bay, op) in zip(rows, units):
    assert (r['unit_id'], r['unique_id'], r['status'], r['stage'], r['bay'], r['operator']) == \
        (uid_, uniq, status, stage, bay, op), (r, uniq)
    assert r['lot'] == 'LX' and r['profile_name'] == 'widget' and r['profile_version'] == '1'
    assert r['started'].endswith('Z') and r['finished'].endswith('Z')
    assert r['cert_serial'] == serial and serial in certs, (serial, r)
    assert r['cert_status'] == certs[serial][1]
    assert base64.b64decode(r['cert_der_base64']).hex().upper() == certs[serial][2]
    if status == 'pass':
        assert r['cert_status'] == 'injected' and r['reason'] == 'certificate ' + serial
    else:
        assert r['cert_status'] == 'revoked' and r['cert_revoke_reason'] and r['cert_revoked']
        assert r['stage'] == 'lock' and r['reason']
PY

# --- JSON lines: units, then the summary; certificates verify -----------------
expect_exit 0 S export --lot LX --format jsonl --out lx.jsonl
python3 - lx.jsonl <<'PY'
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1])]
units, summ = lines[:-1], lines[-1]
assert [u['record'] for u in units] == ['unit'] * 4 and summ['record'] == 'summary'
assert (summ['lot'], summ['units'], summ['pass'], summ['fail'], summ['boards'],
        summ['boards_passed'], summ['allowlisted'], summ['yield']) == ('LX', 4, 3, 1, 4, 3, 4, 0.75), summ
for i, u in enumerate(units):
    assert u['profile']['name'] == 'widget' and len(u['profile']['sha256']) == 64
    c = u['certificate']
    assert c['status'] == ('injected' if u['status'] == 'pass' else 'revoked'), u
    assert (c['revoked'] is None) == (u['status'] == 'pass')
    open('cert%d.pem' % i, 'w').write(c['pem'])
PY
for i in 0 1 2 3; do
	openssl verify -CAfile hsm/ca.pem cert$i.pem >/dev/null || fail "cert$i.pem from the JSON lines"
done

# --- the manifest: station export verify, and openssl on its own --------------
expect_exit 0 S export signer --out signer.pem "${HSM[@]}"
grep -q "wrote signer.pem: audit key 'station-audit-key'" "$OUT" || fail "signer: $(cat "$OUT")"
# the signer is the HSM audit key: the same key that signs the audit checkpoints
expect_exit 0 S checkpoint "${HSM[@]}"
openssl pkey -pubin -in signer.pem -outform DER -out signer.der
[ "$(q "SELECT hex(pubkey_der) FROM checkpoints ORDER BY id DESC LIMIT 1")" = \
  "$(od -An -v -tx1 signer.der | tr -d ' \n' | tr a-f A-F)" ] || fail "signer is not the audit key"
expect_exit 0 S export --lot LX --format manifest --out lx.manifest "${HSM[@]}"
expect_exit 0 S export verify lx.manifest --signer signer.pem --ca hsm/ca.pem
grep -q "^OK lx.manifest: 3 entries, lot LX, manifest [0-9a-f]\{32\}, signer kid [A-Za-z0-9_-]\{43\}, CA trusted$" "$OUT" ||
	fail "verify: $(cat "$OUT")"
[ "$(grep -c '"uniqueId"' lx.manifest)" = 3 ] || fail "one line per entry"
# independently: split each JWS, r||s -> DER, openssl dgst -verify; the
# certificate (x5c[0]) chains to the CA; its CN is the unique id; all 3 passes
cat > jws.py <<'PY'
import base64, json, sys
def b64u(s): return base64.urlsafe_b64decode(s + '=' * (-len(s) % 4))
def der_int(b):
    b = b.lstrip(b'\0') or b'\0'
    return b'\x02' + bytes([len(b) + (b[0] >> 7)]) + (b'\0' if b[0] & 0x80 else b'') + b
for i, e in enumerate(json.load(open(sys.argv[1]))):
    h, p, s = e['jws'].split('.')
    rs = b64u(s)
    assert len(rs) == 64 and json.loads(b64u(h))['alg'] == 'ES256'
    body = der_int(rs[:32]) + der_int(rs[32:])
    open('e%d.sig' % i, 'wb').write(b'\x30' + bytes([len(body)]) + body)
    open('e%d.in' % i, 'wb').write((h + '.' + p).encode())
    pay = json.loads(b64u(p))
    x5c = pay['publicKeySet']['keys'][0]['x5c']
    open('e%d.pem' % i, 'w').write('-----BEGIN CERTIFICATE-----\n' + x5c[0] + '\n-----END CERTIFICATE-----\n')
    open('e%d.ca.pem' % i, 'w').write('-----BEGIN CERTIFICATE-----\n' + x5c[1] + '\n-----END CERTIFICATE-----\n')
    print(i, e['uniqueId'], pay['uniqueId'], pay['certificate']['serial'], pay['manifest']['index'], pay['manifest']['count'])
PY
python3 jws.py lx.manifest > entries
[ "$(wc -l < entries)" = 3 ] || fail "entries: $(cat entries)"
while read -r i uid puid serial idx cnt; do
	[ "$uid" = "$puid" ] && [ "$cnt" = 3 ] && [ "$idx" = $((i + 1)) ] || fail "entry $i: $uid $puid $idx/$cnt"
	openssl dgst -sha256 -verify signer.pem -signature e$i.sig e$i.in >/dev/null ||
		fail "entry $i: openssl does not verify the JWS"
	openssl verify -CAfile hsm/ca.pem e$i.pem >/dev/null || fail "entry $i: certificate"
	cmp -s <(openssl x509 -in e$i.ca.pem -outform DER) <(openssl x509 -in hsm/ca.pem -outform DER) ||
		fail "entry $i: x5c[1] is not the CA"
	openssl x509 -in e$i.pem -noout -subject | grep -q "CN *= *$uid\$" || fail "entry $i: CN"
	[ "$(q "SELECT status || ' ' || cert_serial FROM units WHERE unique_id='$uid'")" = "pass $serial" ] ||
		fail "entry $i: $uid is not a pass with certificate $serial"
done < entries

# --- tampering is caught, by both verifiers ---------------------------------
tamper() {   # NAME PYTHON-EXPR-ON-m (the parsed manifest) -> writes NAME.manifest
	python3 - "$1" "$2" <<'PY'
import base64, json, sys
def b64u(s): return base64.urlsafe_b64decode(s + '=' * (-len(s) % 4))
def enc(b): return base64.urlsafe_b64encode(b).rstrip(b'=').decode()
m = json.load(open('lx.manifest'))
exec(sys.argv[2])
open(sys.argv[1] + '.manifest', 'w').write(json.dumps(m))
PY
}
must_fail() {   # NAME WHAT
	expect_exit 1 S export verify "$1.manifest" --signer signer.pem --ca hsm/ca.pem
	grep -q -- "$2" "$ERR" || fail "$1: $(cat "$ERR")"
}
tamper payload "h,p,s = m[1]['jws'].split('.'); d = json.loads(b64u(p)); d['lot'] = 'LY'; m[1]['jws'] = '.'.join([h, enc(json.dumps(d).encode()), s])"
must_fail payload "entry 2 (.*): the signature does not verify"
python3 jws.py payload.manifest >/dev/null
openssl dgst -sha256 -verify signer.pem -signature e1.sig e1.in >/dev/null 2>&1 &&
	fail "openssl verified a tampered entry"
tamper dropped "del m[2]"
must_fail dropped "entries were added or removed"
tamper dup "m.append(m[0])"
must_fail dup "entries were added or removed"
tamper swapid "m[0]['uniqueId'] = m[1]['uniqueId']"
must_fail swapid "entry 1 (.*): the payload is version 1 for uniqueId"
tamper algnone "h,p,s = m[0]['jws'].split('.'); m[0]['jws'] = '.'.join([enc(b'{\"alg\":\"none\"}'), p, ''])"
must_fail algnone "alg ES256"
tamper sig "h,p,s = m[0]['jws'].split('.'); m[0]['jws'] = '.'.join([h, p, s[:-2] + ('AA' if s[-2:] != 'AA' else 'BA')])"
must_fail sig "signature does not verify"
printf '[{"uniqueId": ' > trunc.manifest
must_fail trunc "trunc.manifest:1: not JSON"
printf '[]' > empty.manifest
must_fail empty "not a manifest"
openssl ecparam -name prime256v1 -genkey -noout -out other.pem 2>/dev/null
openssl pkey -in other.pem -pubout -out other.pub
expect_exit 1 S export verify lx.manifest --signer other.pub
grep -q "entry 1 (.*): signed by another key" "$ERR" || fail "other signer: $(cat "$ERR")"
openssl req -x509 -new -key other.pem -subj /CN=other-ca -days 1 -out other-ca.pem 2>/dev/null
expect_exit 1 S export verify lx.manifest --signer signer.pem --ca other-ca.pem
grep -q "not the trusted CA" "$ERR" || fail "other CA: $(cat "$ERR")"
expect_exit 1 S export verify missing.manifest --signer signer.pem
grep -q "missing.manifest: No such file" "$ERR" || fail "missing: $(cat "$ERR")"

# --- the Microchip Trust Platform layout: verified by station, then by openssl
# and python on their own; a tampered payload is refused by both ------------------
expect_exit 0 S export --lot LX --format manifest-microchip --out lx.mchp.json "${HSM[@]}"
expect_exit 0 S export verify lx.mchp.json --signer signer.pem --ca hsm/ca.pem
grep -q "^OK lx.mchp.json: 3 entries (Microchip Trust Platform layout), group LX, signer kid [A-Za-z0-9_-]\{43\}, CA trusted$" "$OUT" ||
	fail "verify microchip: $(cat "$OUT")"
cat > mchp.py <<'PY'
import base64, hashlib, json, sys
def b64u(s): return base64.urlsafe_b64decode(s + '=' * (-len(s) % 4))
def der_int(b):
    b = b.lstrip(b'\0') or b'\0'
    return b'\x02' + bytes([len(b) + (b[0] >> 7)]) + (b'\0' if b[0] & 0x80 else b'') + b
def pem(b64): return '-----BEGIN CERTIFICATE-----\n' + b64 + '\n-----END CERTIFICATE-----\n'
for i, e in enumerate(json.load(open(sys.argv[1]))):
    assert sorted(e) == ['header', 'payload', 'protected', 'signature'], sorted(e)
    h = json.loads(b64u(e['protected']))
    assert (h['alg'], h['typ']) == ('ES256', 'JWT') and len(h['kid']) == 43, h
    signer = b64u(h['x5c'][0])
    assert h['x5t#S256'] == base64.urlsafe_b64encode(hashlib.sha256(signer).digest()).rstrip(b'=').decode()
    open('m%d.signer.pem' % i, 'w').write(pem(h['x5c'][0]))
    rs = b64u(e['signature'])
    assert len(rs) == 64
    body = der_int(rs[:32]) + der_int(rs[32:])
    open('m%d.sig' % i, 'wb').write(b'\x30' + bytes([len(body)]) + body)
    open('m%d.in' % i, 'wb').write((e['protected'] + '.' + e['payload']).encode())
    p = json.loads(b64u(e['payload']))
    for k in ('version', 'model', 'partNumber', 'manufacturer', 'provisioner', 'distributor',
              'groupId', 'provisioningTimestamp', 'uniqueId', 'publicKeySet'):
        assert k in p, k
    assert p['version'] == 1 and p['uniqueId'] == e['header']['uniqueId']
    assert len(sys.argv) < 3 or p['groupId'] == sys.argv[2], p['groupId']
    assert (p['model'], p['partNumber']) == ('SB-100', 'SB-100-A'), p
    key = p['publicKeySet']['keys'][0]
    assert (key['kty'], key['crv'], key['kid']) == ('EC', 'P-256', '0'), key
    dev = b64u(key['x5c'][0])
    assert key['x5t#S256'] == base64.urlsafe_b64encode(hashlib.sha256(dev).digest()).rstrip(b'=').decode()
    open('m%d.pem' % i, 'w').write(pem(key['x5c'][0]))
    print(i, p['uniqueId'])
PY
python3 mchp.py lx.mchp.json LX > mentries
[ "$(wc -l < mentries)" = 3 ] || fail "microchip entries: $(cat mentries)"
while read -r i uid; do
	openssl dgst -sha256 -verify signer.pem -signature m$i.sig m$i.in >/dev/null ||
		fail "microchip entry $i: openssl does not verify the JWS"
	openssl verify -CAfile hsm/ca.pem m$i.pem >/dev/null || fail "microchip entry $i: device certificate"
	openssl verify -CAfile hsm/ca.pem m$i.signer.pem >/dev/null || fail "microchip entry $i: signer certificate"
	cmp -s <(openssl x509 -in m$i.signer.pem -noout -pubkey) signer.pem ||
		fail "microchip entry $i: the signer certificate is not the audit key's"
	[ "$(q "SELECT status FROM units WHERE unique_id='$uid'")" = pass ] || fail "microchip entry $i: $uid"
done < mentries
python3 - <<'PY'
import base64, json
def b64u(s): return base64.urlsafe_b64decode(s + '=' * (-len(s) % 4))
def enc(b): return base64.urlsafe_b64encode(b).rstrip(b'=').decode()
m = json.load(open('lx.mchp.json'))
p = json.loads(b64u(m[1]['payload'])); p['groupId'] = 'LY'; m[1]['payload'] = enc(json.dumps(p).encode())
json.dump(m, open('mpayload.json', 'w'))
m = json.load(open('lx.mchp.json')); m[0]['header']['uniqueId'] = json.loads(b64u(m[1]['payload']))['uniqueId']
json.dump(m, open('mswap.json', 'w'))
PY
expect_exit 1 S export verify mpayload.json --signer signer.pem --ca hsm/ca.pem
grep -q "mpayload.json: entry 2 (.*): the signature does not verify" "$ERR" || fail "microchip payload: $(cat "$ERR")"
python3 mchp.py mpayload.json >/dev/null
openssl dgst -sha256 -verify signer.pem -signature m1.sig m1.in >/dev/null 2>&1 &&
	fail "openssl verified a tampered microchip entry"
expect_exit 1 S export verify mswap.json --signer signer.pem
grep -q "entry 1 (.*): the payload is version 1 for uniqueId" "$ERR" || fail "microchip swap: $(cat "$ERR")"
expect_exit 1 S export verify lx.mchp.json --signer other.pub
grep -q "signed by another key" "$ERR" || fail "microchip other signer: $(cat "$ERR")"

# --- every export was audited, and the chain still verifies ------------------
[ "$(q "SELECT count(*) FROM events WHERE kind='export'")" = 5 ] || fail "export events"
q "SELECT detail FROM events WHERE kind='export' AND actor='eng' ORDER BY id" > exports
grep -q "\"format\":\"manifest\".*\"sha256\":\"$(sha256sum lx.manifest | cut -d' ' -f1)\"" exports ||
	fail "manifest export event: $(cat exports)"
grep -q "\"entries\":3,\"format\":\"manifest\".*\"out\":\"lx.manifest\"" exports || fail "manifest event: $(cat exports)"
grep -q "\"entries\":3,\"format\":\"manifest-microchip\".*\"out\":\"lx.mchp.json\".*\"signer_x5t_s256\":\"$(python3 -c "import json,base64; m=json.load(open('lx.mchp.json')); print(json.loads(base64.urlsafe_b64decode(m[0]['protected'] + '==='))['x5t#S256'])")\"" exports ||
	fail "microchip manifest event: $(cat exports)"
grep -q "\"format\":\"jsonl\",\"lot\":\"LX\",\"out\":\"lx.jsonl\",\"pass\":3,\"sha256\":\"$(sha256sum lx.jsonl | cut -d' ' -f1)\",\"units\":4" exports ||
	fail "jsonl export event: $(cat exports)"
expect_exit 0 S audit verify
# --- roles: once enforced, exporting is the engineer's; verifying is anyone's ---
ME=$(id -un)
expect_exit 0 S role grant eng engineer --login "$ME"
expect_exit 0 S role grant op-olga operator --login "$ME"
expect_exit 1 line_as op-olga export --lot LX --format csv --out olga.csv
grep -q "op-olga is operator; this needs engineer" "$ERR" || fail "operator export: $(cat "$ERR")"
expect_exit 1 line_as op-olga export --lot LX --format manifest --out olga.manifest "${HSM[@]}"
grep -q "this needs engineer" "$ERR" || fail "operator manifest: $(cat "$ERR")"
[ ! -e olga.csv ] && [ ! -e olga.manifest ] || fail "a refused export wrote a file"
expect_exit 0 line_as op-olga export verify lx.manifest --signer signer.pem
expect_exit 0 S export --lot LX --format csv --out eng.csv
cmp -s eng.csv lx.csv || fail "the engineer's export differs"
[ "$(q "SELECT count(*) FROM events WHERE kind='export'")" = 6 ] || fail "export events after roles"

# invariant 5: the token PIN (20 random hex digits) is in nothing the export wrote
pin=$(cat hsm/pin)
[ ${#pin} -ge 16 ] || fail "hsm/pin"
grep -l -F -- "$pin" lx.* signer.pem .out .err 2>/dev/null && fail "the PIN is in an export's output"
[ "$(q "SELECT count(*) FROM events WHERE instr(detail, '$pin') > 0")" = 0 ] || fail "the PIN is in the audit log"
echo "export: ok (4 units, 3 manifest entries in each layout verified twice, 13 tamperings caught)"
