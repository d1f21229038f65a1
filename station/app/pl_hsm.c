/*
 * pl_hsm: the pipeline's CA (struct pl_ca_ops) over hsm/: the token opened with
 * the profile's [hsm] keys (hsm_open runs the pre-flight), the CSR policy
 * (hsm/csr_policy.h, set to the profile's key type) and issuing with
 * write-ahead (hsm/issue.h), the database as the certificate store.  Also
 * signs audit checkpoints as the line runs, and reopens the token after a
 * transport failure (pl_hsm_watch: the reconnector thread).
 */
#include "app/pl_hsm.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "core/clock.h"
#include "core/event.h"
#include "hsm/certstore.h"
#include "app/certstore_db.h"
#include "hsm/csr_policy.h"
#include "hsm/hsm.h"
#include "app/checkpoint.h"
#include "hsm/hsm_checkpoint.h"
#include "hsm/issue.h"
#include "proto/proto.h"

/* hsm/ checks the board's answer without seeing the wire format: the lengths
 * it assumes are the protocol's. */
_Static_assert(CSR_NONCE_LEN == PROTO_NONCE_LEN, "CSR nonce is the protocol's nonce");
_Static_assert(CSR_UID_LEN == PROTO_UID_LEN, "CSR unique id is the protocol's");

struct pl_hsm {
	struct hsm *hsm;
	struct issue_ctx *ic;
	struct hsm_certstore store;
	struct app_certstore_guarded guarded;   /* the store's context */
	struct csr_policy pol;
	struct app_checkpointer cp;
	struct db *db;
	/* the reconnector (pl_hsm_watch); mu guards what follows, cv wakes the
	 * thread (a failure, the stop) and the signers waiting for the token */
	pthread_mutex_t mu;
	pthread_cond_t cv;
	pthread_t thread;
	int started, stopping, kicked;
	struct ev_bus *bus;
};

/* Backoff between reopen attempts, doubling from the first to the cap: the
 * line comes back within PL_HSM_BACKOFF_MAX_MS of the server. */
#define PL_HSM_BACKOFF_MS     100
#define PL_HSM_BACKOFF_MAX_MS 1000
/* How long a unit that reaches signing while the token is down waits for the
 * reconnector before it FAILs with hsm_unreachable: a blip costs no unit, an
 * outage does not hold boards in their bays. */
#define PL_HSM_WAIT_MS        1500

/* A CSR csr_check() accepted (pipeline.h: opaque to the line). */
struct pl_csr {
	struct csr_info ci;
};

/* The profile names the one key type its boards make. */
static void profile_policy(const struct profile *p, struct csr_policy *pol)
{
	switch (p->key_type) {
	case PROFILE_KEY_EC_P384:
		csr_policy_for_key(pol, CSR_KEY_EC_P384, 0);
		break;
	case PROFILE_KEY_RSA_3072:
		csr_policy_for_key(pol, CSR_KEY_RSA, 3072);
		break;
	case PROFILE_KEY_EC_P256:
	default:
		csr_policy_for_key(pol, CSR_KEY_EC_P256, 0);
		break;
	}
}

/* "{unique_id}" in the profile is "%s" for hsm/issue (profile.c allows no '%'). */
static int san_template(const struct profile *p, char *out, size_t outsz, struct errbuf *err)
{
	const char *ph = strstr(p->san_template, "{unique_id}");

	if (!p->san_template[0]) {
		out[0] = '\0';
		return ST_OK;
	}
	if (!ph || (size_t)snprintf(out, outsz, "%.*s%%s%s", (int)(ph - p->san_template),
				    p->san_template, ph + strlen("{unique_id}")) >= outsz)
		return errbuf_set(err, ST_EINVAL, "profile %s: bad san template", p->name);
	return issue_san_template_check(out, err);
}

int pl_hsm_open(const struct profile *p, struct db *db, const char *log_path, struct pl_hsm **out,
		struct errbuf *err)
{
	struct hsm_config c;
	struct issue_profile ip;
	struct pl_hsm *h;
	int rc;

	*out = NULL;
	h = calloc(1, sizeof(*h));
	if (!h)
		return errbuf_set(err, ST_ENOMEM, "hsm: out of memory");
	hsm_config_init(&c);
	if ((rc = hsm_config_set(&c, "module", p->hsm_module, err)) ||
	    (p->hsm_softhsm2_conf[0] &&
	     (rc = hsm_config_set(&c, "softhsm2_conf", p->hsm_softhsm2_conf, err))) ||
	    (rc = hsm_config_set(&c, "token", p->hsm_token, err)) ||
	    (rc = hsm_config_set(&c, "ca_key", p->hsm_ca_key, err)) ||
	    (rc = hsm_config_set(&c, "ca_cert", p->hsm_ca_cert, err)) ||
	    (p->hsm_ca_cert_sha256[0] &&
	     (rc = hsm_config_set(&c, "ca_cert_sha256", p->hsm_ca_cert_sha256, err))) ||
	    (rc = hsm_config_set(&c, "audit_key", p->hsm_audit_key, err)) ||
	    (rc = p->hsm_pin_file[0] ? hsm_config_set(&c, "pin_file", p->hsm_pin_file, err)
				     : hsm_config_set(&c, "pin_env", p->hsm_pin_env, err)) ||
	    (rc = hsm_config_check(&c, err)))
		goto fail;
	memset(&ip, 0, sizeof(ip));
	ip.validity_days = p->validity_days;
	if ((rc = san_template(p, ip.san_template, sizeof(ip.san_template), err)))
		goto fail;
	if ((rc = hsm_open(&c, &h->hsm, err)))
		goto fail;
	h->guarded.db = db;
	app_certstore_db_guarded(&h->store, &h->guarded);
	if ((rc = issue_ctx_new(h->hsm, &ip, &h->store, &h->ic, err)))
		goto fail;
	profile_policy(p, &h->pol);
	app_checkpointer_init(&h->cp, 100, log_path);
	h->db = db;
	pthread_mutex_init(&h->mu, NULL);
	pthread_cond_init(&h->cv, NULL);
	OPENSSL_cleanse(&c, sizeof(c));
	*out = h;
	return ST_OK;
fail:
	OPENSSL_cleanse(&c, sizeof(c));
	if (h->hsm)
		hsm_close(h->hsm);
	free(h);
	return rc;
}

void pl_hsm_guard_serials(struct pl_hsm *h,
			  int (*guard)(void *ctx, const char *const *serials, size_t n,
				       struct errbuf *err), void *ctx)
{
	h->guarded.guard_ctx = ctx;
	h->guarded.guard = guard;
}

void pl_hsm_close(struct pl_hsm *h)
{
	if (!h)
		return;
	if (h->started) {
		pthread_mutex_lock(&h->mu);
		h->stopping = 1;
		pthread_cond_broadcast(&h->cv);
		pthread_mutex_unlock(&h->mu);
		pthread_join(h->thread, NULL);
	}
	if (h->db) {   /* set once the mutex and condition exist */
		pthread_cond_destroy(&h->cv);
		pthread_mutex_destroy(&h->mu);
	}
	issue_ctx_free(h->ic);
	app_checkpointer_destroy(&h->cp);
	hsm_close(h->hsm);
	free(h);
}

/* ---- the reconnector ----------------------------------------------------- */

/* EV_HSM_STATE for the screen's header: FAIL with hsm_unreachable while the
 * token is down, OK when it is back. */
static void hsm_state(struct pl_hsm *h, int up, enum st_reason code, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static void hsm_state(struct pl_hsm *h, int up, enum st_reason code, const char *fmt, ...)
{
	struct ev_event ev;
	va_list ap;

	if (!h->bus)
		return;
	memset(&ev, 0, sizeof(ev));
	ev.kind = EV_HSM_STATE;
	ev.bay_index = -1;
	ev.outcome = up ? EV_OUT_OK : EV_OUT_FAIL;
	ev.reason_code = code;
	va_start(ap, fmt);
	vsnprintf(ev.reason, sizeof(ev.reason), fmt, ap);
	va_end(ap);
	ev_emit(h->bus, &ev);
}

static void kick(struct pl_hsm *h)
{
	pthread_mutex_lock(&h->mu);
	h->kicked = 1;
	pthread_cond_broadcast(&h->cv);
	pthread_mutex_unlock(&h->mu);
}

/* A signer that finds the token down waits a little for the reconnector. */
static void wait_up(struct pl_hsm *h)
{
	struct timespec until;

	if (!hsm_is_down(h->hsm) || !h->started)
		return;
	clock_deadline(CLOCK_REALTIME, PL_HSM_WAIT_MS, &until);
	pthread_mutex_lock(&h->mu);
	while (hsm_is_down(h->hsm) && !h->stopping &&
	       pthread_cond_timedwait(&h->cv, &h->mu, &until) == 0)
		;
	pthread_mutex_unlock(&h->mu);
}

/* Reopens the token until it is back or the station stops; mu is held. */
static void reconnect(struct pl_hsm *h)
{
	int64_t delay = PL_HSM_BACKOFF_MS, since = clock_monotonic_ms();
	struct timespec until;
	unsigned char jitter;
	struct errbuf e;
	int tries = 0, rc;

	hsm_state(h, 0, ST_R_HSM_UNREACHABLE, "token %s unreachable: reconnecting",
		  hsm_token_label(h->hsm));
	while (!h->stopping) {
		pthread_mutex_unlock(&h->mu);
		errbuf_clear(&e);
		rc = hsm_reopen(h->hsm, &e);
		tries++;
		pthread_mutex_lock(&h->mu);
		if (rc == ST_OK) {
			hsm_state(h, 1, ST_R_NONE, "token %s back after %.1f s (%d attempt%s)",
				  hsm_token_label(h->hsm),
				  (double)(clock_monotonic_ms() - since) / 1000.0, tries,
				  tries == 1 ? "" : "s");
			pthread_cond_broadcast(&h->cv);
			return;
		}
		if (rc == ST_EPIN) {
			/* never a second login with a refused PIN: down until restarted */
			hsm_state(h, 0, ST_R_PIN, "%s", e.msg);
			while (!h->stopping)
				pthread_cond_wait(&h->cv, &h->mu);
			return;
		}
		if (tries % 10 == 0)
			hsm_state(h, 0, ST_R_HSM_UNREACHABLE, "token %s still unreachable after %d "
				  "attempt%s: %s", hsm_token_label(h->hsm), tries, tries == 1 ? "" : "s",
				  e.msg);
		/* jitter: stations that lost the server together do not all come
		 * back at the same instant (the token's start-up collisions) */
		if (RAND_bytes(&jitter, 1) != 1)
			jitter = 0;
		clock_deadline(CLOCK_REALTIME, delay + delay * jitter / 512, &until);
		while (!h->stopping && pthread_cond_timedwait(&h->cv, &h->mu, &until) == 0)
			;
		delay = delay * 2 > PL_HSM_BACKOFF_MAX_MS ? PL_HSM_BACKOFF_MAX_MS : delay * 2;
	}
}

static void *reconnector_main(void *arg)
{
	struct pl_hsm *h = arg;

	pthread_mutex_lock(&h->mu);
	while (!h->stopping) {
		if (!h->kicked && !hsm_is_down(h->hsm)) {
			pthread_cond_wait(&h->cv, &h->mu);
			continue;
		}
		h->kicked = 0;
		if (hsm_is_down(h->hsm))
			reconnect(h);
	}
	pthread_mutex_unlock(&h->mu);
	return NULL;
}

int pl_hsm_watch(struct pl_hsm *h, struct ev_bus *bus, struct errbuf *err)
{
	if (h->started)
		return ST_OK;
	h->bus = bus;
	if (pthread_create(&h->thread, NULL, reconnector_main, h) != 0)
		return errbuf_set(err, ST_EIO, "cannot start the HSM reconnector thread");
	h->started = 1;
	return ST_OK;
}

/* The anchors outside the database against it, before the line acts on it
 * (recovery, then boards): a database copied back from an earlier state
 * would have forgotten certificates issued since, and the boards they went to.
 * Without an audit key there is nothing to check them with. */
int pl_hsm_anchors_check(struct pl_hsm *h, struct errbuf *err)
{
	struct app_anchor_report rep;
	const uint8_t *pub;
	size_t pub_len;

	if (hsm_audit_pubkey(h->hsm, &pub, &pub_len) != ST_OK)
		return ST_OK;
	return app_anchors_verify(h->hsm, h->db, h->cp.log_path, 0, pub, pub_len, &rep, err);
}

/* A checkpoint of the audit chain head now (at line stop). */
int pl_hsm_checkpoint(struct pl_hsm *h, struct errbuf *err)
{
	int rc = app_checkpoint_now(h->hsm, h->db, h->cp.log_path, NULL, err);

	return rc == ST_ENOTFOUND ? ST_OK : rc;
}

/* The one parse and check of a board's CSR; csr_check's codes go to the line
 * as they are (pipeline.h says what each means there). */
static int hsm_check_csr(void *ctx, const uint8_t *der, size_t len, const char *unique_id,
			 const uint8_t nonce[CSR_NONCE_LEN], struct pl_csr **out,
			 struct pl_csr_facts *facts, struct errbuf *err)
{
	struct pl_hsm *h = ctx;
	struct pl_csr *c;
	int rc;

	*out = NULL;
	memset(facts, 0, sizeof(*facts));
	c = calloc(1, sizeof(*c));
	if (!c)
		return errbuf_set(err, ST_ENOMEM, "out of memory");
	rc = csr_check(&h->pol, der, len, unique_id, nonce, &h->store, &c->ci, err);
	snprintf(facts->pubkey_hash, sizeof(facts->pubkey_hash), "%s", c->ci.pubkey_hash);
	if (rc) {
		free(c);
		return rc;
	}
	memcpy(facts->csr_sha256, c->ci.der_sha256, sizeof(facts->csr_sha256));
	*out = c;
	return ST_OK;
}

static void hsm_csr_free(void *ctx, struct pl_csr *c)
{
	(void)ctx;
	if (!c)
		return;
	csr_info_clear(&c->ci);
	free(c);
}

static int hsm_sign(void *ctx, const struct pl_csr *csr, int64_t unit_id, char serial_hex[65],
		    uint8_t **der, size_t *len, struct errbuf *err)
{
	struct pl_hsm *h = ctx;
	struct issue_result res;
	int rc;

	memset(&res, 0, sizeof(res));
	wait_up(h);
	if ((rc = issue_cert(h->ic, &csr->ci, unit_id, &res, err))) {
		issue_result_clear(&res);
		if (err && err->reason == ST_R_HSM_UNREACHABLE)
			kick(h);
		return rc;
	}
	*der = malloc(res.der_len);
	if (!*der) {
		/* recorded as issued: the unit's failure revokes it */
		snprintf(serial_hex, 65, "%s", res.serial_hex);
		issue_result_clear(&res);
		return errbuf_set(err, ST_ENOMEM, "out of memory");
	}
	memcpy(*der, res.der, res.der_len);
	*len = res.der_len;
	snprintf(serial_hex, 65, "%s", res.serial_hex);
	issue_result_clear(&res);
	/* best effort: the certificate is issued and stored; a checkpoint that
	 * fails now is made by the next certificate's call (last_seq stays) */
	if (app_checkpoint_maybe(h->hsm, h->db, &h->cp, NULL, NULL) != ST_OK && hsm_is_down(h->hsm))
		kick(h);
	return ST_OK;
}

void pl_hsm_ops(struct pl_hsm *h, struct pl_ca_ops *ops)
{
	ops->check_csr = hsm_check_csr;
	ops->sign = hsm_sign;
	ops->csr_free = hsm_csr_free;
	ops->ctx = h;
}
