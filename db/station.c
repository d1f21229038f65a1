/*
 * station: the database's own station id (db.h db_station_init,
 * db_station_stored; schema migration 5 -> 6).  `station init` stores the id
 * it was given; later commands open with DB_OPEN_STORED_ID and so sign and
 * chain as that station without being told its id again.
 */
#include "db/db_int.h"
#include "db/schema.h"

#include <jansson.h>
#include <stdio.h>
#include <string.h>

static const char SQL_GET[] = "SELECT station_id FROM station WHERE id = 1";
static const char SQL_PUT[] =
	"INSERT INTO station (id, station_id, created_ms, created_by) VALUES (1, ?, ?, ?)";

static int stored_locked(struct db *db, char *out, size_t size, struct errbuf *err)
{
	sqlite3_stmt *st = db_stmt(db, SQL_GET, err);
	int rc;

	if (!st)
		return ST_EDB;
	out[0] = '\0';
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		snprintf(out, size, "%s", (const char *)sqlite3_column_text(st, 0));
	sqlite3_reset(st);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return db_sqlerr(db, rc, err, "read the station id");
	return ST_OK;
}

int db_station_stored(struct db *db, char *out, size_t size, struct errbuf *err)
{
	int rc;

	db_lock(db);
	rc = stored_locked(db, out, size, err);
	db_unlock(db);
	return rc;
}

int db_station_init(struct db *db, const char *actor, struct errbuf *err)
{
	char have[sizeof(db->station_id)];
	sqlite3_stmt *st;
	int owned, rc;

	db_lock(db);
	if ((rc = db_txn_begin(db, &owned, err)))
		goto out;
	if ((rc = stored_locked(db, have, sizeof(have), err)))
		goto end;
	if (have[0]) {
		rc = errbuf_set(err, ST_EEXIST, "database %s is already station %s", db->path, have);
		goto end;
	}
	if (!(st = db_stmt(db, SQL_PUT, err))) {
		rc = ST_EDB;
		goto end;
	}
	sqlite3_bind_text(st, 1, db->station_id, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, clock_realtime_ms());
	sqlite3_bind_text(st, 3, actor, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	sqlite3_reset(st);
	if (rc != SQLITE_DONE) {
		rc = db_sqlerr(db, rc, err, "store the station id");
		goto end;
	}
	if ((rc = db_row_audit_id_locked(db, "station", 1, actor, err)))
		goto end;
	rc = db_audit_json_locked(db, "station-init", actor,
				  json_pack("{s:s, s:i}", "station_id", db->station_id,
					    "schema", db_migrations_count), err);
end:
	rc = db_txn_end(db, owned, rc, err);
out:
	db_unlock(db);
	return rc;
}
