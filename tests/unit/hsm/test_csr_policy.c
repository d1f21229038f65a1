/*
 * Unit tests: the CSR policy (hsm/csr_policy.c) on CSRs made in software:
 * the key kinds and sizes a profile allows, the signature hash that goes
 * with the key, one encoding per key (compressed points and explicit curves
 * refused), the signature, the subject and the nonce.  No token: the policy
 * never touches the HSM.  Issuing from checked CSRs is in test_hsm_issue.c.
 */
#include "tests/unit/hsm/csr_rig.h"

#include <openssl/core_names.h>
#include <string.h>

static int group_setup(void **state)
{
	(void)state;
	csr_policy_default(&pol);
	return 0;
}

/* ---- CSR policy --------------------------------------------------------- */

static void test_csr_good_kinds(void **state)
{
	const char *kinds[] = { "P-256", "P-384", "RSA-3072" };
	struct csr_info ci;
	struct errbuf e;

	(void)state;
	for (size_t i = 0; i < 3; i++) {
		assert_int_equal(check(kinds[i], UID, NULL, 0, 0, NULL, &ci, &e), ST_OK);
		assert_string_equal(ci.unique_id, UID);
		assert_int_equal(strlen(ci.pubkey_hash), 64);
		csr_info_clear(&ci);
	}
}

/* The CSR of k (right subject and nonce) signed with md instead of the hash
 * that goes with its key.  DER in *der (OPENSSL_free). */
static void make_csr_signed_with(EVP_PKEY *k, const uint8_t nonce[32], const EVP_MD *md,
				 uint8_t **der, size_t *len)
{
	const unsigned char *p;
	X509_REQ *req;
	int n;

	assert_int_equal(tu_make_csr(k, UID, NULL, nonce, 0, der, len), 0);
	p = *der;
	req = d2i_X509_REQ(NULL, &p, (long)*len);
	assert_non_null(req);
	assert_true(X509_REQ_sign(req, k, md) > 0);
	OPENSSL_free(*der);
	*der = NULL;
	n = i2d_X509_REQ(req, der);
	assert_true(n > 0);
	*len = (size_t)n;
	X509_REQ_free(req);
}

/* The signature hash goes with the key: SHA-256 for P-256 and RSA, SHA-384
 * for P-384 (the rule the line's own check had, now the policy's). */
static void test_csr_signature_hash(void **state)
{
	static const struct {
		const char *kind;
		int sha384;
		int want;
	} cases[] = {
		{ "P-256", 0, ST_OK }, { "P-256", 1, ST_EPOLICY },
		{ "P-384", 1, ST_OK }, { "P-384", 0, ST_EPOLICY },
		{ "RSA-3072", 0, ST_OK }, { "RSA-3072", 1, ST_EPOLICY },
	};
	uint8_t nonce[32], *der, d[32];
	size_t len = 0;
	struct csr_info ci;
	struct errbuf e;

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		EVP_PKEY *k = tu_key(cases[i].kind);

		rand_nonce(nonce);
		make_csr_signed_with(k, nonce, cases[i].sha384 ? EVP_sha384() : EVP_sha256(),
				     &der, &len);
		assert_int_equal(csr_check(&pol, der, len, UID, nonce, NULL, &ci, &e), cases[i].want);
		if (cases[i].want == ST_OK) {
			/* the digest attestation covers: of the DER as given */
			SHA256(der, len, d);
			assert_memory_equal(ci.der_sha256, d, 32);
			csr_info_clear(&ci);
		} else {
			assert_non_null(strstr(e.msg, "signature"));
			assert_null(ci.req);
		}
		OPENSSL_free(der);
		EVP_PKEY_free(k);
	}
}

/* A station's policy is its profile's one key type (csr_policy_for_key). */
static void test_csr_policy_for_key(void **state)
{
	struct csr_policy one;
	uint8_t nonce[32], *der;
	size_t len = 0;
	EVP_PKEY *k;
	struct csr_info ci;
	struct errbuf e;

	(void)state;
	csr_policy_for_key(&one, CSR_KEY_EC_P256, 0);
	pol = one;
	assert_int_equal(check("P-256", UID, NULL, 0, 0, NULL, &ci, &e), ST_OK);
	csr_info_clear(&ci);
	assert_int_equal(check("P-384", UID, NULL, 0, 0, NULL, &ci, &e), ST_EPOLICY);
	assert_non_null(strstr(e.msg, "not allowed by the profile"));
	assert_int_equal(check("RSA-3072", UID, NULL, 0, 0, NULL, &ci, &e), ST_EPOLICY);
	/* RSA: exactly the profile's size, larger is refused too */
	csr_policy_for_key(&pol, CSR_KEY_RSA, 3072);
	assert_int_equal(check("RSA-3072", UID, NULL, 0, 0, NULL, &ci, &e), ST_OK);
	csr_info_clear(&ci);
	assert_int_equal(check("P-256", UID, NULL, 0, 0, NULL, &ci, &e), ST_EPOLICY);
	k = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)4096);
	assert_non_null(k);
	rand_nonce(nonce);
	assert_int_equal(tu_make_csr(k, UID, NULL, nonce, 0, &der, &len), 0);
	assert_int_equal(csr_check(&pol, der, len, UID, nonce, NULL, &ci, &e), ST_EPOLICY);
	assert_non_null(strstr(e.msg, "RSA-4096"));
	OPENSSL_free(der);
	EVP_PKEY_free(k);
	csr_policy_default(&pol);
}

static void test_csr_weak_keys(void **state)
{
	struct csr_info ci;
	struct errbuf e;

	(void)state;
	assert_int_equal(check("RSA-2048", UID, NULL, 0, 0, NULL, &ci, &e), ST_EPOLICY);
	assert_non_null(strstr(e.msg, "RSA-2048"));
	assert_null(ci.req);
	assert_int_equal(check("P-224", UID, NULL, 0, 0, NULL, &ci, &e), ST_EPOLICY);
	assert_non_null(strstr(e.msg, "secp224r1"));
	/* a profile that allows P-256 only refuses P-384 */
	pol.key_kinds = CSR_KEY_EC_P256;
	assert_int_equal(check("P-384", UID, NULL, 0, 0, NULL, &ci, &e), ST_EPOLICY);
	csr_policy_default(&pol);
}

/* A point that is not on its curve is no key: refused before anything else
 * is read from the request (P-256 and P-384, both built from a template). */
static void test_csr_point_off_the_curve(void **state)
{
	const char *curves[] = { "P-256", "P-384" };

	(void)state;
	for (size_t c = 0; c < 2; c++) {
		uint8_t nonce[32], *der, pt[133], *at;
		size_t len = 0, ptlen = 0;
		EVP_PKEY *k = tu_key(curves[c]);
		struct csr_info ci;
		struct errbuf e;

		rand_nonce(nonce);
		assert_int_equal(EVP_PKEY_get_octet_string_param(k, OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY,
								 pt, sizeof(pt), &ptlen), 1);
		assert_int_equal(tu_make_csr(k, UID, NULL, nonce, 0, &der, &len), 0);
		assert_int_equal(csr_check(&pol, der, len, UID, nonce, NULL, &ci, &e), ST_OK);
		csr_info_clear(&ci);
		at = memmem(der, len, pt, ptlen);
		assert_non_null(at);
		at[ptlen - 1] ^= 0x01;   /* y + 1 or y - 1: off the curve */
		assert_int_equal(csr_check(&pol, der, len, UID, nonce, NULL, &ci, &e), ST_EINVAL);
		assert_non_null(strstr(e.msg, "public key is unreadable"));
		OPENSSL_free(der);
		EVP_PKEY_free(k);
	}
}

/* A compressed point is the same key under another encoding (and hash). */
static void test_csr_compressed_point(void **state)
{
	uint8_t nonce[32], *der;
	size_t len = 0;
	EVP_PKEY *k = tu_key("P-256");
	struct csr_info ci;
	struct errbuf e;

	(void)state;
	rand_nonce(nonce);
	assert_int_equal(EVP_PKEY_set_utf8_string_param(k, "point-format", "compressed"), 1);
	assert_int_equal(tu_make_csr(k, UID, NULL, nonce, 0, &der, &len), 0);
	assert_int_equal(csr_check(&pol, der, len, UID, nonce, NULL, &ci, &e), ST_EPOLICY);
	assert_non_null(strstr(e.msg, "uncompressed"));
	OPENSSL_free(der);
	assert_int_equal(EVP_PKEY_set_utf8_string_param(k, "point-format", "uncompressed"), 1);
	assert_int_equal(tu_make_csr(k, UID, NULL, nonce, 0, &der, &len), 0);
	assert_int_equal(csr_check(&pol, der, len, UID, nonce, NULL, &ci, &e), ST_OK);
	/* the hash is the one the shared rule gives: SHA-256 of the key's DER SPKI */
	{
		char want[65];

		assert_int_equal(csr_pubkey_hash(k, want), ST_OK);
		assert_string_equal(ci.pubkey_hash, want);
	}
	csr_info_clear(&ci);
	OPENSSL_free(der);
	EVP_PKEY_free(k);
}

/* Explicit curve parameters are the same key under another encoding (and
 * hash): found by tests/fuzz/fuzz_csr.c (corpus fuzz_csr/p256-explicit.der). */
static void test_csr_explicit_curve(void **state)
{
	uint8_t nonce[32], *der;
	size_t len = 0;
	EVP_PKEY *k = tu_key("P-256");
	struct csr_info ci;
	struct errbuf e;

	(void)state;
	rand_nonce(nonce);
	assert_int_equal(EVP_PKEY_set_utf8_string_param(k, "encoding", "explicit"), 1);
	assert_int_equal(tu_make_csr(k, UID, NULL, nonce, 0, &der, &len), 0);
	assert_int_equal(csr_check(&pol, der, len, UID, nonce, NULL, &ci, &e), ST_EPOLICY);
	assert_non_null(strstr(e.msg, "name its curve"));
	assert_null(ci.req);
	OPENSSL_free(der);
	assert_int_equal(EVP_PKEY_set_utf8_string_param(k, "encoding", "named_curve"), 1);
	assert_int_equal(tu_make_csr(k, UID, NULL, nonce, 0, &der, &len), 0);
	assert_int_equal(csr_check(&pol, der, len, UID, nonce, NULL, &ci, &e), ST_OK);
	csr_info_clear(&ci);
	OPENSSL_free(der);
	EVP_PKEY_free(k);
}

/*
 * The key's BIT STRING re-encoded with one unused bit declared, the request
 * signed again over that encoding (OpenSSL keeps the declared bits through
 * d2i and re-encoding): a valid signature over a key with two encodings.
 */
static void test_csr_unused_bits(void **state)
{
	static const uint8_t spki_bits[] = { 0x03, 0x42, 0x00, 0x04 };
	uint8_t nonce[32], *der = NULL, *out = NULL, *at = NULL;
	const unsigned char *p;
	size_t len = 0;
	EVP_PKEY *k = NULL;
	X509_REQ *req;
	struct csr_info ci;
	struct errbuf e;
	int olen;

	(void)state;
	rand_nonce(nonce);
	/* a key whose point ends in a 0 bit, so declaring it unused changes no bit */
	for (int tries = 0; tries < 64; tries++) {
		EVP_PKEY_free(k);
		OPENSSL_free(der);
		k = tu_key("P-256");
		assert_int_equal(tu_make_csr(k, UID, NULL, nonce, 0, &der, &len), 0);
		at = NULL;
		for (size_t i = 0; i + sizeof(spki_bits) + 65 <= len; i++)
			if (!memcmp(der + i, spki_bits, sizeof(spki_bits))) {
				at = der + i;
				break;
			}
		assert_non_null(at);
		if (!(at[3 + 64] & 1))
			break;
	}
	assert_int_equal(at[3 + 64] & 1, 0);
	assert_int_equal(csr_check(&pol, der, len, UID, nonce, NULL, &ci, &e), ST_OK);
	csr_info_clear(&ci);
	at[2] = 0x01;
	p = der;
	req = d2i_X509_REQ(NULL, &p, (long)len);
	assert_non_null(req);
	assert_true(X509_REQ_sign(req, k, EVP_sha256()) > 0);
	olen = i2d_X509_REQ(req, &out);
	assert_true(olen > 0);
	assert_int_equal(csr_check(&pol, out, (size_t)olen, UID, nonce, NULL, &ci, &e), ST_EPOLICY);
	assert_int_equal(e.reason, ST_R_CSR_KEY);
	assert_non_null(strstr(e.msg, "unused bits"));
	assert_null(ci.req);
	OPENSSL_free(out);
	X509_REQ_free(req);
	OPENSSL_free(der);
	EVP_PKEY_free(k);
}

static void test_csr_bad_signature(void **state)
{
	uint8_t nonce[32], *der;
	size_t len = 0;
	EVP_PKEY *k = tu_key("P-256");
	struct csr_info ci;
	struct errbuf e;

	(void)state;
	rand_nonce(nonce);
	assert_int_equal(tu_make_csr(k, UID, NULL, nonce, 0, &der, &len), 0);
	/* the signature's last byte (an integer inside the DER ECDSA signature) */
	der[len - 1] ^= 0x01;
	assert_int_equal(csr_check(&pol, der, len, UID, nonce, NULL, &ci, &e), ST_ECRYPTO);
	assert_non_null(strstr(e.msg, "signature"));
	/* truncated and trailing garbage */
	der[len - 1] ^= 0x01;
	assert_int_equal(csr_check(&pol, der, len - 10, UID, nonce, NULL, &ci, &e), ST_EINVAL);
	assert_int_equal(csr_check(&pol, der, 0, UID, nonce, NULL, &ci, &e), ST_EINVAL);
	assert_int_equal(csr_check(&pol, der, len, UID, nonce, NULL, &ci, &e), ST_OK);
	csr_info_clear(&ci);
	OPENSSL_free(der);
	EVP_PKEY_free(k);
}

static void test_csr_subject(void **state)
{
	struct csr_info ci;
	struct errbuf e;

	(void)state;
	assert_int_equal(check("P-256", "0123456789ABCDEF01234568", NULL, 0, 0, NULL, &ci, &e),
			 ST_EPOLICY);
	assert_non_null(strstr(e.msg, "0123456789ABCDEF01234568"));
	assert_int_equal(check("P-256", UID, "Evil Corp", 0, 0, NULL, &ci, &e), ST_EPOLICY);
	assert_int_equal(check("P-256", "0123456789abcdef01234567", NULL, 0, 0, NULL, &ci, &e),
			 ST_EPOLICY);
}

static void test_csr_nonce(void **state)
{
	struct csr_info ci;
	struct errbuf e;

	(void)state;
	/* a CSR made for another challenge (a replay) */
	assert_int_equal(check("P-256", UID, NULL, 1, 0, NULL, &ci, &e), ST_EPOLICY);
	assert_non_null(strstr(e.msg, "nonce"));
	assert_int_equal(check("P-256", UID, NULL, 2, 0, NULL, &ci, &e), ST_EPOLICY);
	assert_non_null(strstr(e.msg, "challengePassword"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_csr_good_kinds),
		cmocka_unit_test(test_csr_weak_keys),
		cmocka_unit_test(test_csr_signature_hash),
		cmocka_unit_test(test_csr_policy_for_key),
		cmocka_unit_test(test_csr_compressed_point),
		cmocka_unit_test(test_csr_point_off_the_curve),
		cmocka_unit_test(test_csr_explicit_curve),
		cmocka_unit_test(test_csr_unused_bits),
		cmocka_unit_test(test_csr_bad_signature),
		cmocka_unit_test(test_csr_subject),
		cmocka_unit_test(test_csr_nonce),
	};

	return cmocka_run_group_tests(tests, group_setup, NULL);
}
