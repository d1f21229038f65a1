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

#endif
