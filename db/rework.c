/*
 * rework: single-use rework authorisations (rework.h, docs/engineer.md).
 *
 * Only db_rework_open() runs for every board (the pipeline's duplicate check),
 * so only it uses the handle's statement cache; the engineer's and the commit's
 * statements run a few times a day and are prepared per call, which keeps the
 * cache's slots (DB_STMT_CACHE) for the hot paths.
 */
#include "db/db_int.h"
#include "db/rework.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

static const char SQL_OPEN[] =
	"SELECT r.id, r.unique_id, r.old_unit_id, r.old_serial, r.reason, r.authorised_by,"
	" r.authorised_ms, coalesce(l.name, '')"
	" FROM reworks r LEFT JOIN allowlist a ON a.unique_id = r.unique_id"
	" LEFT JOIN lots l ON l.id = a.lot_id"
	" WHERE r.unique_id = ? AND r.new_unit_id IS NULL";
static const char SQL_LOT_OF[] =
	"SELECT l.name FROM allowlist a JOIN lots l ON l.id = a.lot_id WHERE a.unique_id = ?";
static const char SQL_CURRENT_PASS[] =
	"SELECT id, cert_serial FROM units"
	" WHERE unique_id = ? AND status = 'pass' AND superseded_by IS NULL";
/* A board locked by a unit that did not pass: its latest unit that worked on
 * it (a REJECT never touches a board), if that one failed or was interrupted
 * at or after LOCK (the board may hold the lock and a certificate that never
 * committed). */
static const char SQL_LOCKED_UNIT[] =
	"SELECT id, cert_serial, status, stage FROM units WHERE unique_id = ? AND status <> 'reject'"
	" ORDER BY id DESC LIMIT 1";
static const char SQL_UNIT_CERTS[] =
	"SELECT serial FROM certificates WHERE unit_id = ? AND status NOT IN ('revoked', 'void')";
static const char SQL_CERT[] =
	"SELECT status, coalesce(revoke_reason, '') FROM certificates WHERE serial = ?";
static const char SQL_INSERT[] =
	"INSERT INTO reworks (unique_id, old_unit_id, old_serial, reason, authorised_by,"
	" authorised_ms) VALUES (?, ?, ?, ?, ?, ?)";
static const char SQL_SUPERSEDE[] =
	"UPDATE units SET superseded_by = ?1"
	" WHERE id = ?2 AND status = 'pass' AND superseded_by IS NULL";
static const char SQL_BY_ID[] =
	"SELECT unique_id, coalesce(new_unit_id, 0) FROM reworks WHERE id = ?";
static const char SQL_CONSUME_UNIT[] =
	"UPDATE units SET rework_id = ?1"
	" WHERE id = ?2 AND status = 'in-progress' AND rework_id IS NULL AND unique_id = ?3";
static const char SQL_CONSUME[] =
	"UPDATE reworks SET new_unit_id = ?1, consumed_ms = ?2 WHERE id = ?3 AND new_unit_id IS NULL";

static void copy_col(char *dst, size_t size, sqlite3_stmt *st, int col)
{
	const unsigned char *s = sqlite3_column_text(st, col);

	snprintf(dst, size, "%s", s ? (const char *)s : "");
}

/* Runs a bound statement that returns no row; finalizes it. */
static int run(struct db *db, sqlite3_stmt *st, const char *what, int *changes,
	       struct errbuf *err)
{
	int rc = sqlite3_step(st);

	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return db_sqlerr(db, rc, err, what);
	if (changes)
		*changes = sqlite3_changes(db->sq);
	return ST_OK;
}

static int open_locked(struct db *db, const char *unique_id, struct db_rework *out,
		       int *found, struct errbuf *err)
{
	sqlite3_stmt *st = db_stmt(db, SQL_OPEN, err);
	int rc;

	*found = 0;
	if (!st)
		return ST_EDB;
	sqlite3_bind_text(st, 1, unique_id, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		memset(out, 0, sizeof(*out));
		out->id = sqlite3_column_int64(st, 0);
		copy_col(out->unique_id, sizeof(out->unique_id), st, 1);
		out->old_unit_id = sqlite3_column_int64(st, 2);
		copy_col(out->old_serial, sizeof(out->old_serial), st, 3);
		copy_col(out->reason, sizeof(out->reason), st, 4);
		copy_col(out->authorised_by, sizeof(out->authorised_by), st, 5);
		out->authorised_ms = sqlite3_column_int64(st, 6);
		copy_col(out->lot, sizeof(out->lot), st, 7);
		*found = 1;
		rc = ST_OK;
	} else if (rc == SQLITE_DONE) {
		rc = ST_OK;
	} else {
		rc = db_sqlerr(db, rc, err, "look up rework");
	}
	sqlite3_reset(st);
	return rc;
}

int db_rework_open(struct db *db, const char *unique_id, struct db_rework *out,
		   int *found, struct errbuf *err)
{
	int rc;

	db_lock(db);
	rc = open_locked(db, unique_id, out, found, err);
	db_unlock(db);
	return rc;
}

/* The lot whose allowlist holds the id, into lot (ST_ENOTFOUND if none). */
static int lot_of(struct db *db, const char *unique_id, char lot[65], struct errbuf *err)
{
	sqlite3_stmt *st = db_prepare_once(db, SQL_LOT_OF, err);
	int rc;

	if (!st)
		return ST_EDB;
	sqlite3_bind_text(st, 1, unique_id, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		copy_col(lot, 65, st, 0);
		rc = ST_OK;
	} else if (rc == SQLITE_DONE) {
		rc = errbuf_set(err, ST_ENOTFOUND, "id %s is on no lot's allowlist: nothing to rework",
				unique_id);
	} else {
		rc = db_sqlerr(db, rc, err, "look up allowlist");
	}
	sqlite3_finalize(st);
	return rc;
}

/* No PASS: the unit that left the board locked (failed or interrupted at or
 * after LOCK), which the rework then names as the old unit. */
static int locked_unit(struct db *db, const char *unique_id, struct db_rework *w,
		       struct errbuf *err)
{
	sqlite3_stmt *st = db_prepare_once(db, SQL_LOCKED_UNIT, err);
	char status[16] = "", stage[32] = "";
	int rc;

	if (!st)
		return ST_EDB;
	sqlite3_bind_text(st, 1, unique_id, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		w->old_unit_id = sqlite3_column_int64(st, 0);
		copy_col(w->old_serial, sizeof(w->old_serial), st, 1);
		copy_col(status, sizeof(status), st, 2);
		copy_col(stage, sizeof(stage), st, 3);
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return db_sqlerr(db, rc, err, "look up units");
	if (rc == SQLITE_ROW && (!strcmp(status, "fail") || !strcmp(status, "interrupted")) &&
	    (!strcmp(stage, "lock") || !strcmp(stage, "commit"))) {
		snprintf(w->old_status, sizeof(w->old_status), "%s", status);
		return ST_OK;
	}
	return errbuf_set(err, ST_ESTATE, "id %s has no PASS unit and its last unit did not fail"
			  " or stop at or after LOCK: nothing to rework", unique_id);
}

/* The board's current PASS unit and its certificate serial. */
static int current_pass(struct db *db, const char *unique_id, struct db_rework *w,
			struct errbuf *err)
{
	sqlite3_stmt *st = db_prepare_once(db, SQL_CURRENT_PASS, err);
	struct db_rework open;
	int rc, found = 0;

	if (!st)
		return ST_EDB;
	sqlite3_bind_text(st, 1, unique_id, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		w->old_unit_id = sqlite3_column_int64(st, 0);
		copy_col(w->old_serial, sizeof(w->old_serial), st, 1);
		sqlite3_finalize(st);
		if (!w->old_serial[0])
			return errbuf_set(err, ST_ESTATE, "unit %lld of id %s passed without a certificate serial",
					  (long long)w->old_unit_id, unique_id);
		snprintf(w->old_status, sizeof(w->old_status), "pass");
		return ST_OK;
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return db_sqlerr(db, rc, err, "look up units");
	/* say why there is no PASS: a rework waiting for the board, or none */
	if ((rc = open_locked(db, unique_id, &open, &found, err)))
		return rc;
	if (found)
		return errbuf_set(err, ST_ESTATE,
				  "id %s already has an open rework authorisation (%lld, by %s): plug the board to use it",
				  unique_id, (long long)open.id, open.authorised_by);
	return locked_unit(db, unique_id, w, err);
}

/* A unit that did not pass: every certificate issued for it that is still
 * live is revoked (superseded); recovery and the failure path normally did
 * that already, with their own reason. */
static int revoke_unit_certs(struct db *db, struct db_rework *w, const char *actor,
			     struct errbuf *err)
{
	sqlite3_stmt *st = db_prepare_once(db, SQL_UNIT_CERTS, err);
	char serials[8][65];
	int n = 0, rc;

	if (!st)
		return ST_EDB;
	sqlite3_bind_int64(st, 1, w->old_unit_id);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW && n < 8)
		copy_col(serials[n++], 65, st, 0);
	sqlite3_finalize(st);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return db_sqlerr(db, rc, err, "look up certificates");
	snprintf(w->old_revoke_reason, sizeof(w->old_revoke_reason), n ? "superseded" : "none");
	for (int i = 0; i < n; i++) {
		if ((rc = db_cert_revoke(db, serials[i], "superseded", actor, err)))
			return rc;
		if (!w->old_serial[0])
			memcpy(w->old_serial, serials[i], sizeof(w->old_serial));
	}
	return ST_OK;
}

/* Revokes the old certificate (superseded) unless it is revoked already. */
static int revoke_old(struct db *db, struct db_rework *w, const char *actor, struct errbuf *err)
{
	sqlite3_stmt *st;
	char status[16] = "";
	int rc;

	if (strcmp(w->old_status, "pass")) {
		int live = 0;

		if ((rc = revoke_unit_certs(db, w, actor, err)))
			return rc;
		live = !strcmp(w->old_revoke_reason, "superseded");
		if (live || !w->old_serial[0])
			return ST_OK;
	}
	if (!(st = db_prepare_once(db, SQL_CERT, err)))
		return ST_EDB;
	sqlite3_bind_text(st, 1, w->old_serial, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		copy_col(status, sizeof(status), st, 0);
		copy_col(w->old_revoke_reason, sizeof(w->old_revoke_reason), st, 1);
	}
	sqlite3_finalize(st);
	if (rc == SQLITE_DONE)
		return errbuf_set(err, ST_ESTATE, "unit %lld names certificate %s, which is not on record",
				  (long long)w->old_unit_id, w->old_serial);
	if (rc != SQLITE_ROW)
		return db_sqlerr(db, rc, err, "look up certificate");
	if (!strcmp(status, "revoked"))
		return ST_OK;
	snprintf(w->old_revoke_reason, sizeof(w->old_revoke_reason), "superseded");
	return db_cert_revoke(db, w->old_serial, "superseded", actor, err);
}

static int authorise_locked(struct db *db, struct db_rework *w, struct errbuf *err)
{
	sqlite3_stmt *st;
	int rc, changes = 0;

	if ((rc = lot_of(db, w->unique_id, w->lot, err)) ||
	    (rc = current_pass(db, w->unique_id, w, err)) ||
	    (rc = revoke_old(db, w, w->authorised_by, err)))
		return rc;
	if (!(st = db_prepare_once(db, SQL_INSERT, err)))
		return ST_EDB;
	sqlite3_bind_text(st, 1, w->unique_id, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, w->old_unit_id);
	sqlite3_bind_text(st, 3, w->old_serial, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 4, w->reason, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 5, w->authorised_by, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 6, w->authorised_ms);
	if ((rc = run(db, st, "record rework", NULL, err)))
		return rc;
	w->id = sqlite3_last_insert_rowid(db->sq);
	if (strcmp(w->old_status, "pass"))
		goto audit;     /* no PASS to supersede: the board was locked by a failure */
	if (!(st = db_prepare_once(db, SQL_SUPERSEDE, err)))
		return ST_EDB;
	sqlite3_bind_int64(st, 1, w->id);
	sqlite3_bind_int64(st, 2, w->old_unit_id);
	if ((rc = run(db, st, "supersede unit", &changes, err)))
		return rc;
	if (changes != 1)
		return errbuf_set(err, ST_ESTATE, "unit %lld is no longer a current PASS",
				  (long long)w->old_unit_id);
audit:
	if ((rc = db_row_audit_id_locked(db, "reworks", w->id, w->authorised_by, err)) ||
	    (rc = db_row_audit_id_locked(db, "units", w->old_unit_id, w->authorised_by, err)))
		return rc;
	return db_audit_json_locked(db, "rework-authorised", w->authorised_by,
		     json_pack("{s:I, s:s, s:s, s:I, s:s, s:s, s:s, s:s}",
			       "rework", (json_int_t)w->id, "unique_id", w->unique_id,
			       "lot", w->lot, "old_unit", (json_int_t)w->old_unit_id,
			       "old_status", w->old_status,
			       "old_serial", w->old_serial, "revoke_reason", w->old_revoke_reason,
			       "reason", w->reason), err);
}

int db_rework_authorise(struct db *db, const char *unique_id, const char *reason,
			const char *actor, struct db_rework *out, struct errbuf *err)
{
	struct db_rework w;
	int owned = 0, rc;

	if (!unique_id || !ids_uid_valid(unique_id))
		return errbuf_set(err, ST_EINVAL, "'%s' is not a unique id (24 upper-case hex digits)",
				  unique_id ? unique_id : "");
	if (!ids_text_valid(reason, DB_REWORK_REASON_MAX))
		return errbuf_set(err, ST_EINVAL, "a rework needs a reason: 1 to %d characters, one line",
				  DB_REWORK_REASON_MAX);
	if (!actor || !*actor || strlen(actor) >= sizeof(w.authorised_by))
		return errbuf_set(err, ST_EINVAL, "a rework needs the engineer's name");
	memset(&w, 0, sizeof(w));
	snprintf(w.unique_id, sizeof(w.unique_id), "%s", unique_id);
	snprintf(w.reason, sizeof(w.reason), "%s", reason);
	snprintf(w.authorised_by, sizeof(w.authorised_by), "%s", actor);
	w.authorised_ms = clock_realtime_ms();
	db_lock(db);
	/* a transaction of our own unless the caller holds one: db_cert_revoke
	 * joins it either way, so revocation and authorisation commit together */
	if (!db->in_txn) {
		if ((rc = db_begin(db, err))) {
			db_unlock(db);
			return rc;
		}
		owned = 1;
	}
	rc = authorise_locked(db, &w, err);
	if (owned) {
		if (rc == ST_OK)
			rc = db_commit(db, err);
		else
			db_rollback(db);
	}
	db_unlock(db);
	if (rc == ST_OK && out)
		*out = w;
	return rc;
}

static int consume_locked(struct db *db, int64_t rework_id, int64_t unit_id,
			  const char *actor, struct errbuf *err)
{
	sqlite3_stmt *st = db_prepare_once(db, SQL_BY_ID, err);
	char uid[65] = "";
	int64_t used = 0;
	int rc, changes = 0;

	if (!st)
		return ST_EDB;
	sqlite3_bind_int64(st, 1, rework_id);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		copy_col(uid, sizeof(uid), st, 0);
		used = sqlite3_column_int64(st, 1);
	}
	sqlite3_finalize(st);
	if (rc == SQLITE_DONE)
		return errbuf_set(err, ST_ENOTFOUND, "no rework authorisation %lld", (long long)rework_id);
	if (rc != SQLITE_ROW)
		return db_sqlerr(db, rc, err, "look up rework");
	if (used)
		return errbuf_set(err, ST_ESTATE, "rework authorisation %lld was already used by unit %lld",
				  (long long)rework_id, (long long)used);
	if (!(st = db_prepare_once(db, SQL_CONSUME_UNIT, err)))
		return ST_EDB;
	sqlite3_bind_int64(st, 1, rework_id);
	sqlite3_bind_int64(st, 2, unit_id);
	sqlite3_bind_text(st, 3, uid, -1, SQLITE_STATIC);
	if ((rc = run(db, st, "mark unit reworked", &changes, err)))
		return rc;
	if (changes != 1)
		return errbuf_set(err, ST_ESTATE,
				  "unit %lld is not an in-progress unit of id %s: it cannot use rework authorisation %lld",
				  (long long)unit_id, uid, (long long)rework_id);
	if (!(st = db_prepare_once(db, SQL_CONSUME, err)))
		return ST_EDB;
	sqlite3_bind_int64(st, 1, unit_id);
	sqlite3_bind_int64(st, 2, clock_realtime_ms());
	sqlite3_bind_int64(st, 3, rework_id);
	if ((rc = run(db, st, "use rework", &changes, err)))
		return rc;
	if (changes != 1)
		return errbuf_set(err, ST_ESTATE, "rework authorisation %lld was already used",
				  (long long)rework_id);
	if ((rc = db_row_audit_id_locked(db, "reworks", rework_id, actor, err)) ||
	    (rc = db_row_audit_id_locked(db, "units", unit_id, actor, err)))
		return rc;
	return db_audit_json_locked(db, "rework-consumed", actor && *actor ? actor : "station",
		     json_pack("{s:I, s:s, s:I}", "rework", (json_int_t)rework_id,
			       "unique_id", uid, "unit", (json_int_t)unit_id), err);
}

int db_rework_consume(struct db *db, int64_t rework_id, int64_t unit_id,
		      const char *actor, struct errbuf *err)
{
	int owned, rc;

	db_lock(db);
	if (!(rc = db_txn_begin(db, &owned, err))) {
		rc = consume_locked(db, rework_id, unit_id, actor, err);
		rc = db_txn_end(db, owned, rc, err);
	}
	db_unlock(db);
	return rc;
}
