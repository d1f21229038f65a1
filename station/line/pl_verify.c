/*
 * pl_verify: the cryptographic checks of the pipeline (see pipeline.h):
 * CSR policy, attestation chain + signature, proof of possession.
 * Everything is bounded by the DER length given; nothing trusts the board.
 */
#include "line/pipeline.h"
#include "core/hex.h"
#include "proto/proto.h"

#include <string.h>

#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/sha.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#define DER_MAX (64 * 1024)

/* The single CN of a name, or -1 if the name is not exactly one CN. */
static int only_cn(const X509_NAME *name, char *out, size_t outsz)
{
	const X509_NAME_ENTRY *ent;
	const ASN1_STRING *s;
	int len;

	if (X509_NAME_entry_count(name) != 1)
		return -1;
	ent = X509_NAME_get_entry(name, 0);
	if (OBJ_obj2nid(X509_NAME_ENTRY_get_object(ent)) != NID_commonName)
		return -1;
	s = X509_NAME_ENTRY_get_data(ent);
	len = ASN1_STRING_length(s);
	if (len <= 0 || (size_t)len >= outsz || memchr(ASN1_STRING_get0_data(s), '\0', (size_t)len))
		return -1;
	memcpy(out, ASN1_STRING_get0_data(s), (size_t)len);
	out[len] = '\0';
	return 0;
}

/* The CN of a certificate subject (the first one). */
static int subject_cn(X509 *cert, char *out, size_t outsz)
{
	const X509_NAME *name = X509_get_subject_name(cert);
	int idx = X509_NAME_get_index_by_NID(name, NID_commonName, -1);
	const ASN1_STRING *s;
	int len;

	if (idx < 0)
		return -1;
	s = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, idx));
	len = ASN1_STRING_length(s);
	if (len <= 0 || (size_t)len >= outsz || memchr(ASN1_STRING_get0_data(s), '\0', (size_t)len))
		return -1;
	memcpy(out, ASN1_STRING_get0_data(s), (size_t)len);
	out[len] = '\0';
	return 0;
}

static int key_matches(EVP_PKEY *pk, enum profile_key_type type, int sig_md)
{
	char group[64];
	size_t glen = 0;

	switch (type) {
	case PROFILE_KEY_EC_P256:
	case PROFILE_KEY_EC_P384:
		if (EVP_PKEY_get_base_id(pk) != EVP_PKEY_EC ||
		    !EVP_PKEY_get_utf8_string_param(pk, "group", group, sizeof(group), &glen))
			return 0;
		if (type == PROFILE_KEY_EC_P256)
			return !strcmp(group, "prime256v1") && sig_md == NID_sha256;
		return !strcmp(group, "secp384r1") && sig_md == NID_sha384;
	case PROFILE_KEY_RSA_3072:
		return EVP_PKEY_get_base_id(pk) == EVP_PKEY_RSA && EVP_PKEY_get_bits(pk) == 3072 &&
		       sig_md == NID_sha256;
	}
	return 0;
}

int pl_csr_check(const uint8_t *der, size_t len, const char *unique_id,
		 const uint8_t nonce[32], enum profile_key_type type,
		 struct pl_csr_facts *facts, struct errbuf *err)
{
	const unsigned char *p = der;
	X509_REQ *req = NULL;
	EVP_PKEY *pk = NULL;
	X509_ATTRIBUTE *attr;
	ASN1_TYPE *t;
	char cn[80], want[HEX_LEN(PROTO_NONCE_LEN)];
	unsigned char *spki = NULL;
	int spki_len, md_nid = 0, pk_nid = 0, idx, rc = ST_EPOLICY;
	uint8_t h[32];

	memset(facts, 0, sizeof(*facts));
	if (!len || len > DER_MAX)
		return errbuf_set(err, ST_EPOLICY, "CSR of %zu bytes", len);
	req = d2i_X509_REQ(NULL, &p, (long)len);
	if (!req || p != der + len) {
		errbuf_set(err, ST_EPOLICY, "CSR is not one well-formed DER request");
		goto out;
	}
	pk = X509_REQ_get_pubkey(req);
	if (!pk || X509_REQ_verify(req, pk) != 1) {
		errbuf_set(err, ST_EPOLICY, "CSR signature does not verify with its own key");
		goto out;
	}
	if (only_cn(X509_REQ_get_subject_name(req), cn, sizeof(cn)) || strcmp(cn, unique_id)) {
		errbuf_set(err, ST_EPOLICY, "CSR subject is not exactly CN=%s", unique_id);
		goto out;
	}
	idx = X509_REQ_get_attr_by_NID(req, NID_pkcs9_challengePassword, -1);
	if (idx < 0 || X509_REQ_get_attr_by_NID(req, NID_pkcs9_challengePassword, idx) >= 0 ||
	    !(attr = X509_REQ_get_attr(req, idx)) || X509_ATTRIBUTE_count(attr) != 1 ||
	    !(t = X509_ATTRIBUTE_get0_type(attr, 0)) ||
	    (t->type != V_ASN1_PRINTABLESTRING && t->type != V_ASN1_UTF8STRING &&
	     t->type != V_ASN1_IA5STRING)) {
		errbuf_set(err, ST_EPOLICY, "CSR has no single challengePassword (nonce)");
		goto out;
	}
	hex_encode(nonce, PROTO_NONCE_LEN, want);
	if (ASN1_STRING_length(t->value.asn1_string) != 2 * PROTO_NONCE_LEN ||
	    memcmp(ASN1_STRING_get0_data(t->value.asn1_string), want, 2 * PROTO_NONCE_LEN)) {
		errbuf_set(err, ST_EPOLICY, "CSR nonce does not match the one sent (replayed CSR?)");
		goto out;
	}
	if (!OBJ_find_sigid_algs(X509_REQ_get_signature_nid(req), &md_nid, &pk_nid) ||
	    !key_matches(pk, type, md_nid)) {
		errbuf_set(err, ST_EPOLICY, "CSR key or signature hash is not %s",
			   profile_key_type_name(type));
		goto out;
	}
	spki_len = i2d_PUBKEY(pk, &spki);
	if (spki_len <= 0) {
		errbuf_set(err, ST_ECRYPTO, "CSR public key does not encode");
		goto out;
	}
	SHA256(spki, (size_t)spki_len, h);
	hex_encode(h, 32, facts->pubkey_hash);
	SHA256(der, len, facts->csr_sha256);
	rc = ST_OK;
out:
	OPENSSL_free(spki);
	EVP_PKEY_free(pk);
	X509_REQ_free(req);
	return rc;
}

static X509 *parse_cert(const uint8_t *der, size_t len)
{
	const unsigned char *p = der;
	X509 *x;

	if (!len || len > DER_MAX)
		return NULL;
	x = d2i_X509(NULL, &p, (long)len);
	if (x && p != der + len) {
		X509_free(x);
		return NULL;
	}
	return x;
}

/* Verifies sig with pk over SHA-256(tag || a || b). */
static int verify_msg(EVP_PKEY *pk, const char *tag, const uint8_t *a, size_t alen,
		      const uint8_t *b, size_t blen, const uint8_t *sig, size_t sig_len)
{
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	int ok = 0;

	if (!md)
		return 0;
	if (EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, pk) == 1 &&
	    EVP_DigestVerifyUpdate(md, tag, strlen(tag)) == 1 &&
	    EVP_DigestVerifyUpdate(md, a, alen) == 1 &&
	    (!blen || EVP_DigestVerifyUpdate(md, b, blen) == 1) &&
	    EVP_DigestVerifyFinal(md, sig, sig_len) == 1)
		ok = 1;
	EVP_MD_CTX_free(md);
	return ok;
}

int pl_attest_check(const uint8_t *attest_cert, size_t cert_len,
		    const uint8_t *mfr_ca, size_t mfr_ca_len, const char *unique_id,
		    const uint8_t nonce[32], const uint8_t csr_sha256[32],
		    const uint8_t *sig, size_t sig_len, struct errbuf *err)
{
	X509 *cert = parse_cert(attest_cert, cert_len), *ca = parse_cert(mfr_ca, mfr_ca_len);
	X509_STORE *store = NULL;
	X509_STORE_CTX *sctx = NULL;
	EVP_PKEY *pk;
	char cn[80];
	int rc = ST_EPOLICY;

	if (!ca) {
		errbuf_set(err, ST_EINVAL, "manufacturer CA certificate does not parse");
		goto out;
	}
	if (!cert) {
		errbuf_set(err, ST_EPOLICY, "attestation certificate does not parse");
		goto out;
	}
	store = X509_STORE_new();
	sctx = X509_STORE_CTX_new();
	if (!store || !sctx || X509_STORE_add_cert(store, ca) != 1 ||
	    X509_STORE_CTX_init(sctx, store, cert, NULL) != 1) {
		errbuf_set(err, ST_ENOMEM, "attestation: out of memory");
		goto out;
	}
	if (X509_verify_cert(sctx) != 1) {
		errbuf_set(err, ST_EPOLICY, "attestation certificate does not chain to the manufacturer CA: %s",
			   X509_verify_cert_error_string(X509_STORE_CTX_get_error(sctx)));
		goto out;
	}
	if (subject_cn(cert, cn, sizeof(cn)) || strcmp(cn, unique_id)) {
		errbuf_set(err, ST_EPOLICY, "attestation certificate is for another board (CN is not %s)",
			   unique_id);
		goto out;
	}
	pk = X509_get0_pubkey(cert);
	if (!pk || !verify_msg(pk, PROTO_ATTEST_CONTEXT, nonce, PROTO_NONCE_LEN, csr_sha256,
				 PROTO_SHA256_LEN, sig, sig_len)) {
		errbuf_set(err, ST_EPOLICY, "attestation signature does not verify");
		goto out;
	}
	rc = ST_OK;
out:
	X509_STORE_CTX_free(sctx);
	X509_STORE_free(store);
	X509_free(cert);
	X509_free(ca);
	return rc;
}

int pl_prove_check(const uint8_t *issued, size_t issued_len, const uint8_t *readback,
		   size_t readback_len, const uint8_t challenge[32], const uint8_t *sig,
		   size_t sig_len, struct errbuf *err)
{
	X509 *cert;
	int rc = ST_EPOLICY;

	if (issued_len != readback_len || memcmp(issued, readback, issued_len))
		return errbuf_set(err, ST_EPOLICY, "certificate read back differs from the one written");
	cert = parse_cert(readback, readback_len);
	if (!cert)
		return errbuf_set(err, ST_EPOLICY, "certificate read back does not parse");
	if (!X509_get0_pubkey(cert) ||
	    !verify_msg(X509_get0_pubkey(cert), PROTO_PROVE_CONTEXT, challenge, PROTO_NONCE_LEN,
			NULL, 0, sig, sig_len))
		errbuf_set(err, ST_EPOLICY, "proof of possession fails: the board does not hold the key");
	else
		rc = ST_OK;
	X509_free(cert);
	return rc;
}
