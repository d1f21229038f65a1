/* db: locks, statements and transactions (opening and migrating: db/open.c).
 * See db.h and docs/database.md. */
#include "db/db_int.h"
#include "db/schema.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>


void db_lock(struct db *db)
{
	pthread_mutex_lock(&db->mu);
}

void db_unlock(struct db *db)
{
	pthread_mutex_unlock(&db->mu);
}

sqlite3_stmt *db_prepare_once(struct db *db, const char *sql, struct errbuf *err)
{
	sqlite3_stmt *st = NULL;
	int rc = sqlite3_prepare_v2(db->sq, sql, -1, &st, NULL);

	if (rc != SQLITE_OK) {
		db_sqlerr(db, rc, err, "prepare");
		sqlite3_finalize(st);
		return NULL;
	}
	return st;
}

int db_sqlerr(struct db *db, int rc, struct errbuf *err, const char *what)
{
	int code = ST_EDB;

	if (rc == SQLITE_CONSTRAINT || (rc & 0xff) == SQLITE_CONSTRAINT) {
		int ext = sqlite3_extended_errcode(db->sq);

		if (ext == SQLITE_CONSTRAINT_UNIQUE || ext == SQLITE_CONSTRAINT_PRIMARYKEY)
			code = ST_EEXIST;
	} else if ((rc & 0xff) == SQLITE_BUSY || (rc & 0xff) == SQLITE_LOCKED) {
		code = ST_EBUSY;
	}
	return errbuf_set(err, code, "database %s: %s: %s", db->path, what,
			  sqlite3_errmsg(db->sq));
}

sqlite3_stmt *db_stmt(struct db *db, const char *sql, struct errbuf *err)
{
	int free_slot = -1, rc;

	for (int i = 0; i < DB_STMT_CACHE; i++) {
		if (db->stmts[i].sql == sql) {
			sqlite3_reset(db->stmts[i].st);
			sqlite3_clear_bindings(db->stmts[i].st);
			return db->stmts[i].st;
		}
		if (!db->stmts[i].sql && free_slot < 0)
			free_slot = i;
	}
	if (free_slot < 0) {
		/* More distinct statements than slots is a programming error; keep
		 * working by recycling the last slot. */
		free_slot = DB_STMT_CACHE - 1;
		sqlite3_finalize(db->stmts[free_slot].st);
		db->stmts[free_slot].sql = NULL;
		db->stmts[free_slot].st = NULL;
	}
	rc = sqlite3_prepare_v3(db->sq, sql, -1, SQLITE_PREPARE_PERSISTENT,
				&db->stmts[free_slot].st, NULL);
	if (rc != SQLITE_OK) {
		db_sqlerr(db, rc, err, "prepare");
		sqlite3_finalize(db->stmts[free_slot].st);
		db->stmts[free_slot].st = NULL;
		return NULL;
	}
	db->stmts[free_slot].sql = sql;
	return db->stmts[free_slot].st;
}

int db_exec_simple(struct db *db, const char *sql, struct errbuf *err)
{
	char *msg = NULL;
	int rc = sqlite3_exec(db->sq, sql, NULL, NULL, &msg);

	if (rc != SQLITE_OK) {
		int code = (rc & 0xff) == SQLITE_BUSY ? ST_EBUSY : ST_EDB;

		/* Migrations are long: name the statement by its first words only. */
		errbuf_set(err, code, "database %s: %.40s: %s", db->path, sql,
			   msg ? msg : sqlite3_errstr(rc));
		sqlite3_free(msg);
		return code;
	}
	return ST_OK;
}

int db_user_version(struct db *db, int *v, struct errbuf *err)
{
	sqlite3_stmt *st;
	int rc = sqlite3_prepare_v2(db->sq, "PRAGMA user_version", -1, &st, NULL);

	if (rc != SQLITE_OK)
		return db_sqlerr(db, rc, err, "read schema version");
	rc = sqlite3_step(st);
	if (rc != SQLITE_ROW) {
		sqlite3_finalize(st);
		return db_sqlerr(db, rc, err, "read schema version");
	}
	*v = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	return ST_OK;
}

void db_close(struct db *db)
{
	if (!db)
		return;
	for (int i = 0; i < DB_STMT_CACHE; i++)
		sqlite3_finalize(db->stmts[i].st);
	if (db->in_txn)
		sqlite3_exec(db->sq, "ROLLBACK", NULL, NULL, NULL);
	sqlite3_close_v2(db->sq);
	sqlite3_finalize(db->rd_cert);
	sqlite3_finalize(db->rd_seen);
	sqlite3_close_v2(db->rd);
	pthread_mutex_destroy(&db->rd_mu);
	if (db->wal_fd >= 0)
		close(db->wal_fd);
	if (db->line_fd >= 0)
		close(db->line_fd);   /* releases the line's flock */
	pthread_mutex_destroy(&db->mu);
	pthread_mutex_destroy(&db->issue_mu);
	pthread_cond_destroy(&db->sync_cv);
	pthread_mutex_destroy(&db->sync_mu);
	free(db);
}

long db_wal_syncs(struct db *db)
{
	return __atomic_load_n(&db->wal_syncs, __ATOMIC_RELAXED);
}

int db_schema_version(struct db *db)
{
	int v = -1;

	db_lock(db);
	if (db_user_version(db, &v, NULL) != ST_OK)
		v = -1;
	db_unlock(db);
	return v;
}

const char *db_station_id(const struct db *db)
{
	return db->station_id;
}

const char *db_path(const struct db *db)
{
	return db->path;
}

int db_synchronous(struct db *db)
{
	sqlite3_stmt *st = NULL;
	int v = -1;

	db_lock(db);
	if (sqlite3_prepare_v2(db->sq, "PRAGMA synchronous", -1, &st, NULL) == SQLITE_OK &&
	    sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	db_unlock(db);
	return v;
}

/* db_int.h.  The transaction statements and the synchronous switch run on
 * every commit of the issuing path, where parsing them each time showed in
 * profiles. */
int db_exec_cached(struct db *db, const char *sql, struct errbuf *err)
{
	sqlite3_stmt *st = db_stmt(db, sql, err);
	int rc;

	if (!st)
		return ST_EDB;
	rc = sqlite3_step(st);
	sqlite3_reset(st);
	if (rc != SQLITE_DONE && rc != SQLITE_ROW)
		return db_sqlerr(db, rc, err, sql);
	return ST_OK;
}

static const char SQL_BEGIN[] = "BEGIN IMMEDIATE";
static const char SQL_COMMIT[] = "COMMIT";

/* The mutex stays held from begin to commit/rollback: see db_int.h. */
int db_begin(struct db *db, struct errbuf *err)
{
	int rc;

	db_lock(db);
	if (db->in_txn) {
		db_unlock(db);
		return errbuf_set(err, ST_ESTATE, "database %s: transaction already open",
				  db->path);
	}
	if ((rc = db_exec_cached(db, SQL_BEGIN, err))) {
		db_unlock(db);
		return rc;
	}
	db->in_txn = 1;
	return ST_OK;
}

int db_commit(struct db *db, struct errbuf *err)
{
	int rc;

	db_lock(db);
	if (!db->in_txn) {
		db_unlock(db);
		return errbuf_set(err, ST_ESTATE, "database %s: no transaction open", db->path);
	}
	rc = db_exec_cached(db, SQL_COMMIT, err);
	if (rc) {
		sqlite3_exec(db->sq, "ROLLBACK", NULL, NULL, NULL);
		if (err)
			errbuf_prefix(err, "commit failed, rolled back: ");
	}
	db->in_txn = 0;
	db_unlock(db);         /* this call's lock */
	db_unlock(db);         /* db_begin's lock */
	return rc;
}

void db_rollback(struct db *db)
{
	db_lock(db);
	if (!db->in_txn) {
		db_unlock(db);
		return;
	}
	sqlite3_exec(db->sq, "ROLLBACK", NULL, NULL, NULL);
	db->in_txn = 0;
	db_unlock(db);
	db_unlock(db);
}

int db_txn_begin(struct db *db, int *owned, struct errbuf *err)
{
	*owned = 0;
	if (db->in_txn)
		return ST_OK;
	int rc = db_exec_cached(db, SQL_BEGIN, err);

	if (rc)
		return rc;
	*owned = 1;
	return ST_OK;
}

int db_txn_end(struct db *db, int owned, int rc, struct errbuf *err)
{
	if (!owned)
		return rc;
	if (rc == ST_OK) {
		rc = db_exec_cached(db, SQL_COMMIT, err);
		if (rc == ST_OK)
			return ST_OK;
	}
	sqlite3_exec(db->sq, "ROLLBACK", NULL, NULL, NULL);
	return rc;
}

/* ---- group commit (db_int.h) ------------------------------------------- */

static const char SQL_SYNC_NORMAL[] = "PRAGMA synchronous = NORMAL";
static const char SQL_SYNC_FULL[] = "PRAGMA synchronous = FULL";

int db_set_synchronous(struct db *db, int full, struct errbuf *err)
{
	return db_exec_cached(db, full ? SQL_SYNC_FULL : SQL_SYNC_NORMAL, err);
}

int db_txn_begin_synced(struct db *db, int *owned, struct errbuf *err)
{
	int rc;

	*owned = 0;
	if (db->in_txn)
		return ST_OK;  /* the caller's transaction decides; nothing to sync here */
	if ((rc = db_set_synchronous(db, 0, err)))
		return rc;
	if ((rc = db_txn_begin(db, owned, err)))
		ST_IGNORE(db_set_synchronous(db, 1, NULL));
	return rc;
}

/* The WAL exists once a commit went through it.  SQLite keeps that file (the
 * same inode) while this connection is open; a link count of 0 would mean it
 * was replaced, so it is opened again.
 *
 * Only the link count is asked for, on every commit.  Asking for the times
 * too (fstat) marks them as read, and since Linux 6.13 ext4 then gives the
 * next write a fine-grained mtime: every commit dirtied the WAL's inode, and
 * every fdatasync wrote the inode table block as a second synchronous I/O
 * (docs/performance.md, "The issuing threads' CPU, sample by sample"). */
static int wal_linked(int fd)
{
	struct statx sx;
	struct stat sb;

	if (statx(fd, "", AT_EMPTY_PATH, STATX_NLINK, &sx) == 0 && (sx.stx_mask & STATX_NLINK))
		return sx.stx_nlink > 0;
	return fstat(fd, &sb) == 0 && sb.st_nlink > 0;   /* no statx: a filter, an old kernel */
}

static int wal_open_locked(struct db *db, struct errbuf *err)
{
	char wal[sizeof(db->path) + 8];
	int fd;

	if (db->wal_fd >= 0 && wal_linked(db->wal_fd))
		return ST_OK;
	snprintf(wal, sizeof(wal), "%s-wal", db->path);
	fd = open(wal, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errbuf_set(err, ST_EDB, "database %s: cannot open its WAL to sync it: %s",
				  db->path, strerror(errno));
	if (db->wal_fd < 0) {
		db->wal_fd = fd;
		return ST_OK;
	}
	/* in place: a sync running outside the lock never sees a closed number */
	if (dup3(fd, db->wal_fd, O_CLOEXEC) < 0) {
		close(fd);
		return errbuf_set(err, ST_EDB, "database %s: cannot reopen its WAL: %s",
				  db->path, strerror(errno));
	}
	close(fd);
	return ST_OK;
}

int db_txn_end_synced(struct db *db, int owned, int rc, struct errbuf *err)
{
	int rc2;

	if (!owned)
		return rc;
	rc = db_txn_end(db, owned, rc, err);
	if (rc == ST_OK)   /* its frames are in the WAL: a sync begun from now covers it */
		__atomic_add_fetch(&db->commit_seq, 1, __ATOMIC_RELEASE);
	rc2 = db_set_synchronous(db, 1, rc ? NULL : err);
	if (!rc && !rc2)
		rc2 = wal_open_locked(db, err);
	return rc ? rc : rc2;
}

static int wal_sync_failed(struct db *db, int e, struct errbuf *err)
{
	return errbuf_set(err, ST_EDB, "database %s: syncing the WAL failed: %s: "
			  "the last change may not be durable", db->path,
			  e ? strerror(e) : "not open");
}

void db_wal_sync_idle_wait(struct db *db)
{
	pthread_mutex_lock(&db->sync_mu);
	while (db->syncing)   /* an fdatasync: it returns, and its syncer broadcasts */
		pthread_cond_wait(&db->sync_cv, &db->sync_mu);
	pthread_mutex_unlock(&db->sync_mu);
}

/*
 * The caller's commit is counted in commit_seq already, so waiting until
 * synced_seq reaches the count read on entry covers it.  The syncer reads the
 * count again as it starts and covers everything up to there: commits made
 * while it waited for the previous sync share its fdatasync.
 */
int db_wal_sync(struct db *db, struct errbuf *err)
{
	uint64_t want = __atomic_load_n(&db->commit_seq, __ATOMIC_ACQUIRE), upto;
	int e = 0;

	pthread_mutex_lock(&db->sync_mu);
	for (;;) {
		/* after a failed sync the kernel may have dropped what it held:
		 * a later sync that succeeds proves nothing for these commits */
		if (want <= db->sync_failed_seq && want > db->synced_seq) {
			e = db->wal_fd < 0 ? 0 : EIO;
			break;
		}
		if (want <= db->synced_seq)
			break;
		if (db->syncing) {
			pthread_cond_wait(&db->sync_cv, &db->sync_mu);
			continue;
		}
		db->syncing = 1;
		upto = __atomic_load_n(&db->commit_seq, __ATOMIC_ACQUIRE);
		pthread_mutex_unlock(&db->sync_mu);
		if (db->wal_fd < 0)
			e = -1;
		else if (fdatasync(db->wal_fd) != 0)
			e = errno;
		else
			__atomic_add_fetch(&db->wal_syncs, 1, __ATOMIC_RELAXED);
		pthread_mutex_lock(&db->sync_mu);
		db->syncing = 0;
		if (e == 0 && upto > db->synced_seq)
			db->synced_seq = upto;
		else if (e != 0 && upto > db->sync_failed_seq)
			db->sync_failed_seq = upto;
		pthread_cond_broadcast(&db->sync_cv);
		if (e != 0)
			break;
	}
	pthread_mutex_unlock(&db->sync_mu);
	return e ? wal_sync_failed(db, e < 0 ? 0 : e, err) : ST_OK;
}
