/*
 * keys_seen: the public key of every CSR the policy accepted, whatever became
 * of its unit (issue 12).  The clone check asks here, so a key shown by a
 * board whose unit then failed (attestation, injection, an unplug) is still
 * refused on any other board.  One audited row per key, for the first board
 * that showed it; the same board showing its key again (a retried stage) is
 * not a clone.  The row is written by the unit's own writes (db/units.c: the
 * progress mark after the CSR, the verdict, recovery), inside their
 * transaction: the issuing path pays no commit of its own for it.  See db.h
 * and docs/database.md "keys_seen".
 */
#include "db/db_int.h"

#include <stdio.h>
#include <string.h>

static const char SQL_CERT[] = "SELECT 1 FROM certificates WHERE pubkey_hash = ?";
static const char SQL_SEEN[] = "SELECT unique_id FROM keys_seen WHERE pubkey_hash = ?";
static const char SQL_ADD[] =
	"INSERT INTO keys_seen (pubkey_hash, unique_id, seen_ms) VALUES (?, ?, ?)"
	" ON CONFLICT (pubkey_hash) DO NOTHING";

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

int db_keys_seen_add_locked(struct db *db, const char *pubkey_hash, const char *unique_id,
			    const char *actor, struct errbuf *err)
{
	sqlite3_stmt *st;
	int rc;

	/* a unit whose CSR the policy refused has no key hash: nothing seen */
	if (!valid_hex64(pubkey_hash) || !unique_id || !*unique_id)
		return ST_OK;
	if (!(st = db_stmt(db, SQL_ADD, err)))
		return ST_EDB;
	sqlite3_bind_text(st, 1, pubkey_hash, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, unique_id, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, clock_realtime_ms());
	rc = sqlite3_step(st);
	sqlite3_reset(st);
	if (rc != SQLITE_DONE)
		return db_sqlerr(db, rc, err, "record public key");
	if (sqlite3_changes(db->sq) == 0)
		return ST_OK;   /* on record already, for its first board */
	return db_row_audit_locked(db, "keys_seen", pubkey_hash, actor, err);
}

int db_pubkey_seen_by_other(struct db *db, const char *pubkey_hash, const char *unique_id,
			    int *seen, struct errbuf *err)
{
	char first[64] = "";
	int found = 0, rc;

	*seen = 0;
	if (!valid_hex64(pubkey_hash) || !unique_id)
		return errbuf_set(err, ST_EINVAL, "keys seen: bad public key hash or unique id");
	db_lock(db);
	if (!(rc = lookup(db, SQL_CERT, pubkey_hash, &found, NULL, 0, err)) && !found &&
	    !(rc = lookup(db, SQL_SEEN, pubkey_hash, &found, first, sizeof(first), err)) && found)
		found = strcmp(first, unique_id) != 0;
	db_unlock(db);
	if (rc == ST_OK)
		*seen = found;
	return rc;
}
