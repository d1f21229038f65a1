/*
 * pl_ledger: the line's ledger adapter and the chain's sync thread (see
 * pl_ledger.h for the contract, docs/factory.md for the write-ahead order).
 */
#include "app/pl_ledger.h"

#include "core/clock.h"
#include "core/event.h"
#include "db/db.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define PENDING_MAX 256

struct pending_done {
	char uid[LEDGER_ID_LEN];
	int64_t unit_id;
	char serial[LEDGER_ID_LEN];
	int passed;
};

struct pl_ledger {
	struct db *db;
	struct ev_bus *bus;
	int hold_ttl_s;
	pthread_mutex_t claim_mu;        /* the claims' connection */
	struct ledger *claims, *sync;
	pthread_mutex_t mu;              /* everything below */
	pthread_cond_t cv;
	pthread_t thread;
	int started, stop, kicked;
	int down;                        /* as the header was last told */
	int halted;                      /* the journal and the ledger disagree */
	struct pending_done pending[PENDING_MAX];
	int npending;
	unsigned seed;
};

static void set_state(struct pl_ledger *g, int down, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* EV_LEDGER_STATE on a change only: a dead server does not flood the log. */
static void set_state(struct pl_ledger *g, int down, const char *fmt, ...)
{
	struct ev_event ev;
	va_list ap;
	int changed;

	pthread_mutex_lock(&g->mu);
	changed = g->down != down;
	g->down = down;
	pthread_mutex_unlock(&g->mu);
	if (!changed || !g->bus)
		return;
	memset(&ev, 0, sizeof(ev));
	ev.kind = EV_LEDGER_STATE;
	ev.bay_index = -1;
	ev.outcome = down ? EV_OUT_FAIL : EV_OUT_OK;
	ev.reason_code = down ? ST_R_LEDGER_UNREACHABLE : ST_R_NONE;
	va_start(ap, fmt);
	vsnprintf(ev.reason, sizeof(ev.reason), fmt, ap);
	va_end(ap);
	ev_emit(g->bus, &ev);
}

static void kick(struct pl_ledger *g)
{
	pthread_mutex_lock(&g->mu);
	g->kicked = 1;
	pthread_cond_broadcast(&g->cv);
	pthread_mutex_unlock(&g->mu);
}

/* ---- the line's operations ------------------------------------------------ */

static void note_unreachable(struct pl_ledger *g, const struct errbuf *err)
{
	if (err->reason == ST_R_LEDGER_UNREACHABLE)
		set_state(g, 1, "%s (reconnecting)", err->msg);
}

static int op_allowlisted(void *ctx, const char *lot, const char *unique_id, struct errbuf *err)
{
	struct pl_ledger *g = ctx;
	int rc;

	pthread_mutex_lock(&g->claim_mu);
	rc = ledger_allowlist_contains(g->claims, lot, unique_id, err);
	pthread_mutex_unlock(&g->claim_mu);
	if (rc && rc != ST_ENOTFOUND)
		note_unreachable(g, err);
	return rc;
}

int pl_ledger_lot_count(struct pl_ledger *g, const char *lot, int64_t *count, struct errbuf *err)
{
	int rc;

	pthread_mutex_lock(&g->claim_mu);
	rc = ledger_allowlist_count(g->claims, lot, count, err);
	pthread_mutex_unlock(&g->claim_mu);
	return rc;
}

int pl_ledger_reserve_serials(void *ctx, const char *const *serials, size_t n,
			      struct errbuf *err)
{
	struct pl_ledger *g = ctx;
	int rc;

	pthread_mutex_lock(&g->claim_mu);
	rc = ledger_reserve_serials(g->claims, serials, n, err);
	pthread_mutex_unlock(&g->claim_mu);
	if (rc && rc != ST_EEXIST)
		note_unreachable(g, err);
	return rc;
}

static int op_hold(void *ctx, const char *unique_id, int64_t unit_id, struct errbuf *err)
{
	struct pl_ledger *g = ctx;
	char other[LEDGER_ID_LEN];
	int rc;

	pthread_mutex_lock(&g->claim_mu);
	rc = ledger_hold(g->claims, unique_id, unit_id, g->hold_ttl_s, other, err);
	pthread_mutex_unlock(&g->claim_mu);
	if (rc)
		note_unreachable(g, err);
	return rc;
}

static int op_claim(void *ctx, const char *unique_id, const char *lot, const char *pubkey_hash,
		    int64_t unit_id, int rework, struct errbuf *err)
{
	struct pl_ledger *g = ctx;
	char other[LEDGER_ID_LEN];
	int rc;

	pthread_mutex_lock(&g->claim_mu);
	rc = ledger_claim(g->claims, unique_id, lot, pubkey_hash, unit_id, rework, other, err);
	pthread_mutex_unlock(&g->claim_mu);
	if (rc)
		note_unreachable(g, err);
	return rc;
}

static void queue_done(struct pl_ledger *g, const char *uid, int64_t unit_id, int passed,
		       const char *serial)
{
	int full;

	pthread_mutex_lock(&g->mu);
	full = g->npending == PENDING_MAX;
	if (!full) {
		struct pending_done *p = &g->pending[g->npending++];

		snprintf(p->uid, sizeof(p->uid), "%s", uid);
		p->unit_id = unit_id;
		snprintf(p->serial, sizeof(p->serial), "%s", serial ? serial : "");
		p->passed = passed;
	}
	pthread_mutex_unlock(&g->mu);
	/* the claim stays as it was (this station's, `claimed`): the safe side,
	 * but an engineer must know which one */
	if (full && g->bus)
		ev_emitf(g->bus, EV_LOG, -1, "", uid, EV_STAGE_NONE, EV_OUT_NONE,
			 "ledger: %d outcomes wait for the ledger already; the claim of %s stays"
			 " open (%s)", PENDING_MAX, uid, passed ? "passed" : "not passed");
}

static void op_done(void *ctx, const char *unique_id, int64_t unit_id, int passed,
		    const char *serial)
{
	struct pl_ledger *g = ctx;
	struct errbuf e;
	int rc;

	pthread_mutex_lock(&g->claim_mu);
	rc = ledger_done(g->claims, unique_id, unit_id, passed, serial, &e);
	pthread_mutex_unlock(&g->claim_mu);
	if (rc) {
		note_unreachable(g, &e);
		queue_done(g, unique_id, unit_id, passed, serial);
	}
	kick(g);   /* the unit's events go to the ledger now */
}

void pl_ledger_ops(struct pl_ledger *g, struct pl_ledger_ops *ops)
{
	ops->allowlisted = op_allowlisted;
	ops->hold = op_hold;
	ops->claim = op_claim;
	ops->done = op_done;
	ops->ctx = g;
}

/* The queued `done`s, in order, until one fails. */
static int flush_pending(struct pl_ledger *g, struct errbuf *err)
{
	for (;;) {
		struct pending_done p;
		int rc;

		pthread_mutex_lock(&g->mu);
		if (!g->npending) {
			pthread_mutex_unlock(&g->mu);
			return ST_OK;
		}
		p = g->pending[0];
		pthread_mutex_unlock(&g->mu);
		pthread_mutex_lock(&g->claim_mu);
		rc = ledger_done(g->claims, p.uid, p.unit_id, p.passed, p.serial, err);
		pthread_mutex_unlock(&g->claim_mu);
		if (rc)
			return rc;
		pthread_mutex_lock(&g->mu);
		memmove(&g->pending[0], &g->pending[1], (size_t)(g->npending - 1) * sizeof(p));
		g->npending--;
		pthread_mutex_unlock(&g->mu);
	}
}

/* ---- the chain's push ---------------------------------------------------- */

struct batch {
	struct ledger_event ev[PL_LEDGER_BATCH];
	char *strs[PL_LEDGER_BATCH];     /* one allocation per event */
	size_t n;
	char first_hash[65];             /* check mode: the one event's hash */
};

static int collect(const struct db_chain_event *e, void *ctx)
{
	struct batch *b = ctx;
	const char *f[6] = { e->ts, e->kind, e->actor, e->detail, e->prev_hash, e->hash };
	size_t len[6], total = 0;
	char *p;

	for (int i = 0; i < 6; i++)
		total += (len[i] = strlen(f[i] ? f[i] : "")) + 1;
	if (!(p = malloc(total)))
		return 1;
	b->strs[b->n] = p;
	b->ev[b->n].seq = e->seq;
	for (int i = 0; i < 6; i++) {
		memcpy(p, f[i] ? f[i] : "", len[i] + 1);
		switch (i) {
		case 0: b->ev[b->n].ts = p; break;
		case 1: b->ev[b->n].kind = p; break;
		case 2: b->ev[b->n].actor = p; break;
		case 3: b->ev[b->n].detail = p; break;
		case 4: b->ev[b->n].prev_hash = p; break;
		default: b->ev[b->n].hash = p; break;
		}
		p += len[i] + 1;
	}
	b->n++;
	return 0;
}

static void batch_free(struct batch *b)
{
	for (size_t i = 0; i < b->n; i++)
		free(b->strs[i]);
	b->n = 0;
}

/* One batch: the journal's events after the ledger's head.  *more when a
 * full batch went (there may be more). */
static int push_batch(struct pl_ledger *g, struct batch *b, int *more, int64_t *pushed,
		      struct errbuf *err)
{
	int64_t hseq, lseq;
	char hhash[65];
	uint8_t lhash[32];
	int rc;

	*more = 0;
	if ((rc = ledger_chain_head(g->sync, &hseq, hhash, err)) ||
	    (rc = db_audit_head(g->db, &lseq, lhash, err)))
		return rc;
	if (hseq > lseq)
		return errbuf_setr(err, ST_ETAMPER, ST_ORIGIN_DB, ST_R_TAMPER,
				   "the ledger holds %lld events of this station, its journal %lld:"
				   " the journal was rolled back or replaced", (long long)hseq,
				   (long long)lseq);
	if (hseq > 0) {
		/* the ledger's head must be this journal's event, or the two forked */
		b->n = 0;
		if ((rc = db_audit_since(g->db, hseq - 1, 1, collect, b, err)))
			return rc;
		rc = b->n == 1 && !strcmp(b->ev[0].hash, hhash) ? ST_OK : ST_ETAMPER;
		batch_free(b);
		if (rc)
			return errbuf_setr(err, ST_ETAMPER, ST_ORIGIN_DB, ST_R_TAMPER,
					   "event %lld differs between the journal and the ledger",
					   (long long)hseq);
	}
	b->n = 0;
	rc = db_audit_since(g->db, hseq, PL_LEDGER_BATCH, collect, b, err);
	if (rc == ST_OK)
		rc = b->n || hseq == lseq ? ledger_chain_push(g->sync, b->ev, b->n, lseq, err) : ST_OK;
	if (rc == ST_OK) {
		*more = b->n == PL_LEDGER_BATCH;
		*pushed += (int64_t)b->n;
	}
	batch_free(b);
	return rc;
}

static int sync_all(struct pl_ledger *g, int64_t *pushed, struct errbuf *err)
{
	struct batch *b = calloc(1, sizeof(*b));
	int more = 1, rc = ST_OK, stop = 0;

	if (!b)
		return errbuf_set(err, ST_ENOMEM, "out of memory");
	while (more && !stop && rc == ST_OK) {
		rc = push_batch(g, b, &more, pushed, err);
		pthread_mutex_lock(&g->mu);
		stop = g->stop && g->started;
		pthread_mutex_unlock(&g->mu);
	}
	free(b);
	return rc;
}

int pl_ledger_sync_now(struct pl_ledger *g, int64_t *pushed, struct errbuf *err)
{
	*pushed = 0;
	return sync_all(g, pushed, err);
}

static void *sync_main(void *arg)
{
	struct pl_ledger *g = arg;
	int backoff_ms = 0;

	for (;;) {
		struct errbuf e;
		struct timespec until;
		int64_t pushed = 0, wait_ms = PL_LEDGER_PERIOD_MS;
		int rc, halted;

		pthread_mutex_lock(&g->mu);
		halted = g->halted;
		pthread_mutex_unlock(&g->mu);
		rc = halted ? ST_OK : sync_all(g, &pushed, &e);
		if (rc == ST_OK)
			rc = flush_pending(g, &e);
		if (rc == ST_OK) {
			if (backoff_ms)
				set_state(g, 0, "ledger reachable again: the chain caught up");
			backoff_ms = 0;
			set_state(g, 0, "ledger reachable");
		} else if (rc == ST_ETAMPER) {
			pthread_mutex_lock(&g->mu);
			g->halted = 1;
			pthread_mutex_unlock(&g->mu);
			if (g->bus)
				ev_emitf(g->bus, EV_ALERT, -1, "", "", EV_STAGE_NONE, EV_OUT_FAIL,
					 "ledger push stopped: %s", e.msg);
		} else {
			note_unreachable(g, &e);
			if (e.reason != ST_R_LEDGER_UNREACHABLE)
				set_state(g, 1, "%s", e.msg);
			backoff_ms = backoff_ms ? backoff_ms * 2 : 100;
			if (backoff_ms > 2000)
				backoff_ms = 2000;
			wait_ms = backoff_ms + (int64_t)(rand_r(&g->seed) % (unsigned)(backoff_ms / 2 + 1));
		}
		clock_gettime(CLOCK_MONOTONIC, &until);
		until.tv_sec += wait_ms / 1000;
		until.tv_nsec += (wait_ms % 1000) * 1000000L;
		if (until.tv_nsec >= 1000000000L) {
			until.tv_sec++;
			until.tv_nsec -= 1000000000L;
		}
		pthread_mutex_lock(&g->mu);
		while (!g->stop && !g->kicked &&
		       pthread_cond_timedwait(&g->cv, &g->mu, &until) != ETIMEDOUT)
			;
		g->kicked = 0;
		if (g->stop) {
			pthread_mutex_unlock(&g->mu);
			break;
		}
		pthread_mutex_unlock(&g->mu);
	}
	return NULL;
}

/* A line does not start without the ledger, but a busy server (several
 * stations starting at once) gets a few tries, each bounded by the connect
 * timeout: a refused login or a wrong schema is final at once. */
#define START_ATTEMPTS 3
static int open_at_start(const struct ledger_config *cfg, struct ledger **l, struct errbuf *err)
{
	int rc = ST_OK;

	for (int i = 0; i < START_ATTEMPTS; i++) {
		if (i)
			clock_sleep_ms(250);
		rc = ledger_open(cfg, 1, l, err);
		if (rc != ST_EIO || err->reason != ST_R_LEDGER_UNREACHABLE)
			break;
	}
	return rc;
}

int pl_ledger_open(const struct ledger_config *cfg, struct db *db, struct ev_bus *bus,
		   int hold_ttl_s, struct pl_ledger **out, struct errbuf *err)
{
	struct pl_ledger *g = calloc(1, sizeof(*g));
	pthread_condattr_t ca;
	int rc;

	*out = NULL;
	if (!g)
		return errbuf_set(err, ST_ENOMEM, "out of memory");
	g->db = db;
	g->bus = bus;
	g->hold_ttl_s = hold_ttl_s > 0 ? hold_ttl_s : 600;
	g->seed = (unsigned)clock_monotonic_ms() ^ (unsigned)(uintptr_t)g;
	pthread_mutex_init(&g->claim_mu, NULL);
	pthread_mutex_init(&g->mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&g->cv, &ca);
	pthread_condattr_destroy(&ca);
	if ((rc = open_at_start(cfg, &g->claims, err)) ||
	    (rc = open_at_start(cfg, &g->sync, err))) {
		pl_ledger_close(g);
		return rc;
	}
	*out = g;
	return ST_OK;
}

struct reconcile {
	struct pl_ledger *g;
	struct errbuf *err;
	int committed, released;
};

/* A claim the ledger still holds open: its `done` was lost (the station
 * stopped or was killed while the ledger was away).  The journal decides, by
 * the board's current PASS rather than the claimed unit: an interrupted
 * rework leaves the earlier PASS standing, and the board must stay this
 * station's in the ledger. */
static int reconcile_one(const char *unique_id, int64_t unit_id, void *ctx)
{
	struct reconcile *c = ctx;
	char serial[65];
	int64_t pass_unit;
	int passed, rc;

	if ((rc = db_unit_pass_serial(c->g->db, unique_id, &passed, serial, &pass_unit, c->err)))
		return rc;
	/* the claimed unit is the PASS: commit it.  A rework's claim (another
	 * unit) that never reached its verdict: its done as a failure, which
	 * puts back the PASS the ledger kept beside it (ledger_done); a claim
	 * from before schema 3 kept none, and is committed with the PASS's
	 * serial as it was then. */
	if (passed && pass_unit != unit_id)
		rc = ledger_done_rework(c->g->claims, unique_id, unit_id, serial, c->err);
	else
		rc = ledger_done(c->g->claims, unique_id, unit_id, passed, passed ? serial : NULL,
				 c->err);
	if (rc)
		return rc;
	if (passed)
		c->committed++;
	else
		c->released++;
	return ST_OK;
}

int pl_ledger_start(struct pl_ledger *g, struct errbuf *err)
{
	struct reconcile c = { g, err, 0, 0 };
	int rc;

	if ((rc = ledger_release_holds(g->claims, err)) ||
	    (rc = ledger_open_claims(g->claims, reconcile_one, &c, err)))
		return rc;
	if ((c.committed || c.released) && g->bus)
		ev_emitf(g->bus, EV_LOG, -1, "", "", EV_STAGE_RECOVERY, EV_OUT_NONE,
			 "ledger: %d open claim(s) of this station settled from the journal:"
			 " %d committed, %d released", c.committed + c.released, c.committed,
			 c.released);
	if (pthread_create(&g->thread, NULL, sync_main, g))
		return errbuf_set(err, ST_EIO, "ledger: cannot start the sync thread");
	g->started = 1;
	return ST_OK;
}

void pl_ledger_close(struct pl_ledger *g)
{
	struct errbuf e;
	int64_t pushed = 0;

	if (!g)
		return;
	if (g->started) {
		pthread_mutex_lock(&g->mu);
		g->stop = 1;
		pthread_cond_broadcast(&g->cv);
		pthread_mutex_unlock(&g->mu);
		pthread_join(g->thread, NULL);
		g->started = 0;
		/* the last events (line-stop): one bounded try, else the next start */
		if (!g->halted && g->sync && !ledger_is_down(g->sync))
			(void)(sync_all(g, &pushed, &e) || flush_pending(g, &e));
	}
	ledger_close(g->claims);
	ledger_close(g->sync);
	pthread_cond_destroy(&g->cv);
	pthread_mutex_destroy(&g->mu);
	pthread_mutex_destroy(&g->claim_mu);
	free(g);
}
