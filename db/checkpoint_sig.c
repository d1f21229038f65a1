/*
 * checkpoint_sig: the check of a checkpoint's signature, shared by storing
 * (db/checkpoint.c) and verifying (db/audit.c).  The message is
 *   "station-audit-checkpoint-v1\n<station_id>\n<seq>\n<head_hash_hex>\n".
 */
#include "db/db_int.h"

#include <openssl/evp.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <string.h>

#define CHECKPOINT_TAG "station-audit-checkpoint-v1"

static int checkpoint_message(char *buf, size_t size, const char *station_id, int64_t seq,
			      const char head_hex[65])
{
	return snprintf(buf, size, CHECKPOINT_TAG "\n%s\n%lld\n%s\n", station_id,
			(long long)seq, head_hex);
}

int db_checkpoint_sig_ok(const char *station_id, int64_t seq, const char head_hex[65],
			 const uint8_t *sig, size_t sig_len, const uint8_t *pub_der,
			 size_t pub_len, const char **why)
{
	const unsigned char *p = pub_der;
	char msg[512];
	EVP_PKEY *key;
	EVP_MD_CTX *md;
	int n, ok;

	*why = "public key is not a DER SubjectPublicKeyInfo";
	key = d2i_PUBKEY(NULL, &p, (long)pub_len);
	if (!key || p != pub_der + pub_len) {
		EVP_PKEY_free(key);
		return -1;
	}
	if (EVP_PKEY_base_id(key) != EVP_PKEY_EC) {
		*why = "public key is not an EC key";
		EVP_PKEY_free(key);
		return -1;
	}
	n = checkpoint_message(msg, sizeof(msg), station_id, seq, head_hex);
	if (n < 0 || (size_t)n >= sizeof(msg)) {
		*why = "station id too long";
		EVP_PKEY_free(key);
		return -1;
	}
	md = EVP_MD_CTX_new();
	ok = md && EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, key) == 1 &&
	     EVP_DigestVerify(md, sig, sig_len, (const unsigned char *)msg, (size_t)n) == 1;
	EVP_MD_CTX_free(md);
	EVP_PKEY_free(key);
	*why = "signature does not verify";
	return ok ? 0 : -1;
}


int db_checkpoint_signature_ok(const char *station_id, int64_t seq, const char head_hex[65],
			       const uint8_t *sig, size_t sig_len, const uint8_t *pub_der,
			       size_t pub_len, const char **why)
{
	return db_checkpoint_sig_ok(station_id, seq, head_hex, sig, sig_len, pub_der, pub_len, why);
}
