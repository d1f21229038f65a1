/*
 * report: the lot report's streaming read.  See report.h.
 *
 * The rows are the units table's own columns only (the export's join with
 * certificates and profiles is what makes it slower, and the report needs
 * neither), so the walk is one index range scan of units_lot.
 */
#include "db/db_int.h"
#include "db/report.h"

#include <string.h>

#define IN_LOT "unique_id IN (SELECT a.unique_id FROM allowlist a JOIN lots l" \
	" ON l.id = a.lot_id WHERE l.name = ?1)"

static const char SQL_SPAN[] =
	"SELECT coalesce(min(started_ms), 0),"
	" coalesce(max(coalesce(finished_ms, started_ms)), 0),"
	" coalesce(max(duration_ms), 0)"
	" FROM units WHERE lot = ?1";

static const char SQL_UNITS[] =
	"SELECT id, unique_id, bay, operator, status, reason_code, started_ms,"
	" coalesce(finished_ms, -1), coalesce(duration_ms, -1), " IN_LOT
	" FROM units WHERE lot = ?1 ORDER BY id";

static const char *col_str(sqlite3_stmt *st, int col)
{
	const unsigned char *s = sqlite3_column_text(st, col);

	return s ? (const char *)s : "";
}

static sqlite3_stmt *prepare_lot(struct db *db, const char *sql, const char *lot,
				 struct errbuf *err)
{
	sqlite3_stmt *st = db_prepare_once(db, sql, err);

	if (st)
		sqlite3_bind_text(st, 1, lot, -1, SQLITE_STATIC);
	return st;
}

static int read_span(struct db *db, const char *lot, struct db_report_span *span,
		     struct errbuf *err)
{
	sqlite3_stmt *st = prepare_lot(db, SQL_SPAN, lot, err);
	int rc;

	if (!st)
		return err->code ? err->code : ST_EDB;
	if ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		span->first_ms = sqlite3_column_int64(st, 0);
		span->last_ms = sqlite3_column_int64(st, 1);
		span->max_duration_ms = sqlite3_column_int64(st, 2);
		rc = ST_OK;
	} else {
		rc = db_sqlerr(db, rc, err, "report: span of the lot");
	}
	sqlite3_finalize(st);
	return rc;
}

static int walk_units(struct db *db, const char *lot,
		      int (*fn)(const struct db_report_unit *u, void *ctx), void *ctx,
		      struct errbuf *err)
{
	sqlite3_stmt *st = prepare_lot(db, SQL_UNITS, lot, err);
	int rc;

	if (!st)
		return err->code ? err->code : ST_EDB;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct db_report_unit u;
		int stop;

		u.unit_id = sqlite3_column_int64(st, 0);
		u.unique_id = col_str(st, 1);
		u.bay = col_str(st, 2);
		u.operator_name = col_str(st, 3);
		u.status = col_str(st, 4);
		u.reason_code = col_str(st, 5);
		u.started_ms = sqlite3_column_int64(st, 6);
		u.finished_ms = sqlite3_column_int64(st, 7);
		u.duration_ms = sqlite3_column_int64(st, 8);
		u.on_allowlist = sqlite3_column_int(st, 9);
		if ((stop = fn(&u, ctx))) {
			sqlite3_finalize(st);
			return stop;
		}
	}
	rc = rc == SQLITE_DONE ? ST_OK : db_sqlerr(db, rc, err, "report: read units");
	sqlite3_finalize(st);
	return rc;
}

int db_report_lot(struct db *db, const char *lot, struct db_export_counts *counts,
		  struct db_report_span *span,
		  int (*fn)(const struct db_report_unit *u, void *ctx), void *ctx,
		  struct errbuf *err)
{
	int rc;

	if (!lot || !*lot || !counts || !span)
		return errbuf_set(err, ST_EINVAL, "report: no lot given");
	memset(span, 0, sizeof(*span));
	db_lock(db);
	if (db->in_txn) {
		db_unlock(db);
		return errbuf_set(err, ST_ESTATE, "report: not inside a transaction");
	}
	rc = sqlite3_exec(db->sq, "BEGIN", NULL, NULL, NULL);
	if (rc != SQLITE_OK) {
		rc = db_sqlerr(db, rc, err, "begin report");
		db_unlock(db);
		return rc;
	}
	rc = db_export_read_counts(db, lot, counts, err);
	if (rc == ST_OK)
		rc = read_span(db, lot, span, err);
	if (rc == ST_OK && fn)
		rc = walk_units(db, lot, fn, ctx, err);
	sqlite3_exec(db->sq, "ROLLBACK", NULL, NULL, NULL);
	db_unlock(db);
	return rc;
}
