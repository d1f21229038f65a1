#!/usr/bin/env bash
# The peer factory scripts use: one `openssl x509 -req -engine pkcs11` process
# per certificate, signed by the CA key in the token.  Called by bench_hsm.
#   hsm_openssl_loop.sh TOKEN_DIR CSR.pem COUNT
# TOKEN_DIR is what hsm/softhsm-setup.sh made (softhsm2.conf, pin, ca.pem,
# hsm.ini).  Prints "certs_per_s <rate>" after checking the last certificate.
set -eu
dir=$1 csr=$2 n=$3
export SOFTHSM2_CONF=$dir/softhsm2.conf
token=$(sed -n 's/^token = //p' "$dir/hsm.ini")
key=$(sed -n 's/^ca_key = //p' "$dir/hsm.ini")
uri="pkcs11:token=$token;object=$key;type=private?pin-source=file:$dir/pin"
cat >ext.cnf <<'EOF'
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyAgreement
extendedKeyUsage = clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
EOF
start=$(date +%s.%N)
for i in $(seq 1 "$n"); do
	openssl x509 -req -in "$csr" -engine pkcs11 -CAkeyform engine -CAkey "$uri" \
		-CA "$dir/ca.pem" -set_serial "0x$(printf '%032x' "$i")" -days 365 -sha256 \
		-extfile ext.cnf -out cert.pem 2>/dev/null
done
end=$(date +%s.%N)
openssl verify -CAfile "$dir/ca.pem" cert.pem >/dev/null
awk -v n="$n" -v s="$start" -v e="$end" 'BEGIN { printf "certs_per_s %.1f\n", n / (e - s) }'
