# station profile add / list / show: strict validation with FILE:LINE, nothing
# stored on any error, versions and content hash, one audit event per change.
set -eu
. "$TOP/tests/lib.sh"

DB=p.db
new_db "$DB"
st() { "$STATION" --db "$DB" --user engineer-eve "$@"; }
# the record events: not the database's creation (station init) nor the `row`
# event each write appends (audit_rows.sh)
events() { st audit log | grep -Evc $'\t(row|station-init)\t'; }

cp "$TOP/fixtures/data/widget.profile" good.profile
# the trust anchors it names (ca.pem, mfr-ca.pem): add pins them by SHA-256
for n in ca mfr-ca; do
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout $n.key \
		-subj "/CN=$n" -days 2 -out $n.pem 2>/dev/null
done
expect_exit 0 st profile add good.profile
grep -Eq '^profile widget version 1 sha256 [0-9a-f]{64}$' "$OUT" || fail "add output: $(cat "$OUT")"
ca_pin=$(openssl x509 -in ca.pem -outform DER | sha256sum | cut -c1-64)
grep -qx "pinned ca_cert_sha256 = $ca_pin ($PWD/ca.pem)" "$OUT" || fail "CA pin: $(cat "$OUT")"
grep -q "^pinned manufacturer_ca_sha256 = " "$OUT" || fail "manufacturer CA pin: $(cat "$OUT")"
hash1=$(awk '/^profile /{print $6}' "$OUT")
[ "$(events)" = 1 ] || fail "one audit event expected after add"
st audit log | grep -q 'profile-store.*engineer-eve' || fail "audit event must name who added"

# the stored copy is canonical: paths resolved against the file's directory
expect_exit 0 st profile show widget
grep -q "^image = $PWD/widget-fw.bin\$" "$OUT" || fail "relative image path not resolved: $(cat "$OUT")"
grep -q '^pin_env = STATION_HSM_PIN$' "$OUT" || fail "pin_env missing"
grep -qx "ca_cert_sha256 = $ca_pin" "$OUT" || fail "the stored profile lacks its CA pin: $(cat "$OUT")"

# same content (comments and spacing changed): same version, no new event
sed -e 's/^; Sample/;   Sample/' -e 's/^name = widget/name=widget/' good.profile > spaced.profile
expect_exit 0 st profile add spaced.profile
grep -q "version 1 sha256 $hash1" "$OUT" || fail "unchanged content made a new version: $(cat "$OUT")"
[ "$(events)" = 1 ] || fail "unchanged content must not add an audit event"

# a real change: version 2
sed 's/^validity_days = 3650/validity_days = 730/' good.profile > v2.profile
expect_exit 0 st profile add v2.profile
grep -q '^profile widget version 2 ' "$OUT" || fail "expected version 2: $(cat "$OUT")"
expect_exit 0 st profile list
grep -Eq '^widget +2 ' "$OUT" || fail "list: $(cat "$OUT")"
n_events=$(events)

# every class of bad input: exit 1, FILE:LINE: reason, nothing stored
bad() {
	local name=$1 want=$2
	expect_exit 1 st profile add "$name"
	grep -q "^station: profile add: $name:$want" "$ERR" || {
		echo "--- stderr"; cat "$ERR"; fail "$name: expected '$name:$want'"; }
}
sed 's/^\[policy\]/[extra]\nx = 1\n[policy]/' good.profile > unknown-section.profile
bad unknown-section.profile '34: unknown section \[extra\]'
sed 's/^usb = 1209:0001/usb = 1209:0001\ncolour = red/' good.profile > unknown-key.profile
bad unknown-key.profile "8: unknown key 'colour' in \[product\]"
sed 's/^usb = 1209:0001/usb = 1209:0001\nname = gadget/' good.profile > twice.profile
bad twice.profile '8: \[product\] name set twice (first at line 6)'
sed 's/^usb = 1209:0001/usb = 1209_0001/' good.profile > bad-usb.profile
bad bad-usb.profile '7: usb: expected VID:PID'
sed 's/^sha256 = 0*/sha256 = 12/' good.profile > bad-hash.profile
bad bad-hash.profile '13: sha256: expected 64 hex digits'
sed 's/^type = ec-p256/type = dsa-1024/' good.profile > bad-type.profile
bad bad-type.profile "16: type: 'dsa-1024' is not one of"
sed 's/^validity_days = 3650/validity_days = forever/' good.profile > bad-days.profile
bad bad-days.profile '19: validity_days: expected a whole number'
sed 's/^san = .*/san = URI:urn:fixed/' good.profile > bad-san.profile
bad bad-san.profile '20: san: must contain {unique_id} exactly once'
sed 's/^pin_env = STATION_HSM_PIN/pin = 123456/' good.profile > pin.profile
bad pin.profile '29: a PIN must never be written in a profile'
grep -q 123456 "$ERR" && fail "the PIN value must not be echoed"
sed '/^ca_key = /d' good.profile > missing-key.profile
bad missing-key.profile "22: \[hsm\] missing required key 'ca_key'"
sed '/^\[attestation\]/,/^manufacturer_ca/d' good.profile > missing-section.profile
bad missing-section.profile '.*: missing section \[attestation\]'
sed 's/^pin_env = STATION_HSM_PIN/pin_env = STATION_HSM_PIN\npin_file = pin.txt/' good.profile > two-pins.profile
bad two-pins.profile '22: \[hsm\] needs exactly one of pin_file or pin_env'
sed 's/^\[key\]/[key/' good.profile > syntax.profile
bad syntax.profile '15: syntax error'
sed 's/^type = ec-p256/type = ec-p256\n  continued/' good.profile > indented.profile
bad indented.profile '17: indented line'
{ cat good.profile; printf 'x%.0s' $(seq 1 250); echo; } > long.profile
bad long.profile '.*: line too long'

# a pin the file states must match the certificate
sed "s/^ca_cert = .*/&\nca_cert_sha256 = $(printf '0%.0s' $(seq 1 64))/" good.profile > pinned.profile
expect_exit 1 st profile add pinned.profile
grep -q "CA certificate $PWD/ca.pem has SHA-256 $ca_pin, not the pinned 0*: refused" "$ERR" ||
	fail "a wrong pin: $(cat "$ERR")"

[ "$(events)" = "$n_events" ] || fail "a rejected profile wrote an audit event"
expect_exit 0 st profile list
[ "$(grep -c '^widget' "$OUT")" = 1 ] || fail "list changed"
grep -Eq '^widget +2 ' "$OUT" || fail "a rejected profile changed the stored version"

# usage and lookups
expect_exit 1 st profile add no-such-file.profile
grep -q 'no-such-file.profile: No such file' "$ERR" || fail "missing file message"
expect_exit 1 st profile show nope
expect_exit 2 st profile
expect_exit 2 st profile frob
expect_exit 2 st profile add
expect_exit 2 st profile add a b
expect_exit 0 st profile --help
grep -q 'usage: station profile add FILE' "$OUT" || fail "help"
st audit verify >/dev/null || fail "audit chain broken"
echo "profile_add: ok"
