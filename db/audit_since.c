/*
 * audit_since: this station's events after a sequence number, in order, as
 * the ledger's sync pushes them (station/app/pl_ledger.c), and the chain's
 * hash of one event for a verifier that holds the fields but not the row.
 */
#include "db/db_int.h"

static const char SQL_SINCE[] =
	"SELECT seq, ts, kind, actor, detail, prev_hash, hash FROM events"
	" WHERE station_id = ? AND seq > ? ORDER BY seq LIMIT ?";

int db_audit_since(struct db *db, int64_t after_seq, int limit,
		   int (*fn)(const struct db_chain_event *e, void *ctx), void *ctx,
		   struct errbuf *err)
{
	sqlite3_stmt *st;
	int rc;

	db_lock(db);
	if (!(st = db_stmt(db, SQL_SINCE, err))) {
		db_unlock(db);
		return ST_EDB;
	}
	sqlite3_bind_text(st, 1, db->station_id, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, after_seq);
	sqlite3_bind_int(st, 3, limit);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct db_chain_event e;

		e.seq = sqlite3_column_int64(st, 0);
		e.ts = (const char *)sqlite3_column_text(st, 1);
		e.kind = (const char *)sqlite3_column_text(st, 2);
		e.actor = (const char *)sqlite3_column_text(st, 3);
		e.detail = (const char *)sqlite3_column_text(st, 4);
		e.prev_hash = (const char *)sqlite3_column_text(st, 5);
		e.hash = (const char *)sqlite3_column_text(st, 6);
		if (fn(&e, ctx)) {
			rc = SQLITE_DONE;
			break;
		}
	}
	sqlite3_reset(st);
	rc = rc == SQLITE_DONE ? ST_OK : db_sqlerr(db, rc, err, "read events to push");
	db_unlock(db);
	return rc;
}
