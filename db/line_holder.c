/*
 * line_holder: one line per database (db.h db_line_acquire).  Two lines on one
 * database would each run start-up recovery against the other's live units
 * (revoking a certificate being injected, marking its unit interrupted), so a
 * line holds an exclusive flock on "<db>.lock" for as long as its handle is
 * open, and records itself in line_holder so that the refused one can say who.
 * The flock, not the row, is the lock: the kernel drops it when the holder
 * dies, and a row left behind by a crash only names the last holder.
 */
#include "db/db_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

static const char SQL_HOLDER[] =
	"SELECT host, pid, since_ms, actor FROM line_holder WHERE id = 1";
static const char SQL_PUT_HOLDER[] =
	"INSERT OR REPLACE INTO line_holder (id, host, pid, since_ms, actor) VALUES (1, ?, ?, ?, ?)";

int db_line_held(const struct db *db)
{
	return db->line_fd >= 0;
}

/* "host H pid P since T (user U)" of the recorded holder, for the refusal. */
static void describe_holder(struct db *db, char *out, size_t size)
{
	sqlite3_stmt *st = db_stmt(db, SQL_HOLDER, NULL);
	char since[32];

	snprintf(out, size, "a line that has not recorded itself yet");
	if (!st)
		return;
	if (sqlite3_step(st) == SQLITE_ROW) {
		clock_iso_ms(sqlite3_column_int64(st, 2), since);
		snprintf(out, size, "host %s pid %lld since %s (user %s)",
			 (const char *)sqlite3_column_text(st, 0),
			 (long long)sqlite3_column_int64(st, 1), since,
			 (const char *)sqlite3_column_text(st, 3));
	}
	sqlite3_reset(st);
}

int db_line_acquire(struct db *db, const char *actor, struct errbuf *err)
{
	char lock_path[sizeof(db->path) + 8], host[256], who[512];
	sqlite3_stmt *st;
	int fd, rc, owned;

	if (db->line_fd >= 0)
		return ST_OK;
	if ((size_t)snprintf(lock_path, sizeof(lock_path), "%s.lock", db->path) >= sizeof(lock_path))
		return errbuf_set(err, ST_EINVAL, "database path too long for its lock file");
	fd = open(lock_path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		return errbuf_set(err, ST_EIO, "cannot open lock file %s: %s", lock_path,
				  strerror(errno));
	if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
		int e = errno;

		close(fd);
		if (e != EWOULDBLOCK)
			return errbuf_set(err, ST_EIO, "cannot lock %s: %s", lock_path, strerror(e));
		db_lock(db);
		describe_holder(db, who, sizeof(who));
		db_unlock(db);
		return errbuf_set(err, ST_EBUSY, "database %s is in use by another line: %s",
				  db->path, who);
	}
	if (gethostname(host, sizeof(host)) != 0)
		snprintf(host, sizeof(host), "unknown");
	host[sizeof(host) - 1] = '\0';
	db_lock(db);
	if ((rc = db_txn_begin(db, &owned, err)))
		goto out;
	if (!(st = db_stmt(db, SQL_PUT_HOLDER, err))) {
		rc = ST_EDB;
		goto end;
	}
	sqlite3_bind_text(st, 1, host, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)getpid());
	sqlite3_bind_int64(st, 3, clock_realtime_ms());
	sqlite3_bind_text(st, 4, actor, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	sqlite3_reset(st);
	rc = rc == SQLITE_DONE ? db_row_audit_id_locked(db, "line_holder", 1, actor, err)
			       : db_sqlerr(db, rc, err, "record the line holder");
end:
	rc = db_txn_end(db, owned, rc, err);
out:
	db_unlock(db);
	if (rc) {
		close(fd);
		return rc;
	}
	db->line_fd = fd;
	return ST_OK;
}
