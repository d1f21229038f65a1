/*
 * verify: `station audit verify` as one read transaction (a consistent
 * snapshot while the line keeps appending): the chain and its checkpoints
 * (db/audit.c), then, only if they are intact, every audited row against its
 * latest row event (db/rows_verify.c).  See db.h and docs/database.md.
 */
#include "db/db_int.h"

#include <string.h>

int db_audit_verify_impl(struct db *db, const uint8_t *trusted, size_t trusted_len, int rows,
			 struct db_verify_result *res, struct errbuf *err)
{
	int rc;

	db_lock(db);
	if ((rc = sqlite3_exec(db->sq, db->in_txn ? "SELECT 1" : "BEGIN", NULL, NULL, NULL))) {
		rc = db_sqlerr(db, rc, err, "begin read");
		db_unlock(db);
		return rc;
	}
	rc = db_audit_chain_verify_locked(db, trusted, trusted_len, res, err);
	if (rc == ST_OK && rows)
		rc = db_rows_verify_locked(db, res, err);
	if (!db->in_txn)
		sqlite3_exec(db->sq, "COMMIT", NULL, NULL, NULL);
	db_unlock(db);
	return rc;
}

int db_audit_verify_key(struct db *db, const uint8_t *trusted_pubkey_der, size_t trusted_len,
			struct db_verify_result *res, struct errbuf *err)
{
	return db_audit_verify_impl(db, trusted_pubkey_der, trusted_len, 1, res, err);
}

int db_audit_verify(struct db *db, struct db_verify_result *res, struct errbuf *err)
{
	return db_audit_verify_key(db, NULL, 0, res, err);
}

/* The newest checkpoint of this station signed by the pinned key: where a tail
 * walk may start (the walk checks its signature again). */
static const char SQL_LAST_PINNED[] =
	"SELECT seq, head_hash FROM checkpoints WHERE station_id = ? AND pubkey_der = ?"
	" ORDER BY seq DESC, id DESC LIMIT 1";

int db_audit_verify_tail(struct db *db, int64_t from_seq, const uint8_t from_hash[32],
			 const uint8_t *trusted, size_t trusted_len, struct db_verify_result *res,
			 int64_t *head_seq, uint8_t head_hash[32], struct errbuf *err)
{
	uint8_t anchor[32];
	sqlite3_stmt *st;
	int rc;

	db_lock(db);
	if ((rc = sqlite3_exec(db->sq, db->in_txn ? "SELECT 1" : "BEGIN", NULL, NULL, NULL))) {
		rc = db_sqlerr(db, rc, err, "begin read");
		db_unlock(db);
		return rc;
	}
	if (from_seq < 0) {
		from_seq = 0;
		from_hash = NULL;
		if (trusted && (st = db_stmt(db, SQL_LAST_PINNED, err))) {
			sqlite3_bind_text(st, 1, db->station_id, -1, SQLITE_STATIC);
			sqlite3_bind_blob(st, 2, trusted, (int)trusted_len, SQLITE_STATIC);
			if (sqlite3_step(st) == SQLITE_ROW &&
			    hex_decode_lower((const char *)sqlite3_column_text(st, 1),
					     (size_t)sqlite3_column_bytes(st, 1), anchor, 32) == 0) {
				from_seq = sqlite3_column_int64(st, 0);
				from_hash = anchor;
			}
			sqlite3_reset(st);
		}
	}
	rc = db_audit_tail_locked(db, from_seq, from_hash, trusted, trusted_len, res,
				  head_seq, head_hash, err);
	if (!db->in_txn)
		sqlite3_exec(db->sq, "COMMIT", NULL, NULL, NULL);
	db_unlock(db);
	return rc;
}

static const char SQL_HASH_AT[] =
	"SELECT hash FROM events WHERE station_id = ? AND seq = ? ORDER BY id LIMIT 1";

int db_audit_event_hash(struct db *db, int64_t seq, uint8_t hash[32], struct errbuf *err)
{
	sqlite3_stmt *st;
	int rc;

	db_lock(db);
	if (!(st = db_stmt(db, SQL_HASH_AT, err))) {
		db_unlock(db);
		return ST_EDB;
	}
	sqlite3_bind_text(st, 1, db->station_id, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, seq);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		rc = hex_decode_lower((const char *)sqlite3_column_text(st, 0),
				      (size_t)sqlite3_column_bytes(st, 0), hash, 32) == 0 ? ST_OK :
		     errbuf_set(err, ST_ETAMPER, "event seq %lld: malformed hash", (long long)seq);
	else if (rc == SQLITE_DONE)
		rc = errbuf_set(err, ST_ENOTFOUND, "no event with seq %lld", (long long)seq);
	else
		rc = db_sqlerr(db, rc, err, "read audit event");
	sqlite3_reset(st);
	db_unlock(db);
	return rc;
}

/* The head and the newest checkpoint of this station, and the hours between
 * their events' times (the events' ts are under the chain; a checkpoint row's
 * own ts is not what is signed). */
static const char SQL_AGE[] =
	"SELECT h.seq, c.seq,"
	" (julianday(h.ts) - julianday((SELECT ts FROM events WHERE station_id = ?1"
	"   AND seq = c.seq ORDER BY id LIMIT 1))) * 24.0"
	" FROM (SELECT seq, ts FROM events WHERE station_id = ?1 ORDER BY seq DESC LIMIT 1) h"
	" LEFT JOIN (SELECT seq FROM checkpoints WHERE station_id = ?1"
	"   ORDER BY seq DESC LIMIT 1) c";

int db_checkpoint_age(struct db *db, struct db_checkpoint_age *age, struct errbuf *err)
{
	sqlite3_stmt *st;
	int rc;

	memset(age, 0, sizeof(*age));
	db_lock(db);
	if (!(st = db_stmt(db, SQL_AGE, err))) {
		db_unlock(db);
		return ST_EDB;
	}
	sqlite3_bind_text(st, 1, db->station_id, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		age->head_seq = sqlite3_column_int64(st, 0);
		age->checkpoint_seq = sqlite3_column_int64(st, 1);   /* NULL: 0 */
		age->hours = sqlite3_column_double(st, 2);
		rc = ST_OK;
	} else {
		rc = rc == SQLITE_DONE ? ST_OK : db_sqlerr(db, rc, err, "read checkpoint age");
	}
	sqlite3_reset(st);
	db_unlock(db);
	return rc;
}
