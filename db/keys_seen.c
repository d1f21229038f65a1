/*
 * keys_seen: the public key of every CSR the policy accepted, whatever became
 * of its unit (issue 12).  The clone check asks here, so a key shown by a
 * board whose unit then failed (attestation, injection, an unplug) is still
 * refused on any other board.  One audited row per key, for the first board
 * that showed it; the same board showing its key again (a retried stage) is
 * not a clone.  See db.h and docs/database.md "keys_seen".
 */
#include "db/db_int.h"

#include <stdio.h>
#include <string.h>

static const char SQL_CERT[] = "SELECT 1 FROM certificates WHERE pubkey_hash = ?";
static const char SQL_SEEN[] = "SELECT unique_id FROM keys_seen WHERE pubkey_hash = ?";
static const char SQL_ADD[] =
	"INSERT INTO keys_seen (pubkey_hash, unique_id, seen_ms) VALUES (?, ?, ?)";

static int valid_hex64(const char *s)
{
	if (!s || strlen(s) != 64)
		return 0;
	for (; *s; s++)
		if (!strchr("0123456789abcdef", *s))
			return 0;
	return 1;
}

/* *found = 1 and the first board's id in uid when the key is on record. */
static int lookup(struct db *db, const char *sql, const char *pubkey_hash, int *found,
		  char *uid, size_t uidsz, struct errbuf *err)
{
	sqlite3_stmt *st = db_stmt(db, sql, err);
	int rc;

	*found = 0;
	if (!st)
		return ST_EDB;
	sqlite3_bind_text(st, 1, pubkey_hash, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		*found = 1;
		if (uid)
			snprintf(uid, uidsz, "%s", (const char *)sqlite3_column_text(st, 0));
		rc = ST_OK;
	} else {
		rc = rc == SQLITE_DONE ? ST_OK : db_sqlerr(db, rc, err, "look up public key");
	}
	sqlite3_reset(st);
	return rc;
}

int db_pubkey_seen_record(struct db *db, const char *pubkey_hash, const char *unique_id,
			  int *seen, struct errbuf *err)
{
	char first[64] = "";
	int owned = 0, found = 0, rc;
	sqlite3_stmt *st;

	*seen = 0;
	if (!valid_hex64(pubkey_hash) || !unique_id || !*unique_id)
		return errbuf_set(err, ST_EINVAL, "keys seen: bad public key hash or unique id");
	db_lock(db);
	if ((rc = db_txn_begin_synced(db, &owned, err)))
		goto out;
	if ((rc = lookup(db, SQL_CERT, pubkey_hash, &found, NULL, 0, err)) || found)
		goto end;
	if ((rc = lookup(db, SQL_SEEN, pubkey_hash, &found, first, sizeof(first), err)))
		goto end;
	if (found) {
		found = strcmp(first, unique_id) != 0;
		goto end;
	}
	if (!(st = db_stmt(db, SQL_ADD, err))) {
		rc = ST_EDB;
		goto end;
	}
	sqlite3_bind_text(st, 1, pubkey_hash, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, unique_id, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, clock_realtime_ms());
	rc = sqlite3_step(st);
	sqlite3_reset(st);
	rc = rc == SQLITE_DONE ? db_row_audit_locked(db, "keys_seen", pubkey_hash, "station", err)
			       : db_sqlerr(db, rc, err, "record public key");
end:
	/* Committed to the WAL without its own fsync: the next durable write
	 * (the certificate's record before any signature leaves the station, or
	 * the unit's verdict) syncs it with everything before it.  A crash in
	 * between loses the record together with the unit's verdict. */
	rc = db_txn_end_synced(db, owned, rc, err);
out:
	db_unlock(db);
	if (rc == ST_OK)
		*seen = found;
	return rc;
}
