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
#include <jansson.h>
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

/* Layouts (docs/engineer.md "The signed manifest"): the station's own, and
 * the Microchip Trust Platform one (manifest_mchp.c). */
enum manifest_layout { MANIFEST_STATION, MANIFEST_MICROCHIP };

struct manifest_writer {
	enum manifest_layout layout;
	FILE *out;
	const struct manifest_signer *signer;
	X509 *ca;                   /* the issuing CA (x5c[1]) */
	char *ca_b64;               /* its DER, base64 (owned) */
	char kid[64];
	char id[33];                /* random, hex */
	char generated[32];         /* ISO-8601 UTC */
	int64_t count, written;
	/* MANIFEST_MICROCHIP: the signer's certificate (x5c and x5t#S256 of every
	 * protected header) and the organisation named as provisioner */
	char *signer_cert_b64;
	char signer_x5t[64];
	char org[128];
};

/* Starts a manifest of count entries on out (count >= 1). */
ST_MUST_CHECK int manifest_begin(struct manifest_writer *w, FILE *out,
				 const struct manifest_signer *s,
				 X509 *ca, int64_t count, struct errbuf *err);
/* The same in the Microchip Trust Platform layout.  signer_cert is a
 * certificate of the signer's key (the one `station export` has the CA issue
 * for the audit key); org is the provisioner's organisation.
 *
 * Layout: a JSON array, one flattened JWS (RFC 7515 §7.2.2) per PASS unit:
 *   {"payload": b64url, "protected": b64url, "header": {"uniqueId": ID},
 *    "signature": b64url(r||s)}
 * protected = {"typ":"JWT","alg":"ES256","kid":KID,"x5t#S256":b64url(SHA-256
 * of the signer certificate's DER),"x5c":[signer certificate]}; payload =
 * {"version":1,"model","partNumber","manufacturer","provisioner",
 * "distributor" (each {"organizationName","organizationalUnitName"}),
 * "groupId" (the lot),"provisioningTimestamp","uniqueId","publicKeySet":
 * {"keys":[JWK + "kid":"0","x5c":[device, CA],"x5t#S256"]}}. */
ST_MUST_CHECK int manifest_begin_microchip(struct manifest_writer *w, FILE *out,
					   const struct manifest_signer *s, X509 *ca,
					   X509 *signer_cert, const char *org, int64_t count,
					   struct errbuf *err);
/* An unsigned certificate for the signer's key, issued by ca, that the
 * caller signs with the CA key (hsm_sign_x509) before begin. */
X509 *manifest_signer_cert_new(EVP_PKEY *signer_pub, X509 *ca, const char *cn);
/* The CA's organisation (subject O, else CN), for the provisioner. */
void manifest_ca_org(X509 *ca, char *out, size_t cap);

/* Signs and writes the entry for one PASS unit; refuses (ST_ESTATE) a unit
 * without a signed certificate and (ST_ECRYPTO) a certificate the CA did not
 * sign.  Errors name the unit. */
ST_MUST_CHECK int manifest_add(struct manifest_writer *w, const struct db_export_row *r,
			       struct errbuf *err);
/* Internal to the writers (manifest_mchp.c, called by manifest.c): the
 * Microchip layout's signer certificate, protected header and payload. */
ST_MUST_CHECK int manifest_mchp_signer(struct manifest_writer *w, X509 *signer_cert,
				       struct errbuf *err);
json_t *manifest_mchp_header(const struct manifest_writer *w);
json_t *manifest_mchp_payload(const struct manifest_writer *w, const struct db_export_row *r,
			      X509 *cert);

/* Closes the array; ST_ESTATE unless exactly count entries were added.  Call
 * it after a successful begin whatever happened since: it releases w. */
ST_MUST_CHECK int manifest_end(struct manifest_writer *w, struct errbuf *err);

struct manifest_summary {
	enum manifest_layout layout;
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
