/* Unit tests: the tail walk checkpoints are signed after
 * (db_audit_verify_tail), and one line per database (db_line_acquire), on real
 * SQLite files in the scratch directory. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <sqlite3.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "db/db.h"

static struct db *chain_of(const char *path, int n)
{
	struct errbuf e;
	struct db *db;

	assert_int_equal(db_open(path, "st1", &db, &e), ST_OK);
	for (int i = 0; i < n; i++)
		assert_int_equal(db_audit_append(db, "test", "me", NULL, NULL, &e), ST_OK);
	return db;
}

static void sql(const char *path, const char *q)
{
	sqlite3 *sq;

	assert_int_equal(sqlite3_open(path, &sq), SQLITE_OK);
	assert_int_equal(sqlite3_exec(sq, q, NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(sq);
}

static void test_tail_from_anchor(void **state)
{
	struct db_verify_result res;
	uint8_t at5[32], head[32], top[32], wrong[32];
	int64_t seq = 0, top_seq = 0;
	struct errbuf e;
	struct db *db = chain_of("t.db", 10);

	(void)state;
	assert_int_equal(db_audit_event_hash(db, 5, at5, &e), ST_OK);
	assert_int_equal(db_audit_head(db, &top_seq, top, &e), ST_OK);
	assert_int_equal(db_audit_verify_tail(db, 5, at5, NULL, 0, &res, &seq, head, &e), ST_OK);
	assert_int_equal(seq, 10);
	assert_memory_equal(head, top, 32);
	assert_int_equal(res.events, 6);            /* the anchor row and the five after it */
	/* from the first event when there is no anchor (and no pinned checkpoint) */
	assert_int_equal(db_audit_verify_tail(db, -1, NULL, NULL, 0, &res, &seq, head, &e), ST_OK);
	assert_int_equal(res.events, 10);
	/* an anchor the chain no longer has: rolled back, or rewritten */
	memcpy(wrong, at5, 32);
	wrong[0] ^= 1;
	assert_int_equal(db_audit_verify_tail(db, 5, wrong, NULL, 0, &res, &seq, head, &e),
			 ST_ETAMPER);
	assert_non_null(strstr(e.msg, "rolled back or rewritten"));
	assert_int_equal(db_audit_verify_tail(db, 12, at5, NULL, 0, &res, &seq, head, &e),
			 ST_ETAMPER);
	assert_non_null(strstr(e.msg, "rolled back: no event at anchored seq 12"));
	assert_int_equal(db_audit_event_hash(db, 12, wrong, &e), ST_ENOTFOUND);
	db_close(db);
	/* an edit after the anchor, not rehashed */
	sql("t.db", "UPDATE events SET actor = 'mallory' WHERE seq = 8");
	assert_int_equal(db_open("t.db", "st1", &db, &e), ST_OK);
	assert_int_equal(db_audit_verify_tail(db, 5, at5, NULL, 0, &res, &seq, head, &e),
			 ST_ETAMPER);
	assert_int_equal(res.bad_seq, 8);
	assert_non_null(strstr(e.msg, "edited"));
	db_close(db);
}

static void test_checkpoint_age(void **state)
{
	struct db_checkpoint_age age;
	struct errbuf e;
	struct db *db = chain_of("age.db", 4);

	(void)state;
	assert_int_equal(db_checkpoint_age(db, &age, &e), ST_OK);
	assert_int_equal(age.head_seq, 4);
	assert_int_equal(age.checkpoint_seq, 0);
	db_close(db);
	/* a checkpoint row at seq 2 (its signature is not what is measured here),
	 * and the head's time a day and a half later */
	sql("age.db", "INSERT INTO checkpoints (station_id, seq, head_hash, ts, key_label, algorithm,"
	    " signature, pubkey_der) VALUES ('st1', 2, 'x', 'x', 'k', 'ecdsa-sha256', x'00', x'00');"
	    "UPDATE events SET ts = '2026-01-01T00:00:00.000Z' WHERE seq = 2;"
	    "UPDATE events SET ts = '2026-01-02T12:00:00.000Z' WHERE seq = 4;");
	assert_int_equal(db_open("age.db", "st1", &db, &e), ST_OK);
	assert_int_equal(db_checkpoint_age(db, &age, &e), ST_OK);
	assert_int_equal(age.head_seq, 4);
	assert_int_equal(age.checkpoint_seq, 2);
	assert_true(age.hours > 35.99 && age.hours < 36.01);
	db_close(db);
}

static void test_one_line_per_database(void **state)
{
	struct errbuf e;
	struct db *a = chain_of("line.db", 1), *b;
	char pid[32];

	(void)state;
	assert_int_equal(db_open("line.db", "st1", &b, &e), ST_OK);
	assert_false(db_line_held(a));
	assert_int_equal(db_line_acquire(a, "olga", &e), ST_OK);
	assert_true(db_line_held(a));
	/* another handle (another line) is refused and told who holds it */
	assert_int_equal(db_line_acquire(b, "erik", &e), ST_EBUSY);
	snprintf(pid, sizeof(pid), " pid %ld ", (long)getpid());
	assert_non_null(strstr(e.msg, "is in use by another line: host "));
	assert_non_null(strstr(e.msg, pid));
	assert_non_null(strstr(e.msg, "(user olga)"));
	assert_false(db_line_held(b));
	/* the row is written by the holder only, when asked (after its pre-flight) */
	assert_int_equal(db_line_record(b, "erik", &e), ST_ESTATE);
	assert_int_equal(db_line_record(a, "olga", &e), ST_OK);
	/* closing the holder's handle releases it */
	db_close(a);
	assert_int_equal(db_line_acquire(b, "erik", &e), ST_OK);
	db_close(b);
	assert_int_equal(access("line.db.lock", F_OK), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_tail_from_anchor),
		cmocka_unit_test(test_checkpoint_age),
		cmocka_unit_test(test_one_line_per_database),
	};

	return cmocka_run_group_tests_name("db_anchor", tests, NULL, NULL);
}
