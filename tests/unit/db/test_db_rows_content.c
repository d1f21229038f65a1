/*
 * Rows as content for the factory ledger (db/rows_content.c): what a push
 * takes from one snapshot (the journal's latest row of each key, hashing to
 * its row event's h, indexed by lot and board), a row edited outside the
 * station refused, the typed content exact (loaded into another database it
 * hashes as the original), and malformed content refused.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <jansson.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "db/db.h"
#include "db/roles.h"
#include "db/rows_content.h"

#define UID1 "0000000000000000000000A1"
#define PKH  "1111111111111111111111111111111111111111111111111111111111111111"
#define MAXK 64

static void sql(const char *path, const char *q)
{
	sqlite3 *sq;

	assert_int_equal(sqlite3_open(path, &sq), SQLITE_OK);
	if (sqlite3_exec(sq, q, NULL, NULL, NULL) != SQLITE_OK)
		fail_msg("%s: %s", q, sqlite3_errmsg(sq));
	sqlite3_close(sq);
}

/* A lot, its allowlist, a profile, a unit that passed, its certificate
 * (a blob), a serial voided: row events of every kind a lot needs. */
static int64_t build(const char *path)
{
	static const uint8_t der[] = { 0x30, 0x03, 0x02, 0x01, 0x01 };
	const char *serials[] = { "a1", "a2" };
	struct db_unit u;
	struct errbuf err;
	struct db *db;
	char hex[65];
	int64_t rows;
	int v;
	FILE *f = fopen("lot.csv", "w");

	assert_non_null(f);
	fprintf(f, "unique_id,lot,model,hw_revision\n%s,L1,W,B\n", UID1);
	fclose(f);
	remove(path);
	assert_int_equal(db_open(path, "st1", &db, &err), ST_OK);
	if (db_allowlist_import(db, "lot.csv", "L1", NULL, NULL, NULL, "ann", &rows, &err) != ST_OK)
		fail_msg("import: %s", err.msg);
	assert_int_equal(db_profile_store(db, "p1", "[board]\n", 8, "ann", &v, hex, &err), ST_OK);
	memset(&u, 0, sizeof(u));
	snprintf(u.unique_id, sizeof(u.unique_id), UID1);
	snprintf(u.lot, sizeof(u.lot), "L1");
	snprintf(u.operator_name, sizeof(u.operator_name), "ann");
	assert_int_equal(db_unit_begin(db, &u, &err), ST_OK);
	assert_int_equal(db_cert_reserve(db, serials, 2, &err), ST_OK);
	assert_int_equal(db_cert_issued(db, "a1", u.id, UID1, PKH, der, sizeof(der), &err), ST_OK);
	assert_int_equal(db_cert_injected(db, "a1", &err), ST_OK);
	assert_int_equal(db_cert_void(db, serials + 1, 1, &err), ST_OK);
	u.status = DB_UNIT_PASS;
	snprintf(u.stage, sizeof(u.stage), "commit");
	snprintf(u.cert_serial, sizeof(u.cert_serial), "a1");
	assert_int_equal(db_unit_finish(db, &u, &err), ST_OK);
	db_close(db);
	return u.id;
}

struct seen {
	char t[MAXK][32], k[MAXK][64], h[MAXK][65];
	int64_t seq[MAXK];
	int n;
	int64_t events;
	struct db *db;
	int rows, units, certs, allow;
	char der_hex[32];
};

/* The latest row event of each (table, key), from the events pushed. */
static int on_event(const struct db_chain_event *e, void *ctx)
{
	struct seen *s = ctx;
	json_t *j;
	const char *t, *k, *h;
	int i;

	s->events++;
	if (strcmp(e->kind, "row"))
		return 0;
	j = json_loads(e->detail, 0, NULL);
	assert_non_null(j);
	assert_int_equal(json_unpack(j, "{s:s, s:s, s:s}", "t", &t, "k", &k, "h", &h), 0);
	for (i = 0; i < s->n && (strcmp(s->t[i], t) || strcmp(s->k[i], k)); i++)
		;
	assert_true(i < MAXK);
	if (i == s->n)
		s->n++;
	snprintf(s->t[i], sizeof(s->t[i]), "%s", t);
	snprintf(s->k[i], sizeof(s->k[i]), "%s", k);
	snprintf(s->h[i], sizeof(s->h[i]), "%s", h);
	s->seq[i] = e->seq;
	json_decref(j);
	return 0;
}

static int on_row(const struct db_row_push *r, void *ctx)
{
	struct seen *s = ctx;
	struct db_row_content c;
	struct errbuf err;
	char h[65], cur[65];
	int i;

	for (i = 0; i < s->n && (strcmp(s->t[i], r->table) || strcmp(s->k[i], r->key)); i++)
		;
	assert_true(i < s->n);
	/* the journal's latest event of the key, and the content hashes to its h */
	assert_int_equal(r->seq, s->seq[i]);
	assert_false(r->deleted);
	assert_int_equal(db_row_content_parse(r->table, r->key, r->content, &c, &err), ST_OK);
	assert_int_equal(db_row_content_hash(&c, h, &err), ST_OK);
	assert_string_equal(h, s->h[i]);
	assert_int_equal(db_row_digest(s->db, r->table, r->key, cur, &err), ST_OK);
	assert_string_equal(h, cur);
	db_row_content_free(&c);
	if (!strcmp(r->table, "units")) {
		assert_string_equal(r->lot, "L1");
		assert_string_equal(r->unique_id, UID1);
		s->units++;
	} else if (!strcmp(r->table, "certificates") && !strcmp(r->key, "a1")) {
		assert_string_equal(r->lot, "L1");    /* its unit's */
		assert_non_null(strstr(r->content, "[\"der\",\"blob\",\"3003020101\"]"));
		s->certs++;
	} else if (!strcmp(r->table, "allowlist")) {
		assert_string_equal(r->lot, "L1");    /* its lot's name */
		assert_string_equal(r->unique_id, UID1);
		s->allow++;
	}
	s->rows++;
	return 0;
}

static void test_batch_pushes_latest_rows(void **state)
{
	struct seen *s = calloc(1, sizeof(*s));
	struct errbuf err;

	(void)state;
	build("push.db");
	assert_int_equal(db_open("push.db", "st1", &s->db, &err), ST_OK);
	if (db_audit_batch(s->db, 0, 10000, on_event, on_row, s, &err) != ST_OK)
		fail_msg("batch: %s", err.msg);
	/* one row per key, and every key of the chain had one */
	assert_int_equal(s->rows, s->n);
	assert_int_equal(s->units, 1);
	assert_int_equal(s->certs, 1);
	assert_int_equal(s->allow, 1);
	db_close(s->db);
	free(s);
}

static void test_edited_row_refused(void **state)
{
	struct seen *s = calloc(1, sizeof(*s));
	struct errbuf err;
	int64_t unit = build("edit.db");
	char q[120];

	(void)state;
	snprintf(q, sizeof(q), "UPDATE units SET status = 'fail' WHERE id = %lld", (long long)unit);
	sql("edit.db", q);
	assert_int_equal(db_open("edit.db", "st1", &s->db, &err), ST_OK);
	assert_int_equal(db_audit_batch(s->db, 0, 10000, on_event, on_row, s, &err), ST_ETAMPER);
	snprintf(q, sizeof(q), "row units id=%lld of the journal differs from its row event",
		 (long long)unit);
	if (!strstr(err.msg, q))
		fail_msg("%s", err.msg);
	db_close(s->db);
	free(s);
}

struct load {
	struct db *scratch;
	int loaded;
};

/* Each row, loaded into another database through its content, hashes as
 * it did in the journal: the typed encoding loses nothing. */
static int load_row(const struct db_row_push *r, void *ctx)
{
	struct load *l = ctx;
	struct db_row_content c;
	struct errbuf err;
	char h[65], back[65];

	if (strcmp(r->table, "units") && strcmp(r->table, "certificates"))
		return 0;
	assert_int_equal(db_row_content_parse(r->table, r->key, r->content, &c, &err), ST_OK);
	assert_int_equal(db_row_content_hash(&c, h, &err), ST_OK);
	if (db_scratch_insert(l->scratch, &c, &err) != ST_OK)
		fail_msg("insert %s %s: %s", r->table, r->key, err.msg);
	assert_int_equal(db_row_digest(l->scratch, r->table, r->key, back, &err), ST_OK);
	assert_string_equal(back, h);
	db_row_content_free(&c);
	l->loaded++;
	return 0;
}

static int no_event(const struct db_chain_event *e, void *ctx)
{
	(void)e;
	(void)ctx;
	return 0;
}

static void test_content_exact(void **state)
{
	struct load l = { 0 };
	struct errbuf err;
	struct db *db;

	(void)state;
	build("src.db");
	remove("scratch.db");
	assert_int_equal(db_open("src.db", "st1", &db, &err), ST_OK);
	assert_int_equal(db_open("scratch.db", "st2", &l.scratch, &err), ST_OK);
	assert_int_equal(db_scratch_begin(l.scratch, &err), ST_OK);
	assert_int_equal(db_audit_batch(db, 0, 10000, no_event, load_row, &l, &err), ST_OK);
	assert_int_equal(db_scratch_commit(l.scratch, &err), ST_OK);
	assert_int_equal(l.loaded, 3);       /* the unit, a1, a2 (void) */
	db_close(l.scratch);
	db_close(db);
}

static void test_parse_refuses(void **state)
{
	static const char *const bad[] = {
		"{}", "[[\"id\",\"integer\"]]", "[[\"id\",\"integer\",\"01\"]]",
		"[[\"id\",\"integer\",\"1.0\"]]", "[[\"x\",\"real\",\"0.5000\"]]",
		"[[\"x\",\"blob\",\"abc\"]]", "[[\"x\",\"blob\",\"ZZ\"]]", "[[\"x\",\"date\",\"1\"]]",
		"[[\"x\",\"null\",\"0\"]]", "[[\"\",\"text\",\"a\"]]",
	};
	struct db_row_content c;
	struct errbuf err;
	char h1[65], h2[65];

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (db_row_content_parse("units", "1", bad[i], &c, &err) != ST_EINVAL)
			fail_msg("accepted %s", bad[i]);
	assert_int_equal(db_row_content_parse("units", "1", "[[\"id\",\"integer\",\"1\"],"
					      "[\"x\",\"real\",\"0.5\"],[\"d\",\"blob\",\"00ff\"],"
					      "[\"n\",\"null\",\"\"]]", &c, &err), ST_OK);
	assert_int_equal(db_row_content_hash(&c, h1, &err), ST_OK);
	db_row_content_free(&c);
	/* one byte of a blob: another hash */
	assert_int_equal(db_row_content_parse("units", "1", "[[\"id\",\"integer\",\"1\"],"
					      "[\"x\",\"real\",\"0.5\"],[\"d\",\"blob\",\"00fe\"],"
					      "[\"n\",\"null\",\"\"]]", &c, &err), ST_OK);
	assert_int_equal(db_row_content_hash(&c, h2, &err), ST_OK);
	db_row_content_free(&c);
	assert_string_not_equal(h1, h2);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_batch_pushes_latest_rows),
		cmocka_unit_test(test_edited_row_refused),
		cmocka_unit_test(test_content_exact),
		cmocka_unit_test(test_parse_refuses),
	};

	return cmocka_run_group_tests_name("db_rows_content", tests, NULL, NULL);
}
