/*
 * certstore: the certificate records the HSM code writes through, as a table of
 * functions with db/db.h's signatures.
 *
 * hsm/ never calls the database directly: the CSR policy asks whether a public
 * key was seen before; the issuer writes ahead (reserves serials in batches
 * before signing, records each signed certificate as issued, committed before
 * the DER is returned, revokes one it signed but could not record, voids the
 * serials it never used); the CRL builder lists revoked serials.  In the
 * station these are db_* (hsm_certstore_db()); tests may supply their own.
 */
#ifndef STATION_CERTSTORE_H
#define STATION_CERTSTORE_H

#include <stddef.h>
#include <stdint.h>

#include "db.h"
#include "errbuf.h"

struct hsm_certstore {
	struct db *db;
	int (*pubkey_seen)(struct db *db, const char *pubkey_hash, int *seen,
			   struct errbuf *err);
	int (*reserve)(struct db *db, const char *const *serials, size_t n, struct errbuf *err);
	int (*issued)(struct db *db, const char *serial_hex, int64_t unit_id,
		      const char *unique_id, const char *pubkey_hash,
		      const uint8_t *der, size_t der_len, struct errbuf *err);
	int (*release)(struct db *db, const char *const *serials, size_t n, struct errbuf *err);
	int (*revoke)(struct db *db, const char *serial_hex, const char *reason,
		      const char *actor, struct errbuf *err);
	int (*foreach)(struct db *db, int status,
		       int (*fn)(const struct db_cert_row *c, void *ctx), void *ctx,
		       struct errbuf *err);
};

/* The station's store: the database.  Inline so that only callers that use the
 * database link it. */
static inline void hsm_certstore_db(struct hsm_certstore *s, struct db *db)
{
	s->db = db;
	s->pubkey_seen = db_pubkey_seen;
	s->reserve = db_cert_reserve;
	s->issued = db_cert_issued;
	s->release = db_cert_void;
	s->revoke = db_cert_revoke;
	s->foreach = db_cert_foreach;
}

#endif
