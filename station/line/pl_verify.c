/*
 * pl_verify: the cryptographic checks of the pipeline that are not the CA's
 * (see pipeline.h): attestation chain + signature, proof of possession.  The
 * CSR is judged by the CA (pl_ca_ops.check_csr: hsm/csr_policy).
 * Everything is bounded by the DER length given; nothing trusts the board.
 */
#include "line/pipeline.h"
#include "proto/proto.h"

#include <string.h>

#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#define DER_MAX (64 * 1024)   /* a certificate from a board */

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
		    const uint8_t nonce[PROTO_NONCE_LEN], const uint8_t csr_sha256[PROTO_SHA256_LEN],
		    const uint8_t *sig, size_t sig_len, struct errbuf *err)
{
	X509 *cert = parse_cert(attest_cert, cert_len), *ca = parse_cert(mfr_ca, mfr_ca_len);
	X509_STORE *store = NULL;
	X509_STORE_CTX *sctx = NULL;
	EVP_PKEY *pk;
	char cn[80];
	int rc = ST_EPOLICY;

	if (!ca) {
		errbuf_setr(err, ST_EINVAL, ST_ORIGIN_CONFIG, ST_R_MFR_CA,
			    "manufacturer CA certificate does not parse");
		goto out;
	}
	if (!cert) {
		errbuf_setr(err, ST_EPOLICY, ST_ORIGIN_POLICY, ST_R_ATTEST_CHAIN,
			    "attestation certificate does not parse");
		goto out;
	}
	store = X509_STORE_new();
	sctx = X509_STORE_CTX_new();
	if (!store || !sctx || X509_STORE_add_cert(store, ca) != 1 ||
	    X509_STORE_CTX_init(sctx, store, cert, NULL) != 1) {
		errbuf_setr(err, ST_ENOMEM, ST_ORIGIN_STATION, ST_R_NOMEM,
			    "attestation: out of memory");
		goto out;
	}
	if (X509_verify_cert(sctx) != 1) {
		errbuf_setr(err, ST_EPOLICY, ST_ORIGIN_POLICY, ST_R_ATTEST_CHAIN,
			    "attestation certificate does not chain to the manufacturer CA: %s",
			    X509_verify_cert_error_string(X509_STORE_CTX_get_error(sctx)));
		goto out;
	}
	if (subject_cn(cert, cn, sizeof(cn)) || strcmp(cn, unique_id)) {
		errbuf_setr(err, ST_EPOLICY, ST_ORIGIN_POLICY, ST_R_ATTEST_SUBJECT,
			    "attestation certificate is for another board (CN is not %s)",
			    unique_id);
		goto out;
	}
	pk = X509_get0_pubkey(cert);
	if (!pk || !verify_msg(pk, "station-attest-v1", nonce, 32, csr_sha256, 32, sig, sig_len)) {
		errbuf_setr(err, ST_EPOLICY, ST_ORIGIN_POLICY, ST_R_ATTEST_SIGNATURE,
			    "attestation signature does not verify");
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
		   size_t readback_len, const uint8_t challenge[PROTO_NONCE_LEN], const uint8_t *sig,
		   size_t sig_len, struct errbuf *err)
{
	X509 *cert;
	int rc = ST_EPOLICY;

	if (issued_len != readback_len || memcmp(issued, readback, issued_len))
		return errbuf_setr(err, ST_EPOLICY, ST_ORIGIN_POLICY, ST_R_READBACK,
				   "certificate read back differs from the one written");
	cert = parse_cert(readback, readback_len);
	if (!cert)
		return errbuf_setr(err, ST_EPOLICY, ST_ORIGIN_POLICY, ST_R_READBACK,
				   "certificate read back does not parse");
	if (!X509_get0_pubkey(cert) ||
	    !verify_msg(X509_get0_pubkey(cert), "station-prove-v1", challenge, 32, NULL, 0,
			sig, sig_len))
		errbuf_setr(err, ST_EPOLICY, ST_ORIGIN_POLICY, ST_R_PROOF,
			    "proof of possession fails: the board does not hold the key");
	else
		rc = ST_OK;
	X509_free(cert);
	return rc;
}
