/*
 * pipeline: the line's threads (detector + one worker per bay) and the state
 * machine one unit goes through.  See pipeline.h for the contract.
 *
 * Locking: line->lock guards the bay table, the counters and the clone registry;
 * it is never held while a board, the database or the CA is called, so a slow
 * board only ever stalls its own bay.  Events are emitted with or without it
 * (the bus has its own lock and sinks never call back into the line).
 */
#include "pipeline.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "db.h"

struct bay {
	struct pl_line *line;
	int      index;
	char     port[EV_BAY_LEN];     /* "" = tile not yet bound to a port */
	char     serial[EV_UID_LEN];   /* USB serial of the board present */
	uint32_t instance;             /* pl_present.instance of that board */
	int      present;              /* the detector sees a board there */
	int      pending;              /* a board arrived and waits for the worker */
	int      busy;                 /* the worker runs a unit */
	int      fails_in_row;
	int      held;
	char     uid[EV_UID_LEN];      /* id of the board in the bay (clone registry) */
	int      clone;                /* set by another bay that saw the same id */
	pthread_t thread;
	int      started;
};

struct pl_line {
	struct pl_config cfg;
	pthread_mutex_t lock;
	pthread_cond_t  cond;
	struct bay bays[PL_MAX_BAYS];
	pthread_t detector;
	int detector_started;
	int stop_threads;              /* workers and detector exit */
	int stop_intake;               /* no new unit starts */
	int stop_requested;            /* pl_line_wait returns */
	int paused;
	int64_t started_units;
	struct pl_counts counts;
};

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- one unit ------------------------------------------------------------ */

enum cert_state { CERT_NONE, CERT_RESERVED, CERT_ISSUED, CERT_COMMITTED };

struct unit_run {
	struct pl_line *line;
	struct bay *bay;
	const struct pl_config *cfg;
	const struct pl_board_ops *ops;
	void *h;
	struct db_unit u;
	int have_unit;
	int recorded;           /* the verdict is in the database already */
	enum ev_stage stage;
	enum cert_state cert;
	struct errbuf err;
	uint64_t last_progress;
	char serial[EV_UID_LEN];   /* USB serial: from the scan, then from open */
};

static void emit(struct unit_run *r, enum ev_kind kind, enum ev_outcome out,
		 const char *reason)
{
	struct ev_event ev;

	memset(&ev, 0, sizeof(ev));
	ev.kind = kind;
	ev.bay_index = r->bay->index;
	snprintf(ev.bay, sizeof(ev.bay), "%s", r->bay->port);
	snprintf(ev.unique_id, sizeof(ev.unique_id), "%s", r->u.unique_id);
	ev.stage = r->stage;
	ev.outcome = out;
	snprintf(ev.reason, sizeof(ev.reason), "%s", reason ? reason : "");
	ev.unit_id = r->u.id;
	ev_emit(r->cfg->bus, &ev);
}

/* The unit row records the stage from which a crash may leave a certificate
 * on the board (recovery says so; the row's stage is "identify" before it).  Other stages only emit events: every row update is an fsync under the
 * database's one lock, shared by all bays (docs/performance.md, "The line"). */
static int milestone(enum ev_stage s)
{
	return s == EV_STAGE_INJECT;
}

/* Enters a stage. */
static void stage(struct unit_run *r, enum ev_stage s)
{
	struct errbuf e;

	r->stage = s;
	snprintf(r->u.stage, sizeof(r->u.stage), "%s", ev_stage_name(s));
	emit(r, EV_STAGE_BEGIN, EV_OUT_NONE, NULL);
	if (r->have_unit && milestone(s) && db_unit_update(r->cfg->db, &r->u, &e) != ST_OK)
		emit(r, EV_LOG, EV_OUT_NONE, e.msg);
}

static void stage_ok(struct unit_run *r)
{
	emit(r, EV_STAGE_END, EV_OUT_OK, NULL);
}

static void progress(uint64_t done, uint64_t total, void *ctx)
{
	struct unit_run *r = ctx;
	struct ev_event ev;

	/* at most ~20 progress events per flash */
	if (done != total && total && done - r->last_progress < total / 20)
		return;
	r->last_progress = done;
	memset(&ev, 0, sizeof(ev));
	ev.kind = EV_PROGRESS;
	ev.bay_index = r->bay->index;
	snprintf(ev.bay, sizeof(ev.bay), "%s", r->bay->port);
	snprintf(ev.unique_id, sizeof(ev.unique_id), "%s", r->u.unique_id);
	ev.stage = r->stage;
	ev.done = done;
	ev.total = total;
	ev.unit_id = r->u.id;
	ev_emit(r->cfg->bus, &ev);
}

struct cert_list {
	int64_t unit_id;
	char (*serials)[65];
	size_t n, cap;
	int oom;
};

static int collect_unit_cert(const struct db_cert_row *c, void *ctx)
{
	struct cert_list *l = ctx;

	if (c->unit_id != l->unit_id || c->status == DB_CERT_REVOKED)
		return 0;
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 4;
		char (*n)[65] = realloc(l->serials, cap * sizeof(*n));

		if (!n) {
			l->oom = 1;
			return 1;
		}
		l->serials = n;
		l->cap = cap;
	}
	snprintf(l->serials[l->n++], 65, "%s", c->serial_hex);
	return 0;
}

/* Revokes every certificate of this unit that is not committed: the one it
 * was issued, and a serial a failed issue left reserved.  One that cannot be
 * revoked now stays issued and is revoked by recovery at the next start. */
static void revoke_unit_certs(struct unit_run *r, const char *why)
{
	const struct pl_ca_ops *ca = &r->cfg->ca;
	struct cert_list l;
	struct errbuf e;
	char msg[EV_REASON_LEN];

	memset(&l, 0, sizeof(l));
	l.unit_id = r->u.id;
	errbuf_clear(&e);
	if (db_cert_foreach(r->cfg->db, -1, collect_unit_cert, &l, &e) || l.oom) {
		snprintf(msg, sizeof(msg), "listing certificates of unit %lld failed: %s",
			 (long long)r->u.id, l.oom ? "out of memory" : e.msg);
		emit(r, EV_LOG, EV_OUT_NONE, msg);
	}
	for (size_t i = 0; i < l.n; i++) {
		errbuf_clear(&e);
		if (ca->revoke(ca->ctx, l.serials[i], why, &e))
			snprintf(msg, sizeof(msg), "revoking %s failed: %s", l.serials[i], e.msg);
		else
			snprintf(msg, sizeof(msg), "certificate %s revoked (not committed)",
				 l.serials[i]);
		emit(r, EV_LOG, EV_OUT_NONE, msg);
	}
	free(l.serials);
}

/* Ends the unit: revokes a certificate that will not be committed, records the
 * verdict, tells the world.  Returns the outcome for the bay's failure count. */
static enum ev_outcome finish(struct unit_run *r, enum db_unit_status st, const char *reason)
{
	enum ev_outcome out = st == DB_UNIT_PASS ? EV_OUT_PASS :
			      st == DB_UNIT_REJECT ? EV_OUT_REJECT : EV_OUT_FAIL;
	struct errbuf e;

	/* a board that failed before it was identified still gets its record */
	if (!r->have_unit && db_unit_begin(r->cfg->db, &r->u, &e) == ST_OK)
		r->have_unit = 1;
	if (r->cert == CERT_RESERVED || r->cert == CERT_ISSUED)
		revoke_unit_certs(r, st == DB_UNIT_REJECT ? "keyCompromise" : "cessationOfOperation");
	r->u.status = st;
	snprintf(r->u.reason, sizeof(r->u.reason), "%s", reason ? reason : "");
	r->u.finished_ms = now_ms();
	if (r->have_unit && !r->recorded && db_unit_finish(r->cfg->db, &r->u, &e) != ST_OK) {
		emit(r, EV_LOG, EV_OUT_NONE, e.msg);
		if (st == DB_UNIT_PASS)
			out = EV_OUT_FAIL;   /* not recorded: not a pass */
	}
	if (st != DB_UNIT_PASS)
		emit(r, EV_STAGE_END, out, reason);
	if (st == DB_UNIT_REJECT)
		emit(r, EV_ALERT, out, reason);
	emit(r, EV_UNIT_RESULT, out, reason);
	return out;
}

static enum ev_outcome fail_with(struct unit_run *r, enum db_unit_status st, int rc)
{
	char reason[EV_REASON_LEN];

	snprintf(reason, sizeof(reason), "%s: %s", st_rc_name(rc),
		 r->err.msg[0] ? r->err.msg : "failed");
	return finish(r, st, reason);
}

static int transient(int rc)
{
	return rc == ST_ETIMEOUT || rc == ST_EPROTO;
}

/* Runs an idempotent board call, once more after a transient fault. */
#define RETRY(r, rc, call)                                                  \
	do {                                                                \
		for (int attempt_ = 0;; attempt_++) {                       \
			errbuf_clear(&(r)->err);                            \
			(rc) = (call);                                      \
			if (!(rc) || attempt_ >= 1 || !transient(rc))       \
				break;                                      \
			emit((r), EV_LOG, EV_OUT_NONE, "transient fault, retrying"); \
		}                                                           \
	} while (0)

static int clone_flagged(struct unit_run *r)
{
	int c;

	pthread_mutex_lock(&r->line->lock);
	c = r->bay->clone;
	pthread_mutex_unlock(&r->line->lock);
	return c;
}

/* Registers the id in this bay; if another bay holds it, both are clones. */
static int clone_register(struct unit_run *r, const char *uid)
{
	struct pl_line *line = r->line;
	int clash = 0;

	pthread_mutex_lock(&line->lock);
	for (int i = 0; i < line->cfg.nbays; i++) {
		struct bay *b = &line->bays[i];

		if (b == r->bay || !b->present || strcmp(b->uid, uid))
			continue;
		b->clone = 1;
		clash = 1;
	}
	snprintf(r->bay->uid, sizeof(r->bay->uid), "%s", uid);
	if (clash)
		r->bay->clone = 1;
	pthread_mutex_unlock(&line->lock);
	return clash;
}

static enum ev_outcome run_unit(struct unit_run *r)
{
	const struct pl_config *cfg = r->cfg;
	const struct pl_ca_ops *ca = &cfg->ca;
	struct pl_board_info info;
	struct pl_csr_facts facts;
	uint8_t nonce[32], challenge[32];
	uint8_t *csr = NULL, *sig = NULL, *cert = NULL, *back = NULL;
	size_t csr_len = 0, sig_len = 0, cert_len = 0, back_len = 0;
	char san[PROFILE_SAN_MAX + 2 * EV_UID_LEN], reason[EV_REASON_LEN];
	enum ev_outcome out;
	int rc, found = 0;

	/* detect: the unit row exists before any work on the board */
	memset(&r->u, 0, sizeof(r->u));
	r->stage = EV_STAGE_DETECT;
	snprintf(r->u.unique_id, sizeof(r->u.unique_id), "%s",
		 pl_uid_valid(r->serial) ? r->serial : "");
	snprintf(r->u.lot, sizeof(r->u.lot), "%s", cfg->lot);
	snprintf(r->u.bay, sizeof(r->u.bay), "%s", r->bay->port);
	snprintf(r->u.operator_name, sizeof(r->u.operator_name), "%s", cfg->operator_name);
	snprintf(r->u.station_id, sizeof(r->u.station_id), "%s", cfg->station_id);
	snprintf(r->u.profile_hash, sizeof(r->u.profile_hash), "%s", cfg->profile->hash);
	snprintf(r->u.firmware_hash, sizeof(r->u.firmware_hash), "%s", cfg->profile->firmware_sha256);
	snprintf(r->u.stage, sizeof(r->u.stage), "%s", ev_stage_name(EV_STAGE_DETECT));
	r->u.status = DB_UNIT_IN_PROGRESS;
	r->u.started_ms = now_ms();
	emit(r, EV_STAGE_BEGIN, EV_OUT_NONE, NULL);
	errbuf_clear(&r->err);
	{
		char serial[EV_UID_LEN] = "";

		rc = cfg->transport.open(cfg->transport.ctx, r->bay->port, &r->ops, &r->h,
					 serial, &r->err);
		serial[sizeof(serial) - 1] = '\0';
		if (!rc && serial[0])
			snprintf(r->serial, sizeof(r->serial), "%s", serial);
		if (!rc && pl_uid_valid(serial))
			snprintf(r->u.unique_id, sizeof(r->u.unique_id), "%s", serial);
	}
	if (rc) {
		r->ops = NULL;
		return fail_with(r, DB_UNIT_FAIL, rc);
	}
	stage_ok(r);

	/* identify: the id the board reports must be well-formed and match USB;
	 * the unit row exists from here on, before the board is changed */
	stage(r, EV_STAGE_IDENTIFY);
	RETRY(r, rc, r->ops->info(r->h, &info, &r->err));
	if (rc)
		return fail_with(r, DB_UNIT_FAIL, rc);
	info.unique_id[sizeof(info.unique_id) - 1] = '\0';
	info.usb_serial[sizeof(info.usb_serial) - 1] = '\0';
	if (!pl_uid_valid(info.unique_id)) {
		errbuf_set(&r->err, ST_EPOLICY, "board reports a malformed unique id");
		return fail_with(r, DB_UNIT_REJECT, ST_EPOLICY);
	}
	snprintf(r->u.unique_id, sizeof(r->u.unique_id), "%s", info.unique_id);
	if ((rc = db_unit_begin(cfg->db, &r->u, &r->err)))
		return fail_with(r, DB_UNIT_FAIL, rc);
	r->have_unit = 1;
	{
		const char *usb = info.usb_serial[0] ? info.usb_serial : r->serial;

		if (strcmp(info.unique_id, usb)) {
			errbuf_set(&r->err, ST_EPOLICY, "board id %s differs from its USB serial '%s'",
				   info.unique_id, usb);
			return fail_with(r, DB_UNIT_REJECT, ST_EPOLICY);
		}
	}
	if (clone_register(r, info.unique_id)) {
		errbuf_set(&r->err, ST_EPOLICY, "clone: id %s is on two bays at once", info.unique_id);
		return fail_with(r, DB_UNIT_REJECT, ST_EPOLICY);
	}
	stage_ok(r);

	/* allowlist + duplicate check */
	stage(r, EV_STAGE_ALLOWLIST);
	rc = db_allowlist_contains(cfg->db, cfg->lot, r->u.unique_id, &r->err);
	if (rc == ST_ENOTFOUND) {
		errbuf_set(&r->err, ST_EPOLICY, "id %s is not on lot %s's allowlist",
			   r->u.unique_id, cfg->lot);
		return fail_with(r, DB_UNIT_REJECT, ST_EPOLICY);
	}
	if (rc)
		return fail_with(r, DB_UNIT_FAIL, rc);
	if ((rc = db_unit_provisioned(cfg->db, r->u.unique_id, &found, &r->err)))
		return fail_with(r, DB_UNIT_FAIL, rc);
	if (found) {
		errbuf_set(&r->err, ST_EPOLICY, "id %s is already provisioned", r->u.unique_id);
		return fail_with(r, DB_UNIT_REJECT, ST_EPOLICY);
	}
	if (info.locked) {
		errbuf_set(&r->err, ST_EPOLICY, "board is locked but has no committed unit (needs rework)");
		return fail_with(r, DB_UNIT_REJECT, ST_EPOLICY);
	}
	stage_ok(r);

	/* flash, then verify the image the board reports */
	stage(r, EV_STAGE_FLASH);
	r->last_progress = 0;
	RETRY(r, rc, r->ops->flash(r->h, cfg->image, cfg->image_len, progress, r, &r->err));
	if (rc)
		return fail_with(r, DB_UNIT_FAIL, rc);
	stage_ok(r);
	stage(r, EV_STAGE_VERIFY_IMAGE);
	RETRY(r, rc, r->ops->info(r->h, &info, &r->err));
	if (rc)
		return fail_with(r, DB_UNIT_FAIL, rc);
	if (strcasecmp(info.firmware_sha256, cfg->profile->firmware_sha256)) {
		errbuf_set(&r->err, ST_EIO, "image on the board (%.16s...) is not the profile's",
			   info.firmware_sha256[0] ? info.firmware_sha256 : "none");
		return fail_with(r, DB_UNIT_FAIL, ST_EIO);
	}
	stage_ok(r);

	/* keygen on the board, CSR bound to a fresh nonce */
	stage(r, EV_STAGE_KEYGEN);
	RETRY(r, rc, r->ops->keygen(r->h, cfg->profile->key_type, &r->err));
	if (rc)
		return fail_with(r, DB_UNIT_FAIL, rc);
	stage_ok(r);
	stage(r, EV_STAGE_CSR);
	if (RAND_bytes(nonce, sizeof(nonce)) != 1) {
		errbuf_set(&r->err, ST_ECRYPTO, "no randomness for the nonce");
		return fail_with(r, DB_UNIT_FAIL, ST_ECRYPTO);
	}
	RETRY(r, rc, (free(csr), csr = NULL, r->ops->get_csr(r->h, nonce, &csr, &csr_len, &r->err)));
	if (rc)
		goto fail;
	stage_ok(r);

	stage(r, EV_STAGE_CSR_POLICY);
	if ((rc = pl_csr_check(csr, csr_len, r->u.unique_id, nonce, cfg->profile->key_type,
			       &facts, &r->err))) {
		free(csr);
		return fail_with(r, DB_UNIT_REJECT, rc);
	}
	snprintf(r->u.pubkey_hash, sizeof(r->u.pubkey_hash), "%s", facts.pubkey_hash);
	if ((rc = db_pubkey_seen(cfg->db, facts.pubkey_hash, &found, &r->err)))
		goto fail;
	if (found) {
		free(csr);
		errbuf_set(&r->err, ST_EPOLICY, "public key %.16s... was seen before (cloned key)",
			   facts.pubkey_hash);
		return fail_with(r, DB_UNIT_REJECT, ST_EPOLICY);
	}
	stage_ok(r);

	/* attestation: the manufacturer vouches for this board and this CSR */
	stage(r, EV_STAGE_ATTEST);
	RETRY(r, rc, (free(sig), sig = NULL,
		      r->ops->attest(r->h, nonce, facts.csr_sha256, &sig, &sig_len, &r->err)));
	if (rc)
		goto fail;
	rc = pl_attest_check(info.attest_cert, info.attest_cert_len, cfg->mfr_ca_der,
			     cfg->mfr_ca_len, r->u.unique_id, nonce, facts.csr_sha256,
			     sig, sig_len, &r->err);
	free(sig);
	sig = NULL;
	if (rc) {
		free(csr);
		return fail_with(r, rc == ST_EPOLICY ? DB_UNIT_REJECT : DB_UNIT_FAIL, rc);
	}
	stage_ok(r);

	/* reserve (write-ahead), sign */
	stage(r, EV_STAGE_RESERVE);
	if (clone_flagged(r)) {
		free(csr);
		errbuf_set(&r->err, ST_EPOLICY, "clone: id %s appeared on another bay", r->u.unique_id);
		return fail_with(r, DB_UNIT_REJECT, ST_EPOLICY);
	}
	r->cert = CERT_RESERVED;   /* from here a failure revokes what was issued */
	stage_ok(r);
	stage(r, EV_STAGE_SIGN);
	if ((rc = profile_san_for(cfg->profile, r->u.unique_id, san, sizeof(san), &r->err)))
		goto fail;
	errbuf_clear(&r->err);
	rc = ca->issue(ca->ctx, r->u.id, r->u.unique_id, facts.pubkey_hash, csr, csr_len,
		       nonce, san, cfg->profile->validity_days, r->u.cert_serial, &cert,
		       &cert_len, &r->err);
	free(csr);
	csr = NULL;
	if (rc)
		goto fail;
	r->cert = CERT_ISSUED;   /* the serial reaches the unit row with the verdict */
	stage_ok(r);

	/* inject, read back, proof of possession: not retried (not idempotent
	 * from the CA's point of view); any failure revokes */
	stage(r, EV_STAGE_INJECT);
	errbuf_clear(&r->err);
	if ((rc = r->ops->write_cert(r->h, cert, cert_len, &r->err)))
		goto fail;
	stage_ok(r);
	stage(r, EV_STAGE_PROVE);
	RETRY(r, rc, (free(back), back = NULL, r->ops->read_cert(r->h, &back, &back_len, &r->err)));
	if (rc)
		goto fail;
	if (RAND_bytes(challenge, sizeof(challenge)) != 1) {
		rc = errbuf_set(&r->err, ST_ECRYPTO, "no randomness for the challenge");
		goto fail;
	}
	errbuf_clear(&r->err);
	if ((rc = r->ops->prove(r->h, challenge, &sig, &sig_len, &r->err)))
		goto fail;
	rc = pl_prove_check(cert, cert_len, back, back_len, challenge, sig, sig_len, &r->err);
	free(sig);
	free(back);
	sig = back = NULL;
	if (rc)
		goto fail;
	stage_ok(r);

	stage(r, EV_STAGE_LOCK);
	errbuf_clear(&r->err);
	if ((rc = r->ops->lock(r->h, &r->err)))
		goto fail;
	stage_ok(r);

	/* commit: the certificate becomes injected and the unit passes in one
	 * transaction (one fsync; no instant where one is recorded without the
	 * other).  db_begin holds the database for this thread until commit. */
	stage(r, EV_STAGE_COMMIT);
	free(cert);
	cert = NULL;
	if (clone_flagged(r)) {
		errbuf_set(&r->err, ST_EPOLICY, "clone: id %s appeared on another bay", r->u.unique_id);
		return fail_with(r, DB_UNIT_REJECT, ST_EPOLICY);
	}
	snprintf(reason, sizeof(reason), "certificate %s", r->u.cert_serial);
	r->u.status = DB_UNIT_PASS;
	snprintf(r->u.reason, sizeof(r->u.reason), "%s", reason);
	r->u.finished_ms = now_ms();
	if ((rc = db_begin(cfg->db, &r->err)))
		goto fail;
	if ((rc = ca->injected(ca->ctx, r->u.cert_serial, &r->err)) ||
	    (rc = db_unit_finish(cfg->db, &r->u, &r->err)) ||
	    (rc = db_commit(cfg->db, &r->err))) {
		db_rollback(cfg->db);
		r->u.status = DB_UNIT_IN_PROGRESS;
		goto fail;
	}
	r->cert = CERT_COMMITTED;
	r->recorded = 1;
	emit(r, EV_STAGE_END, EV_OUT_OK, NULL);
	out = finish(r, DB_UNIT_PASS, reason);
	return out;

fail:
	free(csr);
	free(sig);
	free(cert);
	free(back);
	return fail_with(r, DB_UNIT_FAIL, rc);
}

/* ---- threads -------------------------------------------------------------- */

static void *bay_main(void *arg)
{
	struct bay *bay = arg;
	struct pl_line *line = bay->line;

	pthread_mutex_lock(&line->lock);
	for (;;) {
		struct unit_run r;
		enum ev_outcome out;

		while (!line->stop_threads &&
		       !(bay->pending && !bay->held && !line->paused && !line->stop_intake &&
			 (!line->cfg.max_units || line->started_units < line->cfg.max_units)))
			pthread_cond_wait(&line->cond, &line->lock);
		if (line->stop_threads)
			break;
		bay->pending = 0;
		bay->busy = 1;
		memset(&r, 0, sizeof(r));
		snprintf(r.serial, sizeof(r.serial), "%s", bay->serial);
		bay->clone = 0;
		line->started_units++;
		line->counts.in_flight++;
		pthread_mutex_unlock(&line->lock);

		r.line = line;
		r.bay = bay;
		r.cfg = &line->cfg;
		out = run_unit(&r);
		if (r.ops)
			r.ops->close(r.h);

		pthread_mutex_lock(&line->lock);
		bay->busy = 0;
		line->counts.in_flight--;
		if (out == EV_OUT_PASS) {
			line->counts.pass++;
			bay->fails_in_row = 0;
		} else if (out == EV_OUT_REJECT) {
			line->counts.reject++;
		} else {
			line->counts.fail++;
			if (++bay->fails_in_row >= line->cfg.profile->max_failures_in_row && !bay->held) {
				bay->held = 1;
				ev_emitf(line->cfg.bus, EV_BAY_HELD, bay->index, bay->port, "",
					 EV_STAGE_NONE, EV_OUT_NONE,
					 "%d failures in a row: check the fixture, then clear the bay",
					 bay->fails_in_row);
			}
		}
		if (line->cfg.max_units &&
		    line->counts.pass + line->counts.fail + line->counts.reject >= line->cfg.max_units) {
			line->stop_intake = 1;
			line->stop_requested = 1;
		}
		pthread_cond_broadcast(&line->cond);
	}
	pthread_mutex_unlock(&line->lock);
	return NULL;
}

static struct bay *bay_for_port(struct pl_line *line, const char *port)
{
	struct bay *free_tile = NULL;

	for (int i = 0; i < line->cfg.nbays; i++) {
		if (!strcmp(line->bays[i].port, port))
			return &line->bays[i];
		if (!free_tile && !line->bays[i].port[0])
			free_tile = &line->bays[i];
	}
	if (free_tile)
		snprintf(free_tile->port, sizeof(free_tile->port), "%s", port);
	return free_tile;
}

static void *detector_main(void *arg)
{
	struct pl_line *line = arg;
	struct pl_present *seen = calloc(PL_MAX_BAYS * 2, sizeof(*seen));
	int interval = line->cfg.scan_interval_ms > 0 ? line->cfg.scan_interval_ms : 100;
	int warned_full = 0, warned_scan = 0;

	if (!seen) {
		ev_emitf(line->cfg.bus, EV_LOG, -1, "", "", EV_STAGE_DETECT, EV_OUT_FAIL,
			 "detector: out of memory");
		return NULL;
	}
	pthread_mutex_lock(&line->lock);
	while (!line->stop_threads) {
		struct errbuf e;
		struct timespec until;
		int n = 0, rc;

		pthread_mutex_unlock(&line->lock);
		errbuf_clear(&e);
		rc = line->cfg.transport.scan(line->cfg.transport.ctx, seen, PL_MAX_BAYS * 2, &n, &e);
		pthread_mutex_lock(&line->lock);
		if (rc) {
			if (!warned_scan++)
				ev_emitf(line->cfg.bus, EV_LOG, -1, "", "", EV_STAGE_DETECT,
					 EV_OUT_FAIL, "scan: %s", e.msg);
			n = 0;
		}
		/* arrivals */
		for (int i = 0; i < n; i++) {
			struct bay *b = bay_for_port(line, seen[i].port);

			if (!b) {
				if (!warned_full++)
					ev_emitf(line->cfg.bus, EV_LOG, -1, seen[i].port, "",
						 EV_STAGE_DETECT, EV_OUT_NONE,
						 "more boards than bays (%d): %s ignored",
						 line->cfg.nbays, seen[i].port);
				continue;
			}
			if (b->present && b->instance == seen[i].instance)
				continue;
			if (b->present) {
				/* swapped between two scans: the old board left */
				b->pending = 0;
				ev_emitf(line->cfg.bus, EV_BAY_LEFT, b->index, b->port, "",
					 EV_STAGE_NONE, EV_OUT_NONE, NULL);
			}
			b->present = 1;
			b->instance = seen[i].instance;
			b->uid[0] = '\0';
			snprintf(b->serial, sizeof(b->serial), "%s", seen[i].serial);
			b->pending = 1;
			ev_emitf(line->cfg.bus, EV_BAY_ARRIVED, b->index, b->port, "",
				 EV_STAGE_DETECT, EV_OUT_NONE, "usb serial %s", seen[i].serial);
		}
		/* departures */
		for (int j = 0; j < line->cfg.nbays; j++) {
			struct bay *b = &line->bays[j];
			int still = 0;

			if (!b->present)
				continue;
			for (int i = 0; i < n && !still; i++)
				still = !strcmp(seen[i].port, b->port);
			if (still)
				continue;
			b->present = 0;
			b->pending = 0;
			b->uid[0] = '\0';
			ev_emitf(line->cfg.bus, EV_BAY_LEFT, b->index, b->port, "",
				 EV_STAGE_NONE, EV_OUT_NONE, NULL);
		}
		pthread_cond_broadcast(&line->cond);
		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_nsec += (long)interval * 1000000L;
		until.tv_sec += until.tv_nsec / 1000000000L;
		until.tv_nsec %= 1000000000L;
		while (!line->stop_threads &&
		       pthread_cond_timedwait(&line->cond, &line->lock, &until) != ETIMEDOUT)
			;
	}
	pthread_mutex_unlock(&line->lock);
	free(seen);
	return NULL;
}

int pl_line_start(const struct pl_config *cfg, struct pl_line **out, struct errbuf *err)
{
	struct pl_line *line;

	*out = NULL;
	if (cfg->nbays < 1 || cfg->nbays > PL_MAX_BAYS)
		return errbuf_set(err, ST_EINVAL, "bays must be 1..%d", PL_MAX_BAYS);
	if (!cfg->profile || !cfg->db || !cfg->bus || !cfg->transport.scan || !cfg->transport.open ||
	    !cfg->ca.issue || !cfg->ca.injected || !cfg->ca.revoke)
		return errbuf_set(err, ST_EINVAL, "line: incomplete configuration");
	line = calloc(1, sizeof(*line));
	if (!line)
		return errbuf_set(err, ST_ENOMEM, "line: out of memory");
	line->cfg = *cfg;
	pthread_mutex_init(&line->lock, NULL);
	{
		pthread_condattr_t ca;

		pthread_condattr_init(&ca);
		pthread_condattr_setclock(&ca, CLOCK_REALTIME);
		pthread_cond_init(&line->cond, &ca);
		pthread_condattr_destroy(&ca);
	}
	ev_emitf(cfg->bus, EV_LINE_STARTED, -1, "", "", EV_STAGE_NONE, EV_OUT_NONE,
		 "profile %s v%d, lot %s, operator %s, station %s, %d bays",
		 cfg->profile->name, cfg->profile->version, cfg->lot, cfg->operator_name,
		 cfg->station_id, cfg->nbays);
	for (int i = 0; i < cfg->nbays; i++) {
		struct bay *b = &line->bays[i];

		b->line = line;
		b->index = i;
		if (pthread_create(&b->thread, NULL, bay_main, b) != 0) {
			errbuf_set(err, ST_ENOMEM, "line: cannot start bay thread %d", i);
			pl_line_stop(line);
			pl_line_free(line);
			return ST_ENOMEM;
		}
		b->started = 1;
	}
	if (pthread_create(&line->detector, NULL, detector_main, line) != 0) {
		errbuf_set(err, ST_ENOMEM, "line: cannot start the detector");
		pl_line_stop(line);
		pl_line_free(line);
		return ST_ENOMEM;
	}
	line->detector_started = 1;
	*out = line;
	return ST_OK;
}

void pl_line_request_stop(struct pl_line *line)
{
	pthread_mutex_lock(&line->lock);
	line->stop_intake = 1;
	line->stop_requested = 1;
	pthread_cond_broadcast(&line->cond);
	pthread_mutex_unlock(&line->lock);
}

void pl_line_wait(struct pl_line *line)
{
	pthread_mutex_lock(&line->lock);
	while (!line->stop_requested)
		pthread_cond_wait(&line->cond, &line->lock);
	pthread_mutex_unlock(&line->lock);
}

void pl_line_stop(struct pl_line *line)
{
	struct pl_counts c;

	pthread_mutex_lock(&line->lock);
	line->stop_intake = 1;
	line->stop_requested = 1;
	c = line->counts;
	pthread_cond_broadcast(&line->cond);
	pthread_mutex_unlock(&line->lock);
	ev_emitf(line->cfg.bus, EV_LINE_STOPPING, -1, "", "", EV_STAGE_NONE, EV_OUT_NONE,
		 "%lld unit(s) in flight", (long long)c.in_flight);

	/* Units in flight finish first: a worker only looks at stop_threads
	 * between units. */
	pthread_mutex_lock(&line->lock);
	while (line->counts.in_flight > 0)
		pthread_cond_wait(&line->cond, &line->lock);
	line->stop_threads = 1;
	pthread_cond_broadcast(&line->cond);
	pthread_mutex_unlock(&line->lock);
	for (int i = 0; i < line->cfg.nbays; i++)
		if (line->bays[i].started) {
			pthread_join(line->bays[i].thread, NULL);
			line->bays[i].started = 0;
		}
	if (line->detector_started) {
		pthread_join(line->detector, NULL);
		line->detector_started = 0;
	}
	c = line->counts;
	ev_emitf(line->cfg.bus, EV_LINE_STOPPED, -1, "", "", EV_STAGE_NONE, EV_OUT_NONE,
		 "pass %lld, fail %lld, reject %lld", (long long)c.pass, (long long)c.fail,
		 (long long)c.reject);
}

void pl_line_free(struct pl_line *line)
{
	if (!line)
		return;
	pthread_cond_destroy(&line->cond);
	pthread_mutex_destroy(&line->lock);
	free(line);
}

void pl_line_pause(struct pl_line *line, int paused)
{
	int changed;

	pthread_mutex_lock(&line->lock);
	changed = line->paused != !!paused;
	line->paused = !!paused;
	pthread_cond_broadcast(&line->cond);
	pthread_mutex_unlock(&line->lock);
	if (changed)
		ev_emitf(line->cfg.bus, paused ? EV_LINE_PAUSED : EV_LINE_RESUMED, -1, "", "",
			 EV_STAGE_NONE, EV_OUT_NONE, NULL);
}

int pl_line_paused(struct pl_line *line)
{
	int p;

	pthread_mutex_lock(&line->lock);
	p = line->paused;
	pthread_mutex_unlock(&line->lock);
	return p;
}

int pl_line_clear_bay(struct pl_line *line, int bay_index)
{
	struct bay *b;

	if (bay_index < 0 || bay_index >= line->cfg.nbays)
		return ST_EINVAL;
	pthread_mutex_lock(&line->lock);
	b = &line->bays[bay_index];
	if (!b->held) {
		pthread_mutex_unlock(&line->lock);
		return ST_EINVAL;
	}
	b->held = 0;
	b->fails_in_row = 0;
	pthread_cond_broadcast(&line->cond);
	pthread_mutex_unlock(&line->lock);
	ev_emitf(line->cfg.bus, EV_BAY_CLEARED, bay_index, b->port, "", EV_STAGE_NONE,
		 EV_OUT_NONE, NULL);
	return ST_OK;
}

void pl_line_counts(struct pl_line *line, struct pl_counts *out)
{
	pthread_mutex_lock(&line->lock);
	*out = line->counts;
	pthread_mutex_unlock(&line->lock);
}

/* ---- crash recovery -------------------------------------------------------- */

struct rec_list {
	struct db_unit *units;
	size_t nunits, cap_units;
	struct db_cert_row *certs;
	size_t ncerts, cap_certs;
	int oom;
};

static int collect_unit(const struct db_unit *u, void *ctx)
{
	struct rec_list *l = ctx;

	if (l->nunits == l->cap_units) {
		size_t cap = l->cap_units ? l->cap_units * 2 : 16;
		struct db_unit *n = realloc(l->units, cap * sizeof(*n));

		if (!n) {
			l->oom = 1;
			return 1;
		}
		l->units = n;
		l->cap_units = cap;
	}
	l->units[l->nunits++] = *u;
	return 0;
}

static int collect_cert(const struct db_cert_row *c, void *ctx)
{
	struct rec_list *l = ctx;

	if (c->status == DB_CERT_REVOKED)
		return 0;
	if (l->ncerts == l->cap_certs) {
		size_t cap = l->cap_certs ? l->cap_certs * 2 : 16;
		struct db_cert_row *n = realloc(l->certs, cap * sizeof(*n));

		if (!n) {
			l->oom = 1;
			return 1;
		}
		l->certs = n;
		l->cap_certs = cap;
	}
	l->certs[l->ncerts++] = *c;
	return 0;
}

int pl_recover(struct db *db, const struct pl_ca_ops *ca, struct ev_bus *bus,
	       int *units_out, int *revoked_out, struct errbuf *err)
{
	struct rec_list l;
	int rc, revoked = 0;

	memset(&l, 0, sizeof(l));
	if (units_out)
		*units_out = 0;
	if (revoked_out)
		*revoked_out = 0;
	/* Collect first: the callbacks run under the database's lock. */
	if ((rc = db_unit_foreach_in_progress(db, collect_unit, &l, err)))
		goto out;
	if ((rc = db_cert_foreach(db, -1, collect_cert, &l, err)))
		goto out;
	if (l.oom) {
		rc = errbuf_set(err, ST_ENOMEM, "recovery: out of memory");
		goto out;
	}
	/* No unit runs now, so a certificate reserved or issued is an orphan (it
	 * may have been signed, or even reached a board, but was never committed);
	 * an injected one is an orphan if its unit did not pass. */
	for (size_t i = 0; i < l.ncerts; i++) {
		struct db_cert_row *c = &l.certs[i];
		int orphan = c->status == DB_CERT_RESERVED || c->status == DB_CERT_ISSUED;

		for (size_t j = 0; j < l.nunits && !orphan; j++)
			orphan = l.units[j].id == c->unit_id;
		if (!orphan)
			continue;
		if ((rc = ca->revoke(ca->ctx, c->serial_hex, "cessationOfOperation", err))) {
			errbuf_prefix(err, "recovery: revoking %s: ", c->serial_hex);
			goto out;
		}
		revoked++;
		if (bus)
			ev_emitf(bus, EV_LOG, -1, "", "", EV_STAGE_RECOVERY, EV_OUT_NONE,
			 "orphan certificate %s revoked", c->serial_hex);
	}
	for (size_t j = 0; j < l.nunits; j++) {
		struct db_unit *u = &l.units[j];
		struct ev_event ev;

		u->status = DB_UNIT_INTERRUPTED;
		/* the row holds the last stage recorded (identify, then inject) */
		snprintf(u->reason, sizeof(u->reason),
			 "station stopped (crash or power loss) at or after stage %s", u->stage);
		u->finished_ms = now_ms();
		if ((rc = db_unit_finish(db, u, err))) {
			errbuf_prefix(err, "recovery: unit %lld: ", (long long)u->id);
			goto out;
		}
		memset(&ev, 0, sizeof(ev));
		ev.kind = EV_UNIT_RESULT;
		ev.bay_index = -1;
		snprintf(ev.bay, sizeof(ev.bay), "%s", u->bay);
		snprintf(ev.unique_id, sizeof(ev.unique_id), "%s", u->unique_id);
		ev.stage = EV_STAGE_RECOVERY;
		ev.outcome = EV_OUT_INTERRUPTED;
		snprintf(ev.reason, sizeof(ev.reason), "%s", u->reason);
		ev.unit_id = u->id;
		if (bus)
			ev_emit(bus, &ev);
	}
	if (units_out)
		*units_out = (int)l.nunits;
	if (revoked_out)
		*revoked_out = revoked;
	rc = ST_OK;
out:
	free(l.units);
	free(l.certs);
	return rc;
}
