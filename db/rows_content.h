/*
 * rows_content: a row of an audited table as data that leaves the database
 * (the factory ledger's `rows`, docs/factory.md) and comes back.
 *
 * The content is an exact, typed encoding of every column, in SELECT * order,
 * as one compact JSON array:
 *
 *   [["<name>","<type>","<value>"],...]
 *
 * type and value are the row encoding's (docs/database.md "The row encoding",
 * db/rows.c: its one owner): null (value ""), integer (decimal), real
 * ("%.17g"), text (the UTF-8 text), blob (its bytes in lower-case hex, the
 * only transformation).  So the row hash of an event's `h` is recomputed from
 * the content alone, with the same code the station's own verify uses.
 *
 * Contract
 * - db_audit_batch() is what a push sends: one read snapshot of this
 *   station's chain after a seq, and, for each (table, key) whose latest row
 *   event in those events is the journal's latest too, the row's content
 *   with that event's seq.  The content must hash to the event's `h`: a row
 *   edited outside the station is ST_ETAMPER (reason tamper) naming table,
 *   key and seq, and nothing is pushed.
 * - db_row_content_parse() refuses (ST_EINVAL) anything but the form above:
 *   unknown type, an integer or real that is not in its canonical text, bad
 *   hex, more than DB_ROW_COLS_MAX columns.
 * - The scratch functions load parsed rows into a database that is never a
 *   station's journal (a lot read from the ledger, app/factory_lot.c): no row
 *   event, foreign keys off (ids of other stations' reworks stay as they
 *   were); column names are checked against the table's own.
 */
#ifndef STATION_DB_ROWS_CONTENT_H
#define STATION_DB_ROWS_CONTENT_H

#include <stddef.h>
#include <stdint.h>

#include "core/errbuf.h"
#include "db/db.h"

#define DB_ROW_COLS_MAX 64
#define DB_ROW_KEY_MAX  256

/* One column: name, storage class ("null", "integer", "real", "text",
 * "blob") and the value bytes the row hash takes (decimal text for numbers,
 * the raw bytes for a blob). */
struct db_row_col {
	const char *name, *type;
	const void *value;
	size_t len;
};

struct db_row_content {
	char table[32];
	char key[DB_ROW_KEY_MAX + 1];
	size_t n;
	struct db_row_col col[DB_ROW_COLS_MAX];
	char num[DB_ROW_COLS_MAX][24];  /* integers set by db_row_content_set_int */
	void *json, *blobs[DB_ROW_COLS_MAX];
};

/* A row as pushed: deleted rows carry no content.  lot and unique_id index
 * the row for a reader (units: its own; certificates: its unit's lot and its
 * board; lots: the name; allowlist: its lot's name and its id; "" when the
 * table has none).  Strings live until fn returns. */
struct db_row_push {
	const char *table, *key;
	int64_t seq;
	int deleted;
	const char *content;
	const char *lot, *unique_id;
};

ST_MUST_CHECK int db_audit_batch(struct db *db, int64_t after_seq, int limit,
				 int (*ev_fn)(const struct db_chain_event *e, void *ctx),
				 int (*row_fn)(const struct db_row_push *r, void *ctx), void *ctx,
				 struct errbuf *err);

ST_MUST_CHECK int db_row_content_parse(const char *table, const char *key, const char *json,
				       struct db_row_content *c, struct errbuf *err);
void db_row_content_free(struct db_row_content *c);
/* The row hash (64 hex) of the content: what a row event's `h` must be. */
ST_MUST_CHECK int db_row_content_hash(const struct db_row_content *c, char hex[65],
				      struct errbuf *err);
/* The column called name, or NULL. */
const struct db_row_col *db_row_content_col(const struct db_row_content *c, const char *name);
/* Its value as an integer (0 and *ok = 0 when it is not an integer column). */
int64_t db_row_col_int(const struct db_row_col *col, int *ok);
/* Its text into buf (size cap), "" for null; -1 when cut or not text. */
int db_row_col_text(const struct db_row_col *col, char *buf, size_t cap);
/* Sets column name to integer v (it must exist). */
ST_MUST_CHECK int db_row_content_set_int(struct db_row_content *c, const char *name, int64_t v,
					 struct errbuf *err);

ST_MUST_CHECK int db_scratch_begin(struct db *db, struct errbuf *err);
ST_MUST_CHECK int db_scratch_commit(struct db *db, struct errbuf *err);
/* Inserts c into its table (ST_EEXIST on a UNIQUE conflict). */
ST_MUST_CHECK int db_scratch_insert(struct db *db, const struct db_row_content *c,
				    struct errbuf *err);

#endif
