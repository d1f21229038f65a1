/*
 * libFuzzer target: the CSR policy (hsm/csr_policy.c csr_check(): parse the DER
 * request, verify its self-signature, apply the key, subject and nonce rules,
 * ask the store whether the key was seen).  The store is an in-memory stub that
 * answers "not seen" for the input as given; for the re-signed pass (below) the
 * last input byte picks its answer (not seen, seen, lookup error).
 *
 * Any input must be accepted or refused with one of the documented codes and a
 * message, leaving nothing allocated.  An accepted request must have an allowed
 * key, and its public key hash (what the clone check looks up) must be the hash
 * of the key's one canonical encoding: two encodings of one key with two hashes
 * would let a cloned key through.
 *
 * Mutated requests almost never keep a valid signature, so each input that
 * parses is also re-signed with a fixed P-256 key (its public key replaced):
 * that second pass reaches the subject, nonce and clone rules.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include "hsm/csr_policy.h"

/* The seeds in tests/fuzz/corpus/fuzz_csr/ carry this id and nonce. */
static const char uid[] = "0123456789ABCDEF01234567";
static uint8_t nonce[CSR_NONCE_LEN];
static EVP_PKEY *resign_key;
static int stub_answer;

static int stub_pubkey_seen(void *db, const char *hash, int *seen, struct errbuf *err)
{
	*seen = stub_answer == 1;
	if (stub_answer == 2)
		return errbuf_set(err, ST_EDB, "stub: lookup failed");
	return ST_OK;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	for (int i = 0; i < CSR_NONCE_LEN; i++)
		nonce[i] = (uint8_t)i;
	resign_key = EVP_EC_gen("P-256");
	if (!resign_key)
		abort();
	return 0;
}

/* The hash of the key's canonical encoding: an EC key rebuilt from its curve's
 * name and its uncompressed point, an RSA key as OpenSSL writes it. */
static void canonical_hash(EVP_PKEY *pk, char out[65])
{
	unsigned char pt[200];
	char group[64];
	size_t ptlen, glen;
	OSSL_PARAM params[3];
	EVP_PKEY_CTX *kc;
	EVP_PKEY *ec = NULL;

	if (EVP_PKEY_get_base_id(pk) != EVP_PKEY_EC) {
		if (csr_pubkey_hash(pk, out) != ST_OK)
			abort();
		return;
	}
	if (EVP_PKEY_get_group_name(pk, group, sizeof(group), &glen) != 1 ||
	    EVP_PKEY_get_octet_string_param(pk, OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY, pt,
					    sizeof(pt), &ptlen) != 1)
		abort();
	params[0] = OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, group, 0);
	params[1] = OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY, pt, ptlen);
	params[2] = OSSL_PARAM_construct_end();
	kc = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
	if (!kc || EVP_PKEY_fromdata_init(kc) != 1 ||
	    EVP_PKEY_fromdata(kc, &ec, EVP_PKEY_PUBLIC_KEY, params) != 1 ||
	    csr_pubkey_hash(ec, out) != ST_OK)
		abort();
	EVP_PKEY_free(ec);
	EVP_PKEY_CTX_free(kc);
}

static void check(const uint8_t *der, size_t len)
{
	struct hsm_certstore store = { .pubkey_seen = stub_pubkey_seen };
	struct csr_policy pol;
	struct csr_info ci;
	struct errbuf e;
	char canon[65];
	int rc;

	csr_policy_default(&pol);
	errbuf_clear(&e);
	rc = csr_check(&pol, der, len, uid, nonce, &store, &ci, &e);
	if (rc != ST_OK) {
		if ((rc != ST_EINVAL && rc != ST_ECRYPTO && rc != ST_EPOLICY && rc != ST_EEXIST &&
		     rc != ST_EDB) || !e.msg[0] || ci.req || ci.pkey)
			abort();
		if ((rc == ST_EEXIST && stub_answer != 1) || (rc == ST_EDB && stub_answer != 2))
			abort();
		return;
	}
	if (!ci.req || !ci.pkey || !(ci.kind & pol.key_kinds) || strcmp(ci.unique_id, uid) != 0 ||
	    stub_answer != 0)
		abort();
	if (ci.kind == CSR_KEY_RSA ? ci.bits < pol.rsa_min_bits :
	    ci.bits != (ci.kind == CSR_KEY_EC_P256 ? 256 : 384))
		abort();
	canonical_hash(ci.pkey, canon);
	if (strcmp(canon, ci.pubkey_hash) != 0)
		abort();
	csr_info_clear(&ci);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const unsigned char *p = data;
	unsigned char *der = NULL;
	X509_REQ *req;
	int n;

	if (size == 0)
		return 0;
	stub_answer = 0;
	check(data, size);

	req = d2i_X509_REQ(NULL, &p, (long)size);
	if (req && X509_REQ_set_pubkey(req, resign_key) == 1 &&
	    X509_REQ_sign(req, resign_key, EVP_sha256()) > 0 &&
	    (n = i2d_X509_REQ(req, &der)) > 0) {
		stub_answer = data[size - 1] % 3;
		check(der, (size_t)n);
	}
	OPENSSL_free(der);
	X509_REQ_free(req);
	ERR_clear_error();
	return 0;
}
