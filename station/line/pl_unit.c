/*
 * pl_unit: one unit's state machine (pipeline.h), run on its bay's thread:
 * detect → identify → allowlist + duplicate check → flash → verify image →
 * keygen → CSR (+ nonce) → CSR policy → attestation → reserve → sign →
 * inject → read back + proof of possession → lock → commit.
 * It holds the line's lock only for the clone registry, never while it calls
 * a board, the database or the CA.
 */
#include "line/pl_int.h"
#include "core/ids.h"
#include "core/str.h"
#include "db/rework.h"

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
	snprintf(ev.reason, sizeof(ev.reason), "%s", reason ? reason : "");
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

/* Enters a stage. */
static void stage(struct pl_unit *r, enum ev_stage s)
{
	struct errbuf e;
	int rc;

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
	const struct pl_ca_ops *ca = &r->cfg->ca;
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
		if (ca->revoke(ca->ctx, l.serials[i], why, &e))
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
			      st == DB_UNIT_REJECT ? EV_OUT_REJECT : EV_OUT_FAIL;
	struct errbuf e;

	/* a board that failed before it was identified still gets its record */
	if (!r->have_unit && db_unit_begin(r->cfg->db, &r->u, &e) == ST_OK)
		r->have_unit = 1;
	if (r->cert == CERT_RESERVED || r->cert == CERT_ISSUED)
		revoke_unit_certs(r, st == DB_UNIT_REJECT ? "keyCompromise" : "cessationOfOperation");
	r->u.status = st;
	snprintf(r->u.reason, sizeof(r->u.reason), "%s", detail ? detail : reason ? reason : "");
	r->u.finished_ms = clock_realtime_ms();
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

/* What the stage was doing, for a sentence an operator reads from a metre away. */
static const char *doing(enum ev_stage s)
{
	switch (s) {
	case EV_STAGE_DETECT:       return "opening the board";
	case EV_STAGE_IDENTIFY:     return "reading the board's id";
	case EV_STAGE_ALLOWLIST:    return "checking the allowlist";
	case EV_STAGE_FLASH:        return "writing the image";
	case EV_STAGE_VERIFY_IMAGE: return "checking the image";
	case EV_STAGE_KEYGEN:       return "generating the key";
	case EV_STAGE_CSR:          return "getting the certificate request";
	case EV_STAGE_CSR_POLICY:   return "checking the certificate request";
	case EV_STAGE_ATTEST:       return "checking the board's attestation";
	case EV_STAGE_RESERVE:
	case EV_STAGE_SIGN:         return "signing the certificate";
	case EV_STAGE_INJECT:       return "writing the certificate";
	case EV_STAGE_PROVE:        return "reading back the certificate";
	case EV_STAGE_LOCK:         return "locking the board";
	case EV_STAGE_COMMIT:       return "recording the unit";
	default:                    return "working";
	}
}

/*
 * The operator's words for a failure below the pipeline (board, USB, HSM,
 * database): those messages name transfers, states and codes.  The pipeline's
 * own checks already say what is wrong in plain words: 0, use err.msg.
 */
static int plain_words(enum ev_stage s, int rc, const char *msg, char *out, size_t cap)
{
	const char *what = doing(s);
	int below = !strncmp(msg, "bay ", 4);   /* board client, USB, DFU messages */

	/* the board said no, with its own error code */
	if (strstr(msg, "board answered E")) {
		if (s == EV_STAGE_LOCK && strstr(msg, "EREFUSED"))
			snprintf(out, cap, "board refused to lock");
		else
			snprintf(out, cap, "board reported an error while %s", what);
		return 1;
	}
	switch (rc) {
	case ST_ETIMEOUT:
		snprintf(out, cap, "board stopped answering while %s", what);
		return 1;
	case ST_ENODEV:
		snprintf(out, cap, "board was unplugged while %s", what);
		return 1;
	case ST_EPROTO:
		snprintf(out, cap, "garbled USB traffic while %s (cable?)", what);
		return 1;
	case ST_ESTATE:
		snprintf(out, cap, "board was not ready for %s", what);
		return 1;
	case ST_EBUSY:
	case ST_ENOTFOUND:
		snprintf(out, cap, "board could not be opened");
		return 1;
	case ST_EHSM:
	case ST_EPIN:
		snprintf(out, cap, "the HSM failed while %s", what);
		return 1;
	case ST_EDB:
		snprintf(out, cap, "the database failed while %s", what);
		return 1;
	case ST_ENOMEM:
		snprintf(out, cap, "the station ran out of memory while %s", what);
		return 1;
	case ST_ETAMPER:
		if (below && s == EV_STAGE_FLASH) {
			snprintf(out, cap, "image read back from the board is not the one written");
			return 1;
		}
		break;
	default:
		break;
	}
	if (below) {
		snprintf(out, cap, "%s failed (board error)", what);
		return 1;
	}
	return 0;
}

static enum ev_outcome fail_with(struct pl_unit *r, enum db_unit_status st, int rc)
{
	char plain[EV_REASON_LEN], detail[sizeof(r->u.reason)];
	const char *msg = r->err.msg[0] ? r->err.msg : "failed";

	if (plain_words(r->stage, rc, msg, plain, sizeof(plain))) {
		str_fmt_cut(detail, sizeof(detail), "%s (%s: %s)", plain, st_rc_name(rc), msg);
		return finish(r, st, plain, detail);
	}
	str_fmt_cut(detail, sizeof(detail), "%s: %s", st_rc_name(rc), msg);
	return finish(r, st, msg, detail);
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

enum ev_outcome pl_unit_run(struct pl_unit *r)
{
	const struct pl_config *cfg = r->cfg;
	const struct pl_ca_ops *ca = &cfg->ca;
	struct pl_board_info info;
	struct pl_csr_facts facts;
	uint8_t nonce[32], challenge[32];
	uint8_t *csr = NULL, *sig = NULL, *cert = NULL, *back = NULL;
	size_t csr_len = 0, sig_len = 0, cert_len = 0, back_len = 0;
	char san[PROFILE_SAN_MAX + 2 * EV_UID_LEN], reason[EV_REASON_LEN];
	struct db_rework rw;
	enum ev_outcome out;
	int rc, found = 0, reworked = 0;

	/* detect: the unit row exists before any work on the board */
	memset(&r->u, 0, sizeof(r->u));
	memset(&rw, 0, sizeof(rw));
	r->stage = EV_STAGE_DETECT;
	snprintf(r->u.unique_id, sizeof(r->u.unique_id), "%s",
		 ids_uid_valid(r->serial) ? r->serial : "");
	snprintf(r->u.lot, sizeof(r->u.lot), "%s", cfg->lot);
	snprintf(r->u.bay, sizeof(r->u.bay), "%s", r->bay->port);
	snprintf(r->u.operator_name, sizeof(r->u.operator_name), "%s", cfg->operator_name);
	snprintf(r->u.station_id, sizeof(r->u.station_id), "%s", cfg->station_id);
	snprintf(r->u.profile_hash, sizeof(r->u.profile_hash), "%s", cfg->profile->hash);
	snprintf(r->u.firmware_hash, sizeof(r->u.firmware_hash), "%s", cfg->profile->firmware_sha256);
	snprintf(r->u.stage, sizeof(r->u.stage), "%s", ev_stage_name(EV_STAGE_DETECT));
	r->u.status = DB_UNIT_IN_PROGRESS;
	r->u.started_ms = clock_realtime_ms();
	emit(r, EV_STAGE_BEGIN, EV_OUT_NONE, NULL);
	errbuf_clear(&r->err);
	{
		char serial[EV_UID_LEN] = "";

		rc = cfg->transport.open(cfg->transport.ctx, r->bay->port, &r->ops, &r->h,
					 serial, &r->err);
		serial[sizeof(serial) - 1] = '\0';
		if (!rc && serial[0])
			snprintf(r->serial, sizeof(r->serial), "%s", serial);
		if (!rc && ids_uid_valid(serial))
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
	if (!ids_uid_valid(info.unique_id)) {
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
	/* an engineer's rework authorisation: used (consumed) only by the commit
	 * of a PASS, so a failed attempt leaves it for the next one */
	if ((rc = db_rework_open(cfg->db, r->u.unique_id, &rw, &reworked, &r->err)))
		return fail_with(r, DB_UNIT_FAIL, rc);
	if (reworked) {
		str_fmt_cut(reason, sizeof(reason), "rework authorised by %s: %s", rw.authorised_by,
			    rw.reason);
		emit(r, EV_LOG, EV_OUT_NONE, reason);
	}
	if (info.locked) {
		errbuf_set(&r->err, ST_EPOLICY, "%s", reworked ?
			   "board is still locked: reset it on the rework bench, then plug it again" :
			   "board is locked but has no committed unit (needs rework)");
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
	snprintf(reason, sizeof(reason), "certificate %s%s", r->u.cert_serial,
		 reworked ? " (rework)" : "");
	r->u.status = DB_UNIT_PASS;
	snprintf(r->u.reason, sizeof(r->u.reason), "%s", reason);
	r->u.finished_ms = clock_realtime_ms();
	if ((rc = db_begin(cfg->db, &r->err)))
		goto fail;
	if ((rc = ca->injected(ca->ctx, r->u.cert_serial, &r->err)) ||
	    (reworked && (rc = db_rework_consume(cfg->db, rw.id, r->u.id, r->u.operator_name,
						 &r->err))) ||
	    (rc = db_unit_finish(cfg->db, &r->u, &r->err)) ||
	    (rc = db_commit(cfg->db, &r->err))) {
		db_rollback(cfg->db);
		r->u.status = DB_UNIT_IN_PROGRESS;
		goto fail;
	}
	r->cert = CERT_COMMITTED;
	r->recorded = 1;
	emit(r, EV_STAGE_END, EV_OUT_OK, NULL);
	out = finish(r, DB_UNIT_PASS, reason, NULL);
	return out;

fail:
	free(csr);
	free(sig);
	free(cert);
	free(back);
	return fail_with(r, DB_UNIT_FAIL, rc);
}
