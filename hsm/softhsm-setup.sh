#!/usr/bin/env bash
# softhsm-setup.sh: makes an isolated SoftHSM2 token for QA, tests and the demo.
#
# Everything lives under DIR (default var/hsm): its own softhsm2.conf and token
# directory (nothing touches a system-wide token), the user PIN and SO PIN files
# (mode 0600), the CA certificate and an hsm.ini with the [hsm] section the
# station reads.  The CA key pair and the audit key pair are generated inside
# the token; the private keys are sensitive and never extractable.
#
# PINs never appear on a command line: pkcs11-tool reads them from environment
# variables (env:VAR), openssl from the PIN file (pin-source=file:).
#
# Idempotent: when DIR already holds the token and its CA certificate, it does
# nothing and exits 0.
set -eu

usage() {
	cat <<EOF
usage: $0 [--dir DIR] [--label LABEL] [--key-type ec-p256|ec-p384|rsa-3072]
          [--cn NAME] [--days N] [--module PATH]
  --dir DIR        where the token, PINs, ca.pem and hsm.ini go (default var/hsm)
  --label LABEL    token label (default station-ca)
  --key-type T     CA key: ec-p256 (default), ec-p384 or rsa-3072
  --cn NAME        CA certificate common name (default "Station Test CA")
  --days N         CA certificate validity in days (default 3650)
  --module PATH    PKCS#11 module (default /usr/lib/softhsm/libsofthsm2.so)
EOF
}

dir=var/hsm
label=station-ca
key_type=ec-p256
cn="Station Test CA"
days=3650
module=/usr/lib/softhsm/libsofthsm2.so
ca_key=station-ca-key
audit_key=station-audit-key

while [ $# -gt 0 ]; do
	case "$1" in
	--dir) dir=$2; shift 2 ;;
	--label) label=$2; shift 2 ;;
	--key-type) key_type=$2; shift 2 ;;
	--cn) cn=$2; shift 2 ;;
	--days) days=$2; shift 2 ;;
	--module) module=$2; shift 2 ;;
	-h|--help) usage; exit 0 ;;
	*) echo "softhsm-setup: unknown option '$1'" >&2; usage >&2; exit 2 ;;
	esac
done

case "$key_type" in
ec-p256)  p11_type=EC:prime256v1; md=-sha256 ;;
ec-p384)  p11_type=EC:secp384r1;  md=-sha384 ;;
rsa-3072) p11_type=rsa:3072;      md=-sha256 ;;
*) echo "softhsm-setup: --key-type must be ec-p256, ec-p384 or rsa-3072" >&2; exit 2 ;;
esac
case "$days" in ''|*[!0-9]*) echo "softhsm-setup: --days must be a number" >&2; exit 2 ;; esac
[ -r "$module" ] || { echo "softhsm-setup: PKCS#11 module $module not found (apt-get install softhsm2)" >&2; exit 1; }
for tool in softhsm2-util pkcs11-tool openssl; do
	command -v $tool >/dev/null || { echo "softhsm-setup: $tool not found" >&2; exit 1; }
done

umask 077
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
conf=$dir/softhsm2.conf
export SOFTHSM2_CONF=$conf

token_exists() {
	[ -f "$conf" ] && softhsm2-util --show-slots 2>/dev/null |
		grep -Eq "^[[:space:]]*Label:[[:space:]]+$label[[:space:]]*\$"
}

if token_exists && [ -s "$dir/ca.pem" ] && [ -s "$dir/hsm.ini" ]; then
	echo "softhsm-setup: token '$label' already in $dir; nothing to do"
	exit 0
fi
if token_exists; then
	echo "softhsm-setup: token '$label' exists in $dir but ca.pem or hsm.ini is missing;" \
	     "remove $dir to start again" >&2
	exit 1
fi

mkdir -p "$dir/tokens"
cat >"$conf" <<EOF
# SoftHSM2 configuration private to this station token (made by softhsm-setup.sh)
directories.tokendir = $dir/tokens
objectstore.backend = file
log.level = ERROR
slots.removable = false
EOF

# Random 20-character PINs (the pkcs11 engine reads at most 32 characters from a
# PIN file), written 0600 (umask), passed to the tools through the environment.
openssl rand -hex 10 >"$dir/pin.tmp"
openssl rand -hex 10 >"$dir/so-pin.tmp"
tr -d '\n' <"$dir/pin.tmp" >"$dir/pin" && rm -f "$dir/pin.tmp"
tr -d '\n' <"$dir/so-pin.tmp" >"$dir/so-pin" && rm -f "$dir/so-pin.tmp"
chmod 600 "$dir/pin" "$dir/so-pin"
SETUP_PIN=$(cat "$dir/pin")
SETUP_SO_PIN=$(cat "$dir/so-pin")
export SETUP_PIN SETUP_SO_PIN

p11() { pkcs11-tool --module "$module" "$@" >/dev/null; }

# pkcs11-tool --init-token uses the first free slot; SoftHSM keeps one free.
slot=$(softhsm2-util --show-slots | awk '/^Slot [0-9]+/ { s = $2 } /Initialized:[[:space:]]+no/ { print s; exit }')
[ -n "$slot" ] || { echo "softhsm-setup: no free SoftHSM slot" >&2; exit 1; }
p11 --slot "$slot" --init-token --label "$label" --so-pin env:SETUP_SO_PIN
p11 --token-label "$label" --login --login-type so --so-pin env:SETUP_SO_PIN \
	--init-pin --pin env:SETUP_PIN
p11 --token-label "$label" --login --pin env:SETUP_PIN --keypairgen \
	--key-type "$p11_type" --id 01 --label "$ca_key" --usage-sign
p11 --token-label "$label" --login --pin env:SETUP_PIN --keypairgen \
	--key-type EC:prime256v1 --id 02 --label "$audit_key" --usage-sign
unset SETUP_PIN SETUP_SO_PIN

# The self-signed CA certificate, signed inside the token by the engine.
openssl req -new -x509 -engine pkcs11 -keyform engine \
	-key "pkcs11:token=$label;object=$ca_key;type=private?pin-source=file:$dir/pin" \
	-subj "/CN=$cn" -days "$days" $md -set_serial "0x$(openssl rand -hex 8)" \
	-addext "basicConstraints=critical,CA:TRUE,pathlen:0" \
	-addext "keyUsage=critical,keyCertSign,cRLSign,digitalSignature" \
	-addext "subjectKeyIdentifier=hash" \
	-out "$dir/ca.pem.tmp" 2>"$dir/openssl.log" || {
	cat "$dir/openssl.log" >&2; exit 1; }
rm -f "$dir/openssl.log"
chmod 644 "$dir/ca.pem.tmp"
mv "$dir/ca.pem.tmp" "$dir/ca.pem"

cat >"$dir/hsm.ini" <<EOF
; HSM settings for station (made by softhsm-setup.sh).  See docs/security.md.
[hsm]
module = $module
softhsm2_conf = $conf
token = $label
ca_key = $ca_key
ca_cert = $dir/ca.pem
audit_key = $audit_key
pin_file = $dir/pin
EOF
chmod 600 "$dir/hsm.ini"
echo "softhsm-setup: token '$label' ($key_type) ready in $dir (config: $dir/hsm.ini)"
