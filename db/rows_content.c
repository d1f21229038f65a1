/*
 * rows_content: rows as typed content for the factory ledger, and back.  See
 * rows_content.h; the hash is db/rows.c's (db_row_hash_cols).
 */
#include "db/db_int.h"

#include <jansson.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* What indexes a pushed row for a reader (rows_content.h): lot, unique_id. */
static const struct {
	const char *table, *sql;
} row_index[] = {
	{ "units", "SELECT lot, unique_id FROM units WHERE id = ?" },
	{ "certificates", "SELECT (SELECT u.lot FROM units u WHERE u.id = c.unit_id),"
			  " c.unique_id FROM certificates c WHERE c.serial = ?" },
	{ "lots", "SELECT name, '' FROM lots WHERE id = ?" },
	{ "allowlist", "SELECT (SELECT l.name FROM lots l WHERE l.id = a.lot_id), a.unique_id"
		       " FROM allowlist a WHERE a.id = ?" },
};

static const char SQL_SINCE[] =
	"SELECT seq, ts, kind, actor, detail, prev_hash, hash FROM events"
	" WHERE station_id = ? AND seq > ? ORDER BY seq LIMIT ?";
static const char SQL_AFTER[] =
	"SELECT 1 FROM events WHERE station_id = ? AND seq > ? LIMIT 1";

/* ---- the content --------------------------------------------------------- */

static char *encode_cols(const struct db_row_col *cols, size_t n)
{
	json_t *a = json_array();
	char *out = NULL;

	for (size_t i = 0; a && i < n; i++) {
		json_t *v;

		if (!strcmp(cols[i].type, "blob")) {
			char *h = malloc(cols[i].len * 2 + 1);

			if (!h)
				goto fail;
			hex_encode(cols[i].value, cols[i].len, h);
			h[cols[i].len * 2] = '\0';
			v = json_string(h);
			free(h);
		} else {
			v = json_stringn(cols[i].value, cols[i].len);
		}
		if (!v || json_array_append_new(a, json_pack("[s,s,o]", cols[i].name, cols[i].type,
							     v)))
			goto fail;
	}
	if (a)
		out = json_dumps(a, JSON_COMPACT);
fail:
	json_decref(a);
	return out;
}

static int canonical_number(const char *type, const char *s, size_t len)
{
	char back[40];

	if (!len || len >= sizeof(back) - 1)
		return 0;
	if (!strcmp(type, "integer")) {
		snprintf(back, sizeof(back), "%lld", strtoll(s, NULL, 10));
	} else {
		snprintf(back, sizeof(back), "%.17g", strtod(s, NULL));
	}
	return strlen(back) == len && !memcmp(back, s, len);
}

void db_row_content_free(struct db_row_content *c)
{
	json_decref(c->json);
	c->json = NULL;
	for (size_t i = 0; i < DB_ROW_COLS_MAX; i++) {
		free(c->blobs[i]);
		c->blobs[i] = NULL;
	}
	c->n = 0;
}

int db_row_content_parse(const char *table, const char *key, const char *json,
			 struct db_row_content *c, struct errbuf *err)
{
	static const char *const types[] = { "null", "integer", "real", "text", "blob" };
	json_error_t je;
	json_t *a;
	size_t i;

	memset(c, 0, sizeof(*c));
	if (snprintf(c->table, sizeof(c->table), "%s", table) >= (int)sizeof(c->table) ||
	    snprintf(c->key, sizeof(c->key), "%s", key) >= (int)sizeof(c->key))
		return errbuf_set(err, ST_EINVAL, "row content: table or key too long");
	if (!(a = json_loads(json, JSON_REJECT_DUPLICATES, &je)) || !json_is_array(a) ||
	    json_array_size(a) > DB_ROW_COLS_MAX) {
		json_decref(a);
		return errbuf_set(err, ST_EINVAL, "row %s %s: the content is not an array of"
				  " columns", table, key);
	}
	c->json = a;
	for (i = 0; i < json_array_size(a); i++) {
		json_t *e = json_array_get(a, i);
		const char *name, *type, *val;
		size_t len, t;

		if (!json_is_array(e) || json_array_size(e) != 3 ||
		    !json_is_string(json_array_get(e, 0)) || !json_is_string(json_array_get(e, 1)) ||
		    !json_is_string(json_array_get(e, 2)))
			goto bad;
		name = json_string_value(json_array_get(e, 0));
		type = json_string_value(json_array_get(e, 1));
		val = json_string_value(json_array_get(e, 2));
		len = json_string_length(json_array_get(e, 2));
		for (t = 0; t < sizeof(types) / sizeof(types[0]) && strcmp(type, types[t]); t++)
			;
		if (t == sizeof(types) / sizeof(types[0]) || !*name)
			goto bad;
		c->col[i].name = name;
		c->col[i].type = types[t];
		c->col[i].value = val;
		c->col[i].len = len;
		if (t == 0 && len)
			goto bad;
		if ((t == 1 || t == 2) && !canonical_number(type, val, len))
			goto bad;
		if (t == 4) {
			uint8_t *b = malloc(len / 2 + 1);

			if (!b) {
				db_row_content_free(c);
				return errbuf_set(err, ST_ENOMEM, "out of memory");
			}
			c->blobs[i] = b;
			if (len % 2 || hex_decode_lower(val, len, b, len / 2))
				goto bad;
			c->col[i].value = b;
			c->col[i].len = len / 2;
		}
	}
	c->n = i;
	return ST_OK;
bad:
	db_row_content_free(c);
	return errbuf_set(err, ST_EINVAL, "row %s %s: column %zu of the content is not"
			  " [name, type, value] in the row encoding", table, key, i + 1);
}

int db_row_content_hash(const struct db_row_content *c, char hex[65], struct errbuf *err)
{
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	uint8_t h[32];
	int bad = !md || db_row_hash_cols(md, c->table, c->key, c->col, c->n, h);

	EVP_MD_CTX_free(md);
	if (bad)
		return errbuf_set(err, ST_ECRYPTO, "SHA-256 failed");
	hex_encode(h, 32, hex);
	return ST_OK;
}

const struct db_row_col *db_row_content_col(const struct db_row_content *c, const char *name)
{
	for (size_t i = 0; i < c->n; i++)
		if (!strcmp(c->col[i].name, name))
			return &c->col[i];
	return NULL;
}

int64_t db_row_col_int(const struct db_row_col *col, int *ok)
{
	char buf[24];

	*ok = col && !strcmp(col->type, "integer") && col->len < sizeof(buf);
	if (!*ok)
		return 0;
	memcpy(buf, col->value, col->len);
	buf[col->len] = '\0';
	return strtoll(buf, NULL, 10);
}

int db_row_col_text(const struct db_row_col *col, char *buf, size_t cap)
{
	buf[0] = '\0';
	if (col && !strcmp(col->type, "null"))
		return 0;
	if (!col || strcmp(col->type, "text") || col->len >= cap)
		return -1;
	memcpy(buf, col->value, col->len);
	buf[col->len] = '\0';
	return 0;
}

int db_row_content_set_int(struct db_row_content *c, const char *name, int64_t v,
			   struct errbuf *err)
{
	for (size_t i = 0; i < c->n; i++) {
		if (strcmp(c->col[i].name, name))
			continue;
		snprintf(c->num[i], sizeof(c->num[i]), "%lld", (long long)v);
		c->col[i].type = "integer";
		c->col[i].value = c->num[i];
		c->col[i].len = strlen(c->num[i]);
		return ST_OK;
	}
	return errbuf_set(err, ST_EINVAL, "row %s %s has no column %s", c->table, c->key, name);
}

/* ---- the push: one snapshot of the chain and its rows --------------------- */

struct latest {
	const struct db_audited_table *t;
	char *key, *h;
	int64_t seq;
	size_t order;
};

static int latest_cmp(const void *a, const void *b)
{
	const struct latest *x = a, *y = b;
	int c = strcmp(x->t->name, y->t->name);

	if (!c)
		c = strcmp(x->key, y->key);
	if (!c)
		c = x->seq < y->seq ? -1 : x->seq > y->seq;
	return c;
}

/* The row event's (table, key, h), or 0 when detail is not one. */
static int row_event(const char *detail, struct latest *out)
{
	json_t *j = json_loads(detail, 0, NULL);
	const char *t = NULL, *k = NULL, *h = NULL;
	int ok = 0;

	if (j && !json_unpack(j, "{s:s, s:s, s:s}", "t", &t, "k", &k, "h", &h) &&
	    (out->t = db_audited_table(t)) && strlen(k) <= DB_ROW_KEY_MAX) {
		out->key = strdup(k);
		out->h = strdup(h);
		ok = out->key && out->h ? 1 : -1;
	}
	json_decref(j);
	return ok;
}

static const char *index_sql(const char *table)
{
	for (size_t i = 0; i < sizeof(row_index) / sizeof(row_index[0]); i++)
		if (!strcmp(row_index[i].table, table))
			return row_index[i].sql;
	return NULL;
}

/* The index strings of one row into lot / uid ("" when none). */
static int read_index(struct db *db, const struct latest *r, char lot[72], char uid[72],
		      struct errbuf *err)
{
	const char *sql = index_sql(r->t->name);
	sqlite3_stmt *st;
	int rc;

	lot[0] = uid[0] = '\0';
	if (!sql)
		return ST_OK;
	if (!(st = db_stmt(db, sql, err)))
		return ST_EDB;
	sqlite3_bind_text(st, 1, r->key, -1, SQLITE_STATIC);
	if ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const unsigned char *a = sqlite3_column_text(st, 0), *b = sqlite3_column_text(st, 1);

		snprintf(lot, 72, "%s", a ? (const char *)a : "");
		snprintf(uid, 72, "%s", b ? (const char *)b : "");
		rc = ST_OK;
	} else {
		rc = rc == SQLITE_DONE ? ST_OK : db_sqlerr(db, rc, err, "index a row to push");
	}
	sqlite3_reset(st);
	return rc;
}

/* One (table, key) whose latest event in the batch is r: its content, if it
 * still hashes to r->h.  final: no event follows the batch, so r is the
 * journal's latest and a differing row was edited. */
static int push_row(struct db *db, EVP_MD_CTX *md, const struct latest *r, int final,
		    int (*row_fn)(const struct db_row_push *r, void *ctx), void *ctx,
		    struct errbuf *err)
{
	struct db_row_push p = { r->t->name, r->key, r->seq, 0, NULL, "", "" };
	struct db_row_col cols[DB_ROW_COLS_MAX];
	char num[DB_ROW_COLS_MAX][40], hex[65] = "", lot[72], uid[72];
	sqlite3_stmt *st;
	char *content = NULL;
	uint8_t h[32];
	int rc, n = -1;

	if (!strcmp(r->h, "deleted")) {
		p.deleted = 1;
		return row_fn(&p, ctx);
	}
	if ((rc = read_index(db, r, lot, uid, err)))
		return rc;
	if (!(st = db_stmt(db, r->t->sql_get, err)))
		return ST_EDB;
	sqlite3_bind_text(st, 1, r->key, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		n = db_row_cols_stmt(st, cols, num, DB_ROW_COLS_MAX);
		if (n < 0 || db_row_hash_cols(md, r->t->name, r->key, cols, (size_t)n, h)) {
			sqlite3_reset(st);
			return errbuf_set(err, ST_ECRYPTO, "row %s %s: cannot hash it", r->t->name,
					  r->key);
		}
		hex_encode(h, 32, hex);
		if (!strcmp(hex, r->h) && !(content = encode_cols(cols, (size_t)n))) {
			sqlite3_reset(st);
			return errbuf_set(err, ST_EINVAL, "row %s %s: its text is not UTF-8: it"
					  " cannot be pushed", r->t->name, r->key);
		}
	} else if (rc != SQLITE_DONE) {
		rc = db_sqlerr(db, rc, err, "read a row to push");
		sqlite3_reset(st);
		return rc;
	}
	sqlite3_reset(st);
	if (!content) {
		if (!final)    /* a later event of the next batch carries it */
			return ST_OK;
		return errbuf_setr(err, ST_ETAMPER, ST_ORIGIN_DB, ST_R_TAMPER,
				   "row %s %s=%s of the journal %s its row event (seq %lld):"
				   " written outside the station; nothing pushed", r->t->name,
				   r->t->key, r->key, n < 0 ? "is missing but not deleted by" :
				   "differs from", (long long)r->seq);
	}
	p.content = content;
	p.lot = lot;
	p.unique_id = uid;
	rc = row_fn(&p, ctx);
	free(content);
	return rc;
}

struct since {
	int (*ev_fn)(const struct db_chain_event *e, void *ctx);
	void *ctx;
	struct latest *rows;
	size_t n, cap;
	int64_t last;
	int count, stop;
};

static int read_since(struct db *db, int64_t after_seq, int limit, struct since *s,
		      struct errbuf *err)
{
	sqlite3_stmt *st;
	int rc;

	if (!(st = db_stmt(db, SQL_SINCE, err)))
		return ST_EDB;
	sqlite3_bind_text(st, 1, db->station_id, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, after_seq);
	sqlite3_bind_int(st, 3, limit);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct db_chain_event e;

		e.seq = sqlite3_column_int64(st, 0);
		e.ts = (const char *)sqlite3_column_text(st, 1);
		e.kind = (const char *)sqlite3_column_text(st, 2);
		e.actor = (const char *)sqlite3_column_text(st, 3);
		e.detail = (const char *)sqlite3_column_text(st, 4);
		e.prev_hash = (const char *)sqlite3_column_text(st, 5);
		e.hash = (const char *)sqlite3_column_text(st, 6);
		s->last = e.seq;
		s->count++;
		if (e.kind && !strcmp(e.kind, "row") && e.detail) {
			struct latest r = { .seq = e.seq, .order = s->n };
			int got;

			if (s->n == s->cap) {
				size_t cap = s->cap ? s->cap * 2 : 64;
				struct latest *p = realloc(s->rows, cap * sizeof(*p));

				if (!p) {
					rc = SQLITE_NOMEM;
					break;
				}
				s->rows = p;
				s->cap = cap;
			}
			if ((got = row_event(e.detail, &r)) < 0) {
				free(r.key);
				free(r.h);
				rc = SQLITE_NOMEM;
				break;
			}
			if (got)
				s->rows[s->n++] = r;
		}
		if ((s->stop = s->ev_fn(&e, s->ctx)))
			break;
	}
	sqlite3_reset(st);
	if (rc == SQLITE_NOMEM)
		return errbuf_set(err, ST_ENOMEM, "out of memory");
	return rc == SQLITE_DONE || s->stop ? ST_OK : db_sqlerr(db, rc, err, "read events to push");
}

static int events_after(struct db *db, int64_t seq, int *any, struct errbuf *err)
{
	sqlite3_stmt *st = db_stmt(db, SQL_AFTER, err);
	int rc;

	if (!st)
		return ST_EDB;
	sqlite3_bind_text(st, 1, db->station_id, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, seq);
	rc = sqlite3_step(st);
	*any = rc == SQLITE_ROW;
	sqlite3_reset(st);
	return rc == SQLITE_ROW || rc == SQLITE_DONE ? ST_OK : db_sqlerr(db, rc, err, "read events");
}

int db_audit_batch(struct db *db, int64_t after_seq, int limit,
		   int (*ev_fn)(const struct db_chain_event *e, void *ctx),
		   int (*row_fn)(const struct db_row_push *r, void *ctx), void *ctx,
		   struct errbuf *err)
{
	struct since s = { .ev_fn = ev_fn, .ctx = ctx };
	EVP_MD_CTX *md = NULL;
	int rc, more = 0;

	db_lock(db);
	if (db->in_txn) {
		db_unlock(db);
		return errbuf_set(err, ST_ESTATE, "push: not inside a transaction");
	}
	/* one snapshot: the events and the rows they describe */
	if ((rc = sqlite3_exec(db->sq, "BEGIN", NULL, NULL, NULL)) != SQLITE_OK) {
		rc = db_sqlerr(db, rc, err, "begin the push's read");
		db_unlock(db);
		return rc;
	}
	rc = read_since(db, after_seq, limit, &s, err);
	if (rc == ST_OK && s.stop)
		rc = s.stop;
	if (rc == ST_OK && s.count == limit)
		rc = events_after(db, s.last, &more, err);
	if (rc == ST_OK && s.n && !(md = EVP_MD_CTX_new()))
		rc = errbuf_set(err, ST_ENOMEM, "out of memory");
	if (rc == ST_OK && s.n)
		qsort(s.rows, s.n, sizeof(*s.rows), latest_cmp);
	for (size_t i = 0; rc == ST_OK && i < s.n; i++) {
		/* the last of each (table, key) group is its latest */
		if (i + 1 < s.n && s.rows[i + 1].t == s.rows[i].t &&
		    !strcmp(s.rows[i + 1].key, s.rows[i].key))
			continue;
		rc = push_row(db, md, &s.rows[i], !more, row_fn, ctx, err);
	}
	sqlite3_exec(db->sq, "ROLLBACK", NULL, NULL, NULL);
	db_unlock(db);
	for (size_t i = 0; i < s.n; i++) {
		free(s.rows[i].key);
		free(s.rows[i].h);
	}
	free(s.rows);
	EVP_MD_CTX_free(md);
	return rc;
}

/* ---- a scratch database -------------------------------------------------- */

int db_scratch_begin(struct db *db, struct errbuf *err)
{
	int rc;

	/* other stations' rework ids name rows this file does not hold */
	if ((rc = db_exec_simple(db, "PRAGMA foreign_keys = OFF", err)))
		return rc;
	return db_begin(db, err);
}

int db_scratch_commit(struct db *db, struct errbuf *err)
{
	return db_commit(db, err);
}

int db_scratch_insert(struct db *db, const struct db_row_content *c, struct errbuf *err)
{
	const struct db_audited_table *t = db_audited_table(c->table);
	sqlite3_stmt *scan = NULL, *ins = NULL;
	char sql[4096];
	size_t off;
	int rc = ST_OK;

	if (!t)
		return errbuf_set(err, ST_EINVAL, "table %s is not in db_audited_tables", c->table);
	db_lock(db);
	if (!(scan = db_prepare_once(db, t->sql_scan, err))) {
		db_unlock(db);
		return ST_EDB;
	}
	/* the names in the SQL are the table's own, matched by the content's */
	off = (size_t)snprintf(sql, sizeof(sql), "INSERT INTO %s (", t->name);
	for (size_t i = 0; i < c->n && rc == ST_OK; i++) {
		const char *own = NULL;

		for (int k = 0; k < sqlite3_column_count(scan) && !own; k++)
			if (!strcmp(sqlite3_column_name(scan, k), c->col[i].name))
				own = sqlite3_column_name(scan, k);
		if (!own)
			rc = errbuf_set(err, ST_EINVAL, "row %s %s: no column %.64s in this"
					" station's schema", c->table, c->key, c->col[i].name);
		else
			off += (size_t)snprintf(sql + off, off < sizeof(sql) ? sizeof(sql) - off : 0,
						"%s%s", i ? ", " : "", own);
	}
	for (size_t i = 0; i < c->n && rc == ST_OK; i++)
		off += (size_t)snprintf(sql + off, off < sizeof(sql) ? sizeof(sql) - off : 0,
					"%s?", i ? ", " : ") VALUES (");
	if (rc == ST_OK && off + 2 >= sizeof(sql))
		rc = errbuf_set(err, ST_EINVAL, "row %s %s: too many columns", c->table, c->key);
	if (rc == ST_OK) {
		strcat(sql, ")");
		if (!(ins = db_prepare_once(db, sql, err)))
			rc = ST_EDB;
	}
	for (size_t i = 0; i < c->n && rc == ST_OK; i++) {
		const struct db_row_col *col = &c->col[i];
		int b = (int)i + 1, ok;

		if (!strcmp(col->type, "null"))
			sqlite3_bind_null(ins, b);
		else if (!strcmp(col->type, "integer"))
			sqlite3_bind_int64(ins, b, db_row_col_int(col, &ok));
		else if (!strcmp(col->type, "real"))
			sqlite3_bind_double(ins, b, strtod(col->value, NULL));
		else if (!strcmp(col->type, "text"))
			sqlite3_bind_text(ins, b, col->value, (int)col->len, SQLITE_STATIC);
		else
			sqlite3_bind_blob(ins, b, col->value, (int)col->len, SQLITE_STATIC);
	}
	if (rc == ST_OK) {
		int s = sqlite3_step(ins);

		if (s != SQLITE_DONE)
			rc = db_sqlerr(db, s, err, "load a row from the ledger");
	}
	sqlite3_finalize(ins);
	sqlite3_finalize(scan);
	db_unlock(db);
	return rc;
}
