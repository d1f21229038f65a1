/*
 * rows_verify: every current row against the latest `row` event of its key
 * (db/rows.c has the encoding), and the baseline a migration records.
 *
 * Bounded memory: the latest (table, key) -> hash of the chain goes into a
 * temporary table (SQLite's temp store is a file here, TEMP_STORE=1; its page
 * cache is bounded), then each audited table is scanned once, each row looked
 * up by its primary key there.  Rows with an event but no row are found with
 * one anti-join per table, run only when the counts differ.  Nothing grows
 * with the number of rows but the temp file.
 */
#include "db/db_int.h"

#include <jansson.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char SQL_LATEST_CREATE[] =
	"CREATE TEMP TABLE IF NOT EXISTS row_latest (t TEXT NOT NULL, k TEXT NOT NULL,"
	" h TEXT NOT NULL, ev INTEGER NOT NULL, seq INTEGER NOT NULL,"
	" PRIMARY KEY (t, k)) WITHOUT ROWID;"
	"DELETE FROM temp.row_latest;"
	"INSERT OR REPLACE INTO temp.row_latest (t, k, h, ev, seq)"
	" SELECT coalesce(station_row_head(detail, 't'), json_extract(detail, '$.t')),"
	" coalesce(station_row_head(detail, 'k'), json_extract(detail, '$.k')),"
	" coalesce(station_row_head(detail, 'h'), json_extract(detail, '$.h')),"
	" id, seq FROM events WHERE kind = 'row' ORDER BY id;";
static const char SQL_LATEST_DROP[] = "DROP TABLE IF EXISTS temp.row_latest";
static const char SQL_LATEST_GET[] =
	"SELECT h, ev, seq FROM temp.row_latest WHERE t = ? AND k = ?";
static const char SQL_LATEST_COUNT[] =
	"SELECT count(*) FROM temp.row_latest WHERE t = ? AND h != 'deleted'";
static const char SQL_TABLES[] =
	"SELECT name FROM main.sqlite_schema WHERE type = 'table'"
	" AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY name";
static const char SQL_TABLE_EXISTS[] =
	"SELECT 1 FROM main.sqlite_schema WHERE type = 'table' AND name = ?";
static const char SQL_EVENT_DETAIL[] = "SELECT detail FROM events WHERE id = ?";
static const char SQL_ANY_ROW_EVENT[] = "SELECT 1 FROM events WHERE kind = 'row' LIMIT 1";

/*
 * station_row_head(detail, 'h' | 'k' | 't'): that member of a row event's
 * detail, read from the detail's head without parsing the rest.  The station
 * writes every row event as {"h":"..","k":"..","t":"..",...} (keys sorted,
 * db/rows.c), and a 1,000,000-event verify spent most of its time in
 * json_extract parsing the per-column digests after them (docs/performance.md,
 * "Rows under the chain").  The fast path accepts only that exact head with
 * plain strings (no escapes, no control characters) and returns NULL for
 * anything else, and the query falls back to json_extract: a detail not in the
 * canonical form reads as it did before.
 */
static int head_member(const char **p, const char *end, char name, const char **val,
		       size_t *len)
{
	const char *q = *p;

	if (end - q < 6 || q[0] != '"' || q[1] != name || q[2] != '"' || q[3] != ':' ||
	    q[4] != '"')
		return -1;
	q += 5;
	*val = q;
	while (q < end && *q != '"') {
		if (*q == '\\' || (unsigned char)*q < 0x20)
			return -1;
		q++;
	}
	if (q >= end)
		return -1;
	*len = (size_t)(q - *val);
	*p = q + 1;
	return 0;
}

static void row_head_fn(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
	const char *d = (const char *)sqlite3_value_text(argv[0]);
	const char *want = (const char *)sqlite3_value_text(argv[1]);
	const char *p, *end, *val[3];
	size_t len[3];
	static const char names[3] = { 'h', 'k', 't' };

	(void)argc;
	if (!d || !want || !want[0] || want[1])
		return;                 /* NULL: the caller falls back */
	end = d + sqlite3_value_bytes(argv[0]);
	p = d;
	if (p >= end || *p++ != '{')
		return;
	for (int i = 0; i < 3; i++) {
		if (i && (p >= end || *p++ != ','))
			return;
		if (head_member(&p, end, names[i], &val[i], &len[i]))
			return;
	}
	if (p >= end || (*p != ',' && *p != '}') || end[-1] != '}')
		return;
	for (int i = 0; i < 3; i++)
		if (want[0] == names[i]) {
			sqlite3_result_text(ctx, val[i], (int)len[i], SQLITE_TRANSIENT);
			return;
		}
}

int db_rows_functions(sqlite3 *sq)
{
	return sqlite3_create_function_v2(sq, "station_row_head", 2,
					  SQLITE_UTF8 | SQLITE_DETERMINISTIC | SQLITE_DIRECTONLY,
					  NULL, row_head_fn, NULL, NULL, NULL);
}

struct rwalk {
	struct db *db;
	struct db_verify_result *res;
	EVP_MD_CTX *md;
	int baseline;               /* record differences instead of reporting them */
	const char *actor;
};

static void row_bad(struct rwalk *w, const char *table, const char *key, const char *field,
		    const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static void row_bad(struct rwalk *w, const char *table, const char *key, const char *field,
		    const char *fmt, ...)
{
	struct db_verify_result *r = w->res;
	va_list ap;

	if (r->rows_bad++)
		return;                 /* the first one is named; the rest are counted */
	snprintf(r->row_table, sizeof(r->row_table), "%s", table);
	snprintf(r->row_key, sizeof(r->row_key), "%s", key);
	snprintf(r->row_field, sizeof(r->row_field), "%s", field ? field : "");
	va_start(ap, fmt);
	vsnprintf(r->what, sizeof(r->what), fmt, ap);
	va_end(ap);
}

/* Which column differs from the per-column digests of event ev: written into
 * field (empty when it cannot tell). */
static void name_field(struct rwalk *w, sqlite3_stmt *row, int64_t ev, char *field, size_t size)
{
	sqlite3_stmt *st = db_stmt(w->db, SQL_EVENT_DETAIL, NULL);
	json_t *j = NULL, *v, *e_unused;
	const char *name;
	char d[9];

	*field = '\0';
	if (!st)
		return;
	sqlite3_bind_int64(st, 1, ev);
	if (sqlite3_step(st) == SQLITE_ROW)
		j = json_loads((const char *)sqlite3_column_text(st, 0), 0, NULL);
	sqlite3_reset(st);
	if (!j || !json_is_object(v = json_object_get(j, "v")))
		goto out;
	for (int i = 0; i < sqlite3_column_count(row); i++) {
		json_t *e = json_object_get(v, sqlite3_column_name(row, i));

		if (!e || db_row_col_digest(w->md, row, i, d) ||
		    strcmp(json_string_value(e) ? json_string_value(e) : "", d)) {
			snprintf(field, size, "%s", sqlite3_column_name(row, i));
			goto out;
		}
	}
	json_object_foreach(v, name, e_unused) {
		int found = 0;

		for (int i = 0; i < sqlite3_column_count(row); i++)
			found |= !strcmp(sqlite3_column_name(row, i), name);
		if (!found) {
			snprintf(field, size, "%s", name);
			break;
		}
	}
out:
	json_decref(j);
}

/* One current row: compare (or, in baseline mode, record). */
static int check_row(struct rwalk *w, const struct db_audited_table *t, sqlite3_stmt *row,
		     int kc, int64_t *matched, struct errbuf *err)
{
	sqlite3_stmt *get;
	const char *key = (const char *)sqlite3_column_text(row, kc);
	uint8_t h[32];
	char hex[65], field[64], kbuf[96];
	int64_t ev, seq;
	int rc;

	snprintf(kbuf, sizeof(kbuf), "%s", key ? key : "");
	if (db_row_hash_stmt(w->md, row, t->name, kbuf, h))
		return errbuf_set(err, ST_ECRYPTO, "SHA-256 failed");
	hex_encode(h, 32, hex);
	w->res->rows++;
	if (!(get = db_stmt(w->db, SQL_LATEST_GET, err)))
		return ST_EDB;
	sqlite3_bind_text(get, 1, t->name, -1, SQLITE_STATIC);
	sqlite3_bind_text(get, 2, kbuf, -1, SQLITE_STATIC);
	rc = sqlite3_step(get);
	if (rc == SQLITE_DONE) {
		sqlite3_reset(get);
		if (w->baseline)
			return db_row_baseline_one(w->db, t, kbuf, w->actor, err);
		row_bad(w, t->name, kbuf, NULL, "row %s %s=%s has no row event (written outside the station)",
			t->name, t->key, kbuf);
		return ST_OK;
	}
	if (rc != SQLITE_ROW)
		return db_sqlerr(w->db, rc, err, "read row events");
	(*matched)++;
	if (!strcmp((const char *)sqlite3_column_text(get, 0), hex)) {
		sqlite3_reset(get);
		return ST_OK;
	}
	ev = sqlite3_column_int64(get, 1);
	seq = sqlite3_column_int64(get, 2);
	sqlite3_reset(get);
	if (w->baseline)
		return db_row_baseline_one(w->db, t, kbuf, w->actor, err);
	name_field(w, row, ev, field, sizeof(field));
	if (*field)
		row_bad(w, t->name, kbuf, field, "row %s %s=%s differs from its latest row event (seq %lld): field %s",
			t->name, t->key, kbuf, (long long)seq, field);
	else
		row_bad(w, t->name, kbuf, NULL, "row %s %s=%s differs from its latest row event (seq %lld)",
			t->name, t->key, kbuf, (long long)seq);
	return ST_OK;
}

/* Rows the chain has but the table lost: one anti-join, only when the counts
 * say there is one. */
static int check_missing(struct rwalk *w, const struct db_audited_table *t, int64_t matched,
			 int present, struct errbuf *err)
{
	sqlite3_stmt *st = db_stmt(w->db, SQL_LATEST_COUNT, err);
	int64_t want;
	int rc;

	if (!st)
		return ST_EDB;
	sqlite3_bind_text(st, 1, t->name, -1, SQLITE_STATIC);
	if ((rc = sqlite3_step(st)) != SQLITE_ROW)
		return db_sqlerr(w->db, rc, err, "count row events");
	want = sqlite3_column_int64(st, 0);
	sqlite3_reset(st);
	if (want == matched)
		return ST_OK;
	if (!present) {
		row_bad(w, t->name, "", NULL, "table %s is missing but the chain has %lld of its rows",
			t->name, (long long)want);
		return ST_OK;
	}
	if (!(st = db_stmt(w->db, t->sql_missing, err)))
		return ST_EDB;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		char k[96];

		snprintf(k, sizeof(k), "%s", (const char *)sqlite3_column_text(st, 0));
		if (w->baseline) {
			/* the statement stays open: appending events changes neither side */
			if ((rc = db_row_baseline_one(w->db, t, k, w->actor, err))) {
				sqlite3_reset(st);
				return rc;
			}
			continue;
		}
		row_bad(w, t->name, k, NULL, "row %s %s=%s is missing (deleted outside the station; its latest row event is seq %lld)",
			t->name, t->key, k, (long long)sqlite3_column_int64(st, 1));
		w->res->rows_bad += want - matched - 1;
		break;
	}
	sqlite3_reset(st);
	return rc == SQLITE_ROW || rc == SQLITE_DONE ? ST_OK : db_sqlerr(w->db, rc, err, "find missing rows");
}

static int table_present(struct db *db, const char *name, int *present, struct errbuf *err)
{
	sqlite3_stmt *st = db_stmt(db, SQL_TABLE_EXISTS, err);
	int rc;

	if (!st)
		return ST_EDB;
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	*present = rc == SQLITE_ROW;
	sqlite3_reset(st);
	return rc == SQLITE_ROW || rc == SQLITE_DONE ? ST_OK : db_sqlerr(db, rc, err, "read schema");
}

/* Every table in the file is audited or exempt. */
static int check_unknown_tables(struct rwalk *w, struct errbuf *err)
{
	sqlite3_stmt *st = db_stmt(w->db, SQL_TABLES, err);
	int rc;

	if (!st)
		return ST_EDB;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *name = (const char *)sqlite3_column_text(st, 0);

		if (!db_audited_table(name) && !db_row_table_exempt(name))
			row_bad(w, name, "", NULL, "table %s is not under the audit chain (not in db_audited_tables)",
				name);
	}
	sqlite3_reset(st);
	return rc == SQLITE_DONE ? ST_OK : db_sqlerr(w->db, rc, err, "list tables");
}

static int walk_tables(struct rwalk *w, struct errbuf *err)
{
	int rc;

	if ((rc = sqlite3_exec(w->db->sq, SQL_LATEST_CREATE, NULL, NULL, NULL)) != SQLITE_OK)
		return db_sqlerr(w->db, rc, err, "load the latest row events");
	if (!w->baseline && (rc = check_unknown_tables(w, err)))
		return rc;
	for (int i = 0; i < db_audited_tables_count; i++) {
		const struct db_audited_table *t = &db_audited_tables[i];
		sqlite3_stmt *st;
		int64_t matched = 0;
		int present, kc;

		if ((rc = table_present(w->db, t->name, &present, err)))
			return rc;
		if (present) {
			if (!(st = db_prepare_once(w->db, t->sql_scan, err)))
				return ST_EDB;
			kc = db_row_key_col(st, t->key);
			for (;;) {
				int s = sqlite3_step(st);

				if (s == SQLITE_DONE) {
					rc = ST_OK;
					break;
				}
				if (s != SQLITE_ROW) {
					rc = db_sqlerr(w->db, s, err, "scan an audited table");
					break;
				}
				if ((rc = check_row(w, t, st, kc, &matched, err)))
					break;
			}
			sqlite3_finalize(st);
			if (rc)
				return rc;
		}
		if ((rc = check_missing(w, t, matched, present, err)))
			return rc;
	}
	return ST_OK;
}

int db_rows_verify_locked(struct db *db, struct db_verify_result *res, struct errbuf *err)
{
	struct rwalk w = { db, res, EVP_MD_CTX_new(), 0, NULL };
	int rc;

	if (!w.md)
		return errbuf_set(err, ST_ENOMEM, "out of memory");
	rc = walk_tables(&w, err);
	sqlite3_exec(db->sq, SQL_LATEST_DROP, NULL, NULL, NULL);
	EVP_MD_CTX_free(w.md);
	if (rc == ST_OK && res->rows_bad > 1)
		rc = errbuf_set(err, ST_ETAMPER, "%s (and %lld more row%s)", res->what,
				(long long)(res->rows_bad - 1), res->rows_bad > 2 ? "s" : "");
	else if (rc == ST_OK && res->rows_bad)
		rc = errbuf_set(err, ST_ETAMPER, "%s", res->what);
	return rc;
}

int db_rows_baseline_locked(struct db *db, const char *actor, struct errbuf *err)
{
	struct db_verify_result res;
	struct rwalk w = { db, &res, EVP_MD_CTX_new(), 1, actor };
	int rc;

	memset(&res, 0, sizeof(res));
	if (!w.md)
		return errbuf_set(err, ST_ENOMEM, "out of memory");
	rc = walk_tables(&w, err);
	sqlite3_exec(db->sq, SQL_LATEST_DROP, NULL, NULL, NULL);
	EVP_MD_CTX_free(w.md);
	return rc;
}

int db_rows_any_event_locked(struct db *db, int *any, struct errbuf *err)
{
	sqlite3_stmt *st = db_stmt(db, SQL_ANY_ROW_EVENT, err);
	int rc;

	if (!st)
		return ST_EDB;
	rc = sqlite3_step(st);
	*any = rc == SQLITE_ROW;
	sqlite3_reset(st);
	return rc == SQLITE_ROW || rc == SQLITE_DONE ? ST_OK : db_sqlerr(db, rc, err, "read events");
}
