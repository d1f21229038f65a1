/*
 * line_holder: one line per database (db.h db_line_acquire).  Two lines on one
 * database would each run start-up recovery against the other's live units
 * (revoking a certificate being injected, marking its unit interrupted), so a
 * line holds an exclusive flock on "<db>.lock" for as long as its handle is
 * open, and names itself in that file so that the refused one can say who.
 * The flock is the lock: the kernel drops it when the holder dies.  Once its
 * pre-flight passed, the line also records itself in line_holder (under the
 * chain): who ran lines on this database stays in the record.
 */
#include "db/db_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

static const char SQL_PUT_HOLDER[] =
	"INSERT OR REPLACE INTO line_holder (id, host, pid, since_ms, actor) VALUES (1, ?, ?, ?, ?)";

#define HOLDER_MAX 512

int db_line_held(const struct db *db)
{
	return db->line_fd >= 0;
}

/* The holder as its lock file names it, printable only (a file anyone with the
 * directory could write: never sent to a terminal as is). */
static void describe_holder(int fd, char *out, size_t size)
{
	char buf[HOLDER_MAX];
	ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);

	if (n <= 0) {
		snprintf(out, size, "a line that has not named itself yet");
		return;
	}
	buf[n] = '\0';
	buf[strcspn(buf, "\n")] = '\0';
	for (char *p = buf; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			*p = '?';
	snprintf(out, size, "%s", buf);
}

static void holder_text(const char *actor, int64_t since_ms, char host[256], char *out, size_t size)
{
	char since[CLOCK_ISO_LEN];

	if (gethostname(host, 256) != 0)
		snprintf(host, 256, "unknown");
	host[255] = '\0';
	clock_iso_ms(since_ms, since);
	snprintf(out, size, "host %s pid %ld since %s (user %s)\n", host, (long)getpid(), since,
		 actor);
}

int db_line_acquire(struct db *db, const char *actor, struct errbuf *err)
{
	char lock_path[sizeof(db->path) + 8], host[256], who[HOLDER_MAX];
	int fd, n;

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

		if (e == EWOULDBLOCK)
			describe_holder(fd, who, sizeof(who));
		close(fd);
		if (e != EWOULDBLOCK)
			return errbuf_set(err, ST_EIO, "cannot lock %s: %s", lock_path, strerror(e));
		return errbuf_set(err, ST_EBUSY, "database %s is in use by another line: %s",
				  db->path, who);
	}
	/* Named in the lock file, not in the database: taking the lock writes
	 * nothing a refused run would have to undo (invariant 8). */
	db->line_since_ms = clock_realtime_ms();
	holder_text(actor, db->line_since_ms, host, who, sizeof(who));
	n = (int)strlen(who);
	if (ftruncate(fd, 0) != 0 || pwrite(fd, who, (size_t)n, 0) != n) {
		int e = errno;

		close(fd);
		return errbuf_set(err, ST_EIO, "lock file %s: %s", lock_path, strerror(e));
	}
	db->line_fd = fd;
	return ST_OK;
}

int db_line_record(struct db *db, const char *actor, struct errbuf *err)
{
	char host[256], text[HOLDER_MAX];
	sqlite3_stmt *st;
	int rc, owned;

	if (db->line_fd < 0)
		return errbuf_set(err, ST_ESTATE, "the line lock is not held (db_line_acquire)");
	holder_text(actor, db->line_since_ms, host, text, sizeof(text));
	db_lock(db);
	if ((rc = db_txn_begin(db, &owned, err)))
		goto out;
	if (!(st = db_stmt(db, SQL_PUT_HOLDER, err))) {
		rc = ST_EDB;
		goto end;
	}
	sqlite3_bind_text(st, 1, host, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)getpid());
	sqlite3_bind_int64(st, 3, db->line_since_ms);
	sqlite3_bind_text(st, 4, actor, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	sqlite3_reset(st);
	rc = rc == SQLITE_DONE ? db_row_audit_id_locked(db, "line_holder", 1, actor, err)
			       : db_sqlerr(db, rc, err, "record the line holder");
end:
	rc = db_txn_end(db, owned, rc, err);
out:
	db_unlock(db);
	return rc;
}
