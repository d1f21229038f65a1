/*
 * rework: an engineer's authorisation to provision a board again (invariant 3).
 *
 * A board gets a certificate at most once.  When it must be provisioned again
 * (a replaced part, a botched flash after lock, a certificate to be reissued),
 * an engineer authorises rework.  In one transaction that:
 *   - revokes the board's current certificate with reason "superseded", through
 *     db_cert_revoke (the path `station revoke` uses, so the next CRL lists it);
 *   - marks its PASS unit superseded (units.superseded_by), so the unit no
 *     longer counts as "already provisioned" (db_unit_provisioned) nor for the
 *     one-PASS-per-id index;
 *   - records a single-use authorisation (who, why, when) and an audit event.
 * The pipeline looks the open authorisation up at its duplicate check and
 * consumes it in the transaction that commits the new PASS unit (the new unit
 * names it in units.rework_id); a failed attempt leaves it open.  Clone
 * detection is untouched: the old public key stays on record, so the board
 * must come back with a fresh key.
 *
 * Schema: table reworks, columns units.superseded_by and units.rework_id
 * (db/schema.c, docs/database.md).
 */
#ifndef STATION_DB_REWORK_H
#define STATION_DB_REWORK_H

#include <stdint.h>

#include "db/db.h"

#define DB_REWORK_REASON_MAX 200      /* bytes of the engineer's reason */

struct db_rework {
	int64_t id;
	char    unique_id[65];
	char    lot[65];               /* the lot whose allowlist holds the id */
	int64_t old_unit_id;           /* the PASS unit superseded, or the unit that
					  failed or stopped at or after LOCK */
	char    old_status[16];        /* that unit's status: "pass", "fail", "interrupted"
					  (authorise only; "" from db_rework_open) */
	char    old_serial[65];        /* its certificate, now revoked ("" if none) */
	char    old_revoke_reason[32]; /* "superseded", the reason it already had, or
					  "none" (a failed unit without a live certificate) */
	char    reason[DB_REWORK_REASON_MAX + 1];
	char    authorised_by[64];
	int64_t authorised_ms;
	int64_t new_unit_id;           /* 0 while open */
	int64_t consumed_ms;
};

/* Authorises rework of unique_id by actor for reason (1..DB_REWORK_REASON_MAX
 * bytes of UTF-8 text without control characters), as described above; fills
 * *out (may be NULL).  Joins the caller's db_begin() transaction if one is
 * open.  Refused, nothing written:
 *   ST_EINVAL    malformed id, empty or bad reason, no actor
 *   ST_ENOTFOUND the id is on no lot's allowlist
 *   ST_ESTATE    the id has no current PASS unit and its last unit did not fail
 *                or stop (interrupted) at or after LOCK, or a rework is already
 *                authorised and not yet used (err says which)
 * A board locked by a unit that did not pass (a failure at commit, a crash
 * after LOCK) is authorised the same way: the old unit is that unit, any live
 * certificate of it is revoked (superseded), no unit is superseded.
 * A certificate that is already revoked stays revoked with its own reason. */
ST_MUST_CHECK int db_rework_authorise(struct db *db, const char *unique_id, const char *reason,
				      const char *actor, struct db_rework *out, struct errbuf *err);

/* The open (unconsumed) authorisation for unique_id: *found = 1 and *out
 * filled, or *found = 0. */
ST_MUST_CHECK int db_rework_open(struct db *db, const char *unique_id, struct db_rework *out,
				 int *found, struct errbuf *err);

/* Consumes authorisation rework_id for unit unit_id, which must be in progress
 * and for the same board: sets units.rework_id and the authorisation's
 * new_unit_id, appends a "rework-consumed" audit event (actor: the operator).
 * Meant to run inside the transaction that commits the unit's PASS, so the
 * authorisation is used exactly when the board passes.  ST_ESTATE when the
 * authorisation was already used or the unit does not fit; ST_ENOTFOUND when
 * there is no such authorisation. */
ST_MUST_CHECK int db_rework_consume(struct db *db, int64_t rework_id, int64_t unit_id,
				    const char *actor, struct errbuf *err);

#endif
