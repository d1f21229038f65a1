/*
 * certs_group: the issued records of threads issuing at once share one commit.
 *
 * Each db_cert_issued() queues its record.  The first caller that finds no
 * commit under way takes every record queued so far, commits them in one
 * transaction, lets the next batch begin committing, fdatasyncs the WAL, and
 * only then hands each caller its own result.  Bays issuing together thus pay
 * one transaction (its WAL frames, its locks, one fdatasync) per batch rather
 * than per certificate: on the 2-core station the system calls of a commit
 * cost more than its SQL (docs/performance.md).  One thread alone commits a
 * batch of one, as before.
 *
 * With more than GROUP_WAIT_CALLERS callers on this path, the caller about to
 * commit first waits for the WAL sync in flight, if any, to end, holding the
 * queue meanwhile.  A record committed during that sync could only be made
 * durable by the sync after it anyway, and the records queued while it runs
 * then share one transaction: with 16 bays a batch was ~1.1 records when it
 * committed at once and ~8 when it waits, and the CPU per certificate fell by
 * a quarter (docs/performance.md).  Two callers do not wait: one of them is
 * usually signing while the other's record syncs, and the wait would only
 * add its commit to the other's latency.
 *
 * What does not change (invariant 2, docs/database.md): a caller returns only
 * after the sync that covers its own record succeeded, and its record is
 * committed on its own terms: a record refused without a change (the key was
 * certified already, the serial is not reserved) gets its refusal and the
 * others commit; any other failure inside a batch rolls the batch back and
 * commits each record alone, so one record's trouble never fails another's.
 */
#include "db/db_int.h"

#include <stdlib.h>
#include <string.h>

#define GROUP_WAIT_CALLERS 2

struct db_issue_req {
	const char *serial_hex, *unique_id, *pubkey_hash;
	int64_t unit_id;
	const uint8_t *der;
	size_t der_len;
	int rc, done;
	struct errbuf err;
	struct db_issue_req *next;
	pthread_cond_t cv;   /* its caller waits here, woken alone (see below) */
};

static int issue_one_locked(struct db *db, struct db_issue_req *r)
{
	return db_cert_issued_locked(db, r->serial_hex, r->unit_id, r->unique_id, r->pubkey_hash,
				     r->der, r->der_len, &r->err);
}

/* Each record in a transaction of its own (the fallback). */
static void commit_each(struct db *db, struct db_issue_req *batch, int *synced_any)
{
	for (struct db_issue_req *r = batch; r; r = r->next) {
		int owned;

		errbuf_clear(&r->err);
		db_lock(db);
		if (!(r->rc = db_txn_begin_synced(db, &owned, &r->err))) {
			r->rc = issue_one_locked(db, r);
			r->rc = db_txn_end_synced(db, owned, r->rc, &r->err);
		}
		db_unlock(db);
		if (r->rc == ST_OK)
			*synced_any = 1;
	}
}

/*
 * The whole batch in one transaction.  A record refused without a change
 * keeps its refusal; anything else (a change half made, a transaction SQLite
 * rolled back itself, a failed commit) returns non-zero with nothing
 * committed, and the caller falls back to commit_each().
 */
static int commit_batch(struct db *db, struct db_issue_req *batch, struct errbuf *err)
{
	int owned, rc;

	db_lock(db);
	if ((rc = db_txn_begin_synced(db, &owned, err))) {
		db_unlock(db);
		return rc;
	}
	for (struct db_issue_req *r = batch; r; r = r->next) {
		int changes = sqlite3_total_changes(db->sq);

		errbuf_clear(&r->err);
		r->rc = issue_one_locked(db, r);
		if (r->rc != ST_OK &&
		    (sqlite3_total_changes(db->sq) != changes || sqlite3_get_autocommit(db->sq))) {
			rc = r->rc;
			break;
		}
	}
	rc = db_txn_end_synced(db, owned, rc, err);
	db_unlock(db);
	return rc;
}

/* db_int.h */
void db_issue_commit_ended_locked(struct db *db)
{
	db->issue_committing = 0;
	if (db->issue_queue)
		pthread_cond_signal(&db->issue_queue->cv);
}

int db_cert_issued(struct db *db, const char *serial_hex, int64_t unit_id,
		   const char *unique_id, const char *pubkey_hash,
		   const uint8_t *der, size_t der_len, struct errbuf *err)
{
	struct db_issue_req req;
	uint8_t hash[32];
	int in_txn;

	if (!ids_serial_valid(serial_hex))
		return errbuf_set(err, ST_EINVAL, "certificate serial must be lower-case hex without leading zeros");
	if (!pubkey_hash || hex_decode_lower(pubkey_hash, strlen(pubkey_hash), hash, 32))
		return errbuf_set(err, ST_EINVAL, "public key hash must be 64 lower-case hex digits");
	if (!unique_id || !*unique_id)
		return errbuf_set(err, ST_EINVAL, "certificate %s: no unique id", serial_hex);
	if (!der || !der_len || der_len > 64 * 1024)
		return errbuf_set(err, ST_EINVAL, "certificate %s: DER missing or too long", serial_hex);
	/* Durable before the board sees it: our own commit, never a caller's
	 * (under the lock, in_txn is set only by this thread's db_begin). */
	db_lock(db);
	in_txn = db->in_txn;
	db_unlock(db);
	if (in_txn)
		return errbuf_set(err, ST_ESTATE,
				  "certificate %s: db_cert_issued must commit on its own, not inside a transaction",
				  serial_hex);

	memset(&req, 0, sizeof(req));
	req.serial_hex = serial_hex;
	req.unit_id = unit_id;
	req.unique_id = unique_id;
	req.pubkey_hash = pubkey_hash;
	req.der = der;
	req.der_len = der_len;

	pthread_cond_init(&req.cv, NULL);

	/* Each caller sleeps on its own condition and is woken alone: when its
	 * record's sync is done, or when it heads the queue as a batch's commit
	 * ends (to commit the next batch).  A condition shared by all woke every
	 * waiting bay for each of those, most of them to sleep again: with 16
	 * bays issuing that was ~9 context switches per certificate. */
	pthread_mutex_lock(&db->issue_mu);
	if (!db->issue_tail)   /* the queue starts empty (calloc'd handle) */
		db->issue_tail = &db->issue_queue;
	*db->issue_tail = &req;
	db->issue_tail = &req.next;
	db->issue_queued++;
	db->issue_callers++;
	while (!req.done) {
		struct db_issue_req *batch;
		struct errbuf berr;
		int rc, synced_any = 0;

		/* a batch is committing, or ours was taken and waits for its sync */
		if (db->issue_committing || !db->issue_queue) {
			pthread_cond_wait(&req.cv, &db->issue_mu);
			continue;
		}
		/* many callers: the records queued during the sync in flight share
		 * the next transaction (the queue is held, arrivals wait) */
		if (db->issue_callers > GROUP_WAIT_CALLERS) {
			db->issue_committing = 1;
			pthread_mutex_unlock(&db->issue_mu);
			db_wal_sync_idle_wait(db);
			pthread_mutex_lock(&db->issue_mu);
		}
		/* this caller commits every record queued so far (its own among
		 * them, unless another batch took it: then it helps the next) */
		batch = db->issue_queue;
		db->issue_queue = NULL;
		db->issue_tail = &db->issue_queue;
		db->issue_queued = 0;
		db->issue_committing = 1;
		pthread_mutex_unlock(&db->issue_mu);

		errbuf_clear(&berr);
		if (batch->next && commit_batch(db, batch, &berr) == ST_OK) {
			for (struct db_issue_req *r = batch; r; r = r->next)
				synced_any |= r->rc == ST_OK;
		} else {
			commit_each(db, batch, &synced_any);
		}

		/* the next batch's first caller takes over (a caller arriving
		 * meanwhile may be first); with many callers it waits for the sync
		 * below before it commits, with one or two it commits meanwhile */
		pthread_mutex_lock(&db->issue_mu);
		db_issue_commit_ended_locked(db);
		pthread_mutex_unlock(&db->issue_mu);

		/* on disk before any of these certificates leaves for its board */
		rc = synced_any ? db_wal_sync(db, &berr) : ST_OK;

		pthread_mutex_lock(&db->issue_mu);
		for (struct db_issue_req *r = batch, *next; r; r = next) {
			next = r->next;
			if (r->rc == ST_OK && rc != ST_OK) {
				r->rc = rc;
				r->err = berr;
			}
			r->done = 1;   /* r may be gone once the lock is released */
			if (r != &req)
				pthread_cond_signal(&r->cv);
		}
	}
	db->issue_callers--;
	pthread_mutex_unlock(&db->issue_mu);
	pthread_cond_destroy(&req.cv);
	if (req.rc != ST_OK && err)
		*err = req.err;
	return req.rc;
}
