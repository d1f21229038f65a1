/*
 * manifest: the signed per-lot manifest of `station export --format manifest`
 * and its offline verification (`station export verify`), in the style of
 * Microchip's Trust Platform manifest.  Format: docs/engineer.md ("## Export").
 *
 * Contract
 * - The file is a JSON array with one element per PASS unit of the lot:
 *     {"uniqueId": "<24 hex>", "jws": "<compact JWS>"}
 *   one element per line.  Each JWS is ES256 (ECDSA P-256 / SHA-256, signature
 *   r||s, 64 bytes, base64url) by the signer key (the HSM audit key), with the
 *   protected header {"alg":"ES256","kid":<RFC 7638 thumbprint of the signer's
 *   JWK>,"typ":MANIFEST_TYP}.  The payload names the unit, its lot, profile,
 *   firmware, certificate (x5c: device certificate, then the CA certificate, in
 *   standard base64 DER) and public key as a JWK, and the manifest it belongs to
 *   (id, index 1..count, count), so a removed or added entry is detected.
 * - The signing input never begins with "station-" (it is base64url of "{"),
 *   so a signature made for a manifest can never pass for an audit checkpoint
 *   made by the same key, nor the reverse.
 * - manifest_verify_file() checks, without any network or database: the JSON
 *   shape (bounded sizes), every header (alg ES256 only, the kid of the
 *   trusted signer, no "crit"), every signature with the trusted public key,
 *   that each payload's uniqueId is the element's, the certificate's subject
 *   CN is the unique id, its serial and SHA-256 are the payload's, its public
 *   key is the JWK, it is signed by the chain's CA certificate (and that CA is
 *   trusted_ca when given), and that the entries form one whole manifest
 *   (one id, one lot, indexes 1..count each once, no unique id twice).
 */
#ifndef STATION_MANIFEST_H
#define STATION_MANIFEST_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "core/errbuf.h"

struct db_export_row;          /* db/export.h */

#define MANIFEST_TYP       "application/vnd.station.unit+jose"
#define MANIFEST_VERSION   1
#define MANIFEST_MAX_FILE  (256u << 20)   /* bytes verify will read */
#define MANIFEST_MAX_JWS   (64u << 10)    /* one compact JWS (JOSE_MAX_B64) */

/* Who signs: ECDSA-SHA256 over msg, DER signature (OPENSSL_malloc'd into
 * *sig), by the P-256 key whose public half is pub.  hsm_audit_sign() fits. */
struct manifest_signer {
	int (*sign)(void *ctx, const uint8_t *msg, size_t len, uint8_t **sig,
		    size_t *sig_len, struct errbuf *err);
	void *ctx;
	EVP_PKEY *pub;
};

struct manifest_writer {
	FILE *out;
	const struct manifest_signer *signer;
	X509 *ca;                   /* the issuing CA (x5c[1]) */
	char *ca_b64;               /* its DER, base64 (owned) */
	char kid[64];
	char id[33];                /* random, hex */
	char generated[32];         /* ISO-8601 UTC */
	int64_t count, written;
};

/* Starts a manifest of count entries on out (count >= 1). */
ST_MUST_CHECK int manifest_begin(struct manifest_writer *w, FILE *out,
				 const struct manifest_signer *s,
				 X509 *ca, int64_t count, struct errbuf *err);
/* Signs and writes the entry for one PASS unit; refuses (ST_ESTATE) a unit
 * without a signed certificate and (ST_ECRYPTO) a certificate the CA did not
 * sign.  Errors name the unit. */
ST_MUST_CHECK int manifest_add(struct manifest_writer *w, const struct db_export_row *r,
			       struct errbuf *err);
/* Closes the array; ST_ESTATE unless exactly count entries were added.  Call
 * it after a successful begin whatever happened since: it releases w. */
ST_MUST_CHECK int manifest_end(struct manifest_writer *w, struct errbuf *err);

struct manifest_summary {
	int64_t entries;
	char lot[65];
	char id[33];
	char kid[64];
};

/* Verifies a manifest file (at most MANIFEST_MAX_FILE bytes); errors name
 * "PATH: entry N (uniqueId): why".  The signer's kid is jose_kid(signer). */
ST_MUST_CHECK int manifest_verify_file(const char *path, EVP_PKEY *signer, X509 *trusted_ca,
				       struct manifest_summary *sum, struct errbuf *err);
/* The same on a buffer; name is used in messages in place of the path. */
ST_MUST_CHECK int manifest_verify_buf(const char *buf, size_t len, const char *name,
				      EVP_PKEY *signer,
				      X509 *trusted_ca, struct manifest_summary *sum,
				      struct errbuf *err);

#endif
