/*
 * db_int: what the db/ modules share and nobody else may use.
 *
 * Locking: every public db_* call takes db->mu (recursive) for its whole
 * duration.  db_begin() takes it once more and keeps it until db_commit() or
 * db_rollback(), so calls made by other threads wait and never land inside
 * somebody else's transaction.
 */
#ifndef STATION_DB_INT_H
#define STATION_DB_INT_H

#include <pthread.h>
#include <openssl/evp.h>
#include <sqlite3.h>
#include <stdint.h>

#include "core/clock.h"
#include "core/hex.h"
#include "core/ids.h"
#include "db/db.h"
#include "db/rows_content.h"

#define DB_STMT_CACHE 96

/* How long a statement waits for another connection's lock (a reader, the
 * CLI beside the line) before it fails ST_EBUSY. */
#define DB_BUSY_TIMEOUT_MS 10000

struct db {
	sqlite3        *sq;
	pthread_mutex_t mu;
	char            path[4096];
	char            station_id[64];
	int             in_txn;          /* an explicit db_begin() is open */
	int             wal_fd;          /* the -wal file, for syncs outside mu (-1: not open) */
	long            wal_syncs;       /* successful syncs of it (atomic) */
	/* One WAL sync at a time covers every commit made before it began:
	 * commits counted (atomic, after the WAL writes), the last one known on
	 * disk, the last one a failed sync left in doubt (db_wal_sync). */
	pthread_mutex_t sync_mu;
	pthread_cond_t  sync_cv;
	uint64_t        commit_seq, synced_seq, sync_failed_seq;
	int             syncing;
	int             line_fd;         /* "<db>.lock", flocked by db_line_acquire (-1: not held) */
	/* issued records waiting for a shared commit (db/certs_group.c; the
	 * mutex is made and destroyed with the handle, each caller's condition
	 * with its record) */
	pthread_mutex_t issue_mu;
	struct db_issue_req *issue_queue, **issue_tail;
	int             issue_queued;      /* records in issue_queue */
	int             issue_committing;  /* a thread is committing a batch (or holds
	                                    * the queue while it waits to) */
	int             issue_callers;     /* threads inside db_cert_issued() */
	int64_t         line_since_ms;   /* when it was taken */
	/* The clone check's own read connection (db/keys_seen.c), opened on
	 * first use, under rd_mu; rd_failed: it could not be, use sq. */
	pthread_mutex_t rd_mu;
	sqlite3        *rd;
	sqlite3_stmt   *rd_cert, *rd_seen;
	int             rd_failed;
	struct {
		const char   *sql;       /* identity of a static SQL string */
		sqlite3_stmt *st;
	} stmts[DB_STMT_CACHE];
};

/* A cached prepared statement for a static SQL string, reset and unbound. */
sqlite3_stmt *db_stmt(struct db *db, const char *sql, struct errbuf *err);
/* A statement prepared for one use, outside the cache (rare statements, so the
 * cache keeps the hot ones); the caller finalizes it. */
sqlite3_stmt *db_prepare_once(struct db *db, const char *sql, struct errbuf *err);
/* Fills err with SQLite's message for rc; returns ST_EDB (ST_EEXIST on a
 * UNIQUE/PRIMARY KEY violation, ST_EBUSY when locked). */
int db_sqlerr(struct db *db, int rc, struct errbuf *err, const char *what);

/* Write transactions used inside one call.  db_txn_begin() is a no-op when the
 * caller already holds an explicit transaction; end() commits (ok) or rolls
 * back, and likewise leaves an outer transaction to its owner. */
ST_MUST_CHECK int  db_txn_begin(struct db *db, int *owned, struct errbuf *err);
ST_MUST_CHECK int  db_txn_end(struct db *db, int owned, int rc, struct errbuf *err);

/*
 * Group commit, for the hot durable writes (certificate records).  Under the
 * lock: db_txn_begin_synced() switches the connection to synchronous=NORMAL and
 * begins; db_txn_end_synced() commits (or rolls back) and switches back to
 * FULL.  In WAL mode such a commit is written to the WAL but not fsync'd, so
 * the lock is held only for the SQL and the writes.  Then, AFTER db_unlock(),
 * the caller must call db_wal_sync() and report its failure: it fdatasyncs the
 * WAL, making this commit (and any other made before it) durable.  Threads
 * committing at once thus overlap their syncs instead of queueing behind each
 * other's.  The call returns to its caller only after its own commit is on
 * disk, as with synchronous=FULL.  One sync runs at a time: a caller that
 * finds one in flight waits for it, and the next sync covers every commit
 * made while it waited, so N threads committing at once pay about one
 * fdatasync, not N.  A sync that failed fails every commit it was to cover.
 */
ST_MUST_CHECK int  db_txn_begin_synced(struct db *db, int *owned, struct errbuf *err);
ST_MUST_CHECK int  db_txn_end_synced(struct db *db, int owned, int rc, struct errbuf *err);
ST_MUST_CHECK int  db_wal_sync(struct db *db, struct errbuf *err);
/* Returns once no WAL sync is in flight (at once if none is). */
void db_wal_sync_idle_wait(struct db *db);

/* One issued record (db_cert_issued's arguments), inside the caller's write
 * transaction (lock held).  A refusal that changed nothing (the key certified
 * already, the serial not reserved) leaves the transaction usable. */
ST_MUST_CHECK int db_cert_issued_locked(struct db *db, const char *serial_hex, int64_t unit_id,
					const char *unique_id, const char *pubkey_hash,
					const uint8_t *der, size_t der_len, struct errbuf *err);
/* A batch's commit has ended (issue_mu held): the first caller queued, if
 * any, is woken to commit the next (db/certs_group.c). */
void db_issue_commit_ended_locked(struct db *db);

/* sqlite3_exec of a static statement; a failure names the database. */
ST_MUST_CHECK int db_exec_simple(struct db *db, const char *sql, struct errbuf *err);
/* One statement without parameters or rows, prepared once per handle through
 * the statement cache, which is keyed by the string's address: sql must be a
 * static array, the same one on every call. */
ST_MUST_CHECK int db_exec_cached(struct db *db, const char *sql, struct errbuf *err);
/* PRAGMA synchronous = FULL (full) or NORMAL on the handle's connection. */
ST_MUST_CHECK int db_set_synchronous(struct db *db, int full, struct errbuf *err);
/* PRAGMA user_version. */
ST_MUST_CHECK int db_user_version(struct db *db, int *v, struct errbuf *err);

/* The per-lot counts of the export (db/export.h), inside the caller's read
 * transaction (lock held): db/export.c and db/report.c share it. */
struct db_export_counts;
ST_MUST_CHECK int db_export_read_counts(struct db *db, const char *lot,
					struct db_export_counts *c, struct errbuf *err);

void db_lock(struct db *db);
void db_unlock(struct db *db);

/* SHA-256, its implementation fetched once for the process (audit.c): with
 * EVP_sha256() OpenSSL 3 looks the implementation up again at every
 * EVP_DigestInit_ex, and the write path hashes a dozen times per record.
 * Never NULL (falls back to EVP_sha256()). */
const EVP_MD *db_sha256(void);

/* The canonical hash of one event (audit.c; the encoding is documented
 * there and in docs/database.md).  Lengths are explicit: a NULL column hashes
 * as empty.  0, or -1 when the digest failed. */
int db_audit_hash_fields(EVP_MD_CTX *md, const EVP_MD *sha256, const char *station_id,
			 size_t sid_len, int64_t seq, const char *ts, size_t ts_len,
			 const char *kind, size_t kind_len, const char *actor, size_t actor_len,
			 const char *detail, size_t detail_len, const char *prev_hex,
			 size_t prev_len, uint8_t out[32]);

/* Appends an audit event inside the caller's transaction (lock held). */
ST_MUST_CHECK int db_audit_append_locked(struct db *db, const char *kind, const char *actor,
					 const char *detail_json, int64_t *seq_out,
					 struct errbuf *err);
/* The same with a jansson object as the detail; takes the reference (j may be
 * NULL: a json_pack() that failed, reported as such). */
struct json_t;
ST_MUST_CHECK int db_audit_json_locked(struct db *db, const char *kind, const char *actor,
				       struct json_t *j, struct errbuf *err);

/* 0 when sig is a valid ECDSA-SHA256 signature by the EC key pub_der (DER
 * SubjectPublicKeyInfo) over the checkpoint message; else -1 and *why. */
int db_checkpoint_sig_ok(const char *station_id, int64_t seq, const char head_hex[65],
			 const uint8_t *sig, size_t sig_len, const uint8_t *pub_der,
			 size_t pub_len, const char **why);

/* ---- row coverage (db/rows.c, db/rows_verify.c) ----
 * db_audited_tables[] is the one list of audited tables and their key column
 * (a new table: one line there).  Every write that changes a row of one calls
 * db_row_audit_locked() in the same transaction, after the change (a row gone
 * is recorded as deleted). */
struct db_audited_table {
	const char *name, *key;
	const char *sql_get;        /* SELECT * FROM name WHERE key = ? */
	const char *sql_scan;       /* SELECT * FROM name */
	const char *sql_missing;    /* keys the chain has that the table lacks */
};
extern const struct db_audited_table db_audited_tables[];
extern const int db_audited_tables_count;
const struct db_audited_table *db_audited_table(const char *name);
/* 1 for the tables that are not records (the chain itself). */
int db_row_table_exempt(const char *name);

/* keys_seen (db/keys_seen.c): records pubkey_hash for unique_id inside the
 * caller's transaction, with its row event, unless on record already;
 * nothing for an empty hash (a unit whose CSR was refused). */
ST_MUST_CHECK int db_keys_seen_add_locked(struct db *db, const char *pubkey_hash,
					  const char *unique_id, const char *actor,
					  struct errbuf *err);

ST_MUST_CHECK int db_row_audit_locked(struct db *db, const char *table, const char *key,
				      const char *actor, struct errbuf *err);
ST_MUST_CHECK int db_row_audit_id_locked(struct db *db, const char *table, int64_t id,
					 const char *actor, struct errbuf *err);
ST_MUST_CHECK int db_row_baseline_one(struct db *db, const struct db_audited_table *t,
				      const char *key, const char *actor, struct errbuf *err);
struct evp_md_ctx_st;
int db_row_hash_stmt(struct evp_md_ctx_st *md, sqlite3_stmt *st, const char *table,
		     const char *key, uint8_t out[32]);
/* The row hash over typed columns (the one encoding: db_row_hash_stmt and
 * db_row_content_hash both end here). */
int db_row_hash_cols(struct evp_md_ctx_st *md, const char *table, const char *key,
		     const struct db_row_col *cols, size_t n, uint8_t out[32]);
/* The current row of st as typed columns (num: the numbers' text, one per
 * column); the column count, or -1 when more than cap. */
int db_row_cols_stmt(sqlite3_stmt *st, struct db_row_col *cols, char (*num)[40], size_t cap);
int db_row_col_digest(struct evp_md_ctx_st *md, sqlite3_stmt *st, int i, char out[9]);
int db_row_key_col(sqlite3_stmt *st, const char *key);
/* Inside a read (or the caller's) transaction, after the chain verified:
 * every row against its latest row event; ST_ETAMPER names the first bad row
 * in res (row_table, row_key, row_field, what) and err. */
ST_MUST_CHECK int db_rows_verify_locked(struct db *db, struct db_verify_result *res,
					struct errbuf *err);
/* Inside a write transaction: a `row` event with "baseline":true for every row
 * whose content is not its latest event's (a migration's changes). */
/* Registers station_row_head() on a connection (db/rows_verify.c). */
int db_rows_functions(sqlite3 *sq);
ST_MUST_CHECK int db_rows_baseline_locked(struct db *db, const char *actor, struct errbuf *err);
/* The chain and its checkpoints, inside the caller's read transaction and
 * lock (db/audit.c). */
ST_MUST_CHECK int db_audit_chain_verify_locked(struct db *db, const uint8_t *trusted,
					       size_t trusted_len, struct db_verify_result *res,
					       struct errbuf *err);
/* db_audit_verify_tail() inside the caller's read transaction and lock. */
ST_MUST_CHECK int db_audit_tail_locked(struct db *db, int64_t from_seq, const uint8_t from_hash[32],
				       const uint8_t *trusted, size_t trusted_len,
				       struct db_verify_result *res, int64_t *head_seq,
				       uint8_t head_hash[32], struct errbuf *err);
/* db_audit_verify_key(), with the rows (rows=1) or the chain alone (0). */
ST_MUST_CHECK int db_audit_verify_impl(struct db *db, const uint8_t *trusted, size_t trusted_len,
				       int rows, struct db_verify_result *res, struct errbuf *err);
ST_MUST_CHECK int db_rows_any_event_locked(struct db *db, int *any, struct errbuf *err);

#endif
