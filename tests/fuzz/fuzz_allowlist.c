/*
 * libFuzzer target: the allowlist file, through public headers only.
 *
 * 1. The parser alone (db/allowlist_csv.c, libcsv one physical line at a
 *    time, no database): any input parses or is refused with ST_EINVAL and a
 *    message naming the file; every row it hands on is well formed (a valid
 *    unique id, lot QA1, bounded model and revision, lines increasing), and an
 *    accepted file has at least one row.  The fuzzer's row callback refuses an
 *    id twice in the file the way the storage words it, which predicts the
 *    import exactly.
 * 2. The same input imported (db/allowlist.c), unsigned, for lot QA1 into an
 *    in-memory database (SQLite ":memory:"), as a file: a memfd, rewritten per
 *    input.  The import must end as the parse predicted, with the same message.
 *    Invariant 8: a refused file writes nothing (no row, no audit event); an
 *    imported one writes exactly its rows and its audit events (the import, and
 *    one `row` event for the lot and each allowlist row: db/rows.c), and the
 *    chain and every row verify.  Only an import that succeeded changes the
 *    database, so only then is it reopened, empty, for the next input: every
 *    input meets the same state, and most inputs (refused ones) do not pay for a migration.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "core/ids.h"
#include "db/allowlist_csv.h"
#include "db/db.h"

#define LOT "QA1"

static int fd = -1;
static char path[64];
static struct db *db;

/* The ids of this input so far, with their lines (inputs are small). */
struct seen {
	char  (*id)[ALLOWLIST_CSV_UID_LEN + 1];
	long   *line;
	size_t  n, cap;
	long    last_line;
};

static void open_db(void)
{
	int existed = access(":memory:", F_OK) == 0;

	if (db_open(":memory:", "fuzz", &db, NULL) != ST_OK)
		abort();
	/* db_open() made an empty file by that name in the working directory */
	if (!existed)
		unlink(":memory:");
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	fd = memfd_create("allowlist.csv", MFD_CLOEXEC);
	if (fd < 0)
		abort();
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	open_db();
	return 0;
}

static void check_text(const char *s)
{
	size_t n = strlen(s);

	if (n < 1 || n > ALLOWLIST_CSV_FIELD_MAX)
		abort();
}

/* allowlist_row_fn: checks the row, refuses a repeated id as the storage does. */
static int take_row(const struct allowlist_row *r, void *ctx, struct errbuf *err)
{
	struct seen *s = ctx;

	if (r->path != path || r->line <= s->last_line || !ids_uid_valid(r->unique_id) ||
	    strcmp(r->lot, LOT))
		abort();
	check_text(r->model);
	check_text(r->hw_revision);
	s->last_line = r->line;
	for (size_t i = 0; i < s->n; i++)
		if (!strcmp(s->id[i], r->unique_id))
			return allowlist_csv_fail(r, err, ST_EEXIST,
						  "duplicate unique id %s (first on line %ld of this file)",
						  r->unique_id, s->line[i]);
	if (s->n == s->cap) {
		s->cap = s->cap ? 2 * s->cap : 64;
		s->id = realloc(s->id, s->cap * sizeof(*s->id));
		s->line = realloc(s->line, s->cap * sizeof(*s->line));
		if (!s->id || !s->line)
			abort();
	}
	memcpy(s->id[s->n], r->unique_id, ALLOWLIST_CSV_UID_LEN + 1);
	s->line[s->n++] = r->line;
	return ST_OK;
}

/* Part 1: the parse alone.  Returns its rc, with its message in *e. */
static int parse_alone(const uint8_t *data, size_t size, int64_t *rows, struct errbuf *e)
{
	struct seen s = { 0 };
	int rc;

	errbuf_clear(e);
	rc = allowlist_csv_parse(data, size, path, LOT, take_row, &s, rows, e);
	if (rc != ST_OK) {
		if ((rc != ST_EINVAL && rc != ST_EEXIST) || strncmp(e->msg, path, strlen(path)))
			abort();
	} else if (*rows < 1 || (size_t)*rows != s.n) {
		abort();
	}
	free(s.id);
	free(s.line);
	return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct db_verify_result vr;
	struct errbuf e, pe;
	int64_t rows = -1, parsed = -1, count = -1;
	int rc, prc;

	prc = parse_alone(data, size, &parsed, &pe);

	/* Part 2: the import, which must agree with the parse. */
	if (ftruncate(fd, 0) != 0 || (size && pwrite(fd, data, size, 0) != (ssize_t)size))
		abort();
	errbuf_clear(&e);
	rc = db_allowlist_import(db, path, LOT, NULL, NULL, NULL, "fuzz", &rows, &e);
	if (rc != prc)
		abort();
	if (rc != ST_OK && (strcmp(e.msg, pe.msg) || rows != 0))
		abort();
	if (rc == ST_OK && rows != parsed)
		abort();
	if (db_allowlist_count(db, LOT, &count, &e) != ST_OK || count != (rc == ST_OK ? rows : 0))
		abort();
	if (db_audit_verify(db, &vr, &e) != ST_OK || vr.events != (rc == ST_OK ? rows + 2 : 0))
		abort();
	if (rc == ST_OK) {
		db_close(db);
		open_db();
	}
	return 0;
}
