/*
 * Unit tests: db/trace (station unit show) on a real SQLite file: a board
 * found by its unique id, by a unit id and by a certificate serial, with its
 * attempts, certificates, rework and audit events; an unknown key; and every
 * statement of the trace an index search (EXPLAIN QUERY PLAN: no SCAN of a
 * table), so `unit show` stays a few index lookups on a million units.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sqlite3.h>

#include "db/db.h"
#include "db/rework.h"
#include "db/trace.h"

#define UID_A "0123456789ABCDEF01234567"
#define UID_B "0123456789ABCDEF01234568"
#define PK(c) c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c \
	      c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c

struct fx {
	char path[64];
	struct db *db;
	int64_t unit_a1, unit_a2;
};

static int64_t unit(struct db *db, const char *uid, enum db_unit_status st, enum st_reason code,
		    const char *stage, const char *serial)
{
	struct db_unit u;
	struct errbuf err;

	memset(&u, 0, sizeof(u));
	snprintf(u.unique_id, sizeof(u.unique_id), "%s", uid);
	snprintf(u.lot, sizeof(u.lot), "LT");
	snprintf(u.bay, sizeof(u.bay), "1-2");
	snprintf(u.operator_name, sizeof(u.operator_name), "olga");
	snprintf(u.profile_hash, sizeof(u.profile_hash), PK("e"));
	assert_int_equal(db_unit_begin(db, &u, &err), ST_OK);
	if (serial[0]) {
		const char *s[] = { serial };
		const uint8_t der[] = { 0x30, 0x03, 0x02, 0x01, 0x01 };

		assert_int_equal(db_cert_reserve(db, s, 1, &err), ST_OK);
		char pk[65];

		/* one public key per certificate: "a1" -> 64 × '1' */
		memset(pk, serial[1], 64);
		pk[64] = '\0';
		assert_int_equal(db_cert_issued(db, serial, u.id, uid, pk, der, sizeof(der), &err),
				 ST_OK);
		if (st == DB_UNIT_PASS)
			assert_int_equal(db_cert_injected(db, serial, &err), ST_OK);
		else
			assert_int_equal(db_cert_revoke(db, serial, "cessationOfOperation", "station",
							&err), ST_OK);
	}
	u.status = st;
	u.reason_code = code;
	snprintf(u.stage, sizeof(u.stage), "%s", stage);
	snprintf(u.reason, sizeof(u.reason), "bay 1-2: id %s ...", uid);
	snprintf(u.cert_serial, sizeof(u.cert_serial), "%s", serial);
	snprintf(u.stage_ms, sizeof(u.stage_ms), "{\"detect\":3,\"identify\":5}");
	assert_int_equal(db_unit_finish(db, &u, &err), ST_OK);
	return u.id;
}

/* Board A: a FAIL at lock (certificate revoked), then a PASS that an
 * engineer's rework superseded.  Board B: one PASS (not A's record). */
static int setup(void **state)
{
	static int n;
	struct fx *f = calloc(1, sizeof(*f));
	struct db_rework rw;
	struct errbuf err;
	int64_t rows;
	char csv[64];
	FILE *fp;

	if (!f)
		return -1;
	snprintf(f->path, sizeof(f->path), "trace%d.db", n);
	snprintf(csv, sizeof(csv), "trace%d.csv", n++);
	if (db_open(f->path, "st1", &f->db, &err))
		return -1;
	fp = fopen(csv, "w");
	fprintf(fp, "unique_id,lot,model,hw_revision\n%s,LT,widget-2,rev C\n%s,LT,widget-2,rev D\n",
		UID_A, UID_B);
	fclose(fp);
	assert_int_equal(db_allowlist_import(f->db, csv, "LT", NULL, NULL, NULL, "eng", &rows, &err), ST_OK);
	f->unit_a1 = unit(f->db, UID_A, DB_UNIT_FAIL, ST_R_LOCK_REFUSED, "lock", "a1");
	f->unit_a2 = unit(f->db, UID_A, DB_UNIT_PASS, ST_R_NONE, "commit", "a2");
	unit(f->db, UID_B, DB_UNIT_PASS, ST_R_NONE, "commit", "b3");
	assert_int_equal(db_rework_authorise(f->db, UID_A, "replaced the radio", "erik", &rw, &err),
			 ST_OK);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	db_close(f->db);
	unlink(f->path);
	free(f);
	return 0;
}

static void check_board_a(struct fx *f, json_t *j)
{
	json_t *att = json_object_get(j, "attempts"), *certs = json_object_get(j, "certificates");
	json_t *ev = json_object_get(j, "events"), *v;
	int kinds = 0;
	size_t i;

	assert_string_equal(json_string_value(json_object_get(j, "unique_id")), UID_A);
	assert_string_equal(json_string_value(json_object_get(json_object_get(j, "allowlist"),
							      "model")), "widget-2");
	assert_int_equal(json_array_size(att), 2);
	v = json_array_get(att, 0);
	assert_int_equal(json_integer_value(json_object_get(v, "unit_id")), f->unit_a1);
	assert_string_equal(json_string_value(json_object_get(v, "reason_code")), "lock_refused");
	assert_string_equal(json_string_value(json_object_get(v, "reason_plain")),
			    "lock: the board refused to lock");
	assert_string_equal(json_string_value(json_object_get(v, "hw_revision")), "rev C");
	assert_int_equal(json_integer_value(json_object_get(json_object_get(v, "stage_ms"),
							    "identify")), 5);
	assert_true(json_is_integer(json_object_get(v, "duration_ms")));
	assert_int_equal(json_integer_value(json_object_get(json_array_get(att, 1), "superseded_by")),
			 1);
	assert_int_equal(json_array_size(certs), 2);
	assert_string_equal(json_string_value(json_object_get(json_array_get(certs, 0), "status")),
			    "revoked");
	assert_string_equal(json_string_value(json_object_get(json_array_get(certs, 1),
							      "revoke_reason")), "superseded");
	assert_int_equal(json_array_size(json_object_get(j, "reworks")), 1);
	/* the board's own events and its certificates', each once, in order, none of B's */
	assert_true(json_array_size(ev) >= 8);
	json_array_foreach(ev, i, v) {
		const char *kind = json_string_value(json_object_get(v, "kind"));
		char *d = json_dumps(json_object_get(v, "detail"), JSON_COMPACT);

		assert_null(strstr(d, UID_B));
		assert_null(strstr(d, "\"b3\""));
		free(d);
		if (i)
			assert_true(json_integer_value(json_object_get(v, "id")) >
				    json_integer_value(json_object_get(json_array_get(ev, i - 1), "id")));
		kinds |= !strcmp(kind, "unit-result") << 0 | !strcmp(kind, "cert-issued") << 1 |
			 !strcmp(kind, "cert-revoked") << 2 | !strcmp(kind, "cert-injected") << 3 |
			 !strcmp(kind, "rework-authorised") << 4;
	}
	assert_int_equal(kinds, 0x1f);
}

static void test_trace_keys(void **state)
{
	struct fx *f = *state;
	struct errbuf err;
	char id[24];
	json_t *j;

	assert_int_equal(db_trace_board(f->db, UID_A, &j, &err), ST_OK);
	assert_string_equal(json_string_value(json_object_get(j, "matched_by")), "unique_id");
	check_board_a(f, j);
	json_decref(j);

	snprintf(id, sizeof(id), "%lld", (long long)f->unit_a2);
	assert_int_equal(db_trace_board(f->db, id, &j, &err), ST_OK);
	assert_string_equal(json_string_value(json_object_get(j, "matched_by")), "unit_id");
	check_board_a(f, j);
	json_decref(j);

	assert_int_equal(db_trace_board(f->db, "a1", &j, &err), ST_OK);
	assert_string_equal(json_string_value(json_object_get(j, "matched_by")), "cert_serial");
	check_board_a(f, j);
	json_decref(j);

	assert_int_equal(db_trace_board(f->db, "A2", &j, &err), ST_OK);   /* upper-case serial */
	check_board_a(f, j);
	json_decref(j);

	assert_int_equal(db_trace_board(f->db, "FFFFFFFFFFFFFFFFFFFFFFFF", &j, &err), ST_ENOTFOUND);
	assert_null(j);
	assert_non_null(strstr(err.msg, "no board, unit or certificate FFFFFFFFFFFFFFFFFFFFFFFF"));
	assert_int_equal(db_trace_board(f->db, "999999", &j, &err), ST_ENOTFOUND);
	assert_int_equal(db_trace_board(f->db, "not-a-key", &j, &err), ST_ENOTFOUND);
	assert_int_equal(db_trace_board(f->db, "", &j, &err), ST_ENOTFOUND);
}

/* Every statement: SEARCH through an index or the primary key, never a SCAN
 * of a table (a SCAN is a walk of all its rows: a million units). */
static void test_trace_plans(void **state)
{
	struct fx *f = *state;
	sqlite3 *sq;

	assert_int_equal(sqlite3_open_v2(f->path, &sq, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
	for (int i = 0; i < db_trace_sql_count; i++) {
		sqlite3_stmt *st;
		char *sql = sqlite3_mprintf("EXPLAIN QUERY PLAN %s", db_trace_sql[i]);
		int searches = 0;

		assert_int_equal(sqlite3_prepare_v2(sq, sql, -1, &st, NULL), SQLITE_OK);
		while (sqlite3_step(st) == SQLITE_ROW) {
			const char *d = (const char *)sqlite3_column_text(st, 3);

			if (!strncmp(d, "SCAN ", 5) && strcmp(d, "SCAN CONSTANT ROW"))
				fail_msg("statement %d scans (%s): %s", i, d, db_trace_sql[i]);
			searches += !strncmp(d, "SEARCH ", 7);
		}
		assert_true(searches >= 1);
		sqlite3_finalize(st);
		sqlite3_free(sql);
	}
	sqlite3_close(sq);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_trace_keys, setup, teardown),
		cmocka_unit_test_setup_teardown(test_trace_plans, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
