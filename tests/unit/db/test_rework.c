/*
 * Unit tests: rework authorisations (db/rework.h) on a real SQLite file.
 * Authorising revokes the old certificate (superseded), supersedes the PASS
 * unit and records a single-use authorisation, all in one transaction; the
 * next PASS consumes it; refusals write nothing; clone detection stays.
 * The pipeline's use of it is tested in tests/unit/line/test_pl_unit.c and
 * tests/e2e/rework.sh.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "db/db_int.h"
#include "db/rework.h"
#include "db/schema.h"

#define LOT "LOT-R"
#define UID_A "A0000000000000000000000A"
#define UID_B "B0000000000000000000000B"
#define UID_C "C0000000000000000000000C"   /* on the allowlist, never provisioned */
#define UID_X "F0000000000000000000000F"   /* on no allowlist */

static void rm_db(const char *path)
{
	char p[64];

	unlink(path);
	snprintf(p, sizeof(p), "%s-wal", path);
	unlink(p);
	snprintf(p, sizeof(p), "%s-shm", path);
	unlink(p);
}

static int setup(void **state)
{
	struct db *db;
	struct errbuf e;
	int64_t rows = 0;
	FILE *csv;

	rm_db("rw.db");
	if (db_open("rw.db", "st-rw", &db, &e))
		fail_msg("db_open: %s", e.msg);
	csv = fopen("allow.csv", "w");
	assert_non_null(csv);
	fprintf(csv, "unique_id,lot,model,hw_revision\n%s,%s,w,A\n%s,%s,w,A\n%s,%s,w,A\n",
		UID_A, LOT, UID_B, LOT, UID_C, LOT);
	fclose(csv);
	if (db_allowlist_import(db, "allow.csv", LOT, NULL, NULL, NULL, "eng", &rows, &e))
		fail_msg("allowlist import: %s", e.msg);
	assert_int_equal(rows, 3);
	*state = db;
	return 0;
}

static int teardown(void **state)
{
	db_close(*state);
	return 0;
}

/* One integer from a query with an optional text parameter (-1 on no row). */
static int64_t q_int(struct db *db, const char *sql, const char *arg)
{
	sqlite3_stmt *st = NULL;
	int64_t v = -1;

	db_lock(db);
	if (sqlite3_prepare_v2(db->sq, sql, -1, &st, NULL) != SQLITE_OK)
		fail_msg("prepare %s: %s", sql, sqlite3_errmsg(db->sq));
	if (arg)
		sqlite3_bind_text(st, 1, arg, -1, SQLITE_STATIC);
	if (sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	db_unlock(db);
	return v;
}

static void q_text(struct db *db, const char *sql, const char *arg, char *out, size_t size)
{
	sqlite3_stmt *st = NULL;

	out[0] = '\0';
	db_lock(db);
	if (sqlite3_prepare_v2(db->sq, sql, -1, &st, NULL) != SQLITE_OK)
		fail_msg("prepare %s: %s", sql, sqlite3_errmsg(db->sq));
	if (arg)
		sqlite3_bind_text(st, 1, arg, -1, SQLITE_STATIC);
	if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0))
		snprintf(out, size, "%s", (const char *)sqlite3_column_text(st, 0));
	sqlite3_finalize(st);
	db_unlock(db);
}

static void q_exec(struct db *db, const char *sql)
{
	char *msg = NULL;

	db_lock(db);
	if (sqlite3_exec(db->sq, sql, NULL, NULL, &msg) != SQLITE_OK)
		fail_msg("%s: %s", sql, msg);
	db_unlock(db);
}

/* A public key hash made from a small number. */
static void keyhash(int n, char out[65])
{
	snprintf(out, 65, "%064x", n);
}

/* An in-progress unit of uid with the key numbered key. */
static int64_t begin_unit(struct db *db, const char *uid, int key, struct db_unit *u)
{
	struct errbuf e;

	memset(u, 0, sizeof(*u));
	snprintf(u->unique_id, sizeof(u->unique_id), "%s", uid);
	snprintf(u->lot, sizeof(u->lot), LOT);
	snprintf(u->bay, sizeof(u->bay), "1-1");
	snprintf(u->operator_name, sizeof(u->operator_name), "op-olga");
	snprintf(u->profile_hash, sizeof(u->profile_hash), "%064d", 1);
	keyhash(key, u->pubkey_hash);
	if (db_unit_begin(db, u, &e))
		fail_msg("unit begin: %s", e.msg);
	return u->id;
}

/* Reserves and issues serial for u (the steps before the commit). */
static void issue(struct db *db, struct db_unit *u, const char *serial)
{
	static const uint8_t der[] = { 0x30, 0x03, 0x02, 0x01, 0x01 };
	const char *one[] = { serial };
	struct errbuf e;

	if (db_cert_reserve(db, one, 1, &e))
		fail_msg("reserve %s: %s", serial, e.msg);
	if (db_cert_issued(db, serial, u->id, u->unique_id, u->pubkey_hash, der, sizeof(der), &e))
		fail_msg("issued %s: %s", serial, e.msg);
	snprintf(u->cert_serial, sizeof(u->cert_serial), "%s", serial);
}

/* The pipeline's commit: injected, [rework consumed,] PASS, in one transaction. */
static int commit_pass(struct db *db, struct db_unit *u, int64_t rework_id, struct errbuf *e)
{
	int rc;

	u->status = DB_UNIT_PASS;
	snprintf(u->stage, sizeof(u->stage), "commit");
	if ((rc = db_begin(db, e)))
		return rc;
	if ((rc = db_cert_injected(db, u->cert_serial, e)) ||
	    (rework_id && (rc = db_rework_consume(db, rework_id, u->id, u->operator_name, e))) ||
	    (rc = db_unit_finish(db, u, e)) || (rc = db_commit(db, e))) {
		db_rollback(db);
		return rc;
	}
	return ST_OK;
}

/* A board provisioned once: returns its unit id. */
static int64_t provision(struct db *db, const char *uid, int key, const char *serial)
{
	struct db_unit u;
	struct errbuf e;

	begin_unit(db, uid, key, &u);
	issue(db, &u, serial);
	if (commit_pass(db, &u, 0, &e))
		fail_msg("commit %s: %s", uid, e.msg);
	return u.id;
}

static int provisioned(struct db *db, const char *uid)
{
	struct errbuf e;
	int found = -1;

	assert_int_equal(db_unit_provisioned(db, uid, &found, &e), ST_OK);
	return found;
}

struct cert_find {
	const char *serial;
	struct db_cert_row row;
	int found;
};

static int find_cert(const struct db_cert_row *c, void *arg)
{
	struct cert_find *f = arg;

	if (strcmp(c->serial_hex, f->serial))
		return 0;
	f->row = *c;
	f->found = 1;
	return 1;
}

static struct db_cert_row cert(struct db *db, const char *serial)
{
	struct cert_find f;
	struct errbuf e;

	memset(&f, 0, sizeof(f));
	f.serial = serial;

	assert_int_equal(db_cert_foreach(db, -1, find_cert, &f, &e), ST_OK);
	if (!f.found)
		fail_msg("no certificate %s", serial);
	return f.row;
}

static void assert_chain_ok(struct db *db)
{
	struct db_verify_result res;
	struct errbuf e;

	if (db_audit_verify(db, &res, &e))
		fail_msg("audit verify: %s (%s)", e.msg, res.what);
}

/* ---- tests ------------------------------------------------------------------- */

static void test_authorise_revokes_and_reopens(void **state)
{
	struct db *db = *state;
	struct db_rework w, open;
	struct db_cert_row c;
	struct errbuf e;
	char actor[64];
	int64_t old = provision(db, UID_A, 1, "a1"), events;
	int found = 0;

	assert_int_equal(provisioned(db, UID_A), 1);
	events = q_int(db, "SELECT count(*) FROM events", NULL);
	if (db_rework_authorise(db, UID_A, "replaced the radio module", "eng-erik", &w, &e))
		fail_msg("authorise: %s", e.msg);
	assert_true(w.id > 0);
	assert_int_equal(w.old_unit_id, old);
	assert_string_equal(w.old_serial, "a1");
	assert_string_equal(w.old_revoke_reason, "superseded");
	assert_string_equal(w.lot, LOT);
	/* the certificate is revoked through the ordinary path: the CRL lists it */
	c = cert(db, "a1");
	assert_int_equal(c.status, DB_CERT_REVOKED);
	assert_string_equal(c.revoke_reason, "superseded");
	assert_true(c.revoked_ms > 0);
	/* the PASS is superseded, not erased: history stays */
	assert_int_equal(provisioned(db, UID_A), 0);
	assert_int_equal(q_int(db, "SELECT superseded_by FROM units WHERE id = (SELECT old_unit_id"
			       " FROM reworks)", NULL), w.id);
	assert_int_equal(q_int(db, "SELECT count(*) FROM units WHERE status = 'pass'", NULL), 1);
	/* the open authorisation: who, why, when */
	assert_int_equal(db_rework_open(db, UID_A, &open, &found, &e), ST_OK);
	assert_true(found);
	assert_int_equal(open.id, w.id);
	assert_string_equal(open.authorised_by, "eng-erik");
	assert_string_equal(open.reason, "replaced the radio module");
	assert_true(open.authorised_ms > 0);
	assert_string_equal(open.lot, LOT);
	/* two audit events, both naming the engineer, in one commit, with the row
	 * events of the certificate, the authorisation and the superseded unit */
	assert_int_equal(q_int(db, "SELECT count(*) FROM events", NULL), events + 5);
	assert_int_equal(q_int(db, "SELECT count(*) FROM events WHERE kind = 'row'"
			       " AND actor = 'eng-erik' AND id > (SELECT id FROM events"
			       " WHERE kind = 'cert-revoked')", NULL), 2);
	assert_int_equal(q_int(db, "SELECT count(*) FROM events WHERE kind = 'row'"
			       " AND actor = 'eng-erik'", NULL), 3);
	q_text(db, "SELECT actor FROM events WHERE kind = 'cert-revoked'", NULL, actor, sizeof(actor));
	assert_string_equal(actor, "eng-erik");
	q_text(db, "SELECT actor FROM events WHERE kind = 'rework-authorised'", NULL, actor,
	       sizeof(actor));
	assert_string_equal(actor, "eng-erik");
	assert_int_equal(q_int(db, "SELECT count(*) FROM events WHERE kind = 'rework-authorised'"
			       " AND json_extract(detail, '$.old_serial') = 'a1'"
			       " AND json_extract(detail, '$.reason') = 'replaced the radio module'", NULL), 1);
	assert_chain_ok(db);
}

static void test_next_pass_consumes(void **state)
{
	struct db *db = *state;
	struct db_rework w;
	struct db_unit u, again;
	struct errbuf e;
	int seen = 0, found = 1;
	char key1[65];

	provision(db, UID_A, 1, "a1");
	assert_int_equal(db_rework_authorise(db, UID_A, "rework", "eng", &w, &e), ST_OK);
	/* clone detection stays: the old key is still on record */
	keyhash(1, key1);
	assert_int_equal(db_pubkey_seen(db, key1, &seen, &e), ST_OK);
	assert_true(seen);
	begin_unit(db, UID_A, 2, &u);
	issue(db, &u, "a2");
	if (commit_pass(db, &u, w.id, &e))
		fail_msg("commit after rework: %s", e.msg);
	assert_int_equal(provisioned(db, UID_A), 1);
	assert_int_equal(q_int(db, "SELECT rework_id FROM units WHERE cert_serial = 'a2'", NULL), w.id);
	assert_int_equal(q_int(db, "SELECT new_unit_id FROM reworks", NULL), u.id);
	assert_true(q_int(db, "SELECT consumed_ms FROM reworks", NULL) > 0);
	assert_int_equal(db_rework_open(db, UID_A, &w, &found, &e), ST_OK);
	assert_false(found);
	assert_int_equal(cert(db, "a2").status, DB_CERT_INJECTED);
	assert_int_equal(q_int(db, "SELECT count(*) FROM events WHERE kind = 'rework-consumed'"
			       " AND actor = 'op-olga'", NULL), 1);
	/* single use: a third PASS needs a new authorisation */
	begin_unit(db, UID_A, 3, &again);
	issue(db, &again, "a3");
	assert_int_equal(commit_pass(db, &again, w.id, &e), ST_ESTATE);
	assert_non_null(strstr(e.msg, "already used"));
	assert_int_equal(commit_pass(db, &again, 0, &e), ST_EEXIST);
	assert_non_null(strstr(e.msg, "already has a PASS"));
	assert_int_equal(cert(db, "a3").status, DB_CERT_ISSUED);   /* rolled back */
	assert_int_equal(q_int(db, "SELECT count(*) FROM units WHERE status = 'pass'", NULL), 2);
	/* and it can be reworked again, revoking the second certificate */
	assert_int_equal(db_rework_authorise(db, UID_A, "second rework", "eng", &w, &e), ST_OK);
	assert_string_equal(w.old_serial, "a2");
	assert_int_equal(cert(db, "a2").status, DB_CERT_REVOKED);
	assert_chain_ok(db);
}

static void test_second_pass_refused_without_authorisation(void **state)
{
	struct db *db = *state;
	struct db_unit u;
	struct errbuf e;

	provision(db, UID_B, 1, "b1");
	begin_unit(db, UID_B, 2, &u);
	issue(db, &u, "b2");
	assert_int_equal(commit_pass(db, &u, 0, &e), ST_EEXIST);
	assert_int_equal(provisioned(db, UID_B), 1);
	assert_int_equal(cert(db, "b1").status, DB_CERT_INJECTED);
}

static void test_refusals_write_nothing(void **state)
{
	struct db *db = *state;
	struct errbuf e;
	int64_t events;
	char long_reason[DB_REWORK_REASON_MAX + 2];

	provision(db, UID_A, 1, "a1");
	events = q_int(db, "SELECT count(*) FROM events", NULL);
	/* on the allowlist, never passed */
	assert_int_equal(db_rework_authorise(db, UID_C, "why", "eng", NULL, &e), ST_ESTATE);
	assert_non_null(strstr(e.msg, "has no PASS unit"));
	/* on no allowlist */
	assert_int_equal(db_rework_authorise(db, UID_X, "why", "eng", NULL, &e), ST_ENOTFOUND);
	assert_non_null(strstr(e.msg, "no lot's allowlist"));
	/* malformed input */
	assert_int_equal(db_rework_authorise(db, "a0000000000000000000000a", "why", "eng", NULL, &e),
			 ST_EINVAL);
	assert_int_equal(db_rework_authorise(db, UID_A, "", "eng", NULL, &e), ST_EINVAL);
	assert_int_equal(db_rework_authorise(db, UID_A, NULL, "eng", NULL, &e), ST_EINVAL);
	assert_int_equal(db_rework_authorise(db, UID_A, "two\nlines", "eng", NULL, &e), ST_EINVAL);
	memset(long_reason, 'x', sizeof(long_reason) - 1);
	long_reason[sizeof(long_reason) - 1] = '\0';
	assert_int_equal(db_rework_authorise(db, UID_A, long_reason, "eng", NULL, &e), ST_EINVAL);
	assert_int_equal(db_rework_authorise(db, UID_A, "why", "", NULL, &e), ST_EINVAL);
	assert_int_equal(db_rework_authorise(db, UID_A, "bad \xff utf-8", "eng", NULL, &e), ST_EINVAL);
	assert_int_equal(q_int(db, "SELECT count(*) FROM events", NULL), events);
	assert_int_equal(q_int(db, "SELECT count(*) FROM reworks", NULL), 0);
	assert_int_equal(cert(db, "a1").status, DB_CERT_INJECTED);
	assert_int_equal(provisioned(db, UID_A), 1);
	/* a second authorisation while the first waits for the board */
	assert_int_equal(db_rework_authorise(db, UID_A, "first", "eng", NULL, &e), ST_OK);
	events = q_int(db, "SELECT count(*) FROM events", NULL);
	assert_int_equal(db_rework_authorise(db, UID_A, "again", "eng", NULL, &e), ST_ESTATE);
	assert_non_null(strstr(e.msg, "open rework authorisation"));
	assert_int_equal(q_int(db, "SELECT count(*) FROM events", NULL), events);
	assert_int_equal(q_int(db, "SELECT count(*) FROM reworks", NULL), 1);
}

/* Revocation and authorisation commit together or not at all. */
static void test_one_transaction(void **state)
{
	struct db *db = *state;
	struct errbuf e;
	int64_t events;

	provision(db, UID_A, 1, "a1");
	events = q_int(db, "SELECT count(*) FROM events", NULL);
	/* fail the last write of the transaction, after the revocation */
	q_exec(db, "CREATE TEMP TRIGGER no_supersede BEFORE UPDATE OF superseded_by ON units"
		   " BEGIN SELECT RAISE(ABORT, 'injected failure'); END");
	assert_int_not_equal(db_rework_authorise(db, UID_A, "why", "eng", NULL, &e), ST_OK);
	assert_non_null(strstr(e.msg, "injected failure"));
	assert_int_equal(cert(db, "a1").status, DB_CERT_INJECTED);   /* revocation rolled back */
	assert_int_equal(q_int(db, "SELECT count(*) FROM reworks", NULL), 0);
	assert_int_equal(q_int(db, "SELECT count(*) FROM events", NULL), events);
	assert_int_equal(provisioned(db, UID_A), 1);
	q_exec(db, "DROP TRIGGER temp.no_supersede");
	assert_int_equal(db_rework_authorise(db, UID_A, "why", "eng", NULL, &e), ST_OK);
	assert_chain_ok(db);
}

/* A certificate an engineer revoked by hand keeps its reason. */
static void test_already_revoked(void **state)
{
	struct db *db = *state;
	struct db_rework w;
	struct errbuf e;

	provision(db, UID_B, 1, "b1");
	assert_int_equal(db_cert_revoke(db, "b1", "keyCompromise", "eng", &e), ST_OK);
	assert_int_equal(provisioned(db, UID_B), 1);   /* revoking alone does not reopen */
	assert_int_equal(db_rework_authorise(db, UID_B, "key leaked", "eng", &w, &e), ST_OK);
	assert_string_equal(w.old_revoke_reason, "keyCompromise");
	assert_string_equal(cert(db, "b1").revoke_reason, "keyCompromise");
	assert_int_equal(provisioned(db, UID_B), 0);
}

/* The authorisation fits only an in-progress unit of the same board. */
static void test_consume_wrong_unit(void **state)
{
	struct db *db = *state;
	struct db_rework w;
	struct db_unit other;
	struct errbuf e;

	provision(db, UID_A, 1, "a1");
	assert_int_equal(db_rework_authorise(db, UID_A, "why", "eng", &w, &e), ST_OK);
	begin_unit(db, UID_B, 5, &other);
	assert_int_equal(db_rework_consume(db, w.id, other.id, "op", &e), ST_ESTATE);
	assert_int_equal(db_rework_consume(db, w.id + 100, other.id, "op", &e), ST_ENOTFOUND);
	assert_int_equal(q_int(db, "SELECT count(*) FROM reworks WHERE new_unit_id IS NULL", NULL), 1);
	assert_int_equal(q_int(db, "SELECT count(*) FROM units WHERE rework_id IS NOT NULL", NULL), 0);
}

/* A database made by a binary without rework migrates, passes intact. */
/* A board a unit left locked without a PASS (it failed at commit, its
 * certificate issued and never committed): rework names that unit, revokes
 * the live certificate (superseded), supersedes nothing, and the next PASS
 * uses it.  A unit that failed before LOCK leaves nothing to rework. */
static void test_locked_by_failed_unit(void **state)
{
	struct db *db = *state;
	struct db_rework w;
	struct db_unit u, again;
	struct errbuf e;
	char s[32];

	begin_unit(db, UID_A, 1, &u);
	issue(db, &u, "a1");
	u.status = DB_UNIT_FAIL;
	snprintf(u.stage, sizeof(u.stage), "commit");
	snprintf(u.reason, sizeof(u.reason), "database write failed");
	assert_int_equal(db_unit_finish(db, &u, &e), ST_OK);
	begin_unit(db, UID_B, 2, &again);
	again.status = DB_UNIT_FAIL;
	snprintf(again.stage, sizeof(again.stage), "flash");
	assert_int_equal(db_unit_finish(db, &again, &e), ST_OK);

	assert_int_equal(db_rework_authorise(db, UID_B, "flash failed", "eng", &w, &e), ST_ESTATE);
	assert_non_null(strstr(e.msg, "did not fail or stop at or after LOCK"));
	assert_int_equal(db_rework_authorise(db, UID_A, "locked at commit", "eng", &w, &e), ST_OK);
	assert_int_equal(w.old_unit_id, u.id);
	assert_string_equal(w.old_status, "fail");
	assert_string_equal(w.old_serial, "a1");
	assert_string_equal(w.old_revoke_reason, "superseded");
	q_text(db, "SELECT revoke_reason FROM certificates WHERE serial = ?", "a1", s, sizeof(s));
	assert_string_equal(s, "superseded");
	assert_int_equal(q_int(db, "SELECT count(*) FROM units WHERE superseded_by IS NOT NULL",
			       NULL), 0);
	q_text(db, "SELECT json_extract(detail, '$.old_status') FROM events"
	       " WHERE kind = 'rework-authorised'", NULL, s, sizeof(s));
	assert_string_equal(s, "fail");
	/* the reset board, a new key: the next PASS uses the authorisation */
	begin_unit(db, UID_A, 3, &again);
	issue(db, &again, "a2");
	assert_int_equal(commit_pass(db, &again, w.id, &e), ST_OK);
	assert_int_equal(q_int(db, "SELECT new_unit_id FROM reworks WHERE unique_id = ?", UID_A),
			 again.id);
}

static void test_migrates_existing_database(void **state)
{
	struct db *db;
	struct errbuf e;
	sqlite3 *sq;

	(void)state;
	rm_db("old.db");
	assert_int_equal(sqlite3_open("old.db", &sq), SQLITE_OK);
	assert_int_equal(sqlite3_exec(sq, db_migrations[0], NULL, NULL, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_exec(sq,
		"INSERT INTO units (unique_id, lot, bay, operator, station_id, profile_hash,"
		" status, stage, started_ms) VALUES ('" UID_A "', 'L', '1-1', 'op', 's', 'h',"
		" 'pass', 'commit', 1); PRAGMA user_version = 1;", NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(sq);
	if (db_open("old.db", "st-rw", &db, &e))
		fail_msg("db_open: %s", e.msg);
	assert_int_equal(db_schema_version(db), db_migrations_count);
	assert_int_equal(provisioned(db, UID_A), 1);
	assert_int_equal(q_int(db, "SELECT count(*) FROM units WHERE superseded_by IS NULL"
			       " AND rework_id IS NULL", NULL), 1);
	db_close(db);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_authorise_revokes_and_reopens, setup, teardown),
		cmocka_unit_test_setup_teardown(test_next_pass_consumes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_second_pass_refused_without_authorisation, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_refusals_write_nothing, setup, teardown),
		cmocka_unit_test_setup_teardown(test_one_transaction, setup, teardown),
		cmocka_unit_test_setup_teardown(test_already_revoked, setup, teardown),
		cmocka_unit_test_setup_teardown(test_consume_wrong_unit, setup, teardown),
		cmocka_unit_test_setup_teardown(test_locked_by_failed_unit, setup, teardown),
		cmocka_unit_test(test_migrates_existing_database),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
