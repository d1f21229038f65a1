/*
 * allowlist_csv: the manufacturer's allowlist file format (docs/engineer.md),
 * parsed in memory, without a database.
 *
 * The file is CSV (RFC 4180, libcsv strict mode) with the exact header
 * "unique_id,lot,model,hw_revision", then one row per board: a unique id of 24
 * upper-case hex digits, the lot being imported, a model and a hardware
 * revision (1..ALLOWLIST_CSV_TEXT_MAX printable UTF-8 characters each).  A
 * UTF-8 byte order mark is skipped.
 *
 * Contract
 * - allowlist_csv_parse() parses one physical line at a time so that every
 *   error names "PATH:LINE: reason"; the first error stops the parse.  It is
 *   bounded: lines of at most ALLOWLIST_CSV_LINE_MAX bytes, fields of at most
 *   ALLOWLIST_CSV_FIELD_MAX bytes, memory independent of the file's length.
 * - Each valid data row is handed to fn in file order, once.  The strings of
 *   the row live until fn returns.  fn returns ST_OK to go on, or an st_rc
 *   (err filled, e.g. with allowlist_csv_fail()) to stop the parse with it.
 * - A file with a bad row, no header or no data row fails with ST_EINVAL.
 *   Nothing here checks duplicates: that is the storage's (db/allowlist.c), which
 *   sees the ids already imported.
 */
#ifndef STATION_DB_ALLOWLIST_CSV_H
#define STATION_DB_ALLOWLIST_CSV_H

#include <stddef.h>
#include <stdint.h>

#include "core/errbuf.h"
#include "core/ids.h"

#define ALLOWLIST_CSV_FIELD_MAX 256
#define ALLOWLIST_CSV_LINE_MAX  4096
#define ALLOWLIST_CSV_TEXT_MAX  64      /* model, hw_revision: characters */
#define ALLOWLIST_CSV_UID_LEN   IDS_UID_LEN   /* the unique-id rule: core/ids.h */

struct allowlist_row {
	const char *path;          /* the file's name, as given to the parser */
	long        line;          /* physical line the row ends on (1 = header) */
	const char *unique_id;     /* ALLOWLIST_CSV_UID_LEN upper-case hex digits */
	const char *lot;           /* equal to the lot given to the parser */
	const char *model;
	const char *hw_revision;
};

typedef int (*allowlist_row_fn)(const struct allowlist_row *row, void *ctx,
				struct errbuf *err);

/* Parses buf (len bytes; NUL bytes allowed, refused inside fields) read from
 * path, whose rows must all name lot.  ST_OK when every row was handed to fn
 * and there was at least one; *rows_out (may be NULL) counts the rows fn took. */
ST_MUST_CHECK int allowlist_csv_parse(const uint8_t *buf, size_t len, const char *path,
				      const char *lot, allowlist_row_fn fn, void *ctx,
				      int64_t *rows_out, struct errbuf *err);

/* Fills err with "PATH:LINE: <fmt>" for row and returns code: the form of every
 * row error, for fn's own refusals (a duplicate id). */
ST_MUST_CHECK int allowlist_csv_fail(const struct allowlist_row *row, struct errbuf *err, int code,
				     const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* s for a message: printable ASCII only ('?' for the rest), at most 40
 * characters then "...".  Returns out. */
const char *allowlist_csv_shown(const char *s, char out[48]);

#endif
