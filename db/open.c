/* open: db_open() creates or opens the file and migrates it (db/schema.c),
 * recording each migration's changes to audited rows (db/rows_verify.c).
 * See db.h and docs/database.md "Migrations". */
#include "db/db_int.h"
#include "db/schema.h"
#include "core/ids.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>


/* mkdir -p of path's parent directory (mode 0700 for what we create). */
static int make_parent(const char *path, struct errbuf *err)
{
	char dir[4096];
	char *slash;

	if (strlen(path) >= sizeof(dir))
		return errbuf_set(err, ST_EINVAL, "database path too long");
	strcpy(dir, path);
	slash = strrchr(dir, '/');
	if (!slash || slash == dir)
		return ST_OK;
	*slash = '\0';
	for (char *p = dir + 1; ; p++) {
		if (*p == '/' || *p == '\0') {
			char save = *p;

			*p = '\0';
			if (mkdir(dir, 0700) != 0 && errno != EEXIST)
				return errbuf_set(err, ST_EIO, "cannot create directory %s: %s",
						  dir, strerror(errno));
			*p = save;
			if (!save)
				break;
		}
	}
	return ST_OK;
}

/* Creates the file 0600 if absent, so SQLite (which copies the database file's
 * mode onto -wal and -shm) never makes a world-readable database. */
static int create_file(const char *path, struct errbuf *err)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);

	if (fd < 0) {
		if (errno == EEXIST)
			return ST_OK;
		return errbuf_set(err, ST_EIO, "cannot create database %s: %s", path,
				  strerror(errno));
	}
	if (fchmod(fd, 0600) != 0) {
		int e = errno;

		close(fd);
		return errbuf_set(err, ST_EIO, "chmod %s: %s", path, strerror(e));
	}
	close(fd);
	return ST_OK;
}

static int too_new(struct db *db, int v, struct errbuf *err)
{
	return errbuf_set(err, ST_ESCHEMA,
			  "database %s has schema version %d but this station binary knows "
			  "only up to version %d: refusing to open it (upgrade the station software)",
			  db->path, v, db_migrations_count);
}

/* Before a migration records the state of every row as its new baseline,
 * the rows must be what the chain says: a database whose rows were edited is
 * not upgraded (that would launder the edit).  A database that predates row
 * coverage (no row event yet) has only its chain checked: its rows are taken
 * as they are, once, at that upgrade (docs/database.md "Baseline"). */
static int rows_checked(struct db *db, struct errbuf *err)
{
	struct db_verify_result res;
	int any = 0, rc, v;

	if ((rc = db_user_version(db, &v, err)) || v == 0)
		return rc;
	if ((rc = db_rows_any_event_locked(db, &any, err)))
		return rc;
	rc = db_audit_verify_impl(db, NULL, 0, any, &res, err);
	if (rc == ST_ETAMPER && err) {
		char why[sizeof(err->msg)];

		snprintf(why, sizeof(why), "%s", err->msg);
		return errbuf_set(err, ST_ETAMPER, "database %s: refusing to migrate it: %s",
				  db->path, why);
	}
	return rc;
}

/* Forward-only: each step and its user_version bump commit together.  The
 * version is re-read under the write lock so two processes opening a fresh
 * file at once do not both run a step. */
static int migrate(struct db *db, struct errbuf *err)
{
	int v, rc;

	if ((rc = db_user_version(db, &v, err)))
		return rc;
	if (v > db_migrations_count)
		return too_new(db, v, err);
	/* Migrations 5..9 index events with JSON functions, which SQLite 3.40
	 * refuses in the schema under trusted_schema OFF: the upgrade (our own
	 * SQL, on a file whose triggers and views were refused) runs with it ON,
	 * and migration 10 replaces those indexes (db/schema.h DB_EV_FIELD). */
	if (v < db_migrations_count &&
	    ((rc = db_exec_simple(db, "PRAGMA trusted_schema = ON", err)) ||
	     (rc = rows_checked(db, err))))
		return rc;
	while (v < db_migrations_count) {
		char bump[64];

		if ((rc = db_exec_simple(db, "BEGIN IMMEDIATE", err)))
			return rc;
		if ((rc = db_user_version(db, &v, err)))
			goto fail;
		if (v >= db_migrations_count) {
			ST_IGNORE(db_exec_simple(db, "COMMIT", NULL));   /* nothing was written */
			break;
		}
		if ((rc = db_exec_simple(db, db_migrations[v], err)))
			goto fail;
		/* What the migration changed in audited rows is recorded, in its own
		 * transaction (the rows were verified before it: rows_checked()). */
		if ((rc = db_rows_baseline_locked(db, "station", err)))
			goto fail;
		/* An integer we computed, not input: PRAGMA cannot take a parameter. */
		snprintf(bump, sizeof(bump), "PRAGMA user_version = %d", v + 1);
		if ((rc = db_exec_simple(db, bump, err)))
			goto fail;
		if ((rc = db_exec_simple(db, "COMMIT", err)))
			goto fail;
		v++;
		continue;
fail:
		sqlite3_exec(db->sq, "ROLLBACK", NULL, NULL, NULL);
		errbuf_set(err, ST_ESCHEMA, "database %s: migration %d -> %d failed: %s",
			   db->path, v, v + 1, err ? err->msg : "");
		return ST_ESCHEMA;
	}
	if (v > db_migrations_count)
		return too_new(db, v, err);
	return db_exec_simple(db, "PRAGMA trusted_schema = OFF", err);
}

/* The schema (db/schema.c) defines no trigger and no view: one found in the
 * file was put there by someone else, and would run its SQL inside the
 * station's own transactions (a trigger can rewrite a row after it is
 * audited).  Refused by name before anything else touches the file. */
static int foreign_schema_refused(struct db *db, struct errbuf *err)
{
	sqlite3_stmt *st = db_prepare_once(db, "SELECT type, name FROM sqlite_master"
					   " WHERE type IN ('trigger', 'view') ORDER BY type, name",
					   err);
	char names[512] = "";
	size_t used = 0;
	int rc, n = 0;

	if (!st)
		return ST_EDB;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *type = (const char *)sqlite3_column_text(st, 0);
		const char *name = (const char *)sqlite3_column_text(st, 1);
		int w;

		if (used < sizeof(names)) {
			w = snprintf(names + used, sizeof(names) - used, "%s%s %s", n ? ", " : "",
				     type ? type : "?", name ? name : "?");
			used += w > 0 ? (size_t)w : 0;
		}
		n++;
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return db_sqlerr(db, rc, err, "read the schema");
	if (n)
		return errbuf_set(err, ST_ETAMPER, "database %s: %d trigger(s)/view(s) the station's"
				  " schema does not define: %s: refusing to open it", db->path, n,
				  names);
	return ST_OK;
}

/* The schema objects (type, name, SQL), one per line, sorted, into a
 * malloc'd string. */
static int schema_text(sqlite3 *sq, char **out)
{
	sqlite3_stmt *st = NULL;
	char *buf = NULL;
	size_t sz = 0;
	FILE *f;
	int rc;

	*out = NULL;
	if (sqlite3_prepare_v2(sq, "SELECT type, name, coalesce(sql, '') FROM sqlite_master"
			       " ORDER BY type, name", -1, &st, NULL) != SQLITE_OK)
		return SQLITE_ERROR;
	f = open_memstream(&buf, &sz);
	if (!f) {
		sqlite3_finalize(st);
		return SQLITE_NOMEM;
	}
	while ((rc = sqlite3_step(st)) == SQLITE_ROW)
		fprintf(f, "%s %s %s\n", sqlite3_column_text(st, 0), sqlite3_column_text(st, 1),
			sqlite3_column_text(st, 2));
	sqlite3_finalize(st);
	if (fclose(f) != 0 || rc != SQLITE_DONE) {
		free(buf);
		return rc == SQLITE_DONE ? SQLITE_NOMEM : rc;
	}
	*out = buf;
	return SQLITE_OK;
}

/* Orders two lines of schema_text() by their "type name". */
static int key_cmp(const char *a, const char *b)
{
	size_t an = strcspn(a, " "), bn = strcspn(b, " ");

	an += a[an] ? 1 + strcspn(a + an + 1, " ") : 0;
	bn += b[bn] ? 1 + strcspn(b + bn + 1, " ") : 0;
	for (size_t i = 0; i < an && i < bn; i++)
		if (a[i] != b[i])
			return a[i] < b[i] ? -1 : 1;
	return an < bn ? -1 : an > bn ? 1 : 0;
}

/* The schema of a database at the current version is exactly what the
 * migrations make (the same SQL run on an empty in-memory database): an
 * index, a CHECK, a DEFAULT or a table changed by hand (writable_schema) is
 * refused, naming the first object that differs. */
static int schema_is_ours(struct db *db, struct errbuf *err)
{
	char *want = NULL, *have = NULL, *w, *h;
	sqlite3 *mem = NULL;
	int rc = SQLITE_OK;

	if (sqlite3_open_v2(":memory:", &mem, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK)
		rc = SQLITE_NOMEM;
	for (int i = 0; rc == SQLITE_OK && i < db_migrations_count; i++)
		rc = sqlite3_exec(mem, db_migrations[i], NULL, NULL, NULL);
	if (rc == SQLITE_OK)
		rc = schema_text(mem, &want);
	sqlite3_close(mem);
	if (rc == SQLITE_OK && (rc = schema_text(db->sq, &have)) != SQLITE_OK) {
		free(want);
		return db_sqlerr(db, rc, err, "read the schema");
	}
	if (rc != SQLITE_OK)
		return errbuf_set(err, ST_EDB, "database %s: cannot build the reference schema",
				  db->path);
	/* both sorted by (type, name): the first object added, changed or gone */
	for (w = want, h = have; *w || *h;) {
		size_t wn = strcspn(w, "\n"), hn = strcspn(h, "\n");
		/* c < 0: h's object comes first, so it is not in want; c > 0: w's is
		 * not in the file */
		int c = !*w ? -1 : !*h ? 1 : key_cmp(h, w);
		const char *what = c < 0 ? "not the station's" : c > 0 ? "missing" : "changed";
		const char *line = c > 0 ? w : h;
		size_t n = c > 0 ? wn : hn;

		if (wn == hn && !strncmp(w, h, wn)) {
			w += wn + (w[wn] != 0);
			h += hn + (h[hn] != 0);
			continue;
		}
		rc = errbuf_set(err, ST_ETAMPER, "database %s: its schema is not the station's"
				" (%s: %.*s): refusing to open it", db->path, what,
				(int)(n > 160 ? 160 : n), line);
		break;
	}
	free(want);
	free(have);
	return rc;
}

/* DB_OPEN_STORED_ID: the id `station init` stored (db/station.c writes it;
 * read here, so db.c needs nothing above it), if any. */
static int load_station_id(struct db *db, struct errbuf *err)
{
	sqlite3_stmt *st = db_prepare_once(db, "SELECT station_id FROM station WHERE id = 1", err);
	char id[sizeof(db->station_id)] = "";
	int rc;

	if (!st)
		return ST_EDB;
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		snprintf(id, sizeof(id), "%s", (const char *)sqlite3_column_text(st, 0));
	sqlite3_finalize(st);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return db_sqlerr(db, rc, err, "read the station id");
	/* a row edited by hand must not put a newline into the chain */
	if (id[0] && !ids_station_valid(id))
		return errbuf_set(err, ST_ETAMPER, "database %s: the stored station id is not"
				  " a valid station id", db->path);
	if (id[0])
		memcpy(db->station_id, id, sizeof(id));
	return ST_OK;
}

int db_open(const char *path, const char *station_id, struct db **out, struct errbuf *err)
{
	return db_open_ex(path, station_id, DB_OPEN_CREATE, out, err);
}

int db_open_ex(const char *path, const char *station_id, unsigned flags, struct db **out,
	       struct errbuf *err)
{
	pthread_mutexattr_t attr;
	struct stat sb;
	struct db *db;
	int rc;

	*out = NULL;
	if (!path || !*path)
		return errbuf_set(err, ST_EINVAL, "no database path given");
	if (!ids_station_valid(station_id))
		return errbuf_set(err, ST_EINVAL, "station id must be 1..%d printable characters"
				  " without spaces", IDS_STATION_MAX);
	if (strlen(path) >= sizeof(db->path))
		return errbuf_set(err, ST_EINVAL, "database path too long");
	if (flags & DB_OPEN_CREATE) {
		if ((rc = make_parent(path, err)) || (rc = create_file(path, err)))
			return rc;
	} else if (stat(path, &sb) != 0) {
		/* SQLite would create it: a mistyped path must not become a database */
		return errbuf_set(err, errno == ENOENT ? ST_ENOTFOUND : ST_EIO,
				  "database %s does not exist%s%s", path,
				  errno == ENOENT ? "" : ": ", errno == ENOENT ? "" : strerror(errno));
	}

	db = calloc(1, sizeof(*db));
	if (!db)
		return errbuf_set(err, ST_ENOMEM, "out of memory");
	snprintf(db->path, sizeof(db->path), "%s", path);
	snprintf(db->station_id, sizeof(db->station_id), "%s", station_id);
	db->wal_fd = -1;
	db->line_fd = -1;
	pthread_mutexattr_init(&attr);
	pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_RECURSIVE);
	pthread_mutex_init(&db->mu, &attr);
	pthread_mutexattr_destroy(&attr);
	pthread_mutex_init(&db->issue_mu, NULL);
	pthread_mutex_init(&db->sync_mu, NULL);
	pthread_cond_init(&db->sync_cv, NULL);
	pthread_mutex_init(&db->rd_mu, NULL);

	rc = sqlite3_open_v2(path, &db->sq, SQLITE_OPEN_READWRITE | SQLITE_OPEN_FULLMUTEX, NULL);
	if (rc != SQLITE_OK) {
		errbuf_set(err, ST_EDB, "cannot open database %s: %s", path,
			   db->sq ? sqlite3_errmsg(db->sq) : sqlite3_errstr(rc));
		goto fail;
	}
	sqlite3_extended_result_codes(db->sq, 1);
	sqlite3_busy_timeout(db->sq, DB_BUSY_TIMEOUT_MS);
	if ((rc = db_rows_functions(db->sq)) != SQLITE_OK) {
		errbuf_set(err, ST_EDB, "database %s: cannot register its functions: %s", path,
			   sqlite3_errstr(rc));
		goto fail;
	}
	/* Anything the schema does not define is refused before the first
	 * statement of ours runs; migrate() then leaves trusted_schema OFF, so no
	 * function that is not innocuous runs from the schema (a CHECK, DEFAULT
	 * or index expression planted in the file). */
	if ((rc = foreign_schema_refused(db, err)))
		goto fail;
	/* Not a database at all (or encrypted): fail here with a clear message. */
	if ((rc = db_exec_simple(db, "PRAGMA journal_mode = WAL", err)) ||
	    (rc = db_exec_simple(db, "PRAGMA synchronous = FULL", err)) ||
	    (rc = db_exec_simple(db, "PRAGMA foreign_keys = ON", err)) ||
	    (rc = db_exec_simple(db, "PRAGMA secure_delete = ON", err)) ||
	    (rc = migrate(db, err)) ||
	    (rc = schema_is_ours(db, err)))
		goto fail;
	if ((flags & DB_OPEN_STORED_ID) && (rc = load_station_id(db, err)))
		goto fail;
	*out = db;
	return ST_OK;
fail:
	rc = err ? err->code : ST_EDB;
	db_close(db);
	return rc ? rc : ST_EDB;
}

