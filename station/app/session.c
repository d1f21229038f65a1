/*
 * session: one run of the line (session.h): pre-flight, the adapters wired to
 * the line, start-up recovery, and the line's start and stop on the audit
 * record.
 */
#include "app/session.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/sha.h>

#include "app/pl_hsm.h"
#include "app/pl_ledger.h"
#include "app/pl_usb.h"
#include "core/certfile.h"
#include "core/fileio.h"
#include "core/hex.h"
#include "db/db.h"

#define IMAGE_MAX (64u * 1024 * 1024)

struct app_session {
	struct app_session_opts o;
	uint8_t *image, *mfr, *ca;     /* firmware image; CA certificates, DER */
	size_t image_len, mfr_len, ca_len;
	struct pl_hsm *hsm;
	struct pl_ledger *ledger;     /* NULL: no ledger */
	struct pl_usb *usb;
	struct pl_line *line;
	int units, revoked;            /* what recovery found */
	pthread_mutex_t lock;          /* guards line: controls may ask from any thread */
	pthread_mutex_t stop_lock;     /* one pl_line_stop, whoever asks first */
	int stopped;
	char lot[EV_FIELD_LEN];        /* o.lot after a lot change */
};

static void session_warn(struct app_session *s, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void session_warn(struct app_session *s, const char *fmt, ...)
{
	char msg[sizeof(((struct errbuf *)0)->msg) + 64];
	va_list ap;

	if (!s->o.warn)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	s->o.warn(s->o.warn_ctx, msg);
}

/* The run itself is on the audit record: who ran which profile version on
 * which lot, and what came of it.  A record that cannot be written does not
 * stop the line: it is reported through opts.warn. */
static void audit_line(struct app_session *s, const char *kind, json_t *detail)
{
	struct errbuf e;
	char *text = detail ? json_dumps(detail, JSON_COMPACT | JSON_SORT_KEYS) : NULL;

	if (!text || db_audit_append(s->o.db, kind, s->o.operator_name, text, NULL, &e))
		session_warn(s, "audit event %s: %s", kind, text ? e.msg : "out of memory");
	free(text);
	json_decref(detail);
}

/* The firmware image, refused unless it hashes to the profile's SHA-256. */
static int load_image(struct app_session *s, struct errbuf *err)
{
	const struct profile *p = s->o.profile;
	uint8_t d[SHA256_DIGEST_LENGTH];
	char hexd[2 * SHA256_DIGEST_LENGTH + 1];

	if (fileio_read(p->firmware_image, IMAGE_MAX, NULL, &s->image, &s->image_len, err))
		return errbuf_prefix(err, "firmware image: ");
	SHA256(s->image, s->image_len, d);
	hex_encode(d, SHA256_DIGEST_LENGTH, hexd);
	if (strcmp(hexd, p->firmware_sha256))
		return errbuf_set(err, ST_EPOLICY,
				  "firmware image %s has SHA-256 %s, profile %s v%d expects %s",
				  p->firmware_image, hexd, p->name, p->version, p->firmware_sha256);
	return ST_OK;
}

int app_session_open(const struct app_session_opts *o, struct app_session **out,
		     struct errbuf *err)
{
	struct app_session *s;
	int64_t allowed = 0;
	int rc;

	*out = NULL;
	if (!o->db || !o->profile || !o->lot || !o->operator_name || !o->actor ||
	    !o->station_id || !o->bus)
		return errbuf_set(err, ST_EINVAL, "session: incomplete options");
	s = calloc(1, sizeof(*s));
	if (!s)
		return errbuf_set(err, ST_ENOMEM, "out of memory");
	s->o = *o;
	pthread_mutex_init(&s->lock, NULL);
	pthread_mutex_init(&s->stop_lock, NULL);
	/* refusals, in the order an engineer would fix them */
	if ((rc = load_image(s, err)) ||
	    (rc = db_allowlist_count(o->db, o->lot, &allowed, err)))
		goto fail;
	if (allowed == 0 && !o->ledger) {
		rc = errbuf_set(err, ST_ENOTFOUND,
				"lot %s has no allowlist (station allowlist import FILE --lot %s)",
				o->lot, o->lot);
		goto fail;
	}
	/* the trust anchors are those the audited profile pinned (issue 12) */
	if ((rc = certfile_load(o->profile->mfr_ca_cert, CERTFILE_MAX, NULL, &s->mfr, &s->mfr_len,
				err)) ||
	    (rc = profile_pin_check("manufacturer CA", o->profile->mfr_ca_cert,
				    o->profile->mfr_ca_sha256, s->mfr, s->mfr_len, err)) ||
	    (rc = certfile_load(o->profile->hsm_ca_cert, CERTFILE_MAX, NULL, &s->ca, &s->ca_len,
				err)) ||
	    (rc = profile_pin_check("CA certificate", o->profile->hsm_ca_cert,
				    o->profile->hsm_ca_cert_sha256, s->ca, s->ca_len, err)))
		goto fail;
	if ((rc = pl_hsm_open(o->profile, o->db, o->checkpoint_log, &s->hsm, err))) {
		errbuf_prefix(err, "HSM pre-flight failed: ");
		goto fail;
	}
	if (o->ledger && (rc = pl_ledger_open(o->ledger, o->db, o->bus,
					      o->profile->deadline_unit_s > 0 ?
					      2 * o->profile->deadline_unit_s : 0,
					      &s->ledger, err))) {
		errbuf_prefix(err, "ledger: ");
		goto fail;
	}
	/* with a ledger, the lot may have been imported at another station */
	if (allowed == 0 && s->ledger) {
		if ((rc = pl_ledger_lot_count(s->ledger, o->lot, &allowed, err))) {
			errbuf_prefix(err, "ledger: ");
			goto fail;
		}
		if (allowed == 0) {
			rc = errbuf_set(err, ST_ENOTFOUND, "lot %s has no allowlist, here or in the"
					" ledger (station allowlist import FILE --lot %s --ledger …)",
					o->lot, o->lot);
			goto fail;
		}
	}
	*out = s;
	return ST_OK;
fail:
	app_session_close(s);
	return rc;
}

/* Units a crash left in progress are settled before any board is accepted:
 * under the line lock, on a database its anchors do not contradict. */
static int recover(struct app_session *s, struct errbuf *err)
{
	/* another line's units in flight look exactly like a crash's */
	if (!db_line_held(s->o.db))
		return errbuf_set(err, ST_EBUSY, "recovery: this process does not hold the"
				  " database's line lock (db_line_acquire)");
	if (pl_hsm_anchors_check(s->hsm, err))
		return errbuf_prefix(err, "refusing to start: ");
	if (db_line_record(s->o.db, s->o.actor, err))
		return errbuf_prefix(err, "line holder: ");
	if (pl_recover(s->o.db, s->o.actor, s->o.bus, &s->units, &s->revoked, err))
		return errbuf_prefix(err, "recovery: ");
	if (s->units || s->revoked)
		ev_emitf(s->o.bus, EV_LOG, -1, "", "", EV_STAGE_RECOVERY, EV_OUT_NONE,
			 "recovered %d interrupted unit(s), revoked %d orphan certificate(s)",
			 s->units, s->revoked);
	return ST_OK;
}

int app_session_start(struct app_session *s, struct errbuf *err)
{
	const struct app_session_opts *o = &s->o;
	struct pl_config cfg;
	struct pl_line *line;
	int rc;

	if (app_session_line(s))
		return errbuf_set(err, ST_ESTATE, "session: the line is already started");
	ev_emitf(o->bus, EV_HSM_STATE, -1, "", "", EV_STAGE_NONE, EV_OUT_OK,
		 "token %s ready (pre-flight passed)", o->profile->hsm_token);
	if ((rc = pl_hsm_watch(s->hsm, o->bus, err)))
		return rc;
	if ((rc = recover(s, err)))
		return rc;
	memset(&cfg, 0, sizeof(cfg));
	if (s->ledger) {
		if ((rc = pl_ledger_start(s->ledger, err)))
			return errbuf_prefix(err, "ledger: ");
		ev_emitf(o->bus, EV_LEDGER_STATE, -1, "", "", EV_STAGE_NONE, EV_OUT_OK,
			 "ledger ready (schema %d)", LEDGER_SCHEMA_VERSION);
		pl_ledger_ops(s->ledger, &cfg.ledger);
		pl_hsm_guard_serials(s->hsm, pl_ledger_reserve_serials, s->ledger);
	}
	if (o->boards) {
		cfg.transport = *o->boards;
	} else {
		if ((rc = pl_usb_open(o->profile, s->ca, s->ca_len, &s->usb, err)))
			return errbuf_prefix(err, "usb: ");
		pl_usb_transport(s->usb, &cfg.transport);
	}
	cfg.profile = o->profile;
	cfg.lot = o->lot;
	cfg.operator_name = o->operator_name;
	cfg.station_id = o->station_id;
	cfg.nbays = o->nbays;
	cfg.max_units = o->max_units;
	cfg.scan_interval_ms = o->scan_interval_ms;
	cfg.bay_ports = o->bay_ports;
	cfg.grace_ms = o->grace_ms;
	cfg.image = s->image;
	cfg.image_len = s->image_len;
	cfg.mfr_ca_der = s->mfr;
	cfg.mfr_ca_len = s->mfr_len;
	cfg.db = o->db;
	cfg.actor = o->actor;
	cfg.bus = o->bus;
	pl_hsm_ops(s->hsm, &cfg.ca);
	if ((rc = pl_line_start(&cfg, &line, err)))
		return rc;
	pthread_mutex_lock(&s->lock);
	s->line = line;
	pthread_mutex_unlock(&s->lock);
	audit_line(s, "line-start",
		   json_pack("{s:s, s:i, s:s, s:s, s:i, s:i, s:i}", "profile", o->profile->name,
			     "version", o->profile->version, "profile_sha256", o->profile->hash,
			     "lot", o->lot, "bays", o->nbays, "recovered_units", s->units,
			     "revoked_orphans", s->revoked));
	return ST_OK;
}

int app_session_change_lot(struct app_session *s, const char *lot, struct errbuf *err)
{
	struct pl_line *line = app_session_line(s);
	char from[EV_FIELD_LEN];
	int64_t allowed = 0;
	int rc;

	if (!line)
		return errbuf_set(err, ST_ESTATE, "the line is not running");
	if ((rc = db_allowlist_count(s->o.db, lot, &allowed, err)))
		return rc;
	if (!allowed)
		return errbuf_setr(err, ST_ENOTFOUND, ST_ORIGIN_POLICY, ST_R_NOT_FOUND,
				   "no lot %.64s with an allowlist on this station", lot);
	snprintf(from, sizeof(from), "%s", s->o.lot);
	if ((rc = pl_line_set_lot(line, lot, err)))
		return rc;
	snprintf(s->lot, sizeof(s->lot), "%s", lot);
	s->o.lot = s->lot;
	audit_line(s, "lot-change", json_pack("{s:s, s:s}", "from", from, "to", lot));
	return ST_OK;
}

struct pl_line *app_session_line(struct app_session *s)
{
	struct pl_line *line;

	pthread_mutex_lock(&s->lock);
	line = s->line;
	pthread_mutex_unlock(&s->lock);
	return line;
}

void app_session_request_stop(struct app_session *s)
{
	struct pl_line *line = app_session_line(s);

	if (line)
		pl_line_request_stop(line);
}

void app_session_wait(struct app_session *s)
{
	struct pl_line *line = app_session_line(s);

	if (line)
		pl_line_wait(line);
}

void app_session_stop(struct app_session *s)
{
	struct pl_line *line = app_session_line(s);

	pthread_mutex_lock(&s->stop_lock);
	if (line && !s->stopped) {
		pl_line_stop(line);
		s->stopped = 1;
	}
	pthread_mutex_unlock(&s->stop_lock);
}

void app_session_end(struct app_session *s)
{
	struct pl_counts c;
	struct errbuf e;

	if (!s->line)
		return;
	app_session_stop(s);
	pl_line_counts(s->line, &c);
	audit_line(s, "line-stop",
		   json_pack("{s:s, s:I, s:I, s:I}", "lot", s->o.lot, "pass", (json_int_t)c.pass,
			     "fail", (json_int_t)c.fail, "reject", (json_int_t)c.reject));
	if (pl_hsm_checkpoint(s->hsm, &e))
		session_warn(s, "audit checkpoint: %s", e.msg);
}

void app_session_recovered(struct app_session *s, int *units, int *revoked)
{
	*units = s->units;
	*revoked = s->revoked;
}

void app_session_close(struct app_session *s)
{
	if (!s)
		return;
	app_session_stop(s);
	pl_line_free(s->line);
	pl_usb_close(s->usb);
	pl_hsm_close(s->hsm);   /* voids unused serials: events the ledger gets next */
	pl_ledger_close(s->ledger);
	free(s->image);
	free(s->mfr);
	free(s->ca);
	pthread_mutex_destroy(&s->stop_lock);
	pthread_mutex_destroy(&s->lock);
	free(s);
}
