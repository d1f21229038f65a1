/*
 * crl: the certificate revocation list, signed by the CA key in the token.
 *
 * Contract
 * - crl_build() lists every certificate the store holds as revoked, each with
 *   its revocation time and reason code, under the CA certificate's name; v2 CRL
 *   with a CRL number (the store's crl_number(): 1, 2, 3 ...; the signing time
 *   in milliseconds for a store without one) and
 *   the CA's authority key identifier; thisUpdate now, nextUpdate now + days.
 *   Signed in the HSM, then parsed again and verified with the CA certificate.
 * - Reasons are the RFC 5280 names ("keyCompromise", "superseded" ...).
 */
#ifndef STATION_CRL_H
#define STATION_CRL_H

#include <stddef.h>
#include <stdint.h>

#include "hsm/certstore.h"
#include "core/errbuf.h"
#include "hsm/hsm.h"

/* RFC 5280 CRLReason for a name, or -1 if the name is not one. */
int crl_reason_code(const char *name);
/* The accepted names, comma-separated, for usage messages. */
const char *crl_reason_names(void);

/* *der is OPENSSL_malloc'd.  *count gets the number of revoked entries. */
ST_MUST_CHECK int crl_build(struct hsm *h, const struct hsm_certstore *store, int next_update_days,
			    uint8_t **der, size_t *len, int64_t *count, struct errbuf *err);

/* Writes the CRL as PEM (or DER) to path, atomically (temp file + rename). */
ST_MUST_CHECK int crl_write(const char *path, const uint8_t *der, size_t len, int pem,
			    struct errbuf *err);

#endif
