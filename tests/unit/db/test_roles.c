/*
 * Unit tests: the roles table (db/roles.h) on a real SQLite file: grants and
 * re-grants, revocation, the last engineer kept, input refused, and an audit
 * event naming who made every change.  The check that uses it (OS login,
 * bootstrap) is tested end to end in tests/e2e/roles.sh.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "db/db_int.h"
#include "db/roles.h"

static int setup(void **state)
{
	struct db *db;
	struct errbuf e;

	unlink("roles.db");
	unlink("roles.db-wal");
	unlink("roles.db-shm");
	if (db_open("roles.db", "st-roles", &db, &e))
		fail_msg("db_open: %s", e.msg);
	*state = db;
	return 0;
}

static int teardown(void **state)
{
	db_close(*state);
	return 0;
}

static int64_t events(struct db *db, const char *kind, const char *actor)
{
	sqlite3_stmt *st = NULL;
	int64_t n = -1;

	db_lock(db);
	assert_int_equal(sqlite3_prepare_v2(db->sq, "SELECT count(*) FROM events WHERE kind = ?"
					    " AND (?2 IS NULL OR actor = ?2)", -1, &st, NULL), SQLITE_OK);
	sqlite3_bind_text(st, 1, kind, -1, SQLITE_STATIC);
	if (actor)
		sqlite3_bind_text(st, 2, actor, -1, SQLITE_STATIC);
	if (sqlite3_step(st) == SQLITE_ROW)
		n = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	db_unlock(db);
	return n;
}

static int64_t count(struct db *db, enum db_role r)
{
	struct errbuf e;
	int64_t n = -1;

	assert_int_equal(db_role_count(db, r, &n, &e), ST_OK);
	return n;
}

static void test_grant_get_regrant(void **state)
{
	struct db *db = *state;
	struct db_role_row r;
	struct errbuf e;
	int found = -1;

	assert_int_equal(count(db, DB_ROLE_ENGINEER), 0);
	assert_int_equal(db_role_get(db, "erik", &r, &found, &e), ST_OK);
	assert_false(found);
	assert_int_equal(db_role_grant(db, "erik", "erik", DB_ROLE_ENGINEER, "root", &e), ST_OK);
	assert_int_equal(db_role_grant(db, "olga", "bench1", DB_ROLE_OPERATOR, "erik", &e), ST_OK);
	assert_int_equal(db_role_get(db, "olga", &r, &found, &e), ST_OK);
	assert_true(found);
	assert_string_equal(r.login, "bench1");
	assert_int_equal(r.role, DB_ROLE_OPERATOR);
	assert_string_equal(r.granted_by, "erik");
	assert_true(r.granted_ms > 0);
	/* a second grant changes the row, not adds one */
	assert_int_equal(db_role_grant(db, "olga", "olga", DB_ROLE_QA, "erik", &e), ST_OK);
	assert_int_equal(db_role_get(db, "olga", &r, &found, &e), ST_OK);
	assert_int_equal(r.role, DB_ROLE_QA);
	assert_string_equal(r.login, "olga");
	assert_int_equal(count(db, DB_ROLE_OPERATOR), 0);
	assert_int_equal(count(db, DB_ROLE_QA), 1);
	assert_int_equal(events(db, "role-grant", "erik"), 2);
	assert_int_equal(events(db, "role-grant", "root"), 1);
}

static void test_last_engineer_stays(void **state)
{
	struct db *db = *state;
	struct errbuf e;

	assert_int_equal(db_role_grant(db, "erik", "erik", DB_ROLE_ENGINEER, "root", &e), ST_OK);
	assert_int_equal(db_role_revoke(db, "erik", "erik", &e), ST_ESTATE);
	assert_non_null(strstr(e.msg, "last engineer"));
	assert_int_equal(db_role_grant(db, "erik", "erik", DB_ROLE_OPERATOR, "erik", &e), ST_ESTATE);
	assert_int_equal(count(db, DB_ROLE_ENGINEER), 1);
	assert_int_equal(db_role_grant(db, "ella", "ella", DB_ROLE_ENGINEER, "erik", &e), ST_OK);
	assert_int_equal(db_role_revoke(db, "erik", "ella", &e), ST_OK);
	assert_int_equal(count(db, DB_ROLE_ENGINEER), 1);
	assert_int_equal(events(db, "role-revoke", "ella"), 1);
	assert_int_equal(db_role_revoke(db, "erik", "ella", &e), ST_ENOTFOUND);
	assert_int_equal(db_role_revoke(db, "ella", "ella", &e), ST_ESTATE);
}

static void test_bad_input_writes_nothing(void **state)
{
	struct db *db = *state;
	struct errbuf e;
	char longname[DB_ROLE_NAME_MAX + 2];

	memset(longname, 'a', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = '\0';
	assert_int_equal(db_role_grant(db, "", "x", DB_ROLE_QA, "root", &e), ST_EINVAL);
	assert_int_equal(db_role_grant(db, "a b", "x", DB_ROLE_QA, "root", &e), ST_EINVAL);
	assert_int_equal(db_role_grant(db, "ab", "x;y", DB_ROLE_QA, "root", &e), ST_EINVAL);
	assert_int_equal(db_role_grant(db, longname, "x", DB_ROLE_QA, "root", &e), ST_EINVAL);
	assert_int_equal(db_role_grant(db, "ab", "x", DB_ROLE_NONE, "root", &e), ST_EINVAL);
	assert_int_equal(db_role_grant(db, "ab", "x", (enum db_role)3, "root", &e), ST_EINVAL);
	assert_int_equal(db_role_grant(db, "ab", "x", DB_ROLE_QA, "", &e), ST_EINVAL);
	assert_int_equal(db_role_revoke(db, "a'b", "root", &e), ST_EINVAL);
	assert_int_equal(events(db, "role-grant", NULL), 0);
	assert_int_equal(count(db, DB_ROLE_QA), 0);
	assert_int_equal(db_role_from_name("engineer"), DB_ROLE_ENGINEER);
	assert_int_equal(db_role_from_name("root"), DB_ROLE_NONE);
	assert_null(db_role_name(DB_ROLE_NONE));
}

struct names {
	char list[256];
};

static int collect(const struct db_role_row *r, void *arg)
{
	struct names *n = arg;

	strncat(n->list, r->name, sizeof(n->list) - strlen(n->list) - 2);
	strcat(n->list, " ");
	return 0;
}

static void test_foreach_in_name_order(void **state)
{
	struct db *db = *state;
	struct names n;
	struct errbuf e;

	memset(&n, 0, sizeof(n));
	assert_int_equal(db_role_grant(db, "zoe", "zoe", DB_ROLE_ENGINEER, "root", &e), ST_OK);
	assert_int_equal(db_role_grant(db, "adam", "bench", DB_ROLE_OPERATOR, "zoe", &e), ST_OK);
	assert_int_equal(db_role_grant(db, "mia", "mia", DB_ROLE_QA, "zoe", &e), ST_OK);
	assert_int_equal(db_role_foreach(db, collect, &n, &e), ST_OK);
	assert_string_equal(n.list, "adam mia zoe ");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_grant_get_regrant, setup, teardown),
		cmocka_unit_test_setup_teardown(test_last_engineer_stays, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_input_writes_nothing, setup, teardown),
		cmocka_unit_test_setup_teardown(test_foreach_in_name_order, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
