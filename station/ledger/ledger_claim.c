/*
 * ledger_claim: the rules across stations, each decided by one transaction of
 * the ledger (row locks, PRIMARY KEY and UNIQUE constraints), never by what a
 * station believes:
 *   hold   the board is here now (in_progress); a second station seeing the
 *          same id while the hold stands marks it: both are clones;
 *   claim  before signing: the id (PRIMARY KEY) and the public key (UNIQUE)
 *          are this station's, unless another station has them;
 *   done   committed with its serial (UNIQUE), or released if the unit failed.
 */
#include "ledger/ledger_int.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int ledger_hold(struct ledger *l, const char *unique_id, int64_t unit_id, int ttl_s,
		char other_station[LEDGER_ID_LEN], struct errbuf *err)
{
	char ttl[16], unit[24];
	const char *p[4] = { unique_id, l->cfg.station_id, ttl, unit };
	PGresult *r;
	int rc;

	other_station[0] = '\0';
	snprintf(ttl, sizeof(ttl), "%d", ttl_s);
	snprintf(unit, sizeof(unit), "%" PRId64, unit_id);
	/* provisioned at another station: refused before the board is touched
	 * (the claim before signing is what decides; this is the early word) */
	if ((rc = ledger_exec(l, "read the claims",
			      "SELECT station_id, state FROM provisioned WHERE unique_id = $1"
			      " AND station_id <> $2", 2, p, &r, NULL, err)))
		return rc;
	if (PQntuples(r) == 1) {
		snprintf(other_station, LEDGER_ID_LEN, "%s", PQgetvalue(r, 0, 0));
		rc = errbuf_setr(err, ST_EPOLICY, ST_ORIGIN_POLICY, ST_R_PROVISIONED_ELSEWHERE,
				 "id %s is already provisioned at station %s%s", unique_id,
				 other_station, strcmp(PQgetvalue(r, 0, 1), "claimed") ? "" :
				 " (in progress there)");
		PQclear(r);
		return rc;
	}
	PQclear(r);
	if ((rc = ledger_begin(l, err)))
		return rc;
	/* a hold of this station, or one expired (its station died), is taken over */
	rc = ledger_exec(l, "hold the board",
			 "INSERT INTO in_progress (unique_id, station_id, expires, unit_id)"
			 " VALUES ($1, $2, now() + make_interval(secs => $3::integer), $4::bigint)"
			 " ON CONFLICT (unique_id) DO UPDATE SET station_id = EXCLUDED.station_id,"
			 "  since = now(), expires = EXCLUDED.expires, clone_seen_by = NULL,"
			 "  unit_id = EXCLUDED.unit_id"
			 " WHERE in_progress.station_id = EXCLUDED.station_id"
			 "  OR in_progress.expires < now()"
			 " RETURNING station_id", 4, p, &r, NULL, err);
	if (rc)
		goto fail;
	if (PQntuples(r) == 1) {
		PQclear(r);
		return ledger_commit(l, err);
	}
	PQclear(r);
	rc = ledger_exec(l, "mark the clone",
			 "UPDATE in_progress SET clone_seen_by = $2 WHERE unique_id = $1"
			 " RETURNING station_id", 2, p, &r, NULL, err);
	if (rc)
		goto fail;
	if (PQntuples(r) == 1)
		snprintf(other_station, LEDGER_ID_LEN, "%s", PQgetvalue(r, 0, 0));
	PQclear(r);
	if ((rc = ledger_commit(l, err)))
		return rc;
	return errbuf_setr(err, ST_EEXIST, ST_ORIGIN_POLICY, ST_R_CLONE,
			   "clone: id %s is on station %s at the same time", unique_id,
			   other_station);
fail:
	ledger_rollback(l);
	return rc;
}

static int refuse_claim(struct ledger *l, const char *unique_id, const char *pubkey_hash,
			char other[LEDGER_ID_LEN], struct errbuf *err)
{
	const char *p[2] = { unique_id, pubkey_hash };
	PGresult *r;
	int rc;

	if ((rc = ledger_exec(l, "read the claim",
			      "SELECT station_id, unique_id = $1, state FROM provisioned"
			      " WHERE unique_id = $1 OR pubkey_hash = $2 ORDER BY unique_id = $1 DESC"
			      " LIMIT 1", 2, p, &r, NULL, err)))
		return rc;
	if (PQntuples(r) == 0) {
		PQclear(r);
		return errbuf_setr(err, ST_EDB, ST_ORIGIN_DB, ST_R_DB,
				   "ledger: the claim of id %s conflicted but no row holds it",
				   unique_id);
	}
	snprintf(other, LEDGER_ID_LEN, "%s", PQgetvalue(r, 0, 0));
	if (!strcmp(PQgetvalue(r, 0, 1), "t")) {
		rc = errbuf_setr(err, ST_EPOLICY, ST_ORIGIN_POLICY, ST_R_PROVISIONED_ELSEWHERE,
				 "id %s is already provisioned at station %s%s", unique_id, other,
				 strcmp(PQgetvalue(r, 0, 2), "claimed") ? "" : " (in progress there)");
	} else {
		rc = errbuf_setr(err, ST_EPOLICY, ST_ORIGIN_POLICY, ST_R_KEY_SEEN,
				 "public key already certified at station %s for another id",
				 other);
	}
	PQclear(r);
	return rc;
}

int ledger_claim(struct ledger *l, const char *unique_id, const char *lot,
		 const char *pubkey_hash, int64_t unit_id, int rework,
		 char other_station[LEDGER_ID_LEN], struct errbuf *err)
{
	char unit[24];
	const char *p[6] = { unique_id, l->cfg.station_id, lot, pubkey_hash, unit,
			     rework ? "t" : "f" };
	PGresult *r;
	char st[6];
	int rc;

	other_station[0] = '\0';
	snprintf(unit, sizeof(unit), "%" PRId64, unit_id);
	if ((rc = ledger_begin(l, err)))
		return rc;
	/* the hold first: a second station marked it while this unit ran */
	if ((rc = ledger_exec(l, "read the hold",
			      "SELECT clone_seen_by FROM in_progress WHERE unique_id = $1"
			      " AND station_id = $2 FOR UPDATE", 2, p, &r, NULL, err)))
		goto fail;
	if (PQntuples(r) == 1 && !PQgetisnull(r, 0, 0)) {
		snprintf(other_station, LEDGER_ID_LEN, "%s", PQgetvalue(r, 0, 0));
		PQclear(r);
		ledger_rollback(l);
		return errbuf_setr(err, ST_EPOLICY, ST_ORIGIN_POLICY, ST_R_CLONE,
				   "clone: id %s was seen on station %s at the same time",
				   unique_id, other_station);
	}
	PQclear(r);
	/* A claim of this station that never committed (a failed attempt whose
	 * release was lost) is taken again; so is a committed one on rework,
	 * whose PASS is kept in prev_* (a rework claimed again keeps the first
	 * one it saved).  Any other conflict, on the id or on the key, is a
	 * refusal. */
	rc = ledger_exec(l, "claim the id",
			 "INSERT INTO provisioned (unique_id, station_id, lot, pubkey_hash,"
			 " unit_id, state) VALUES ($1, $2, $3, $4, $5::bigint, 'claimed')"
			 " ON CONFLICT (unique_id) DO UPDATE SET"
			 "  prev_unit_id = CASE WHEN provisioned.state = 'committed'"
			 "   THEN provisioned.unit_id ELSE provisioned.prev_unit_id END,"
			 "  prev_pubkey_hash = CASE WHEN provisioned.state = 'committed'"
			 "   THEN provisioned.pubkey_hash ELSE provisioned.prev_pubkey_hash END,"
			 "  prev_serial = CASE WHEN provisioned.state = 'committed'"
			 "   THEN provisioned.serial ELSE provisioned.prev_serial END,"
			 "  prev_committed_at = CASE WHEN provisioned.state = 'committed'"
			 "   THEN provisioned.committed_at ELSE provisioned.prev_committed_at END,"
			 "  pubkey_hash = EXCLUDED.pubkey_hash,"
			 "  unit_id = EXCLUDED.unit_id, lot = EXCLUDED.lot, state = 'claimed',"
			 "  serial = NULL, claimed_at = now(), committed_at = NULL"
			 " WHERE provisioned.station_id = EXCLUDED.station_id"
			 "  AND (provisioned.state = 'claimed' OR $6::boolean)"
			 " RETURNING 1", 6, p, &r, st, err);
	if (rc) {
		/* the id's conflict is ON CONFLICT's and serial is NULL here: a
		 * unique violation can only be the key's */
		if (!strcmp(st, "23505")) {
			ledger_rollback(l);
			errbuf_clear(err);
			return refuse_claim(l, unique_id, pubkey_hash, other_station, err);
		}
		goto fail;
	}
	if (PQntuples(r) == 1) {
		PQclear(r);
		return ledger_commit(l, err);
	}
	PQclear(r);
	ledger_rollback(l);
	return refuse_claim(l, unique_id, pubkey_hash, other_station, err);
fail:
	ledger_rollback(l);
	return rc;
}

/* The statements that end a claim, for ledger_done, ledger_done_rework and
 * ledger_settle_station (ledger_int.h): station sid's claim of unique_id by
 * unit.  Inside the caller's transaction. */
int ledger_claim_commit_tx(struct ledger *l, const char *sid, const char *unique_id,
			   int64_t unit_id, const char *serial, struct errbuf *err)
{
	char unit[24];
	const char *p[4] = { unique_id, sid, serial, unit };

	snprintf(unit, sizeof(unit), "%" PRId64, unit_id);
	return ledger_run(l, "commit the claim",
			  "UPDATE provisioned SET state = 'committed', serial = $3,"
			  " committed_at = now(), prev_unit_id = NULL, prev_pubkey_hash = NULL,"
			  " prev_serial = NULL, prev_committed_at = NULL"
			  " WHERE unique_id = $1 AND station_id = $2"
			  " AND unit_id = $4::bigint", 4, p, err);
}

int ledger_claim_put_back_tx(struct ledger *l, const char *sid, const char *unique_id,
			     int64_t unit_id, int *put_back, struct errbuf *err)
{
	char unit[24];
	const char *p[3] = { unique_id, sid, unit };
	PGresult *r;
	int rc;

	*put_back = 0;
	snprintf(unit, sizeof(unit), "%" PRId64, unit_id);
	if ((rc = ledger_exec(l, "put back the reworked PASS",
			      "UPDATE provisioned SET state = 'committed', unit_id = prev_unit_id,"
			      " pubkey_hash = prev_pubkey_hash, serial = prev_serial,"
			      " committed_at = prev_committed_at, prev_unit_id = NULL,"
			      " prev_pubkey_hash = NULL, prev_serial = NULL, prev_committed_at = NULL"
			      " WHERE unique_id = $1 AND station_id = $2 AND state = 'claimed'"
			      " AND unit_id = $3::bigint AND prev_unit_id IS NOT NULL", 3, p, &r,
			      NULL, err)))
		return rc;
	*put_back = strcmp(PQcmdTuples(r), "0") != 0;
	PQclear(r);
	return ST_OK;
}

int ledger_claim_undo_tx(struct ledger *l, const char *sid, const char *unique_id,
			 int64_t unit_id, int *put_back, struct errbuf *err)
{
	char unit[24];
	const char *p[3] = { unique_id, sid, unit };
	int rc;

	/* a rework gives the board back its PASS; a first attempt's claim goes */
	if ((rc = ledger_claim_put_back_tx(l, sid, unique_id, unit_id, put_back, err)) ||
	    *put_back)
		return rc;
	snprintf(unit, sizeof(unit), "%" PRId64, unit_id);
	return ledger_run(l, "release the claim",
			  "DELETE FROM provisioned WHERE unique_id = $1 AND station_id = $2"
			  " AND state = 'claimed' AND unit_id = $3::bigint", 3, p, err);
}

/* A hold of no unit is an older station's: it goes too. */
static int release_hold_tx(struct ledger *l, const char *unique_id, int64_t unit_id,
			   struct errbuf *err)
{
	char unit[24];
	const char *p[3] = { unique_id, l->cfg.station_id, unit };

	snprintf(unit, sizeof(unit), "%" PRId64, unit_id);
	return ledger_run(l, "release the hold",
			  "DELETE FROM in_progress WHERE unique_id = $1 AND station_id = $2"
			  " AND (unit_id = $3::bigint OR unit_id IS NULL)", 3, p, err);
}

int ledger_done(struct ledger *l, const char *unique_id, int64_t unit_id, int passed,
		const char *serial, struct errbuf *err)
{
	const char *sid = l->cfg.station_id;
	int rc, put_back;

	if ((rc = ledger_begin(l, err)))
		return rc;
	rc = passed ? ledger_claim_commit_tx(l, sid, unique_id, unit_id, serial ? serial : "", err) :
		      ledger_claim_undo_tx(l, sid, unique_id, unit_id, &put_back, err);
	if (rc || (rc = release_hold_tx(l, unique_id, unit_id, err))) {
		ledger_rollback(l);
		return rc;
	}
	return ledger_commit(l, err);
}

int ledger_done_rework(struct ledger *l, const char *unique_id, int64_t unit_id,
		       const char *pass_serial, struct errbuf *err)
{
	const char *sid = l->cfg.station_id;
	int rc, put_back;

	if ((rc = ledger_begin(l, err)))
		return rc;
	/* nothing kept (a claim from before schema 3): the PASS's serial */
	if (!(rc = ledger_claim_put_back_tx(l, sid, unique_id, unit_id, &put_back, err)) &&
	    !put_back)
		rc = ledger_claim_commit_tx(l, sid, unique_id, unit_id, pass_serial, err);
	if (rc || (rc = release_hold_tx(l, unique_id, unit_id, err))) {
		ledger_rollback(l);
		return rc;
	}
	return ledger_commit(l, err);
}

int ledger_release_holds(struct ledger *l, struct errbuf *err)
{
	const char *p[1] = { l->cfg.station_id };

	return ledger_run(l, "release this station's holds",
			  "DELETE FROM in_progress WHERE station_id = $1", 1, p, err);
}

int ledger_open_claims(struct ledger *l,
		       int (*fn)(const char *unique_id, int64_t unit_id, void *ctx), void *ctx,
		       struct errbuf *err)
{
	const char *p[1] = { l->cfg.station_id };
	PGresult *r;
	int rc, n;

	if ((rc = ledger_exec(l, "read this station's open claims",
			      "SELECT unique_id, unit_id FROM provisioned WHERE station_id = $1"
			      " AND state = 'claimed' ORDER BY unique_id", 1, p, &r, NULL, err)))
		return rc;
	/* the whole result is in memory: fn may use the connection */
	n = PQntuples(r);
	for (int i = 0; i < n && rc == ST_OK; i++)
		rc = fn(PQgetvalue(r, i, 0), strtoll(PQgetvalue(r, i, 1), NULL, 10), ctx);
	PQclear(r);
	return rc;
}

int ledger_allowlist_add(struct ledger *l, const char *lot, const char *const *ids, size_t n,
			 const char *actor, int64_t *added, struct errbuf *err)
{
	PGresult *r;
	int rc;

	*added = 0;
	if ((rc = ledger_begin(l, err)))
		return rc;
	for (size_t i = 0; i < n; i++) {
		const char *p[3] = { lot, ids[i], actor };

		if ((rc = ledger_exec(l, "add to the allowlist",
				      "INSERT INTO allowlist (lot, unique_id, imported_by)"
				      " VALUES ($1, $2, $3) ON CONFLICT DO NOTHING RETURNING 1",
				      3, p, &r, NULL, err))) {
			ledger_rollback(l);
			return rc;
		}
		*added += PQntuples(r);
		PQclear(r);
	}
	return ledger_commit(l, err);
}

int ledger_allowlist_contains(struct ledger *l, const char *lot, const char *unique_id,
			      struct errbuf *err)
{
	const char *p[2] = { lot, unique_id };
	PGresult *r;
	int rc, found;

	if ((rc = ledger_exec(l, "read the allowlist",
			      "SELECT 1 FROM allowlist WHERE lot = $1 AND unique_id = $2", 2, p,
			      &r, NULL, err)))
		return rc;
	found = PQntuples(r) == 1;
	PQclear(r);
	return found ? ST_OK : ST_ENOTFOUND;
}

int ledger_allowlist_count(struct ledger *l, const char *lot, int64_t *count, struct errbuf *err)
{
	const char *p[1] = { lot };
	PGresult *r;
	int rc;

	if ((rc = ledger_exec(l, "count the allowlist",
			      "SELECT count(*) FROM allowlist WHERE lot = $1", 1, p, &r, NULL, err)))
		return rc;
	*count = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
	PQclear(r);
	return ST_OK;
}

int ledger_reserve_serials(struct ledger *l, const char *const *serials, size_t n,
			   struct errbuf *err)
{
	PGresult *r;
	int rc;

	if ((rc = ledger_begin(l, err)))
		return rc;
	for (size_t i = 0; i < n; i++) {
		const char *p[2] = { serials[i], l->cfg.station_id };
		int taken;

		if ((rc = ledger_exec(l, "reserve a serial",
				      "INSERT INTO serials (serial, station_id) VALUES ($1, $2)"
				      " ON CONFLICT (serial) DO NOTHING RETURNING 1", 2, p, &r, NULL,
				      err))) {
			ledger_rollback(l);
			return rc;
		}
		taken = PQntuples(r) == 0;
		PQclear(r);
		if (taken) {
			ledger_rollback(l);
			return errbuf_setr(err, ST_EEXIST, ST_ORIGIN_DB, ST_R_EXISTS,
					   "ledger: serial %s is already reserved", serials[i]);
		}
	}
	return ledger_commit(l, err);
}
