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

/* *found = 1 (the first board's id in uid, when asked) when st's row
 * exists; st is a statement of connection sq, bound here. */
static int lookup(struct db *db, sqlite3 *sq, sqlite3_stmt *st, const char *pubkey_hash,
		  int *found, char *uid, size_t uidsz, struct errbuf *err)
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
		rc = errbuf_set(err, (rc & 0xff) == SQLITE_BUSY ? ST_EBUSY : ST_EDB,
				"database %s: look up public key: %s", db->path, sqlite3_errmsg(sq));
	}
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return rc;
}

/* The clone check on one connection: certified, or shown by another board. */
static int seen_by_other_on(struct db *db, sqlite3 *sq, sqlite3_stmt *cert, sqlite3_stmt *seen,
			    const char *pubkey_hash, const char *unique_id, int *found,
			    struct errbuf *err)
{
	char first[64] = "";
	int rc;

	if ((rc = lookup(db, sq, cert, pubkey_hash, found, NULL, 0, err)) || *found)
		return rc;
	if ((rc = lookup(db, sq, seen, pubkey_hash, found, first, sizeof(first), err)) || !*found)
		return rc;
	*found = strcmp(first, unique_id) != 0;
	return ST_OK;
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

/* 1 when this thread has a transaction open on the main connection (then
 * only that connection sees its writes). */
static int own_txn_open(struct db *db)
{
	int open = 0;

	/* held by another thread: not ours, so neither is its transaction;
	 * free or ours (the mutex is recursive): ours when in_txn */
	if (pthread_mutex_trylock(&db->mu) == 0) {
		open = db->in_txn;
		db_unlock(db);
	}
	return open;
}

int db_pubkey_seen_by_other(struct db *db, const char *pubkey_hash, const char *unique_id,
			    int *seen, struct errbuf *err)
{
	sqlite3_stmt *cert, *by;
	int found = 0, rc = ST_EDB, done = 0;

	*seen = 0;
	if (!valid_hex64(pubkey_hash) || !unique_id)
		return errbuf_set(err, ST_EINVAL, "keys seen: bad public key hash or unique id");
	if (!own_txn_open(db)) {
		pthread_mutex_lock(&db->rd_mu);
		if ((done = reader_locked(db)))
			rc = seen_by_other_on(db, db->rd, db->rd_cert, db->rd_seen, pubkey_hash,
					      unique_id, &found, err);
		pthread_mutex_unlock(&db->rd_mu);
	}
	if (!done) {
		/* the rare path (inside a transaction, or no reader): prepared here,
		 * not cached, so neither statement can push the other out */
		db_lock(db);
		cert = db_prepare_once(db, SQL_CERT, err);
		by = cert ? db_prepare_once(db, SQL_SEEN, err) : NULL;
		if (by)
			rc = seen_by_other_on(db, db->sq, cert, by, pubkey_hash, unique_id,
					      &found, err);
		sqlite3_finalize(cert);
		sqlite3_finalize(by);
		db_unlock(db);
	}
	if (rc == ST_OK)
		*seen = found;
	return rc;
}
