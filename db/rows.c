/*
 * rows: every row of every table under the audit chain.
 *
 * db_audited_tables[] is the one list of the tables whose rows are audited,
 * each with its key column.  Every db/ write that changes such a row calls
 * db_row_audit_locked() in the same transaction: it reads the row back by its
 * key (SELECT * FROM <table> WHERE <key> = ?, SQL from the fixed list, never
 * from input) and appends a `row` event to the chain:
 *
 *   {"h":"<row hash>","k":"<key>","t":"<table>","v":{"<column>":"<8 hex>",...}}
 *
 * or {"h":"deleted","k":..,"t":..} when the row is gone.  The row hash is
 *
 *   SHA-256( F("station-row-v1") F(table) F(key)
 *            F(name) F(type) F(value)   for every column, in SELECT * order )
 *
 * with F() the length prefix of the chain's encoding, type one of "null",
 * "integer", "real", "text", "blob", and value: nothing for NULL, the decimal
 * text of an integer, "%.17g" of a real, the bytes of a text or blob.  "v"
 * holds, per column, the first 4 bytes (hex) of SHA-256(F("station-col-v1")
 * F(name) F(type) F(value)): not a proof (h is), only so that verify can name
 * the field that changed.  Columns added to a table are covered without any
 * change here; a new table is one line in db_audited_tables[].
 *
 * db_rows_verify_locked() checks every current row against the latest row
 * event of its (table, key), streaming: the latest hash per key is loaded
 * into a temporary on-disk table (SQLite's temp store, page cache bounded)
 * and each real table is scanned once with an index lookup per row.
 */
#include "db/db_int.h"

#include <jansson.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ROW_TAG "station-row-v1"
#define COL_TAG "station-col-v1"

#define T(name, key) { name, key, "SELECT * FROM " name " WHERE " key " = ?", \
		       "SELECT * FROM " name, \
		       "SELECT k, seq FROM temp.row_latest WHERE t = '" name "' AND h != 'deleted'" \
		       " AND NOT EXISTS (SELECT 1 FROM " name " WHERE " key " = k) ORDER BY k" }
const struct db_audited_table db_audited_tables[] = {
	T("lots", "id"),
	T("allowlist", "id"),
	T("profiles", "id"),
	T("units", "id"),
	T("certificates", "serial"),
	T("reworks", "id"),
	T("roles", "name"),
	T("checkpoints", "id"),
	T("crls", "number"),
	T("station", "id"),
	T("line_holder", "id"),
	T("keys_seen", "pubkey_hash"),
};
#undef T
const int db_audited_tables_count =
	(int)(sizeof(db_audited_tables) / sizeof(db_audited_tables[0]));

/* Not rows of the record: the chain itself. (sqlite_* are SQLite's own.) */
static const char *const exempt_tables[] = { "events" };

int db_row_table_exempt(const char *name)
{
	for (size_t i = 0; i < sizeof(exempt_tables) / sizeof(exempt_tables[0]); i++)
		if (!strcmp(exempt_tables[i], name))
			return 1;
	return 0;
}

const struct db_audited_table *db_audited_table(const char *name)
{
	for (int i = 0; i < db_audited_tables_count; i++)
		if (!strcmp(db_audited_tables[i].name, name))
			return &db_audited_tables[i];
	return NULL;
}

/* ---- encoding ------------------------------------------------------------ */

static void upd_field(EVP_MD_CTX *md, const void *p, size_t len)
{
	uint8_t be[4] = { (uint8_t)(len >> 24), (uint8_t)(len >> 16),
			  (uint8_t)(len >> 8), (uint8_t)len };

	EVP_DigestUpdate(md, be, 4);
	if (len)
		EVP_DigestUpdate(md, p, len);
}

/* Column i of the current row as (type tag, value bytes). */
static void col_value(sqlite3_stmt *st, int i, const char **tag, const void **p, size_t *len,
		      char num[40])
{
	switch (sqlite3_column_type(st, i)) {
	case SQLITE_INTEGER:
		*tag = "integer";
		*len = (size_t)snprintf(num, 40, "%lld", (long long)sqlite3_column_int64(st, i));
		*p = num;
		break;
	case SQLITE_FLOAT:
		*tag = "real";
		*len = (size_t)snprintf(num, 40, "%.17g", sqlite3_column_double(st, i));
		*p = num;
		break;
	case SQLITE_TEXT:
		*tag = "text";
		*p = sqlite3_column_text(st, i);
		*len = (size_t)sqlite3_column_bytes(st, i);
		break;
	case SQLITE_BLOB:
		*tag = "blob";
		*p = sqlite3_column_blob(st, i);
		*len = (size_t)sqlite3_column_bytes(st, i);
		break;
	default:
		*tag = "null";
		*p = "";
		*len = 0;
	}
}

/* The 8-hex-digit per-column digest that lets verify name a field. */
int db_row_col_digest(EVP_MD_CTX *md, sqlite3_stmt *st, int i, char out[9])
{
	const char *tag, *name = sqlite3_column_name(st, i);
	const void *p;
	uint8_t h[32];
	unsigned int n = 0;
	size_t len;
	char num[40];

	col_value(st, i, &tag, &p, &len, num);
	if (!EVP_DigestInit_ex(md, db_sha256(), NULL))
		return -1;
	upd_field(md, COL_TAG, strlen(COL_TAG));
	upd_field(md, name, strlen(name));
	upd_field(md, tag, strlen(tag));
	upd_field(md, p, len);
	if (!EVP_DigestFinal_ex(md, h, &n))
		return -1;
	hex_encode(h, 4, out);
	return 0;
}

int db_row_hash_cols(EVP_MD_CTX *md, const char *table, const char *key,
		     const struct db_row_col *cols, size_t n, uint8_t out[32])
{
	unsigned int len = 0;

	if (!EVP_DigestInit_ex(md, db_sha256(), NULL))
		return -1;
	upd_field(md, ROW_TAG, strlen(ROW_TAG));
	upd_field(md, table, strlen(table));
	upd_field(md, key, strlen(key));
	for (size_t i = 0; i < n; i++) {
		upd_field(md, cols[i].name, strlen(cols[i].name));
		upd_field(md, cols[i].type, strlen(cols[i].type));
		upd_field(md, cols[i].value, cols[i].len);
	}
	return EVP_DigestFinal_ex(md, out, &len) && len == 32 ? 0 : -1;
}

int db_row_cols_stmt(sqlite3_stmt *st, struct db_row_col *cols, char (*num)[40], size_t cap)
{
	int n = sqlite3_column_count(st);

	if (n < 0 || (size_t)n > cap)
		return -1;
	for (int i = 0; i < n; i++) {
		const void *p;

		cols[i].name = sqlite3_column_name(st, i);
		col_value(st, i, &cols[i].type, &p, &cols[i].len, num[i]);
		cols[i].value = p;
	}
	return n;
}

int db_row_hash_stmt(EVP_MD_CTX *md, sqlite3_stmt *st, const char *table, const char *key,
		     uint8_t out[32])
{
	struct db_row_col cols[DB_ROW_COLS_MAX];
	char num[DB_ROW_COLS_MAX][40];
	int n = db_row_cols_stmt(st, cols, num, DB_ROW_COLS_MAX);

	return n < 0 ? -1 : db_row_hash_cols(md, table, key, cols, (size_t)n, out);
}

/* The key column's index in a SELECT * statement, or -1. */
int db_row_key_col(sqlite3_stmt *st, const char *key)
{
	for (int i = 0; i < sqlite3_column_count(st); i++)
		if (!strcmp(sqlite3_column_name(st, i), key))
			return i;
	return -1;
}

/* ---- writing ------------------------------------------------------------- */

static json_t *col_digests(EVP_MD_CTX *md, sqlite3_stmt *st)
{
	json_t *v = json_object();
	char d[9];

	for (int i = 0; v && i < sqlite3_column_count(st); i++) {
		if (db_row_col_digest(md, st, i, d) ||
		    json_object_set_new(v, sqlite3_column_name(st, i), json_string(d))) {
			json_decref(v);
			return NULL;
		}
	}
	return v;
}

static int row_audit(struct db *db, const struct db_audited_table *t, const char *key,
		     const char *actor, int baseline, struct errbuf *err)
{
	sqlite3_stmt *st;
	EVP_MD_CTX *md;
	uint8_t h[32];
	char hex[65];
	json_t *j = NULL;
	int rc;

	if (!(st = db_stmt(db, t->sql_get, err)))
		return ST_EDB;
	if (!(md = EVP_MD_CTX_new()))
		return errbuf_set(err, ST_ENOMEM, "out of memory");
	sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		if (db_row_hash_stmt(md, st, t->name, key, h)) {
			rc = errbuf_set(err, ST_ECRYPTO, "SHA-256 failed");
			goto out;
		}
		hex_encode(h, 32, hex);
		j = json_pack("{s:s, s:s, s:s, s:o}", "t", t->name, "k", key, "h", hex,
			      "v", col_digests(md, st));
	} else if (rc == SQLITE_DONE) {
		j = json_pack("{s:s, s:s, s:s}", "t", t->name, "k", key, "h", "deleted");
	} else {
		rc = db_sqlerr(db, rc, err, "read back an audited row");
		goto out;
	}
	if (j && baseline)
		json_object_set_new(j, "baseline", json_true());
	sqlite3_reset(st);
	rc = db_audit_json_locked(db, "row", actor && *actor ? actor : "station", j, err);
out:
	sqlite3_reset(st);
	EVP_MD_CTX_free(md);
	return rc;
}

int db_row_audit_locked(struct db *db, const char *table, const char *key, const char *actor,
			struct errbuf *err)
{
	const struct db_audited_table *t = db_audited_table(table);

	if (!t)
		return errbuf_set(err, ST_EINVAL, "table %s is not in db_audited_tables", table);
	if (!key || !*key || strlen(key) > DB_ROW_KEY_MAX)
		return errbuf_set(err, ST_EINVAL, "%s: row key missing or too long", table);
	return row_audit(db, t, key, actor, 0, err);
}

int db_row_audit_id_locked(struct db *db, const char *table, int64_t id, const char *actor,
			   struct errbuf *err)
{
	char key[24];

	snprintf(key, sizeof(key), "%lld", (long long)id);
	return db_row_audit_locked(db, table, key, actor, err);
}

int db_row_digest(struct db *db, const char *table, const char *key, char hex[65],
		  struct errbuf *err)
{
	const struct db_audited_table *t = db_audited_table(table);
	EVP_MD_CTX *md = NULL;
	sqlite3_stmt *st;
	uint8_t h[32];
	int rc;

	if (!t)
		return errbuf_set(err, ST_EINVAL, "table %s is not in db_audited_tables", table);
	db_lock(db);
	if (!(st = db_stmt(db, t->sql_get, err))) {
		db_unlock(db);
		return ST_EDB;
	}
	sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		md = EVP_MD_CTX_new();
		rc = md && !db_row_hash_stmt(md, st, t->name, key, h) ? ST_OK :
			errbuf_set(err, ST_ECRYPTO, "SHA-256 failed");
		if (rc == ST_OK)
			hex_encode(h, 32, hex);
	} else if (rc == SQLITE_DONE) {
		rc = errbuf_set(err, ST_ENOTFOUND, "no row %s in %s", key, table);
	} else {
		rc = db_sqlerr(db, rc, err, "read row");
	}
	sqlite3_reset(st);
	EVP_MD_CTX_free(md);
	db_unlock(db);
	return rc;
}

int db_row_baseline_one(struct db *db, const struct db_audited_table *t, const char *key,
			const char *actor, struct errbuf *err)
{
	return row_audit(db, t, key, actor, 1, err);
}
