/*
 * Unit test: start-up recovery (station/line/pl_recover.c) on a database written
 * by an older version (schema 6, before names were checked where they enter and
 * before rows were under the chain).  Such a database can hold a unit left in
 * progress whose operator name the audit log refuses (a tab, a newline): recovery
 * must still complete -- the unit becomes interrupted, its certificate revoked,
 * the verdict recorded under the actor "station" -- and the chain must verify, so
 * the next `station run` starts.  Issue 13: "recovery can never be blocked by a
 * value it cannot record".
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>
#include <sqlite3.h>

#include "core/errbuf.h"
#include "core/ids.h"
#include "db/db.h"
#include "db/schema.h"
#include "line/pipeline.h"

#define UID "0123456789ABCDEF01234567"
/* schema 6: records (issue 15), the last before rows under the chain */
#define OLD_SCHEMA 6

static char *query_text(const char *path, const char *sql)
{
	static char out[512];
	sqlite3_stmt *st;
	sqlite3 *sq;

	out[0] = '\0';
	assert_int_equal(sqlite3_open_v2(path, &sq, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(sq, sql, -1, &st, NULL), SQLITE_OK);
	if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0))
		snprintf(out, sizeof(out), "%s", (const char *)sqlite3_column_text(st, 0));
	sqlite3_finalize(st);
	sqlite3_close(sq);
	return out;
}

/* An old database: the unit was at LOCK with its certificate issued when the
 * station died; its operator was accepted by the old version's length check. */
static void make_old_db(const char *path, const char *operator_name)
{
	char sql[1024];
	sqlite3 *sq;

	unlink(path);
	assert_int_equal(sqlite3_open(path, &sq), SQLITE_OK);
	for (int i = 0; i < OLD_SCHEMA; i++)
		assert_int_equal(sqlite3_exec(sq, db_migrations[i], NULL, NULL, NULL), SQLITE_OK);
	snprintf(sql, sizeof(sql),
		 "INSERT INTO units (unique_id, lot, bay, operator, station_id, profile_hash,"
		 " status, stage, reason, started_ms) VALUES ('" UID "', 'L', '1-1', '%s', 'st1',"
		 " 'ph', 'in-progress', 'lock', '', 1);"
		 "INSERT INTO certificates (serial, unit_id, unique_id, pubkey_hash, status, der,"
		 " reserved_ms, issued_ms) VALUES ('1f', 1, '" UID "', 'kh', 'issued', x'3000', 1, 2);"
		 "PRAGMA user_version = %d;", operator_name, OLD_SCHEMA);
	assert_int_equal(sqlite3_exec(sq, sql, NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(sq);
}

static void recover_and_check(const char *path, const char *operator_name)
{
	struct db_verify_result res;
	struct errbuf err;
	struct db *db;
	int units = -1, revoked = -1;

	assert_false(ids_actor_valid(operator_name));
	make_old_db(path, operator_name);
	if (db_open(path, "st1", &db, &err) != ST_OK)
		fail_msg("open (migrate) %s: %s", path, err.msg);
	if (pl_recover(db, NULL, NULL, &units, &revoked, &err) != ST_OK)
		fail_msg("recovery blocked by the old operator name: %s", err.msg);
	assert_int_equal(units, 1);
	assert_int_equal(revoked, 1);
	if (db_audit_verify(db, &res, &err) != ST_OK)
		fail_msg("the chain after recovery: %s", err.msg);
	assert_int_equal(res.rows_bad, 0);
	/* the next start: nothing left to recover, still verifies */
	assert_int_equal(pl_recover(db, NULL, NULL, &units, &revoked, &err), ST_OK);
	assert_int_equal(units, 0);
	assert_int_equal(revoked, 0);
	assert_int_equal(db_audit_verify(db, &res, &err), ST_OK);
	db_close(db);

	assert_string_equal(query_text(path, "SELECT status || ':' || reason_code FROM units"),
			    "interrupted:interrupted");
	assert_string_equal(query_text(path, "SELECT status FROM certificates"), "revoked");
	/* the verdict is in the chain, under the station's name, not refused */
	assert_string_equal(query_text(path, "SELECT actor FROM events WHERE kind = 'unit-result'"),
			    "station");
	/* the row keeps what the old version wrote: the record is not rewritten */
	assert_string_equal(query_text(path, "SELECT operator FROM units"), operator_name);
}

static void test_operator_with_tab(void **state)
{
	(void)state;
	recover_and_check("old-tab.db", "op\tx");
}

static void test_operator_with_newline(void **state)
{
	(void)state;
	recover_and_check("old-nl.db", "op\nx");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_operator_with_tab),
		cmocka_unit_test(test_operator_with_newline),
	};

	return cmocka_run_group_tests_name("recover_old", tests, NULL, NULL);
}
