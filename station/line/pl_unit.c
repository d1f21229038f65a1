/*
 * pl_unit: one unit's state machine (pipeline.h), run on its bay's thread:
 * detect → identify → allowlist + duplicate check → flash → verify image →
 * keygen → CSR (+ nonce) → CSR policy → attestation → reserve → sign →
 * inject → read back + proof of possession → lock → commit.
 *
 * The stages are a table of steps (steps[] below): each step is one function
 * over the unit, and a stage is the run of steps that name it (the events and
 * the row's stage mark follow stages, not steps).  A step marked retry_safe is
 * one idempotent board call: after a transient fault (ST_ETIMEOUT,
 * ST_EPROTO) it runs once more.  A step that fails ends the unit: FAIL, or
 * REJECT when the step said so (rejected()).  What steps hand on lives in
 * struct pl_unit; its buffers are released in one place, unit_release().
 * It holds the line's lock only for the clone registry, never while it calls
 * a board, the database or the CA.
 */
#include "line/pl_int.h"
#include "core/ids.h"
#include "core/str.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/rand.h>

static void emit(struct pl_unit *r, enum ev_kind kind, enum ev_outcome out,
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
	/* what the screen shows; the row keeps the whole text */
	str_fmt_cut(ev.reason, sizeof(ev.reason), "%s", reason ? reason : "");
	if (out == EV_OUT_FAIL || out == EV_OUT_REJECT || out == EV_OUT_INTERRUPTED)
		ev.reason_code = r->u.reason_code;
	ev.unit_id = r->u.id;
	ev_emit(r->cfg->bus, &ev);
}

/*
 * The unit row follows every stage, so an interrupted unit's record names the
 * stage it was in.  Most marks are progress marks (db_unit_progress: written
 * to the WAL, no fsync): they survive the station being killed, and the next
 * full commit of any bay makes them durable.  An fsync per stage, under the
 * database's one lock shared by all bays, would cost the line its scaling
 * (docs/performance.md, "The line").  Inject is a full commit: after a power
 * loss the row still says, at least, that a certificate may be on the board.
 */
static int durable_mark(enum ev_stage s)
{
	return s == EV_STAGE_INJECT;
}

/*
 * Stage times: the stage that ends is appended to the unit's stage_ms, a JSON
 * object in stage order ({"detect":3,"identify":12}).  Stage names are
 * ev_stage_name()'s (no character to escape) and the table runs each stage
 * once, so a key never repeats.  Monotonic: a clock step does not bend them.
 */
static void stage_close(struct pl_unit *r)
{
	char *j = r->u.stage_ms;
	size_t n = strlen(j), cap = sizeof(r->u.stage_ms);
	int64_t ms;

	if (!r->stage_t0)
		return;
	ms = clock_monotonic_ms() - r->stage_t0;
	r->stage_t0 = 0;
	if (n == 0)
		n = (size_t)snprintf(j, cap, "{}");
	/* replace the closing brace; a full buffer keeps the object it has */
	if (n + 40 < cap)
		snprintf(j + n - 1, cap - n + 1, "%s\"%s\":%lld}", n > 2 ? "," : "",
			 ev_stage_name(r->stage), (long long)(ms < 0 ? 0 : ms));
}

/* Enters a stage. */
static void stage(struct pl_unit *r, enum ev_stage s)
{
	struct errbuf e;
	int rc;

	stage_close(r);
	r->stage_t0 = clock_monotonic_ms();
	if (!r->stage_t0)
		r->stage_t0 = 1;
	r->stage = s;
	snprintf(r->u.stage, sizeof(r->u.stage), "%s", ev_stage_name(s));
	/* the mark before the event: whoever sees the stage begin (and kills
	 * the station then) finds it in the row */
	rc = ST_OK;
	if (r->have_unit) {
		errbuf_clear(&e);
		rc = durable_mark(s) ? db_unit_update(r->cfg->db, &r->u, &e) :
				       db_unit_progress(r->cfg->db, &r->u, &e);
	}
	emit(r, EV_STAGE_BEGIN, EV_OUT_NONE, NULL);
	if (rc != ST_OK)
		emit(r, EV_LOG, EV_OUT_NONE, e.msg);
}

static void stage_ok(struct pl_unit *r)
{
	emit(r, EV_STAGE_END, EV_OUT_OK, NULL);
}

static void progress(uint64_t done, uint64_t total, void *ctx)
{
	struct pl_unit *r = ctx;
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
	char (*serials)[65];
	size_t n, cap;
	int oom;
};

static int collect_unit_cert(const struct db_cert_row *c, void *ctx)
{
	struct cert_list *l = ctx;

	if (c->status == DB_CERT_REVOKED)
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

/* Revokes every certificate recorded for this unit that is not committed (the
 * one it was issued).  One that cannot be revoked now stays issued and is
 * revoked by recovery at the next start. */
static void revoke_unit_certs(struct pl_unit *r, const char *why)
{
	struct cert_list l;
	struct errbuf e;
	char msg[EV_REASON_LEN];

	memset(&l, 0, sizeof(l));
	errbuf_clear(&e);
	if (db_cert_foreach_unit(r->cfg->db, r->u.id, collect_unit_cert, &l, &e) || l.oom) {
		str_fmt_cut(msg, sizeof(msg), "listing certificates of unit %lld failed: %s",
			    (long long)r->u.id, l.oom ? "out of memory" : e.msg);
		emit(r, EV_LOG, EV_OUT_NONE, msg);
	}
	for (size_t i = 0; i < l.n; i++) {
		errbuf_clear(&e);
		if (db_cert_revoke(r->cfg->db, l.serials[i], why, r->cfg->actor, &e))
			str_fmt_cut(msg, sizeof(msg), "revoking %s failed: %s", l.serials[i], e.msg);
		else
			str_fmt_cut(msg, sizeof(msg), "certificate %s revoked (not committed)",
				    l.serials[i]);
		emit(r, EV_LOG, EV_OUT_NONE, msg);
	}
	free(l.serials);
}

/* Ends the unit: revokes a certificate that will not be committed, records the
 * verdict, tells the world.  reason is what the tile and the events show;
 * detail (NULL: the same) is what the unit row and the audit log keep.
 * Returns the outcome for the bay's failure count. */
static enum ev_outcome finish(struct pl_unit *r, enum db_unit_status st, const char *reason,
			      const char *detail)
{
	enum ev_outcome out = st == DB_UNIT_PASS ? EV_OUT_PASS :
			      st == DB_UNIT_REJECT ? EV_OUT_REJECT :
			      st == DB_UNIT_INTERRUPTED ? EV_OUT_INTERRUPTED : EV_OUT_FAIL;
	struct errbuf e;

	/* a board that failed before it was identified still gets its record */
	if (!r->have_unit && db_unit_begin(r->cfg->db, &r->u, &e) == ST_OK)
		r->have_unit = 1;
	stage_close(r);
	if (r->cert == CERT_RESERVED || r->cert == CERT_ISSUED)
		revoke_unit_certs(r, st == DB_UNIT_REJECT ? "keyCompromise" : "cessationOfOperation");
	r->u.status = st;
	snprintf(r->u.reason, sizeof(r->u.reason), "%s", detail ? detail : reason ? reason : "");
	r->u.finished_ms = clock_realtime_ms();
	if (r->have_unit && !r->recorded && db_unit_finish(r->cfg->db, &r->u, &e) != ST_OK) {
		emit(r, EV_LOG, EV_OUT_NONE, e.msg);
		if (st == DB_UNIT_PASS) {
			out = EV_OUT_FAIL;   /* not recorded: not a pass */
			r->u.reason_code = e.reason;
		}
	}
	pl_ledger_done(r, out == EV_OUT_PASS);
	if (st != DB_UNIT_PASS)
		emit(r, EV_STAGE_END, out, reason);
	if (st == DB_UNIT_REJECT)
		emit(r, EV_ALERT, out, reason);
	emit(r, EV_UNIT_RESULT, out, reason);
	return out;
}

/* Ends the unit on a failure: the reason code is the one set where the cause
 * arose (r->err), or the generic one of rc when the callee left err unset. */
static enum ev_outcome fail_with(struct pl_unit *r, enum db_unit_status st, int rc)
{
	char plain[EV_REASON_LEN], detail[sizeof(r->u.reason)];
	const char *msg = r->err.msg[0] ? r->err.msg : "failed";

	r->u.reason_code = r->err.code != ST_OK && r->err.reason != ST_R_NONE ? r->err.reason :
			   st_rc_reason(rc);
	if (pl_plain_words(r->stage, rc, &r->err, plain, sizeof(plain))) {
		str_fmt_cut(detail, sizeof(detail), "%s (%s: %s)", plain, st_rc_name(rc), msg);
		return finish(r, st, plain, detail);
	}
	str_fmt_cut(detail, sizeof(detail), "%s: %s", st_rc_name(rc), msg);
	return finish(r, st, msg, detail);
}

static int clone_flagged(struct pl_unit *r)
{
	int c;

	pthread_mutex_lock(&r->line->lock);
	c = r->bay->clone;
	pthread_mutex_unlock(&r->line->lock);
	return c;
}

/* Registers the id in this bay; if another bay holds it, both are clones. */
static int clone_register(struct pl_unit *r, const char *uid)
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

/* The step's failure is a REJECT (the board must not be provisioned). */
static int rejected(struct pl_unit *r, int rc)
{
	r->reject = 1;
	return rc;
}

static void buf_free(struct pl_buf *b)
{
	free(b->p);
	b->p = NULL;
	b->len = 0;
}

/* ---- the steps ------------------------------------------------------------ */

/* detect: the unit row exists before any work on the board (written at the
 * latest by finish(): a board that fails here still gets its record) */
static void unit_init(struct pl_unit *r)
{
	const struct pl_config *cfg = r->cfg;

	memset(&r->u, 0, sizeof(r->u));
	snprintf(r->u.unique_id, sizeof(r->u.unique_id), "%s",
		 ids_uid_valid(r->serial) ? r->serial : "");
	snprintf(r->u.lot, sizeof(r->u.lot), "%s", cfg->lot);
	snprintf(r->u.bay, sizeof(r->u.bay), "%s", r->bay->port);
	snprintf(r->u.operator_name, sizeof(r->u.operator_name), "%s", cfg->operator_name);
	snprintf(r->u.station_id, sizeof(r->u.station_id), "%s", cfg->station_id);
	snprintf(r->u.profile_hash, sizeof(r->u.profile_hash), "%s", cfg->profile->hash);
	snprintf(r->u.firmware_hash, sizeof(r->u.firmware_hash), "%s", cfg->profile->firmware_sha256);
	r->u.status = DB_UNIT_IN_PROGRESS;
	r->u.started_ms = clock_realtime_ms();
}

static int step_open(struct pl_unit *r)
{
	const struct pl_transport *t = &r->cfg->transport;
	char serial[EV_UID_LEN] = "";
	int rc;

	rc = t->open(t->ctx, r->bay->port, &r->ops, &r->h, serial, &r->err);
	if (rc) {
		r->ops = NULL;
		return rc;
	}
	serial[sizeof(serial) - 1] = '\0';
	if (serial[0])
		snprintf(r->serial, sizeof(r->serial), "%s", serial);
	if (ids_uid_valid(serial))
		snprintf(r->u.unique_id, sizeof(r->u.unique_id), "%s", serial);
	return ST_OK;
}

static int step_info(struct pl_unit *r)
{
	int rc = r->ops->info(r->h, &r->info, &r->err);

	r->info.unique_id[sizeof(r->info.unique_id) - 1] = '\0';
	r->info.usb_serial[sizeof(r->info.usb_serial) - 1] = '\0';
	return rc;
}

/* identify: the id the board reports must be well-formed and match USB; the
 * unit row exists from here on, before the board is changed */
static int step_identify(struct pl_unit *r)
{
	const char *usb = r->info.usb_serial[0] ? r->info.usb_serial : r->serial;
	int rc;

	if (!ids_uid_valid(r->info.unique_id))
		return rejected(r, errbuf_setr(&r->err, ST_EPOLICY, ST_ORIGIN_POLICY,
					       ST_R_MALFORMED_ID, "board reports a malformed unique id"));
	snprintf(r->u.unique_id, sizeof(r->u.unique_id), "%s", r->info.unique_id);
	if ((rc = db_unit_begin(r->cfg->db, &r->u, &r->err)))
		return rc;
	r->have_unit = 1;
	if (strcmp(r->info.unique_id, usb))
		return rejected(r, errbuf_setr(&r->err, ST_EPOLICY, ST_ORIGIN_POLICY, ST_R_ID_MISMATCH,
					       "board id %s differs from its USB serial '%s'",
					       r->info.unique_id, usb));
	if (clone_register(r, r->info.unique_id))
		return rejected(r, errbuf_setr(&r->err, ST_EPOLICY, ST_ORIGIN_POLICY, ST_R_CLONE,
					       "clone: id %s is on two bays at once",
					       r->info.unique_id));
	return ST_OK;
}

/* allowlist + duplicate check */
static int step_allowlist(struct pl_unit *r)
{
	const struct pl_config *cfg = r->cfg;
	char note[EV_REASON_LEN];
	int rc, found = 0;

	rc = db_allowlist_contains(cfg->db, cfg->lot, r->u.unique_id, &r->err);
	if (rc == ST_ENOTFOUND)   /* the factory's list, imported at another station */
		rc = pl_ledger_allowlisted(r);
	if (rc == ST_ENOTFOUND)
		return rejected(r, errbuf_setr(&r->err, ST_EPOLICY, ST_ORIGIN_POLICY, ST_R_NOT_ON_LOT,
					       "id %s is not on lot %s's allowlist",
					       r->u.unique_id, cfg->lot));
	if (rc)
		return rc;
	if ((rc = db_unit_provisioned(cfg->db, r->u.unique_id, &found, &r->err)))
		return rc;
	if (found)
		return rejected(r, errbuf_setr(&r->err, ST_EPOLICY, ST_ORIGIN_POLICY,
					       ST_R_PROVISIONED, "id %s is already provisioned",
					       r->u.unique_id));
	/* an engineer's rework authorisation: used (consumed) only by the commit
	 * of a PASS, so a failed attempt leaves it for the next one */
	if ((rc = db_rework_open(cfg->db, r->u.unique_id, &r->rw, &r->reworked, &r->err)))
		return rc;
	if (r->reworked) {
		str_fmt_cut(note, sizeof(note), "rework authorised by %s: %s", r->rw.authorised_by,
			    r->rw.reason);
		emit(r, EV_LOG, EV_OUT_NONE, note);
	}
	/* the factory's word before the board's lock: a board provisioned at
	 * another station is named as such */
	if ((rc = pl_ledger_hold(r)))
		return rc;
	if (r->info.locked)
		return rejected(r, errbuf_setr(&r->err, ST_EPOLICY, ST_ORIGIN_POLICY,
					       ST_R_BOARD_LOCKED, "%s", r->reworked ?
			"board is still locked: reset it on the rework bench, then plug it again" :
			"board is locked but has no committed unit (needs rework)"));
	return ST_OK;
}

static int step_flash(struct pl_unit *r)
{
	const struct pl_config *cfg = r->cfg;

	return r->ops->flash(r->h, cfg->image, cfg->image_len, progress, r, &r->err);
}

/* verify image: the board's own hash of what it holds (a fresh INFO) */
static int step_image_hash(struct pl_unit *r)
{
	if (strcasecmp(r->info.firmware_sha256, r->cfg->profile->firmware_sha256))
		return errbuf_setr(&r->err, ST_EIO, ST_ORIGIN_POLICY, ST_R_FIRMWARE_HASH,
				   "image on the board (%.16s...) is not the profile's",
				   r->info.firmware_sha256[0] ? r->info.firmware_sha256 : "none");
	return ST_OK;
}

static int step_keygen(struct pl_unit *r)
{
	return r->ops->keygen(r->h, r->cfg->profile->key_type, &r->err);
}

/* CSR bound to a fresh nonce: drawn once, the same for a retried GET_CSR */
static int step_nonce(struct pl_unit *r)
{
	if (RAND_bytes(r->nonce, sizeof(r->nonce)) != 1)
		return errbuf_setr(&r->err, ST_ECRYPTO, ST_ORIGIN_STATION, ST_R_NO_RANDOMNESS,
				   "no randomness for the nonce");
	return ST_OK;
}

static int step_get_csr(struct pl_unit *r)
{
	buf_free(&r->csr);   /* a failed attempt's, if any */
	return r->ops->get_csr(r->h, r->nonce, &r->csr.p, &r->csr.len, &r->err);
}

/*
 * CSR policy: the CA parses and judges the CSR once (pl_ca_ops.check_csr).
 * Its refusals are the board's fault (REJECT, as EPOLICY); a key seen before
 * is a possible clone; anything else is the station's failure.
 */
static int step_check_csr(struct pl_unit *r)
{
	const struct pl_ca_ops *ca = &r->cfg->ca;
	int rc;

	rc = ca->check_csr(ca->ctx, r->csr.p, r->csr.len, r->u.unique_id, r->nonce, &r->checked,
			   &r->facts, &r->err);
	snprintf(r->u.pubkey_hash, sizeof(r->u.pubkey_hash), "%s", r->facts.pubkey_hash);
	switch (rc) {
	case ST_OK:
		return ST_OK;
	case ST_EEXIST:
		return rejected(r, errbuf_setr(&r->err, ST_EPOLICY, ST_ORIGIN_POLICY, ST_R_KEY_SEEN,
					       "public key %.16s... was seen before (cloned key)",
					       r->facts.pubkey_hash));
	case ST_EINVAL:
	case ST_ECRYPTO:
	case ST_EPOLICY:
		return rejected(r, ST_EPOLICY);   /* err names the rule */
	default:
		return rc;
	}
}

/* attestation: the manufacturer vouches for this board and this CSR */
static int step_attest(struct pl_unit *r)
{
	buf_free(&r->attest_sig);
	return r->ops->attest(r->h, r->nonce, r->facts.csr_sha256, &r->attest_sig.p,
			      &r->attest_sig.len, &r->err);
}

static int step_attest_check(struct pl_unit *r)
{
	const struct pl_config *cfg = r->cfg;
	int rc;

	rc = pl_attest_check(r->info.attest_cert, r->info.attest_cert_len, cfg->mfr_ca_der,
			     cfg->mfr_ca_len, r->u.unique_id, r->nonce, r->facts.csr_sha256,
			     r->attest_sig.p, r->attest_sig.len, &r->err);
	return rc == ST_EPOLICY ? rejected(r, rc) : rc;
}

/* reserve: the last look at the clone registry before anything is signed */
static int step_reserve(struct pl_unit *r)
{
	int rc;

	if (clone_flagged(r))
		return rejected(r, errbuf_setr(&r->err, ST_EPOLICY, ST_ORIGIN_POLICY, ST_R_CLONE,
					       "clone: id %s appeared on another bay",
					       r->u.unique_id));
	if ((rc = pl_ledger_claim(r)))
		return rc;
	r->cert = CERT_RESERVED;   /* from here a failure revokes what was issued */
	return ST_OK;
}

/* sign: the CA writes ahead (reserve, then issued) itself */
static int step_sign(struct pl_unit *r)
{
	const struct pl_ca_ops *ca = &r->cfg->ca;
	int rc;

	rc = ca->sign(ca->ctx, r->checked, r->u.id, r->u.cert_serial, &r->issued.p,
		      &r->issued.len, &r->err);
	if (rc)
		return rc;
	r->cert = CERT_ISSUED;   /* the serial reaches the unit row with the verdict */
	return ST_OK;
}

/* inject, read back, proof of possession: only the read-back is retried (a
 * write or a proof is not idempotent from the CA's point of view); any
 * failure revokes */
static int step_inject(struct pl_unit *r)
{
	return r->ops->write_cert(r->h, r->issued.p, r->issued.len, &r->err);
}

static int step_read_back(struct pl_unit *r)
{
	buf_free(&r->back);
	return r->ops->read_cert(r->h, &r->back.p, &r->back.len, &r->err);
}

static int step_prove(struct pl_unit *r)
{
	uint8_t challenge[PROTO_NONCE_LEN];
	int rc;

	if (RAND_bytes(challenge, sizeof(challenge)) != 1)
		return errbuf_setr(&r->err, ST_ECRYPTO, ST_ORIGIN_STATION, ST_R_NO_RANDOMNESS,
				   "no randomness for the challenge");
	if ((rc = r->ops->prove(r->h, challenge, &r->prove_sig.p, &r->prove_sig.len, &r->err)))
		return rc;
	return pl_prove_check(r->issued.p, r->issued.len, r->back.p, r->back.len, challenge,
			      r->prove_sig.p, r->prove_sig.len, &r->err);
}

static int step_lock(struct pl_unit *r)
{
	return r->ops->lock(r->h, &r->err);
}

/* commit: the certificate becomes injected and the unit passes in one
 * transaction (one fsync; no instant where one is recorded without the
 * other).  db_begin holds the database for this thread until commit; nothing
 * but the database is called inside. */
static int step_commit(struct pl_unit *r)
{
	const struct pl_config *cfg = r->cfg;
	int rc;

	if (clone_flagged(r))
		return rejected(r, errbuf_setr(&r->err, ST_EPOLICY, ST_ORIGIN_POLICY, ST_R_CLONE,
					       "clone: id %s appeared on another bay",
					       r->u.unique_id));
	snprintf(r->pass_reason, sizeof(r->pass_reason), "certificate %s%s", r->u.cert_serial,
		 r->reworked ? " (rework)" : "");
	/* the record carries its own stage times: commit's ends as it is written */
	stage_close(r);
	r->u.status = DB_UNIT_PASS;
	snprintf(r->u.reason, sizeof(r->u.reason), "%s", r->pass_reason);
	r->u.finished_ms = clock_realtime_ms();
	if ((rc = db_begin(cfg->db, &r->err)))
		return rc;
	if ((rc = db_cert_injected(cfg->db, r->u.cert_serial, &r->err)) ||
	    (r->reworked && (rc = db_rework_consume(cfg->db, r->rw.id, r->u.id, r->u.operator_name,
						     &r->err))) ||
	    (rc = db_unit_finish(cfg->db, &r->u, &r->err)) ||
	    (rc = db_commit(cfg->db, &r->err))) {
		db_rollback(cfg->db);
		r->u.status = DB_UNIT_IN_PROGRESS;
		return rc;
	}
	r->cert = CERT_COMMITTED;
	r->recorded = 1;
	return ST_OK;
}

/* ---- the table and its runner ------------------------------------------- */

struct pl_step {
	enum ev_stage stage;
	int (*run)(struct pl_unit *r);
	int retry_safe;   /* one idempotent board call: once more after a transient fault */
};

static const struct pl_step steps[] = {
	{ EV_STAGE_DETECT,       step_open,         0 },
	{ EV_STAGE_IDENTIFY,     step_info,         1 },
	{ EV_STAGE_IDENTIFY,     step_identify,     0 },
	{ EV_STAGE_ALLOWLIST,    step_allowlist,    0 },
	{ EV_STAGE_FLASH,        step_flash,        1 },
	{ EV_STAGE_VERIFY_IMAGE, step_info,         1 },
	{ EV_STAGE_VERIFY_IMAGE, step_image_hash,   0 },
	{ EV_STAGE_KEYGEN,       step_keygen,       1 },
	{ EV_STAGE_CSR,          step_nonce,        0 },
	{ EV_STAGE_CSR,          step_get_csr,      1 },
	{ EV_STAGE_CSR_POLICY,   step_check_csr,    0 },
	{ EV_STAGE_ATTEST,       step_attest,       1 },
	{ EV_STAGE_ATTEST,       step_attest_check, 0 },
	{ EV_STAGE_RESERVE,      step_reserve,      0 },
	{ EV_STAGE_SIGN,         step_sign,         0 },
	{ EV_STAGE_INJECT,       step_inject,       0 },
	{ EV_STAGE_PROVE,        step_read_back,    1 },
	{ EV_STAGE_PROVE,        step_prove,        0 },
	{ EV_STAGE_LOCK,         step_lock,         0 },
	{ EV_STAGE_COMMIT,       step_commit,       0 },
};

static int transient(int rc)
{
	return rc == ST_ETIMEOUT || rc == ST_EPROTO;
}

/* ---- deadlines ------------------------------------------------------------ */

static int line_abandoned(void *arg)
{
	struct pl_line *line = arg;

	return atomic_load(&line->abandon);
}

static int64_t secs_ms(int s, int def)
{
	return (int64_t)(s > 0 ? s : def) * 1000;
}

/* The deadline of stage s, from its start: the profile's, never past the
 * unit's.  Handed to the board adapter, which ends every wait there. */
static void limit_stage(struct pl_unit *r, enum ev_stage s)
{
	const struct profile *p = r->cfg->profile;
	int64_t ms = s == EV_STAGE_FLASH ? secs_ms(p->deadline_flash_s, PROFILE_DEF_FLASH_S) :
		     s == EV_STAGE_KEYGEN ? secs_ms(p->deadline_keygen_s, PROFILE_DEF_KEYGEN_S) :
		     secs_ms(p->deadline_stage_s, PROFILE_DEF_STAGE_S);
	int64_t end = clock_monotonic_ms() + ms;

	r->limit_is_unit = end >= r->unit_deadline;
	r->limit.deadline_ms = r->limit_is_unit ? r->unit_deadline : end;
	r->limit.stopped = line_abandoned;
	r->limit.arg = r->line;
	if (r->ops && r->ops->set_limit)
		r->ops->set_limit(r->h, &r->limit);
}

/* When the limit is reached, that is the unit's error, whatever the call
 * that noticed it said: the stage's deadline, the unit's, or the stop. */
static int limit_reached(struct pl_unit *r, int rc)
{
	const struct profile *p = r->cfg->profile;
	int why = clock_limit_check(&r->limit);

	if (why == ST_ECANCELED)
		return errbuf_setr(&r->err, ST_ECANCELED, ST_ORIGIN_STATION, ST_R_INTERRUPTED,
				   "the station stopped: unit abandoned after the grace period");
	if (why != ST_ETIMEOUT)
		return rc;
	if (r->limit_is_unit)
		return errbuf_setr(&r->err, ST_ETIMEOUT, ST_ORIGIN_STATION, ST_R_UNIT_DEADLINE,
				   "the unit took longer than its deadline (%d s)",
				   p->deadline_unit_s > 0 ? p->deadline_unit_s : PROFILE_DEF_UNIT_S);
	return errbuf_setr(&r->err, ST_ETIMEOUT, ST_ORIGIN_STATION, ST_R_STAGE_DEADLINE,
			   "%s took longer than its deadline (%lld s)", ev_stage_name(r->stage),
			   (long long)((r->limit.deadline_ms - r->stage_start_ms + 500) / 1000));
}

static int run_step(struct pl_unit *r, const struct pl_step *s)
{
	int rc;

	for (int attempt = 0;; attempt++) {
		errbuf_clear(&r->err);
		/* a step starts only within its limits: one that returns past
		 * them (the CA, the database) is caught before the next */
		if (clock_limit_check(&r->limit))
			return limit_reached(r, ST_OK);
		rc = s->run(r);
		/* past the limit, even a step that succeeded fails the unit (a
		 * stage's deadline is not reset by the next stage), but for the
		 * commit: once recorded, a pass is a pass */
		if ((rc || s->run != step_commit) && clock_limit_check(&r->limit))
			return limit_reached(r, rc);
		if (!rc || !s->retry_safe || attempt >= 1 || !transient(rc))
			return rc;
		emit(r, EV_LOG, EV_OUT_NONE, "transient fault, retrying");
	}
}

/* The station stopped and the grace period is over: the unit is recorded as
 * interrupted (as recovery would after a kill), its certificate revoked, and
 * the tile tells the operator to unplug the board. */
static enum ev_outcome abandon(struct pl_unit *r)
{
	char detail[sizeof(r->u.reason)];

	r->u.reason_code = ST_R_INTERRUPTED;
	str_fmt_cut(detail, sizeof(detail), "interrupted at %s: the station stopped (%s)",
		    ev_stage_name(r->stage), r->err.msg[0] ? r->err.msg : "grace period over");
	return finish(r, DB_UNIT_INTERRUPTED, "station stopped: unit interrupted, unplug the board",
		      detail);
}

/* The one cleanup path of a unit. */
static void unit_release(struct pl_unit *r)
{
	const struct pl_ca_ops *ca = &r->cfg->ca;

	if (r->checked)
		ca->csr_free(ca->ctx, r->checked);
	r->checked = NULL;
	buf_free(&r->csr);
	buf_free(&r->attest_sig);
	buf_free(&r->issued);
	buf_free(&r->back);
	buf_free(&r->prove_sig);
}

enum ev_outcome pl_unit_run(struct pl_unit *r)
{
	const size_t n = sizeof(steps) / sizeof(steps[0]);
	enum ev_outcome out;
	int rc = ST_OK;

	unit_init(r);
	r->unit_deadline = clock_monotonic_ms() +
			   secs_ms(r->cfg->profile->deadline_unit_s, PROFILE_DEF_UNIT_S);
	for (size_t i = 0; i < n && rc == ST_OK; i++) {
		if (i == 0 || steps[i - 1].stage != steps[i].stage) {
			stage(r, steps[i].stage);
			r->stage_start_ms = clock_monotonic_ms();
			limit_stage(r, steps[i].stage);
		} else if (i == 1) {
			limit_stage(r, steps[i].stage);   /* the board was just opened */
		}
		rc = run_step(r, &steps[i]);
		if (rc == ST_OK && (i + 1 == n || steps[i + 1].stage != steps[i].stage))
			stage_ok(r);
	}
	if (rc == ST_OK)
		out = finish(r, DB_UNIT_PASS, r->pass_reason, NULL);
	else if (rc == ST_ECANCELED && atomic_load(&r->line->abandon))
		out = abandon(r);
	else
		out = fail_with(r, r->reject ? DB_UNIT_REJECT : DB_UNIT_FAIL, rc);
	unit_release(r);
	return out;
}
