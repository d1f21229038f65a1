/* Unit tests: db_open (file mode, migrations, refusing newer schemas),
 * transactions and the handle's thread safety. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "db/db.h"
#include "db/schema.h"

/* Tests run in a scratch directory (tests/run-unit.sh). */

static void test_fresh_db_is_0600_in_new_dir(void **state)
{
	struct errbuf err;
	struct stat sb;
	struct db *db;
	mode_t old = umask(0);   /* the file must be 0600 even with a lax umask */

	(void)state;
	assert_int_equal(db_open("var/a/b/fresh.db", "st1", &db, &err), ST_OK);
	umask(old);
	assert_int_equal(stat("var/a/b/fresh.db", &sb), 0);
	assert_int_equal(sb.st_mode & 0777, 0600);
	assert_int_equal(stat("var/a", &sb), 0);
	assert_true(S_ISDIR(sb.st_mode));
	assert_int_equal(db_schema_version(db), db_migrations_count);
	assert_string_equal(db_station_id(db), "st1");
	db_close(db);
}

static int count_tables(const char *path)
{
	sqlite3 *sq;
	sqlite3_stmt *st;
	int n = -1;

	assert_int_equal(sqlite3_open(path, &sq), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(sq, "SELECT count(*) FROM sqlite_master WHERE type = 'table'",
					    -1, &st, NULL), SQLITE_OK);
	if (sqlite3_step(st) == SQLITE_ROW)
		n = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	sqlite3_close(sq);
	return n;
}

static void test_migration_idempotent_on_reopen(void **state)
{
	struct errbuf err;
	struct db *db;
	int64_t seq;
	int tables;

	(void)state;
	assert_int_equal(db_open("re.db", "st1", &db, &err), ST_OK);
	assert_int_equal(db_audit_append(db, "test", "me", NULL, &seq, &err), ST_OK);
	db_close(db);
	tables = count_tables("re.db");
	assert_int_equal(tables, 13);  /* migration 1: 7; rework: reworks; roles; crls; station;
					  line_holder; keys_seen */
	for (int i = 0; i < 2; i++) {
		assert_int_equal(db_open("re.db", "st1", &db, &err), ST_OK);
		assert_int_equal(db_schema_version(db), db_migrations_count);
		db_close(db);
	}
	assert_int_equal(count_tables("re.db"), tables);
	/* the data survived the reopen */
	assert_int_equal(db_open("re.db", "st1", &db, &err), ST_OK);
	assert_int_equal(db_audit_append(db, "test", "me", NULL, &seq, &err), ST_OK);
	assert_int_equal(seq, 2);
	db_close(db);
}

static void set_user_version(const char *path, int v)
{
	sqlite3 *sq;
	char sql[64];

	assert_int_equal(sqlite3_open(path, &sq), SQLITE_OK);
	snprintf(sql, sizeof(sql), "PRAGMA user_version = %d", v);
	assert_int_equal(sqlite3_exec(sq, sql, NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(sq);
}

static void test_newer_schema_refused(void **state)
{
	struct errbuf err;
	struct db *db = (struct db *)1;

	(void)state;
	assert_int_equal(db_open("new.db", "st1", &db, &err), ST_OK);
	db_close(db);
	set_user_version("new.db", 999);
	errbuf_clear(&err);
	assert_int_equal(db_open("new.db", "st1", &db, &err), ST_ESCHEMA);
	assert_null(db);
	assert_non_null(strstr(err.msg, "schema version 999"));
	assert_non_null(strstr(err.msg, "new.db"));
	/* and it was left alone */
	set_user_version("new.db", db_migrations_count);
	assert_int_equal(db_open("new.db", "st1", &db, &err), ST_OK);
	db_close(db);
}

/* A database made before reason codes (schema 4), with a failed unit in it,
 * migrates: the old row keeps its reason and gets an empty reason code, and a
 * unit finished now stores its code by name. */
static void test_migration_5_adds_reason_code(void **state)
{
	struct errbuf err;
	struct db_unit u;
	struct db *db;
	sqlite3_stmt *st;
	sqlite3 *sq;

	(void)state;
	assert_int_equal(sqlite3_open("v4.db", &sq), SQLITE_OK);
	for (int i = 0; i < 4; i++)
		assert_int_equal(sqlite3_exec(sq, db_migrations[i], NULL, NULL, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_exec(sq,
		"INSERT INTO units (unique_id, lot, bay, operator, station_id, profile_hash, status,"
		" stage, reason, started_ms, finished_ms) VALUES ('0123456789ABCDEF01234567', 'L',"
		" '1-1', 'ann', 'st1', 'ph', 'fail', 'flash', 'board stopped answering', 1, 2);"
		"PRAGMA user_version = 4;", NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(sq);
	assert_int_equal(db_open("v4.db", "st1", &db, &err), ST_OK);
	assert_int_equal(db_schema_version(db), db_migrations_count);
	assert_true(db_migrations_count >= 5);
	memset(&u, 0, sizeof(u));
	snprintf(u.unique_id, sizeof(u.unique_id), "0123456789ABCDEF01234568");
	snprintf(u.lot, sizeof(u.lot), "L");
	snprintf(u.stage, sizeof(u.stage), "allowlist");
	assert_int_equal(db_unit_begin(db, &u, &err), ST_OK);
	u.status = DB_UNIT_REJECT;
	u.reason_code = ST_R_NOT_ON_LOT;
	snprintf(u.reason, sizeof(u.reason), "not on the allowlist");
	assert_int_equal(db_unit_finish(db, &u, &err), ST_OK);
	db_close(db);
	assert_int_equal(sqlite3_open("v4.db", &sq), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(sq, "SELECT group_concat(status || ':' || reason_code ||"
		" ':' || reason, '|') FROM (SELECT * FROM units ORDER BY id)", -1, &st, NULL),
		SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	assert_string_equal((const char *)sqlite3_column_text(st, 0),
			    "fail::board stopped answering|reject:not_on_lot:not on the allowlist");
	sqlite3_finalize(st);
	sqlite3_close(sq);
}

/* A database made by the first release (schema 1), with certificate rows in
 * every state, migrates to schema 2 keeping them, and then allows a reserved
 * serial without a board while still refusing an issued one without it. */
static void test_migration_2_keeps_certificates(void **state)
{
	struct errbuf err;
	struct db *db;
	sqlite3 *sq;
	const char *one[] = { "7a" };
	const uint8_t der[] = { 0x30, 0x00 };
	char *msg = NULL;

	(void)state;
	assert_int_equal(sqlite3_open("v1.db", &sq), SQLITE_OK);
	assert_int_equal(sqlite3_exec(sq, db_migrations[0], NULL, NULL, &msg), SQLITE_OK);
	assert_int_equal(sqlite3_exec(sq,
		"INSERT INTO certificates (serial, unique_id, pubkey_hash, status, der, reserved_ms)"
		" VALUES ('1a', '0123456789ABCDEF01234567', 'pk1', 'injected', x'3000', 1),"
		"        ('2b', '0123456789ABCDEF01234568', 'pk2', 'reserved', NULL, 2),"
		"        ('3c', '0123456789ABCDEF01234569', 'pk3', 'revoked', x'3000', 3);"
		"PRAGMA user_version = 1;", NULL, NULL, &msg), SQLITE_OK);
	sqlite3_close(sq);
	assert_int_equal(db_open("v1.db", "st1", &db, &err), ST_OK);
	assert_int_equal(db_schema_version(db), db_migrations_count);
	assert_true(db_migrations_count >= 2);
	db_close(db);
	assert_int_equal(sqlite3_open("v1.db", &sq), SQLITE_OK);
	sqlite3_extended_result_codes(sq, 1);
	{
		sqlite3_stmt *st;

		assert_int_equal(sqlite3_prepare_v2(sq, "SELECT group_concat(serial || ':' || status ||"
			" ':' || pubkey_hash, ' ') FROM (SELECT * FROM certificates ORDER BY serial)",
			-1, &st, NULL), SQLITE_OK);
		assert_int_equal(sqlite3_step(st), SQLITE_ROW);
		assert_string_equal((const char *)sqlite3_column_text(st, 0),
				    "1a:injected:pk1 2b:reserved:pk2 3c:revoked:pk3");
		sqlite3_finalize(st);
	}
	/* the rebuilt table keeps its constraints: one key per certificate, no
	 * issued row without its board */
	assert_int_equal(sqlite3_exec(sq, "INSERT INTO certificates (serial, unique_id, pubkey_hash,"
		" status, der, reserved_ms) VALUES ('4d', 'x', 'pk1', 'issued', x'30', 4)",
		NULL, NULL, NULL), SQLITE_CONSTRAINT_UNIQUE);
	assert_int_equal(sqlite3_exec(sq, "INSERT INTO certificates (serial, status, reserved_ms)"
		" VALUES ('5e', 'issued', 5)", NULL, NULL, NULL), SQLITE_CONSTRAINT_CHECK);
	sqlite3_close(sq);
	/* and the new flow works on it */
	assert_int_equal(db_open("v1.db", "st1", &db, &err), ST_OK);
	assert_int_equal(db_cert_reserve(db, one, 1, &err), ST_OK);
	assert_int_equal(db_cert_issued(db, "7a", 0, "0123456789ABCDEF0123456A",
		"4444444444444444444444444444444444444444444444444444444444444444", der, sizeof(der),
		&err), ST_OK);
	db_close(db);
	sqlite3_free(msg);
}

static void test_not_a_database(void **state)
{
	struct errbuf err;
	struct db *db;
	FILE *f = fopen("junk.db", "w");

	(void)state;
	assert_non_null(f);
	for (int i = 0; i < 200; i++)
		fputs("this is not an SQLite database file. ", f);
	fclose(f);
	assert_int_equal(db_open("junk.db", "st1", &db, &err), ST_EDB);
	assert_non_null(strstr(err.msg, "junk.db"));
	assert_int_equal(db_open("", "st1", &db, &err), ST_EINVAL);
	assert_int_equal(db_open("x.db", "", &db, &err), ST_EINVAL);
}

/* Without DB_OPEN_CREATE nothing is created (issue 13: only `station init`
 * creates a database); the stored station id is the handle's with
 * DB_OPEN_STORED_ID, and is stored once. */
static void test_open_existing_and_station_id(void **state)
{
	struct errbuf err;
	struct db *db;
	char id[64];

	(void)state;
	assert_int_equal(db_open_ex("nodir/x.db", "st1", 0, &db, &err), ST_ENOTFOUND);
	assert_null(db);
	assert_non_null(strstr(err.msg, "database nodir/x.db does not exist"));
	assert_int_equal(access("nodir", F_OK), -1);
	assert_int_equal(db_open_ex("x.db", "st1", 0, &db, &err), ST_ENOTFOUND);
	assert_int_equal(access("x.db", F_OK), -1);
	assert_int_equal(db_open_ex("x.db", "st\n1", DB_OPEN_CREATE, &db, &err), ST_EINVAL);
	assert_int_equal(access("x.db", F_OK), -1);

	assert_int_equal(db_open_ex("x.db", "line-1", DB_OPEN_CREATE, &db, &err), ST_OK);
	assert_int_equal(db_station_stored(db, id, sizeof(id), &err), ST_OK);
	assert_string_equal(id, "");
	assert_int_equal(db_station_init(db, "eng", &err), ST_OK);
	assert_int_equal(db_station_init(db, "eng", &err), ST_EEXIST);
	db_close(db);
	/* the stored id wins over the fallback; an explicit one is kept */
	assert_int_equal(db_open_ex("x.db", "host", DB_OPEN_STORED_ID, &db, &err), ST_OK);
	assert_string_equal(db_station_id(db), "line-1");
	db_close(db);
	assert_int_equal(db_open_ex("x.db", "other", 0, &db, &err), ST_OK);
	assert_string_equal(db_station_id(db), "other");
	db_close(db);
}

static void test_pragmas(void **state)
{
	struct errbuf err;
	struct db *db;
	sqlite3 *sq;
	sqlite3_stmt *st;

	(void)state;
	assert_int_equal(db_open("p.db", "st1", &db, &err), ST_OK);
	/* WAL is persistent in the file: another connection sees it. */
	assert_int_equal(sqlite3_open("p.db", &sq), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(sq, "PRAGMA journal_mode", -1, &st, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	assert_string_equal((const char *)sqlite3_column_text(st, 0), "wal");
	sqlite3_finalize(st);
	sqlite3_close(sq);
	db_close(db);
}

static void exec_on(const char *path, const char *sql)
{
	sqlite3 *sq;

	assert_int_equal(sqlite3_open(path, &sq), SQLITE_OK);
	assert_int_equal(sqlite3_exec(sq, sql, NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(sq);
}

/* A trigger would run its SQL inside the station's own transactions (after a
 * row is audited); a view is SQL the station did not write: both refused, by
 * name, and refused again until removed. */
static void test_foreign_trigger_or_view_refused(void **state)
{
	struct errbuf err;
	struct db *db;

	(void)state;
	assert_int_equal(db_open("trig.db", "st1", &db, &err), ST_OK);
	db_close(db);
	exec_on("trig.db", "CREATE TRIGGER pass_all AFTER UPDATE ON units BEGIN"
		" UPDATE units SET status = 'pass' WHERE id = NEW.id; END");
	assert_int_equal(db_open("trig.db", "st1", &db, &err), ST_ETAMPER);
	assert_null(db);
	assert_non_null(strstr(err.msg, "trigger pass_all"));
	exec_on("trig.db", "DROP TRIGGER pass_all; CREATE VIEW v_units AS SELECT * FROM units");
	assert_int_equal(db_open("trig.db", "st1", &db, &err), ST_ETAMPER);
	assert_non_null(strstr(err.msg, "view v_units"));
	exec_on("trig.db", "DROP VIEW v_units");
	assert_int_equal(db_open("trig.db", "st1", &db, &err), ST_OK);
	db_close(db);
	/* any other object the migrations do not make, e.g. an index whose
	 * expression would run a function from the schema */
	exec_on("trig.db", "CREATE INDEX evil ON events(json_extract(detail, '$.x'))");
	assert_int_equal(db_open("trig.db", "st1", &db, &err), ST_ETAMPER);
	assert_non_null(strstr(err.msg, "index evil"));
	exec_on("trig.db", "DROP INDEX evil");
	assert_int_equal(db_open("trig.db", "st1", &db, &err), ST_OK);
	db_close(db);
}

static void test_transactions(void **state)
{
	struct errbuf err;
	uint8_t h[32];
	struct db *db;
	int64_t seq;

	(void)state;
	assert_int_equal(db_open("t.db", "st1", &db, &err), ST_OK);
	assert_int_equal(db_audit_append(db, "one", "me", NULL, NULL, &err), ST_OK);
	assert_int_equal(db_begin(db, &err), ST_OK);
	assert_int_equal(db_begin(db, &err), ST_ESTATE);
	assert_int_equal(db_audit_append(db, "two", "me", NULL, &seq, &err), ST_OK);
	assert_int_equal(seq, 2);
	db_rollback(db);
	assert_int_equal(db_audit_head(db, &seq, h, &err), ST_OK);
	assert_int_equal(seq, 1);
	assert_int_equal(db_commit(db, &err), ST_ESTATE);
	assert_int_equal(db_begin(db, &err), ST_OK);
	assert_int_equal(db_audit_append(db, "two", "me", NULL, &seq, &err), ST_OK);
	assert_int_equal(db_audit_append(db, "three", "me", NULL, &seq, &err), ST_OK);
	assert_int_equal(db_commit(db, &err), ST_OK);
	assert_int_equal(db_audit_head(db, &seq, h, &err), ST_OK);
	assert_int_equal(seq, 3);
	db_close(db);
}

#define THREADS 4
#define PER_THREAD 150

static void *appender(void *arg)
{
	struct db *db = arg;
	struct errbuf err;

	for (int i = 0; i < PER_THREAD; i++) {
		if (i % 50 == 10) {
			/* a grouped pair from this thread must stay together */
			if (db_begin(db, &err) || db_audit_append(db, "pair-a", "t", NULL, NULL, &err) ||
			    db_audit_append(db, "pair-b", "t", NULL, NULL, &err) || db_commit(db, &err))
				return (void *)1;
			i++;
			continue;
		}
		if (db_audit_append(db, "thread", "t", "{\"i\":1}", NULL, &err))
			return (void *)1;
	}
	return NULL;
}

struct pairs {
	char prev[16];
	int  broken, pairs;
};

static int check_pair(const struct db_event *e, void *arg)
{
	struct pairs *p = arg;

	if (!strcmp(e->kind, "pair-b")) {
		p->pairs++;
		if (strcmp(p->prev, "pair-a"))
			p->broken++;
	}
	snprintf(p->prev, sizeof(p->prev), "%s", e->kind);
	return 0;
}

static void test_one_handle_many_threads(void **state)
{
	struct pairs pairs = { "", 0, 0 };
	struct db_verify_result res;
	pthread_t t[THREADS];
	struct errbuf err;
	struct db *db;
	void *ret;

	(void)state;
	assert_int_equal(db_open("threads.db", "st1", &db, &err), ST_OK);
	for (int i = 0; i < THREADS; i++)
		assert_int_equal(pthread_create(&t[i], NULL, appender, db), 0);
	for (int i = 0; i < THREADS; i++) {
		assert_int_equal(pthread_join(t[i], &ret), 0);
		assert_null(ret);
	}
	assert_int_equal(db_audit_verify(db, &res, &err), ST_OK);
	assert_int_equal(res.events, THREADS * PER_THREAD);
	/* no other thread's event landed inside a db_begin/db_commit pair */
	assert_int_equal(db_audit_foreach(db, 0, check_pair, &pairs, &err), ST_OK);
	assert_int_equal(pairs.pairs, THREADS * 3);
	assert_int_equal(pairs.broken, 0);
	db_close(db);
}

/* Two handles on one file act like two processes: appends serialise through
 * SQLite's write lock and the chain stays whole. */
static void test_two_connections(void **state)
{
	struct db_verify_result res;
	struct errbuf err;
	struct db *a, *b;
	pthread_t t1, t2;

	(void)state;
	assert_int_equal(db_open("two.db", "st1", &a, &err), ST_OK);
	assert_int_equal(db_open("two.db", "st1", &b, &err), ST_OK);
	assert_int_equal(pthread_create(&t1, NULL, appender, a), 0);
	assert_int_equal(pthread_create(&t2, NULL, appender, b), 0);
	pthread_join(t1, NULL);
	pthread_join(t2, NULL);
	assert_int_equal(db_audit_verify(a, &res, &err), ST_OK);
	assert_int_equal(res.events, 2 * PER_THREAD);
	db_close(a);
	db_close(b);
}

/* One integer from a query on a raw connection (-1 on error). */
static int64_t sql_int(sqlite3 *sq, const char *sql, const char *arg)
{
	sqlite3_stmt *st;
	int64_t v = -1;

	if (sqlite3_prepare_v2(sq, sql, -1, &st, NULL) != SQLITE_OK)
		return -1;
	if (arg)
		sqlite3_bind_text(st, 1, arg, -1, SQLITE_STATIC);
	if (sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return v;
}

#define BY_SERIAL "SELECT count(*) FROM events INDEXED BY events_serial WHERE " \
	DB_EV_INDEXED " AND " DB_EV_SERIAL " = ?"
#define KEYED "SELECT count(*) FROM certificates INDEXED BY certificates_pubkey" \
	" WHERE pubkey_hash IS NOT NULL"
#define V10_INDEXES \
	"DROP INDEX certificates_pubkey; DROP INDEX certificates_uid; DROP INDEX certificates_unit;" \
	"DROP INDEX events_uid; DROP INDEX events_serial;" \
	"CREATE UNIQUE INDEX certificates_pubkey ON certificates(pubkey_hash);" \
	"CREATE INDEX certificates_status ON certificates(status);" \
	"CREATE INDEX certificates_unit ON certificates(unit_id);" \
	"CREATE INDEX certificates_uid ON certificates(unique_id);" \
	"CREATE INDEX events_uid ON events(" DB_EV_UID ");" \
	"CREATE INDEX events_serial ON events(" DB_EV_SERIAL ");" \
	"PRAGMA user_version = 10;"

/* Migration 11: the certificates indexes hold only rows with a key, board or
 * unit; the events indexes leave out `row` events; a file at version 10 is
 * brought there, and the indexes still answer (the clone refusal included). */
static void test_migration_11_partial_indexes(void **state)
{
	static const char *const serials[] = { "7a1", "7a2", "7a3" };
	static const char pk[] = "1111111111111111111111111111111111111111111111111111111111111111";
	uint8_t der[16] = { 0x30, 0x0e };
	struct db_verify_result res;
	struct errbuf err;
	struct db *db;
	sqlite3 *sq;

	(void)state;
	assert_int_equal(db_open("m11.db", "st1", &db, &err), ST_OK);
	assert_int_equal(db_cert_reserve(db, serials, 3, &err), ST_OK);
	assert_int_equal(db_cert_issued(db, "7a1", 0, "0123456789ABCDEF01234567", pk, der,
					sizeof(der), &err), ST_OK);
	db_close(db);

	assert_int_equal(sqlite3_open("m11.db", &sq), SQLITE_OK);
	assert_int_equal(sql_int(sq, KEYED, NULL), 1);            /* not the 2 reserved */
	assert_int_equal(sql_int(sq, BY_SERIAL, "7a1"), 1);       /* cert-issued */
	assert_int_equal(sql_int(sq, "SELECT count(*) FROM sqlite_master"
				 " WHERE name = 'certificates_status'", NULL), 0);
	assert_int_equal(sqlite3_exec(sq, V10_INDEXES, NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(sq);

	assert_int_equal(db_open("m11.db", "st1", &db, &err), ST_OK);
	assert_int_equal(db_schema_version(db), db_migrations_count);
	assert_int_equal(db_audit_verify(db, &res, &err), ST_OK);
	/* the partial UNIQUE index still refuses a key certified already */
	assert_int_equal(db_cert_issued(db, "7a2", 0, "0123456789ABCDEF01234568", pk, der,
					sizeof(der), &err), ST_EEXIST);
	db_close(db);
	assert_int_equal(sqlite3_open("m11.db", &sq), SQLITE_OK);
	assert_int_equal(sql_int(sq, KEYED, NULL), 1);
	assert_int_equal(sql_int(sq, BY_SERIAL, "7a1"), 1);
	assert_int_equal(sql_int(sq, "SELECT count(*) FROM sqlite_master WHERE name IN"
				 " ('events_serial', 'events_uid') AND sql LIKE '%WHERE kind != ''row''%'",
				 NULL), 2);
	sqlite3_close(sq);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fresh_db_is_0600_in_new_dir),
		cmocka_unit_test(test_migration_idempotent_on_reopen),
		cmocka_unit_test(test_newer_schema_refused),
		cmocka_unit_test(test_migration_2_keeps_certificates),
		cmocka_unit_test(test_migration_5_adds_reason_code),
		cmocka_unit_test(test_migration_11_partial_indexes),
		cmocka_unit_test(test_not_a_database),
		cmocka_unit_test(test_open_existing_and_station_id),
		cmocka_unit_test(test_pragmas),
		cmocka_unit_test(test_foreign_trigger_or_view_refused),
		cmocka_unit_test(test_transactions),
		cmocka_unit_test(test_one_handle_many_threads),
		cmocka_unit_test(test_two_connections),
	};

	return cmocka_run_group_tests_name("db", tests, NULL, NULL);
}
