/*
 * issue: builds, signs (in the HSM), verifies and records a board certificate.
 *
 * Contract
 * - issue_ctx_new() prepares what every certificate shares (issuer name, the
 *   fixed extensions, AKI, the verification store) once; issue_cert() may then
 *   be called from several threads at once with the same context.
 * - The certificate: v3; serial = 16 random bytes with the top bit cleared,
 *   unique in the store (a taken serial is drawn again); subject CN=<unique id>;
 *   validity now .. now + validity_days; basicConstraints CA:FALSE (critical);
 *   keyUsage digitalSignature (+ keyAgreement for EC keys) (critical);
 *   extKeyUsage clientAuth; SKI (SHA-1 of the public key); AKI (the CA's key id);
 *   optionally subjectAltName from the template.  Nothing of the CSR but its
 *   public key is used.  Signed by the CA key in the token with SHA-256 (P-256 and
 *   RSA CAs) or SHA-384 (P-384 CA).
 * - Before returning, the emitted DER is parsed again and verified against the CA
 *   certificate: signature over the exact bytes by the CA key, issued by the CA
 *   (name, key id), client-auth end entity, valid now, certifies the CSR key.
 * - Write-ahead (invariant 2).  Serials are reserved ISSUE_SERIAL_BATCH at a
 *   time (two per thread issuing, up to ISSUE_SERIAL_BATCH_MAX, when more than
 *   four do), in one committed transaction (store->reserve), before anything is
 *   signed with them; each certificate takes one.  After signing and verifying,
 *   store->issued binds the serial to the unit, hardware id and public key and
 *   stores the DER, committed and fsync'd, before the DER is handed to the
 *   caller.  A certificate signed but not recorded (verification failed, the
 *   record failed, or a clone raced it to the same public key) is discarded and
 *   its serial revoked at once (store->revoke); should that fail too, the serial
 *   stays reserved for the next start's recovery to revoke.  A serial never
 *   signed goes back to the pool; issue_ctx_free() voids those left
 *   (store->release).  A crash therefore leaves at most the pool's serials
 *   reserved, and recovery revokes them all: one may have been signed.
 */
#ifndef STATION_ISSUE_H
#define STATION_ISSUE_H

#include <stddef.h>
#include <stdint.h>

#include "hsm/certstore.h"
#include "hsm/csr_policy.h"
#include "core/errbuf.h"
#include "hsm/hsm.h"

#define ISSUE_SAN_MAX 256
#define ISSUE_SERIAL_HEX 41   /* 16 bytes -> at most 32 hex digits + NUL, with room */
#define ISSUE_SERIAL_BATCH 8  /* serials reserved per commit: 1 + 1/8 commits per certificate */
#define ISSUE_SERIAL_BATCH_MAX 32  /* ... with many threads issuing (two per thread) */

struct issue_profile {
	int validity_days;              /* 1 .. 36500 */
	/* "" for no SAN, or "URI:<text>" / "DNS:<text>" where the text holds
	 * exactly one %s, replaced by the unique id (e.g. "URI:urn:dev:uid:%s"). */
	char san_template[ISSUE_SAN_MAX];
};

struct issue_ctx;

/* store (copied; its db must outlive the context) is required: write-ahead. */
ST_MUST_CHECK int  issue_ctx_new(struct hsm *h, const struct issue_profile *p,
				 const struct hsm_certstore *store, struct issue_ctx **out,
				 struct errbuf *err);
/* Voids the serials reserved and not used, then frees. */
void issue_ctx_free(struct issue_ctx *ic);

/* Checks a SAN template (also used by profile parsers). */
ST_MUST_CHECK int issue_san_template_check(const char *tmpl, struct errbuf *err);

struct issue_result {
	char serial_hex[ISSUE_SERIAL_HEX];  /* lower-case, no leading zeros */
	uint8_t *der;                       /* OPENSSL_malloc'd; issue_result_clear frees */
	size_t der_len;
};

/* csr must have passed csr_check().  unit_id is recorded with the certificate
 * (0 = none). */
ST_MUST_CHECK int issue_cert(struct issue_ctx *ic, const struct csr_info *csr, int64_t unit_id,
			     struct issue_result *out, struct errbuf *err);
void issue_result_clear(struct issue_result *r);

/* The check issue_cert() applies to what it emits (see above); exposed so a
 * certificate read back from a board can be checked the same way. */
ST_MUST_CHECK int issue_verify(struct issue_ctx *ic, const struct csr_info *csr,
			       const uint8_t *der, size_t len, struct errbuf *err);

/* The authority key identifier extension for certificates and CRLs of ca
 * (its SKI, or SHA-1 of its public key when it has none). */
X509_EXTENSION *issue_aki_ext(X509 *ca);

/* A fresh serial per the shared rule (16 random bytes, top bit cleared). */
ST_MUST_CHECK int issue_new_serial(char hex[ISSUE_SERIAL_HEX], struct errbuf *err);

#endif
