/*
 * Rows under the audit chain (db/rows.c): the row encoding re-implemented
 * independently (the worked example of docs/database.md), every audited write
 * followed by its row event, each table's tampering named by table, key and
 * field, the baseline a migration records, and the CRL state from the chain.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <openssl/sha.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/hex.h"
#include "db/db.h"
#include "db/db_int.h"
#include "db/roles.h"
#include "db/schema.h"

#define UID1 "0000000000000000000000A1"
#define PKH  "1111111111111111111111111111111111111111111111111111111111111111"
#define PKH2 "2222222222222222222222222222222222222222222222222222222222222222"

/* ---- the encoding, written again from docs/database.md ------------------ */

struct enc {
	uint8_t b[1024];
	size_t n;
};

static void F(struct enc *e, const char *s)
{
	size_t l = strlen(s);

	e->b[e->n++] = (uint8_t)(l >> 24);
	e->b[e->n++] = (uint8_t)(l >> 16);
	e->b[e->n++] = (uint8_t)(l >> 8);
	e->b[e->n++] = (uint8_t)l;
	memcpy(e->b + e->n, s, l);
	e->n += l;
}

static void sql(const char *path, const char *q)
{
	sqlite3 *sq;

	assert_int_equal(sqlite3_open(path, &sq), SQLITE_OK);
	if (sqlite3_exec(sq, q, NULL, NULL, NULL) != SQLITE_OK)
		fail_msg("%s: %s", q, sqlite3_errmsg(sq));
	sqlite3_close(sq);
}

static void test_worked_example(void **state)
{
	struct enc e = { .n = 0 };
	struct errbuf err;
	struct db *db;
	uint8_t h[32];
	char want[65], got[65];

	(void)state;
	assert_int_equal(db_open("ex.db", "st1", &db, &err), ST_OK);
	db_close(db);
	sql("ex.db", "INSERT INTO roles VALUES ('ann', 'ann', 'engineer', 'root', 1764547200000)");
	F(&e, "station-row-v1");
	F(&e, "roles");
	F(&e, "ann");
	F(&e, "name");       F(&e, "text");    F(&e, "ann");
	F(&e, "login");      F(&e, "text");    F(&e, "ann");
	F(&e, "role");       F(&e, "text");    F(&e, "engineer");
	F(&e, "granted_by"); F(&e, "text");    F(&e, "root");
	F(&e, "granted_ms"); F(&e, "integer"); F(&e, "1764547200000");
	assert_int_equal(e.n, 181);
	SHA256(e.b, e.n, h);
	hex_encode(h, 32, want);
	assert_string_equal(want, "3338ae8dbcd961f3ac56cc60bc50aa8475ed603908baa091bb11817530d42ca2");
	assert_int_equal(db_open("ex.db", "st1", &db, &err), ST_OK);
	assert_int_equal(db_row_digest(db, "roles", "ann", got, &err), ST_OK);
	assert_string_equal(got, want);
	/* written outside the station: no row event, named */
	{
		struct db_verify_result res;

		assert_int_equal(db_audit_verify(db, &res, &err), ST_ETAMPER);
		assert_string_equal(res.row_table, "roles");
		assert_string_equal(res.row_key, "ann");
		assert_non_null(strstr(err.msg, "has no row event"));
	}
	db_close(db);
}

/* ---- a database with a row in every table -------------------------------- */

static void build(const char *path)
{
	static const uint8_t der[] = { 0x30, 0x03, 0x02, 0x01, 0x01 };
	const char *serials[] = { "a1", "a2" };
	struct db_unit u;
	struct errbuf err;
	struct db *db;
	char hex[65];
	int64_t rows, no;
	int v;
	FILE *f = fopen("lot.csv", "w");

	assert_non_null(f);
	fprintf(f, "unique_id,lot,model,hw_revision\n%s,L1,W,B\n", UID1);
	fclose(f);
	assert_int_equal(db_open(path, "st1", &db, &err), ST_OK);
	assert_int_equal(db_role_grant(db, "ann", "ann", DB_ROLE_ENGINEER, "root", &err), ST_OK);
	assert_int_equal(db_role_grant(db, "bob", "bob", DB_ROLE_OPERATOR, "ann", &err), ST_OK);
	assert_int_equal(db_role_revoke(db, "bob", "ann", &err), ST_OK);
	if (db_allowlist_import(db, "lot.csv", "L1", NULL, NULL, NULL, "ann", &rows, &err) != ST_OK)
		fail_msg("import: %s", err.msg);
	assert_int_equal(db_profile_store(db, "p1", "[board]\n", 8, "ann", &v, hex, &err), ST_OK);
	memset(&u, 0, sizeof(u));
	snprintf(u.unique_id, sizeof(u.unique_id), UID1);
	snprintf(u.lot, sizeof(u.lot), "L1");
	snprintf(u.operator_name, sizeof(u.operator_name), "ann");
	assert_int_equal(db_unit_begin(db, &u, &err), ST_OK);
	snprintf(u.stage, sizeof(u.stage), "flash");
	/* the key its CSR showed: a keys_seen row, whatever the verdict */
	snprintf(u.pubkey_hash, sizeof(u.pubkey_hash), "%s", PKH2);
	assert_int_equal(db_unit_progress(db, &u, &err), ST_OK);
	u.status = DB_UNIT_FAIL;
	snprintf(u.reason, sizeof(u.reason), "flash failed");
	assert_int_equal(db_unit_finish(db, &u, &err), ST_OK);
	assert_int_equal(db_cert_reserve(db, serials, 2, &err), ST_OK);
	assert_int_equal(db_cert_issued(db, "a1", u.id, UID1, PKH, der, sizeof(der), &err), ST_OK);
	assert_int_equal(db_cert_injected(db, "a1", &err), ST_OK);
	assert_int_equal(db_cert_revoke(db, "a1", "keyCompromise", "ann", &err), ST_OK);
	assert_int_equal(db_cert_void(db, serials + 1, 1, &err), ST_OK);
	assert_int_equal(db_crl_next(db, 1, "ann", &no, &err), ST_OK);
	assert_int_equal(no, 1);
	db_close(db);
}

static void expect_named(const char *name, const char *tamper, const char *table,
			 const char *key, const char *field)
{
	struct db_verify_result res;
	struct errbuf err;
	struct db *db;
	char path[64], cmd[200];

	snprintf(path, sizeof(path), "%s.db", name);
	snprintf(cmd, sizeof(cmd), "cp base.db %s", path);
	assert_int_equal(system(cmd), 0);
	sql(path, tamper);
	assert_int_equal(db_open(path, "st1", &db, &err), ST_OK);
	if (db_audit_verify(db, &res, &err) != ST_ETAMPER)
		fail_msg("%s: not detected", name);
	if (strcmp(res.row_table, table) || strcmp(res.row_key, key) || strcmp(res.row_field, field))
		fail_msg("%s: named %s/%s/%s, want %s/%s/%s (%s)", name, res.row_table, res.row_key,
			 res.row_field, table, key, field, err.msg);
	db_close(db);
}

static void test_every_table_named(void **state)
{
	struct db_verify_result res;
	struct errbuf err;
	struct db *db;

	(void)state;
	build("base.db");
	assert_int_equal(db_open("base.db", "st1", &db, &err), ST_OK);
	if (db_audit_verify(db, &res, &err) != ST_OK)
		fail_msg("intact: %s", err.msg);
	/* lots, allowlist, profiles, units, certificates (2), roles (1 left), crls,
	 * keys_seen */
	assert_int_equal(res.rows, 9);
	db_close(db);

	expect_named("verdict", "UPDATE units SET status = 'pass' WHERE id = 1", "units", "1", "status");
	expect_named("unit-id", "UPDATE units SET id = 7 WHERE id = 1", "units", "7", "");
	expect_named("cert-status", "UPDATE certificates SET status = 'injected' WHERE serial = 'a1'",
		     "certificates", "a1", "status");
	expect_named("cert-der", "UPDATE certificates SET der = x'3003020102' WHERE serial = 'a1'",
		     "certificates", "a1", "der");
	expect_named("allow-insert", "INSERT INTO allowlist (lot_id, unique_id, import_sha256, line)"
		     " VALUES (1, '0000000000000000000000B2', 'x', 3)", "allowlist", "2", "");
	expect_named("allow-delete", "DELETE FROM allowlist", "allowlist", "1", "");
	expect_named("profile", "UPDATE profiles SET content = '[board]\nmodule=/tmp/evil.so\n'",
		     "profiles", "1", "content");
	expect_named("role", "UPDATE roles SET role = 'qa'", "roles", "ann", "role");
	expect_named("role-insert", "INSERT INTO roles VALUES ('eve', 'eve', 'engineer', 'eve', 1)",
		     "roles", "eve", "");
	expect_named("rework", "INSERT INTO reworks (unique_id, old_unit_id, old_serial, reason,"
		     " authorised_by, authorised_ms) VALUES ('" UID1 "', 1, 'a1', 'x', 'eve', 1)",
		     "reworks", "1", "");
	expect_named("crl", "UPDATE crls SET entries = 0", "crls", "1", "entries");
	expect_named("lot-name", "UPDATE lots SET name = 'L2'", "lots", "1", "name");
	expect_named("key-seen", "DELETE FROM keys_seen", "keys_seen", PKH2, "");
	/* a table the schema does not define: the database is not opened */
	assert_int_equal(system("cp base.db new-table.db"), 0);
	sql("new-table.db", "CREATE TABLE shadow (x)");
	assert_int_equal(db_open("new-table.db", "st1", &db, &err), ST_ETAMPER);
	assert_non_null(strstr(err.msg, "table shadow"));
}

/* Issue 12: the profile a line loads is the one its profile-store event
 * recorded; a row rewritten with a consistent sha256 column still is not. */
static void test_profile_matches_its_event(void **state)
{
	static const char good[] = "[hsm]\nmodule = /usr/lib/softhsm/libsofthsm2.so\n";
	struct errbuf err;
	struct db *db;
	char *content = NULL, hex[65], cmd[400];
	size_t len = 0;
	int v = 0;

	(void)state;
	assert_int_equal(db_open("prof.db", "st1", &db, &err), ST_OK);
	assert_int_equal(db_profile_store(db, "p1", good, strlen(good), "ann", &v, hex, &err), ST_OK);
	assert_int_equal(db_profile_load(db, "p1", &content, &len, &v, hex, &err), ST_OK);
	free(content);
	db_close(db);
	/* content and its sha256 column rewritten together (SHA-256 by SQLite's
	 * own hex of a precomputed value is not available: use the shell) */
	snprintf(cmd, sizeof(cmd), "h=$(printf '[hsm]\\nmodule = /tmp/evil.so\\n' | sha256sum |"
		 " cut -c1-64); sqlite3 prof.db \"UPDATE profiles SET content ="
		 " CAST(x'5b68736d5d0a6d6f64756c65203d202f746d702f6576696c2e736f0a' AS BLOB),"
		 " sha256 = '$h'\"");
	assert_int_equal(system(cmd), 0);
	assert_int_equal(db_open("prof.db", "st1", &db, &err), ST_OK);
	assert_int_equal(db_profile_load(db, "p1", &content, &len, &v, hex, &err), ST_ETAMPER);
	assert_null(content);
	assert_non_null(strstr(err.msg, "profile p1 v1"));
	assert_non_null(strstr(err.msg, "profile-store event"));
	db_close(db);
}

static int count_revoked(const struct db_revoked *r, void *ctx)
{
	int *n = ctx;

	assert_string_equal(r->serial_hex, "a1");
	assert_string_equal(r->reason, "keyCompromise");
	assert_true(r->revoked_ms > 0);
	(*n)++;
	return 0;
}

static void test_crl_from_chain(void **state)
{
	struct errbuf err;
	struct db *db;
	int64_t no;
	int n = 0;

	(void)state;
	build("crlnum.db");
	/* the table says injected; the chain says revoked: the CRL lists it */
	sql("crlnum.db", "UPDATE certificates SET status = 'injected', revoke_reason = NULL WHERE serial = 'a1'");
	assert_int_equal(db_open("crlnum.db", "st1", &db, &err), ST_OK);
	assert_int_equal(db_crl_foreach_revoked(db, count_revoked, &n, &err), ST_OK);
	assert_int_equal(n, 1);
	/* numbers follow each other; fewer entries than the last CRL is refused */
	assert_int_equal(db_crl_next(db, 1, "ann", &no, &err), ST_OK);
	assert_int_equal(no, 2);
	assert_int_equal(db_crl_next(db, 0, "ann", &no, &err), ST_ETAMPER);
	assert_non_null(strstr(err.msg, "refusing to drop"));
	db_close(db);
	/* a stored number that went backwards (or skipped) */
	sql("crlnum.db", "UPDATE crls SET number = 5 WHERE number = 2");
	assert_int_equal(db_open("crlnum.db", "st1", &db, &err), ST_OK);
	assert_int_equal(db_crl_next(db, 1, "ann", &no, &err), ST_ETAMPER);
	assert_non_null(strstr(err.msg, "not 1..2"));
	db_close(db);
}

/* An older database: its rows are recorded once, at the upgrade. */
static void test_migration_baseline(void **state)
{
	struct db_verify_result res;
	struct errbuf err;
	struct db *db;
	sqlite3 *sq;

	(void)state;
	assert_int_equal(sqlite3_open("old.db", &sq), SQLITE_OK);
	for (int i = 0; i < db_migrations_count - 1; i++)
		assert_int_equal(sqlite3_exec(sq, db_migrations[i], NULL, NULL, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_exec(sq,
		"INSERT INTO units (unique_id, lot, bay, operator, station_id, profile_hash, status,"
		" stage, reason, started_ms, finished_ms) VALUES ('" UID1 "', 'L', '1-1', 'ann',"
		" 'st1', 'ph', 'fail', 'flash', 'x', 1, 2);"
		"INSERT INTO roles VALUES ('ann', 'ann', 'engineer', 'root', 1);", NULL, NULL, NULL),
		SQLITE_OK);
	{
		char bump[64];

		snprintf(bump, sizeof(bump), "PRAGMA user_version = %d", db_migrations_count - 1);
		assert_int_equal(sqlite3_exec(sq, bump, NULL, NULL, NULL), SQLITE_OK);
	}
	sqlite3_close(sq);
	assert_int_equal(db_open("old.db", "st1", &db, &err), ST_OK);
	if (db_audit_verify(db, &res, &err) != ST_OK)
		fail_msg("after the upgrade: %s", err.msg);
	assert_int_equal(res.rows, 2);
	assert_int_equal(res.events, 2);    /* one baseline row event per row */
	db_close(db);
	sql("old.db", "UPDATE units SET status = 'pass'");
	assert_int_equal(db_open("old.db", "st1", &db, &err), ST_OK);
	assert_int_equal(db_audit_verify(db, &res, &err), ST_ETAMPER);
	assert_string_equal(res.row_field, "status");
	db_close(db);
	/* the next upgrade refuses to take the edited row as its baseline */
	{
		char q[128];

		snprintf(q, sizeof(q), "DROP TABLE crls; PRAGMA user_version = %d",
			 db_migrations_count - 1);
		sql("old.db", q);
	}
	assert_int_equal(db_open("old.db", "st1", &db, &err), ST_ETAMPER);
	assert_non_null(strstr(err.msg, "refusing to migrate"));
	assert_non_null(strstr(err.msg, "units id=1"));
}

/* station_row_head() reads the canonical head of a row event exactly as
 * json_extract does, and declines (NULL) anything else, so verify's fallback
 * to json_extract reads it. */
static void test_row_head_fast_path(void **state)
{
	static const struct {
		const char *detail;
		int fast;               /* the fast path answers */
	} cases[] = {
		{ "{\"h\":\"ab12\",\"k\":\"7\",\"t\":\"units\",\"v\":{\"id\":\"0a0b0c0d\"}}", 1 },
		{ "{\"h\":\"deleted\",\"k\":\"x-1\",\"t\":\"keys_seen\"}", 1 },
		{ "{\"h\":\"\",\"k\":\"\",\"t\":\"\"}", 1 },
		/* not the canonical head: each read by json_extract */
		{ "{\"k\":\"7\",\"h\":\"ab12\",\"t\":\"units\"}", 0 },
		{ "{\"h\":\"ab12\",\"k\":\"a\\\"b\",\"t\":\"units\"}", 0 },
		{ "{\"h\":\"ab12\",\"k\":\"\\u0041\",\"t\":\"units\"}", 0 },
		{ "{\"h\":\"ab12\", \"k\":\"7\",\"t\":\"units\"}", 0 },
		{ "{\"h\":\"ab12\",\"k\":7,\"t\":\"units\"}", 0 },
		{ "{\"h\":\"ab12\",\"k\":\"7\",\"t\":\"units\"x}", 0 },
		{ "{\"h\":\"ab12\",\"k\":\"7\",\"t\":\"units", 0 },
		{ "{\"h\":\"ab12\",\"k\":\"7\"}", 0 },
		{ "", 0 },
	};
	sqlite3 *sq;

	(void)state;
	assert_int_equal(sqlite3_open(":memory:", &sq), SQLITE_OK);
	assert_int_equal(db_rows_functions(sq), SQLITE_OK);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		for (const char *m = "hkt"; *m; m++) {
			sqlite3_stmt *st;
			char name[2] = { *m, 0 }, path[4] = { '$', '.', *m, 0 };

			assert_int_equal(sqlite3_prepare_v2(sq,
				"SELECT station_row_head(?1, ?2), CASE WHEN json_valid(?1)"
				" THEN json_extract(?1, ?3) END", -1, &st, NULL), SQLITE_OK);
			sqlite3_bind_text(st, 1, cases[i].detail, -1, SQLITE_STATIC);
			sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC);
			sqlite3_bind_text(st, 3, path, -1, SQLITE_STATIC);
			assert_int_equal(sqlite3_step(st), SQLITE_ROW);
			if (!cases[i].fast) {
				if (sqlite3_column_type(st, 0) != SQLITE_NULL)
					fail_msg("case %zu (%s): the fast path answered", i, name);
			} else {
				assert_int_equal(sqlite3_column_type(st, 1), SQLITE_TEXT);
				if (sqlite3_column_type(st, 0) != SQLITE_TEXT ||
				    strcmp((const char *)sqlite3_column_text(st, 0),
					   (const char *)sqlite3_column_text(st, 1)))
					fail_msg("case %zu (%s): fast path differs from json_extract", i, name);
			}
			sqlite3_finalize(st);
		}
	}
	sqlite3_close(sq);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_worked_example),
		cmocka_unit_test(test_row_head_fast_path),
		cmocka_unit_test(test_profile_matches_its_event),
		cmocka_unit_test(test_every_table_named),
		cmocka_unit_test(test_crl_from_chain),
		cmocka_unit_test(test_migration_baseline),
	};

	return cmocka_run_group_tests_name("db_rows", tests, NULL, NULL);
}
