/*
 * lots: the names of the lots a database knows (db.h db_lot_foreach): those
 * with an allowlist and those with units, once each, by name.  Their counts
 * come from db_export_lot() (db/export.h), one definition of yield.
 */
#include "db/db_int.h"

static const char SQL_LOTS[] =
	"SELECT name FROM lots UNION SELECT lot FROM units ORDER BY 1";

int db_lot_foreach(struct db *db, int (*fn)(const char *lot, void *ctx), void *ctx,
		   struct errbuf *err)
{
	sqlite3_stmt *st;
	int rc;

	db_lock(db);
	if (!(st = db_stmt(db, SQL_LOTS, err))) {
		db_unlock(db);
		return ST_EDB;
	}
	while ((rc = sqlite3_step(st)) == SQLITE_ROW)
		if (fn((const char *)sqlite3_column_text(st, 0), ctx)) {
			rc = SQLITE_DONE;
			break;
		}
	sqlite3_reset(st);
	rc = rc == SQLITE_DONE ? ST_OK : db_sqlerr(db, rc, err, "list lots");
	db_unlock(db);
	return rc;
}
