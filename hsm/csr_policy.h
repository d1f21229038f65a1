/*
 * csr_policy: decides whether a board's CSR may be certified.
 *
 * Contract
 * - csr_check() parses the DER CSR (bounded: at most CSR_MAX_DER bytes, no
 *   trailing data), verifies its self-signature, and applies the policy:
 *     key type EC P-256 or P-384 (named curve, uncompressed point: one key has
 *     one encoding, so one public key hash), or RSA of rsa_min_bits ..
 *     rsa_max_bits (each allowed by the policy's mask; the station's policy
 *     is its profile's one key type, csr_policy_for_key());
 *     signed with the hash that goes with the key: SHA-256 for P-256 and RSA,
 *     SHA-384 for P-384;
 *     subject exactly one RDN, CN=<unique id>;
 *     exactly one PKCS#9 challengePassword whose value is the station nonce as 64
 *     lower-case hex characters (compared in constant time);
 *     requested extensions are ignored (never copied into the certificate);
 *     a public key for which a certificate was ever reserved is refused.
 * - Return codes: ST_EINVAL unparseable CSR; ST_ECRYPTO bad signature;
 *   ST_EPOLICY key type, subject or nonce refused; ST_EEXIST the public key was
 *   seen before (possible clone: the caller raises an alert); ST_EDB the lookup
 *   failed.  err says which rule.
 * - On success *out holds the parsed CSR and facts the issuer needs; release it
 *   with csr_info_clear().  On any failure *out is released, except that when
 *   the store was asked (ST_EEXIST, or the lookup failed) out->pubkey_hash
 *   still names the key, for the caller's records.  Thread-safe (no shared
 *   state).
 */
#ifndef STATION_CSR_POLICY_H
#define STATION_CSR_POLICY_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/x509.h>

#include "hsm/certstore.h"
#include "core/errbuf.h"
#include "core/ids.h"

#define CSR_MAX_DER   16384
/* The station's challenge: the board's wire format (proto/proto.h) owns its
 * length, which hsm/ cannot see; app/pl_hsm.c, which sees both, asserts they
 * are equal. */
#define CSR_NONCE_LEN 32
#define CSR_UID_LEN   IDS_UID_LEN

enum csr_key_kind {
	CSR_KEY_EC_P256 = 1 << 0,
	CSR_KEY_EC_P384 = 1 << 1,
	CSR_KEY_RSA     = 1 << 2,
};

struct csr_policy {
	unsigned key_kinds;     /* mask of csr_key_kind */
	int rsa_min_bits;       /* at least 3072 */
	int rsa_max_bits;       /* 0: no upper bound */
};

/* The default policy: EC P-256, P-384, RSA >= 3072. */
void csr_policy_default(struct csr_policy *p);
/* Exactly one key type: kind, and for CSR_KEY_RSA exactly rsa_bits (>= 3072)
 * bits.  A station's profile names one key type and its boards make that one. */
void csr_policy_for_key(struct csr_policy *p, enum csr_key_kind kind, int rsa_bits);

struct csr_info {
	/* parsed without decoding its key (see csr_policy.c): X509_REQ_get0_pubkey()
	 * returns NULL; use pkey */
	X509_REQ *req;
	EVP_PKEY *pkey;               /* the CSR's public key (owned here) */
	enum csr_key_kind kind;
	int bits;
	char unique_id[CSR_UID_LEN + 1];
	char pubkey_hash[65];         /* hex SHA-256 of the DER SubjectPublicKeyInfo */
	uint8_t der_sha256[32];       /* SHA-256 of the request's DER as given (what a
				       * board's attestation covers) */
};

/* store may be NULL (no clone check: tests and tools only). */
ST_MUST_CHECK int csr_check(const struct csr_policy *pol, const uint8_t *der, size_t len,
			    const char *unique_id, const uint8_t nonce[CSR_NONCE_LEN],
			    const struct hsm_certstore *store, struct csr_info *out,
			    struct errbuf *err);
void csr_info_clear(struct csr_info *ci);

/* A library context with no providers, for parsing without decoding public
 * keys (OpenSSL 3.0's generic key decoders dominate parse time).  NULL if it
 * could not be made; callers then parse the ordinary way. */
OSSL_LIB_CTX *csr_parse_libctx(void);

/* Lower-case hex SHA-256 of the DER SubjectPublicKeyInfo of pkey. */
ST_MUST_CHECK int csr_pubkey_hash(EVP_PKEY *pkey, char out[65]);

#endif
