/*
 * libFuzzer target: the offline manifest verifier (station/export/manifest_verify.c
 * and station/export/jose.c, linked by themselves: they need neither the database
 * nor the token).  The first byte picks the mode:
 *  - even: the rest is a manifest file, verified as it is (JSON shape,
 *    base64url, header rules; the signature is out of a mutation's reach);
 *  - odd: the rest is a JWS payload.  The harness signs it with its own key
 *    under a valid header and wraps it as a one-entry manifest, so mutations
 *    reach what lies behind the signature: the payload's fields, the x5c
 *    chain, the JWK comparison, the manifest id/index/count rules.  With bit
 *    1 set too, in the Microchip layout (a flattened JWS whose header carries
 *    a certificate of the harness key): groupId, x5t#S256, the same chain.
 * Any input must verify or fail with a message; never crash, hang or leak.
 * The seeds (tests/fuzz/corpus/fuzz_manifest) are taken from real exports, in
 * both layouts (the station's and the Microchip Trust Platform one).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "export/jose.h"
#include "export/manifest.h"

static EVP_PKEY *key;
static char kid[64];

static void check(const char *buf, size_t len)
{
	struct manifest_summary sum;
	struct errbuf err;
	int rc;

	errbuf_clear(&err);
	rc = manifest_verify_buf(buf, len, "fuzz", key, NULL, &sum, &err);
	if (rc != ST_OK && !err.msg[0])
		abort();                 /* every refusal says why */
	if (rc == ST_OK && sum.entries < 1)
		abort();
}

static char *signer_cert_b64, signer_x5t[65];

/* A self-signed certificate of the harness key, for the Microchip header. */
static void make_signer_cert(void)
{
	X509 *x = X509_new();
	unsigned char md[32], *der = NULL;
	unsigned int mdn = 0;
	char *t;
	int n;

	X509_set_version(x, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
	X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
				   (const unsigned char *)"fuzz signer", -1, -1, 0);
	X509_set_issuer_name(x, X509_get_subject_name(x));
	X509_gmtime_adj(X509_getm_notBefore(x), 0);
	X509_gmtime_adj(X509_getm_notAfter(x), 86400);
	X509_set_pubkey(x, key);
	if (X509_sign(x, key, EVP_sha256()) <= 0 || (n = i2d_X509(x, &der)) <= 0)
		abort();
	signer_cert_b64 = jose_b64(der, (size_t)n);
	EVP_Digest(der, (size_t)n, md, &mdn, EVP_sha256(), NULL);
	t = jose_b64url(md, sizeof(md));
	snprintf(signer_x5t, sizeof(signer_x5t), "%s", t);
	free(t);
	OPENSSL_free(der);
	X509_free(x);
}

/* header.payload signed by our key, as a one-entry manifest of either layout. */
static void signed_entry(const uint8_t *pay, size_t len, int microchip)
{
	char *hdr = NULL, *h64, *p64, *s64 = NULL, *input = NULL, *text = NULL;
	const char *uid = "0123456789ABCDEF01234567";
	json_t *j, *p = json_loadb((const char *)pay, len, 0, NULL);
	unsigned char der[128];
	size_t dl = sizeof(der);
	EVP_MD_CTX *mc;

	if (p && json_is_string(json_object_get(p, "uniqueId")) &&
	    strlen(json_string_value(json_object_get(p, "uniqueId"))) <= 64)
		uid = json_string_value(json_object_get(p, "uniqueId"));
	if (microchip)
		j = json_pack("{s:s, s:s, s:s, s:s, s:[s]}", "typ", "JWT", "alg", "ES256", "kid", kid,
			      "x5t#S256", signer_x5t, "x5c", signer_cert_b64);
	else
		j = json_pack("{s:s, s:s, s:s}", "alg", "ES256", "kid", kid, "typ", MANIFEST_TYP);
	hdr = json_dumps(j, JSON_COMPACT);
	json_decref(j);
	h64 = jose_b64url((const uint8_t *)hdr, strlen(hdr));
	p64 = len ? jose_b64url(pay, len) : strdup("");
	if (h64 && p64 && asprintf(&input, "%s.%s", h64, p64) > 0 && (mc = EVP_MD_CTX_new())) {
		if (EVP_DigestSignInit(mc, NULL, EVP_sha256(), NULL, key) == 1 &&
		    EVP_DigestSign(mc, der, &dl, (const unsigned char *)input, strlen(input)) == 1)
			s64 = jose_es256_sig(der, dl);
		EVP_MD_CTX_free(mc);
	}
	if (s64) {
		if (microchip)
			j = json_pack("[{s:s, s:s, s:{s:s}, s:s}]", "payload", p64, "protected", h64,
				      "header", "uniqueId", uid, "signature", s64);
		else
			j = json_pack("[{s:s, s:s++}]", "uniqueId", uid, "jws", input, ".", s64);
		text = j ? json_dumps(j, JSON_COMPACT) : NULL;
		json_decref(j);
		if (text)
			check(text, strlen(text));
	}
	json_decref(p);
	free(hdr);
	free(h64);
	free(p64);
	free(s64);
	free(input);
	free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!key) {
		key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
		if (!key || jose_kid(key, kid, NULL) != ST_OK)
			abort();
		make_signer_cert();
	}
	if (size < 1)
		return 0;
	if (data[0] & 1)
		signed_entry(data + 1, size - 1, (data[0] & 2) != 0);
	else
		check((const char *)data + 1, size - 1);
	return 0;
}
