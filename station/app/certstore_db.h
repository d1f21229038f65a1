/*
 * certstore_db: the HSM's certificate store (hsm/certstore.h) over the
 * station's database: pubkey_seen, reserve, issued, release, revoke and the
 * revoked list are db_pubkey_seen, db_cert_reserve, db_cert_issued,
 * db_cert_void, db_cert_revoke and db_cert_foreach.  The db must outlive
 * every user of the store.
 */
#ifndef STATION_APP_CERTSTORE_DB_H
#define STATION_APP_CERTSTORE_DB_H

#include "db/db.h"
#include "hsm/certstore.h"

void app_certstore_db(struct hsm_certstore *s, struct db *db);

/* The same store with a guard on reserve: guard (if set) reserves the serials
 * elsewhere first (the factory ledger: unique across stations) and refuses a
 * taken one with ST_EEXIST, so the issuer draws again; only then are they
 * reserved in the database.  g must outlive the store; g->guard may be set
 * later, before the first certificate is issued. */
struct app_certstore_guarded {
	struct db *db;
	int (*guard)(void *ctx, const char *const *serials, size_t n, struct errbuf *err);
	void *guard_ctx;
};
void app_certstore_db_guarded(struct hsm_certstore *s, struct app_certstore_guarded *g);

#endif
