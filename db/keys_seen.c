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
 *
 * The check reads on a connection of its own, so a bay checking its CSR does
 * not wait behind another bay's commit (the writer holds the handle's mutex
 * through its WAL writes): a WAL reader sees the last committed state and
 * never blocks the writer.  That is enough for a set that only grows: a key
 * committed a moment after the read is a race the issued record's UNIQUE
 * index (certificates_pubkey) decides.  A thread inside its own open
 * transaction reads on the main connection, which sees its writes.
 */
#include "db/db_int.h"

#include <stdio.h>
#include <stdlib.h>
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

/* *found = 1 (first board's id in uid, when asked) when st's row exists. */
static int lookup_stmt(sqlite3_stmt *st, sqlite3 *sq, const char *pubkey_hash, int *found,
		       char *uid, size_t uidsz, struct errbuf *err)
{
	int rc;

	*found = 0;
	sqlite3_bind_text(st, 1, pubkey_hash, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		*found = 1;
		if (uid)
			snprintf(uid, uidsz, "%s", (const char *)sqlite3_column_text(st, 0));
		rc = ST_OK;
	} else if (rc == SQLITE_DONE) {
		rc = ST_OK;
	} else {
		rc = errbuf_set(err, ST_EDB, "look up public key: %s", sqlite3_errmsg(sq));
	}
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return rc;
}

/* The read connection (rd_mu held); 0 when it cannot be had (then the caller
 * reads on the main one).  Opened like the main one was, read-only. */
static int reader_locked(struct db *db)
{
	if (db->rd)
		return 1;
	if (db->rd_failed)
		return 0;
	if (sqlite3_open_v2(db->path, &db->rd, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX,
			    NULL) != SQLITE_OK ||
	    sqlite3_busy_timeout(db->rd, DB_BUSY_TIMEOUT_MS) != SQLITE_OK ||
	    sqlite3_exec(db->rd, "PRAGMA trusted_schema = OFF; PRAGMA query_only = ON",
			 NULL, NULL, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(db->rd, SQL_CERT, -1, &db->rd_cert, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(db->rd, SQL_SEEN, -1, &db->rd_seen, NULL) != SQLITE_OK) {
		sqlite3_finalize(db->rd_cert);
		sqlite3_finalize(db->rd_seen);
		sqlite3_close_v2(db->rd);
		db->rd = NULL;
		db->rd_cert = db->rd_seen = NULL;
		db->rd_failed = 1;
		return 0;
	}
	return 1;
}

/* On the read connection: 1 and rc set, or 0 when the caller must read on
 * the main connection (its own transaction is open, or no reader). */
static int seen_on_reader(struct db *db, const char *pubkey_hash, const char *unique_id,
			  int *found, int *rc, struct errbuf *err)
{
	char first[64] = "";
	int use = 0;

	/* held by another thread: it is not ours, so neither is any open
	 * transaction; free or ours (recursive): ours only if in_txn */
	if (pthread_mutex_trylock(&db->mu) == 0) {
		int own_txn = db->in_txn;

		db_unlock(db);
		if (own_txn)
			return 0;
	}
	pthread_mutex_lock(&db->rd_mu);
	if (reader_locked(db)) {
		use = 1;
		if (!(*rc = lookup_stmt(db->rd_cert, db->rd, pubkey_hash, found, NULL, 0, err)) &&
		    !*found &&
		    !(*rc = lookup_stmt(db->rd_seen, db->rd, pubkey_hash, found, first,
					sizeof(first), err)) && *found)
			*found = strcmp(first, unique_id) != 0;
	}
	pthread_mutex_unlock(&db->rd_mu);
	return use;
}

int db_pubkey_seen_by_other(struct db *db, const char *pubkey_hash, const char *unique_id,
			    int *seen, struct errbuf *err)
{
	char first[64] = "";
	int found = 0, rc;

	*seen = 0;
	if (!valid_hex64(pubkey_hash) || !unique_id)
		return errbuf_set(err, ST_EINVAL, "keys seen: bad public key hash or unique id");
	if (!seen_on_reader(db, pubkey_hash, unique_id, &found, &rc, err)) {
		db_lock(db);
		if (!(rc = lookup(db, SQL_CERT, pubkey_hash, &found, NULL, 0, err)) && !found &&
		    !(rc = lookup(db, SQL_SEEN, pubkey_hash, &found, first, sizeof(first), err)) &&
		    found)
			found = strcmp(first, unique_id) != 0;
		db_unlock(db);
	}
	if (rc == ST_OK)
		*seen = found;
	return rc;
}
