/*
 * libFuzzer target: the allowlist CSV import (db/allowlist.c: libcsv, one
 * physical line at a time, each row checked and inserted in one transaction).
 * The parse is the import, so each input is imported, unsigned, for lot QA1
 * into an in-memory database (SQLite ":memory:"), emptied after each input (no
 * AUTOINCREMENT: ids start again at 1, so every input meets the same state):
 * migrating a fresh database per input ran twelve times slower.  The input
 * reaches the importer as a file: a memfd, rewritten per input.
 *
 * Any input must import or be refused with ST_EINVAL / ST_EEXIST and a message
 * naming the file.  Invariant 8: a refused file writes nothing (no row, no
 * audit event); an imported one writes exactly its rows and one audit event,
 * and the audit chain verifies.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "db/db_int.h"

static int fd = -1;
static char path[64];
static struct db *db;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	int existed;

	fd = memfd_create("allowlist.csv", MFD_CLOEXEC);
	if (fd < 0)
		abort();
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	existed = access(":memory:", F_OK) == 0;
	if (db_open(":memory:", "fuzz", &db, NULL) != ST_OK)
		abort();
	/* db_open() made an empty file by that name in the working directory */
	if (!existed)
		unlink(":memory:");
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct db_verify_result vr;
	struct errbuf e;
	int64_t rows = -1, count = -1;
	int rc;

	if (ftruncate(fd, 0) != 0 || (size && pwrite(fd, data, size, 0) != (ssize_t)size))
		abort();
	errbuf_clear(&e);
	rc = db_allowlist_import(db, path, "QA1", NULL, NULL, "fuzz", &rows, &e);
	if (rc != ST_OK) {
		if ((rc != ST_EINVAL && rc != ST_EEXIST) || strncmp(e.msg, path, strlen(path)) != 0 ||
		    rows != 0)
			abort();
	} else if (rows < 1) {
		abort();
	}
	if (db_allowlist_count(db, "QA1", &count, &e) != ST_OK || count != (rc == ST_OK ? rows : 0))
		abort();
	if (db_audit_verify(db, &vr, &e) != ST_OK || vr.events != (rc == ST_OK ? 1 : 0))
		abort();
	if (sqlite3_exec(db->sq, "DELETE FROM allowlist; DELETE FROM events; DELETE FROM lots",
			 NULL, NULL, NULL) != SQLITE_OK)
		abort();
	return 0;
}
