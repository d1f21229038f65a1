/* Unit tests: issued records of threads issuing at once share one commit and
 * one WAL sync (db/certs_group.c), and one record's refusal or failure never
 * costs another its certificate. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "db/db_int.h"

#define NREQ 3

static const char *const serials[NREQ] = { "a1", "a2", "a3" };
static const char *const keys[NREQ] = {
	"1111111111111111111111111111111111111111111111111111111111111111",
	"2222222222222222222222222222222222222222222222222222222222222222",
	"3333333333333333333333333333333333333333333333333333333333333333",
};

struct issuer {
	struct db *db;
	int i, rc;
	struct errbuf err;
};

static void *issue_thread(void *arg)
{
	struct issuer *t = arg;
	const uint8_t der[] = { 0x30, 0x03, 0x02, 0x01, 0x01 };
	char uid[32];

	snprintf(uid, sizeof(uid), "0123456789ABCDEF0123456%d", t->i);
	t->rc = db_cert_issued(t->db, serials[t->i], 0, uid, keys[t->i], der, sizeof(der), &t->err);
	return NULL;
}

static int queued(struct db *db)
{
	int n;

	pthread_mutex_lock(&db->issue_mu);
	n = db->issue_queued;
	pthread_mutex_unlock(&db->issue_mu);
	return n;
}

static int status_of(struct db *db, const char *serial)
{
	sqlite3_stmt *st;
	int s = -1;

	assert_int_equal(sqlite3_prepare_v2(db->sq, "SELECT status FROM certificates WHERE serial = ?",
					    -1, &st, NULL), SQLITE_OK);
	sqlite3_bind_text(st, 1, serial, -1, SQLITE_STATIC);
	if (sqlite3_step(st) == SQLITE_ROW)
		s = !strcmp((const char *)sqlite3_column_text(st, 0), "issued");
	sqlite3_finalize(st);
	return s;
}

/*
 * Holds the queue as if a batch were committing, lets NREQ threads queue
 * their records, then releases it: one of them commits all NREQ in one
 * transaction, synced once.  setup(db) plants what should go wrong.
 */
static void issue_together(struct db *db, struct issuer *t, long *syncs)
{
	pthread_t th[NREQ];
	struct errbuf err;
	long s0;

	assert_int_equal(db_cert_reserve(db, (const char *const *)serials, NREQ, &err), ST_OK);
	s0 = db_wal_syncs(db);
	pthread_mutex_lock(&db->issue_mu);
	db->issue_committing = 1;
	pthread_mutex_unlock(&db->issue_mu);
	for (int i = 0; i < NREQ; i++) {
		t[i].db = db;
		t[i].i = i;
		assert_int_equal(pthread_create(&th[i], NULL, issue_thread, &t[i]), 0);
	}
	while (queued(db) < NREQ)
		usleep(1000);
	pthread_mutex_lock(&db->issue_mu);
	db_issue_commit_ended_locked(db);
	pthread_mutex_unlock(&db->issue_mu);
	for (int i = 0; i < NREQ; i++)
		assert_int_equal(pthread_join(th[i], NULL), 0);
	*syncs = db_wal_syncs(db) - s0;
}

static void verify_ok(struct db *db)
{
	struct db_verify_result res;
	struct errbuf err;

	assert_int_equal(db_audit_verify(db, &res, &err), ST_OK);
}

/* A key certified already is refused inside the batch; the others commit,
 * and the batch costs one WAL sync, not one per record. */
static void test_batch_refusal(void **state)
{
	struct db *db;
	struct issuer t[NREQ];
	struct errbuf err;
	const uint8_t der[] = { 0x30, 0x00 };
	const char *old = "b0";
	long syncs;

	(void)state;
	memset(t, 0, sizeof(t));
	assert_int_equal(db_open("group1.db", "st1", &db, &err), ST_OK);
	/* keys[1] is certified already, under another serial */
	assert_int_equal(db_cert_reserve(db, &old, 1, &err), ST_OK);
	assert_int_equal(db_cert_issued(db, "b0", 0, "0123456789ABCDEF01234599", keys[1], der,
					sizeof(der), &err), ST_OK);
	issue_together(db, t, &syncs);
	assert_int_equal(t[0].rc, ST_OK);
	assert_int_equal(t[1].rc, ST_EEXIST);
	assert_non_null(strstr(t[1].err.msg, "already certified"));
	assert_int_equal(t[2].rc, ST_OK);
	assert_int_equal(syncs, 1);
	assert_int_equal(status_of(db, "a1"), 1);
	assert_int_equal(status_of(db, "a2"), 0);   /* still reserved */
	assert_int_equal(status_of(db, "a3"), 1);
	verify_ok(db);
	db_close(db);
}

/* A record that fails half-way (here its audit event is refused by a
 * trigger planted for the test) rolls the batch back; each record is then
 * committed alone, so only that one fails. */
static void test_batch_failure_falls_back(void **state)
{
	struct db *db;
	struct issuer t[NREQ];
	struct errbuf err;
	long syncs;

	(void)state;
	memset(t, 0, sizeof(t));
	assert_int_equal(db_open("group2.db", "st1", &db, &err), ST_OK);
	assert_int_equal(sqlite3_exec(db->sq,
		"CREATE TEMP TRIGGER planted BEFORE INSERT ON main.events"
		" WHEN new.kind = 'cert-issued' AND new.detail LIKE '%\"a2\"%'"
		" BEGIN SELECT RAISE(ABORT, 'planted failure'); END", NULL, NULL, NULL), SQLITE_OK);
	issue_together(db, t, &syncs);
	assert_int_equal(t[0].rc, ST_OK);
	assert_int_not_equal(t[1].rc, ST_OK);
	assert_non_null(strstr(t[1].err.msg, "planted failure"));
	assert_int_equal(t[2].rc, ST_OK);
	assert_true(syncs >= 1);
	assert_int_equal(status_of(db, "a1"), 1);
	assert_int_equal(status_of(db, "a2"), 0);
	assert_int_equal(status_of(db, "a3"), 1);
	assert_int_equal(sqlite3_exec(db->sq, "DROP TRIGGER temp.planted", NULL, NULL, NULL), SQLITE_OK);
	verify_ok(db);
	db_close(db);
}

/* ---- many callers wait for the sync in flight -------------------------- */

#define NWAIT 4
_Static_assert(NWAIT <= 9, "one digit per waiter");

struct waiter {
	struct db *db;
	char serial[8], key[65], uid[32];
	int rc;
	struct errbuf err;
};

static void *issue_waiter(void *arg)
{
	struct waiter *w = arg;
	const uint8_t der[] = { 0x30, 0x03, 0x02, 0x01, 0x02 };

	w->rc = db_cert_issued(w->db, w->serial, 0, w->uid, w->key, der, sizeof(der), &w->err);
	return NULL;
}

static void fake_sync_in_flight(struct db *db, int on)
{
	pthread_mutex_lock(&db->sync_mu);
	db->syncing = on;
	pthread_cond_broadcast(&db->sync_cv);
	pthread_mutex_unlock(&db->sync_mu);
}

/*
 * n callers queue their records while a WAL sync is (made to look) in
 * flight; the queue is then let go.  *early: transactions committed before
 * that sync ended; *commits, *syncs: for the n records in all.
 */
static void issue_during_sync(const char *path, int n, uint64_t *early, uint64_t *commits,
			      long *syncs)
{
	struct waiter w[NWAIT];
	pthread_t th[NWAIT];
	const char *batch[NWAIT];
	struct errbuf err;
	struct db *db;
	uint64_t c0;
	long s0;

	assert_true(n <= NWAIT);
	assert_int_equal(db_open(path, "st1", &db, &err), ST_OK);
	memset(w, 0, sizeof(w));
	for (int i = 0; i < n; i++) {
		w[i].db = db;
		/* i < NWAIT <= 9: one digit each */
		w[i].serial[0] = 'c';
		w[i].serial[1] = (char)('1' + i);
		memset(w[i].key, '4' + i, 64);
		memcpy(w[i].uid, "0123456789ABCDEF0123457", 23);
		w[i].uid[23] = (char)('0' + i);
		batch[i] = w[i].serial;
	}
	assert_int_equal(db_cert_reserve(db, batch, (size_t)n, &err), ST_OK);
	c0 = __atomic_load_n(&db->commit_seq, __ATOMIC_ACQUIRE);
	s0 = db_wal_syncs(db);

	pthread_mutex_lock(&db->issue_mu);
	db->issue_committing = 1;
	pthread_mutex_unlock(&db->issue_mu);
	for (int i = 0; i < n; i++)
		assert_int_equal(pthread_create(&th[i], NULL, issue_waiter, &w[i]), 0);
	while (queued(db) < n)
		usleep(1000);
	fake_sync_in_flight(db, 1);
	pthread_mutex_lock(&db->issue_mu);
	db_issue_commit_ended_locked(db);
	pthread_mutex_unlock(&db->issue_mu);
	usleep(200 * 1000);   /* time to commit, had the queue's head not waited */
	*early = __atomic_load_n(&db->commit_seq, __ATOMIC_ACQUIRE) - c0;
	fake_sync_in_flight(db, 0);
	for (int i = 0; i < n; i++) {
		assert_int_equal(pthread_join(th[i], NULL), 0);
		assert_int_equal(w[i].rc, ST_OK);
		assert_int_equal(status_of(db, w[i].serial), 1);
	}
	*commits = __atomic_load_n(&db->commit_seq, __ATOMIC_ACQUIRE) - c0;
	*syncs = db_wal_syncs(db) - s0;
	verify_ok(db);
	db_close(db);
}

/* With more than two callers, the one to commit waits for the sync in
 * flight, and every record queued by then shares one transaction and one
 * sync after it. */
static void test_many_callers_wait_for_the_sync(void **state)
{
	uint64_t early, commits;
	long syncs;

	(void)state;
	issue_during_sync("group3.db", NWAIT, &early, &commits, &syncs);
	assert_int_equal(early, 0);
	assert_int_equal(commits, 1);
	assert_int_equal(syncs, 1);
}

/* Two callers do not wait: their commit overlaps the sync in flight. */
static void test_two_callers_commit_during_the_sync(void **state)
{
	uint64_t early, commits;
	long syncs;

	(void)state;
	issue_during_sync("group4.db", 2, &early, &commits, &syncs);
	assert_int_equal(early, 1);
	assert_int_equal(commits, 1);
	assert_int_equal(syncs, 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_batch_refusal),
		cmocka_unit_test(test_batch_failure_falls_back),
		cmocka_unit_test(test_many_callers_wait_for_the_sync),
		cmocka_unit_test(test_two_callers_commit_during_the_sync),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
