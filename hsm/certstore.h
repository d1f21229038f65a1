/*
 * certstore: the certificate records the HSM code writes through, as a table of
 * functions over an opaque context.
 *
 * hsm/ never calls the database: the CSR policy asks whether a public key was
 * seen before; the issuer writes ahead (reserves serials in batches before
 * signing, records each signed certificate as issued, committed before the DER
 * is returned, revokes one it signed but could not record, voids the serials it
 * never used); the CRL builder lists revoked serials.  In the station the
 * context is the database (station/app/certstore_db.h); tests supply their own.
 */
#ifndef STATION_CERTSTORE_H
#define STATION_CERTSTORE_H

#include <stddef.h>
#include <stdint.h>

#include "core/errbuf.h"

/* One revoked certificate, as the CRL needs it. */
struct hsm_revoked {
	const char *serial_hex;
	const char *reason;     /* RFC 5280 name ("keyCompromise") */
	int64_t revoked_ms;
};

struct hsm_certstore {
	void *ctx;
	/* *seen = 1 when a certificate was ever reserved for this key hash. */
	int (*pubkey_seen)(void *ctx, const char *pubkey_hash, int *seen, struct errbuf *err);
	/* Optional, used instead of pubkey_seen when set: the clone check over
	 * every key ever shown.  *seen = 1 when the key was certified or a board
	 * other than unique_id showed it (the caller records the keys it saw). */
	int (*pubkey_seen_by)(void *ctx, const char *pubkey_hash, const char *unique_id,
			      int *seen, struct errbuf *err);
	/* Records serials as reserved, committed, before any is signed. */
	int (*reserve)(void *ctx, const char *const *serials, size_t n, struct errbuf *err);
	/* Binds a reserved serial to its board and key with the DER, committed and
	 * on disk before it returns; ST_EEXIST when the key is certified already. */
	int (*issued)(void *ctx, const char *serial_hex, int64_t unit_id,
		      const char *unique_id, const char *pubkey_hash,
		      const uint8_t *der, size_t der_len, struct errbuf *err);
	/* Voids reserved serials that were never signed. */
	int (*release)(void *ctx, const char *const *serials, size_t n, struct errbuf *err);
	int (*revoke)(void *ctx, const char *serial_hex, const char *reason,
		      const char *actor, struct errbuf *err);
	/* Calls fn for each revoked certificate until fn returns non-zero. */
	int (*foreach_revoked)(void *ctx, int (*fn)(const struct hsm_revoked *r, void *arg),
			       void *arg, struct errbuf *err);
	/* Optional: records the next CRL (listing `entries` serials) and returns
	 * its number, one more than the last; refuses a stored state that went
	 * backwards or would drop a serial (ST_ETAMPER). */
	int (*crl_number)(void *ctx, int64_t entries, int64_t *number, struct errbuf *err);
};

#endif
