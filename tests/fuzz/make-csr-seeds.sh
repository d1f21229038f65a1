#!/usr/bin/env bash
# Regenerates the seed corpus of fuzz_csr (tests/fuzz/corpus/fuzz_csr/) with the
# openssl command line: board-like CSRs for the unique id and nonce the target
# expects (fuzz_csr.c), valid ones of each allowed key type and one edge case per
# rule.  The keys are throwaway.  Usage: tests/fuzz/make-csr-seeds.sh
set -eu
top=$(cd "$(dirname "$0")/../.." && pwd)
out="$top/tests/fuzz/corpus/fuzz_csr"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
uid=0123456789ABCDEF01234567
nonce=$(printf '%02x' $(seq 0 31))
mkdir -p "$out"

# csr NAME KEY DIGEST SUBJECT-LINES ATTRIBUTE-LINES
csr() {
	printf '[req]\nprompt = no\ndistinguished_name = dn\nattributes = attrs\n[dn]\n%b\n[attrs]\n%b\n' \
		"$4" "$5" > "$tmp/$1.cnf"
	openssl req -new -key "$tmp/$2.pem" -config "$tmp/$1.cnf" "-$3" -outform DER \
		-out "$out/$1.der"
}
key() { openssl genpkey -quiet -algorithm "$2" "${@:3}" -out "$tmp/$1.pem"; }

key p256 EC -pkeyopt ec_paramgen_curve:P-256
key p384 EC -pkeyopt ec_paramgen_curve:P-384
key rsa3072 RSA -pkeyopt rsa_keygen_bits:3072
key rsa2048 RSA -pkeyopt rsa_keygen_bits:2048
key p256x EC -pkeyopt ec_paramgen_curve:P-256 -pkeyopt ec_param_enc:explicit
key k1 EC -pkeyopt ec_paramgen_curve:secp256k1
openssl ec -in "$tmp/p256.pem" -conv_form compressed -out "$tmp/p256c.pem" 2>/dev/null

cn="CN = $uid"
cp="challengePassword = $nonce"
csr p256 p256 sha256 "$cn" "$cp"
csr p384 p384 sha384 "$cn" "$cp"
csr rsa3072 rsa3072 sha256 "$cn" "$cp"
csr rsa2048-weak rsa2048 sha256 "$cn" "$cp"
csr p256-explicit p256x sha256 "$cn" "$cp"        # the clone-check bypass fuzz_csr found
csr p256-compressed p256c sha256 "$cn" "$cp"
csr secp256k1 k1 sha256 "$cn" "$cp"
csr subject-two-rdns p256 sha256 "$cn\nO = Acme" "$cp"
csr subject-other-id p256 sha256 "CN = 0123456789ABCDEF0123456F" "$cp"
csr nonce-missing p256 sha256 "$cn" "unstructuredName = x"
csr nonce-wrong p256 sha256 "$cn" "challengePassword = ${nonce%?}0"

# p256-unused-bits: the key's BIT STRING declares an unused bit (one key, two
# encodings), signed again over that encoding so only the policy's rule
# refuses it.  Needs python3-cryptography.
python3 - "$out/p256.der" "$tmp/p256.pem" "$out/p256-unused-bits.der" <<'PY'
import sys
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

def tlv(tag, body):
    n = len(body)
    if n < 0x80:
        return bytes([tag, n]) + body
    b = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(b)]) + b + body

def walk(der):   # the TLVs of a SEQUENCE's body
    out, i = [], 0
    while i < len(der):
        n, j = der[i + 1], i + 2
        if n & 0x80:
            k = n & 0x7F
            n, j = int.from_bytes(der[j:j + k], "big"), j + k
        out.append(der[i:j + n])
        i = j + n
    return out

csr = open(sys.argv[1], "rb").read()
key = serialization.load_pem_private_key(open(sys.argv[2], "rb").read(), None)
tbs, alg, _ = walk(csr[2 + (csr[1] & 0x7F if csr[1] & 0x80 else 0):])
pat = b"\x03\x42\x00\x04"
i = tbs.index(pat)
if tbs[i + 3 + 64] & 1:
    sys.exit("the seed key's point ends in a 1 bit: run again")
tbs = tbs[:i + 2] + b"\x01" + tbs[i + 3:]
sig = key.sign(tbs, ec.ECDSA(hashes.SHA256()))
open(sys.argv[3], "wb").write(tlv(0x30, tbs + alg + tlv(0x03, b"\x00" + sig)))
PY
