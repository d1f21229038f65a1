/*
 * export: the per-lot records behind `station export`.  See export.h.
 *
 * One read transaction covers the counts and the rows, so the summary and the
 * records describe the same instant even while the line commits units.  The
 * statements are prepared here and finalised after use (an export runs once
 * per process; they need no slot in the handle's statement cache).
 */
#include "db/db_int.h"
#include "db/export.h"

#include <string.h>

static const char SQL_LOT_KNOWN[] =
	"SELECT (SELECT count(*) FROM lots WHERE name = ?1)"
	" + (SELECT count(*) FROM units WHERE lot = ?1),"
	" (SELECT count(*) FROM allowlist a JOIN lots l ON l.id = a.lot_id WHERE l.name = ?1)";

/* The first finished attempt of each board: SQLite gives the bare column
 * `status` from the row that holds min(id) of its group (one pass over the
 * lot's units, where a NOT EXISTS per unit was quadratic on the lot index). */
#define IN_LOT "unique_id IN (SELECT a.unique_id FROM allowlist a JOIN lots l" \
	" ON l.id = a.lot_id WHERE l.name = ?1)"
static const char SQL_COUNTS[] =
	"SELECT count(*),"
	" coalesce(sum(status = 'pass'), 0), coalesce(sum(status = 'fail'), 0),"
	" coalesce(sum(status = 'reject'), 0), coalesce(sum(status = 'interrupted'), 0),"
	" coalesce(sum(status = 'in-progress'), 0),"
	" coalesce(sum(status = 'pass' AND superseded_by IS NOT NULL), 0),"
	" count(DISTINCT CASE WHEN in_lot THEN unique_id END),"
	" count(DISTINCT CASE WHEN in_lot AND status = 'pass' THEN unique_id END),"
	" count(DISTINCT CASE WHEN in_lot AND status <> 'in-progress' THEN unique_id END),"
	" (SELECT count(*) FROM (SELECT status, min(id) FROM units WHERE lot = ?1"
	"   AND " IN_LOT " AND status <> 'in-progress' GROUP BY unique_id)"
	"  WHERE status = 'pass'),"
	" count(DISTINCT CASE WHEN NOT in_lot AND unique_id <> '' THEN unique_id END),"
	" coalesce(sum(NOT in_lot), 0)"
	" FROM (SELECT *, " IN_LOT " AS in_lot FROM units WHERE lot = ?1)";

/* units.cert_serial names the certificate once the unit has a verdict (the
 * pipeline finishes a unit with the serial it was issued).  A unit without
 * one (interrupted before its verdict) is looked up by its id, an index
 * search (certificates_unit, schema 2) that CASE runs only for those.  Only
 * signed or revoked certificates: never a serial merely reserved ahead, nor
 * a void one. */
static const char SQL_ROWS[] =
	"SELECT u.id, u.unique_id, u.lot, u.bay, u.operator, u.station_id, u.status,"
	" u.stage, u.reason, coalesce(p.name, ''), coalesce(p.version, 0), u.profile_hash,"
	" u.firmware_hash, u.pubkey_hash, u.started_ms, coalesce(u.finished_ms, 0),"
	" coalesce(c.serial, ''), coalesce(c.status, ''), c.der, coalesce(c.issued_ms, 0),"
	" coalesce(c.revoked_ms, 0), coalesce(c.revoke_reason, ''),"
	" coalesce(u.superseded_by, 0), coalesce(u.rework_id, 0),"
	" u.reason_code, u.reason_plain, coalesce(u.duration_ms, -1), u.stage_ms, u.model,"
	" u.hw_revision, u." IN_LOT
	" FROM units u"
	" LEFT JOIN certificates c ON c.status IN ('issued', 'injected', 'revoked')"
	"  AND c.serial = CASE WHEN u.cert_serial <> '' THEN u.cert_serial ELSE"
	"   (SELECT x.serial FROM certificates x WHERE x.unit_id = u.id"
	"    AND x.status IN ('issued', 'injected', 'revoked')"
	"    ORDER BY x.reserved_ms DESC, x.serial DESC LIMIT 1) END"
	" LEFT JOIN profiles p ON p.id = (SELECT q.id FROM profiles q"
	"  WHERE q.sha256 = u.profile_hash ORDER BY q.version LIMIT 1)"
	" WHERE u.lot = ?1 ORDER BY u.id";

static const char *col_str(sqlite3_stmt *st, int col)
{
	const unsigned char *s = sqlite3_column_text(st, col);

	return s ? (const char *)s : "";
}

static int prepare(struct db *db, const char *sql, const char *lot, sqlite3_stmt **st,
		   struct errbuf *err)
{
	int rc = sqlite3_prepare_v2(db->sq, sql, -1, st, NULL);

	if (rc != SQLITE_OK) {
		sqlite3_finalize(*st);
		*st = NULL;
		return db_sqlerr(db, rc, err, "prepare export");
	}
	sqlite3_bind_text(*st, 1, lot, -1, SQLITE_STATIC);
	return ST_OK;
}

int db_export_read_counts(struct db *db, const char *lot, struct db_export_counts *c,
			   struct errbuf *err)
{
	sqlite3_stmt *st;
	int64_t known;
	int rc;

	memset(c, 0, sizeof(*c));
	if ((rc = prepare(db, SQL_LOT_KNOWN, lot, &st, err)))
		return rc;
	rc = sqlite3_step(st);
	if (rc != SQLITE_ROW) {
		rc = db_sqlerr(db, rc, err, "look up lot");
		sqlite3_finalize(st);
		return rc;
	}
	known = sqlite3_column_int64(st, 0);
	c->allowlisted = sqlite3_column_int64(st, 1);
	sqlite3_finalize(st);
	if (!known)
		return errbuf_set(err, ST_ENOTFOUND, "no lot %s in %s (no allowlist and no units)",
				  lot, db->path);

	if ((rc = prepare(db, SQL_COUNTS, lot, &st, err)))
		return rc;
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		c->units = sqlite3_column_int64(st, 0);
		c->pass = sqlite3_column_int64(st, 1);
		c->fail = sqlite3_column_int64(st, 2);
		c->reject = sqlite3_column_int64(st, 3);
		c->interrupted = sqlite3_column_int64(st, 4);
		c->in_progress = sqlite3_column_int64(st, 5);
		c->superseded = sqlite3_column_int64(st, 6);
		c->boards = sqlite3_column_int64(st, 7);
		c->boards_passed = sqlite3_column_int64(st, 8);
		c->boards_finished = sqlite3_column_int64(st, 9);
		c->boards_first_pass = sqlite3_column_int64(st, 10);
		c->strangers = sqlite3_column_int64(st, 11);
		c->stranger_units = sqlite3_column_int64(st, 12);
		rc = ST_OK;
	} else {
		rc = db_sqlerr(db, rc, err, "count units");
	}
	sqlite3_finalize(st);
	return rc;
}

static int walk_rows(struct db *db, const char *lot,
		     int (*fn)(const struct db_export_row *r, void *ctx), void *ctx,
		     struct errbuf *err)
{
	sqlite3_stmt *st;
	int rc;

	if ((rc = prepare(db, SQL_ROWS, lot, &st, err)))
		return rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct db_export_row r;
		int stop;

		memset(&r, 0, sizeof(r));
		r.unit_id = sqlite3_column_int64(st, 0);
		r.unique_id = col_str(st, 1);
		r.lot = col_str(st, 2);
		r.bay = col_str(st, 3);
		r.operator_name = col_str(st, 4);
		r.station_id = col_str(st, 5);
		r.status = col_str(st, 6);
		r.stage = col_str(st, 7);
		r.reason = col_str(st, 8);
		r.profile_name = col_str(st, 9);
		r.profile_version = sqlite3_column_int64(st, 10);
		r.profile_hash = col_str(st, 11);
		r.firmware_hash = col_str(st, 12);
		r.pubkey_hash = col_str(st, 13);
		r.started_ms = sqlite3_column_int64(st, 14);
		r.finished_ms = sqlite3_column_int64(st, 15);
		r.cert_serial = col_str(st, 16);
		r.cert_status = col_str(st, 17);
		if (r.cert_serial[0] && sqlite3_column_type(st, 18) == SQLITE_BLOB) {
			r.cert_der = sqlite3_column_blob(st, 18);
			r.cert_der_len = (size_t)sqlite3_column_bytes(st, 18);
		}
		r.issued_ms = sqlite3_column_int64(st, 19);
		r.revoked_ms = sqlite3_column_int64(st, 20);
		r.revoke_reason = col_str(st, 21);
		r.superseded_by = sqlite3_column_int64(st, 22);
		r.rework_id = sqlite3_column_int64(st, 23);
		r.reason_code = col_str(st, 24);
		r.reason_plain = col_str(st, 25);
		r.duration_ms = sqlite3_column_int64(st, 26);
		r.stage_ms = col_str(st, 27);
		r.model = col_str(st, 28);
		r.hw_revision = col_str(st, 29);
		r.on_allowlist = sqlite3_column_int(st, 30);
		if ((stop = fn(&r, ctx))) {
			sqlite3_finalize(st);
			return stop;
		}
	}
	rc = rc == SQLITE_DONE ? ST_OK : db_sqlerr(db, rc, err, "read units");
	sqlite3_finalize(st);
	return rc;
}

int db_export_lot(struct db *db, const char *lot, struct db_export_counts *counts,
		  int (*fn)(const struct db_export_row *r, void *ctx), void *ctx,
		  struct errbuf *err)
{
	struct db_export_counts local;
	int rc;

	if (!lot || !*lot)
		return errbuf_set(err, ST_EINVAL, "export: no lot given");
	if (!counts)
		counts = &local;
	db_lock(db);
	if (db->in_txn) {
		db_unlock(db);
		return errbuf_set(err, ST_ESTATE, "export: not inside a transaction");
	}
	/* A deferred transaction: the snapshot starts at the first read. */
	rc = sqlite3_exec(db->sq, "BEGIN", NULL, NULL, NULL);
	if (rc != SQLITE_OK) {
		rc = db_sqlerr(db, rc, err, "begin export");
		db_unlock(db);
		return rc;
	}
	rc = db_export_read_counts(db, lot, counts, err);
	if (rc == ST_OK && fn)
		rc = walk_rows(db, lot, fn, ctx, err);
	/* read only: nothing to keep, so a rollback ends it in every case */
	sqlite3_exec(db->sq, "ROLLBACK", NULL, NULL, NULL);
	db_unlock(db);
	return rc;
}
