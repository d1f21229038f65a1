/*
 * pl_hsm: the pipeline's CA (struct pl_ca_ops) over hsm/: the token opened with
 * the profile's [hsm] keys (hsm_open runs the pre-flight), CSR policy and
 * issuing with write-ahead (hsm/issue.h), and the database for the
 * injected/revoked transitions.  Also signs audit checkpoints as the line runs.
 */
#include "line/pipeline.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "hsm/certstore.h"
#include "app/certstore_db.h"
#include "hsm/csr_policy.h"
#include "db/db.h"
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
	struct csr_policy pol;
	struct app_checkpointer cp;
	struct db *db;
	char actor[64];
};

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

int pl_hsm_open(const struct profile *p, struct db *db, const char *actor,
		struct pl_hsm **out, struct errbuf *err)
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
	app_certstore_db(&h->store, db);
	if ((rc = issue_ctx_new(h->hsm, &ip, &h->store, &h->ic, err)))
		goto fail;
	csr_policy_default(&h->pol);
	app_checkpointer_init(&h->cp, 100);
	h->db = db;
	snprintf(h->actor, sizeof(h->actor), "%s", actor);
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

void pl_hsm_close(struct pl_hsm *h)
{
	if (!h)
		return;
	issue_ctx_free(h->ic);
	app_checkpointer_destroy(&h->cp);
	hsm_close(h->hsm);
	free(h);
}

/* A checkpoint of the audit chain head now (at line stop). */
int pl_hsm_checkpoint(struct pl_hsm *h, struct errbuf *err)
{
	int rc = app_checkpoint_now(h->hsm, h->db, NULL, err);

	return rc == ST_ENOTFOUND ? ST_OK : rc;
}

static int hsm_issue(void *ctx, int64_t unit_id, const char *unique_id,
		     const char *pubkey_hash, const uint8_t *csr, size_t csr_len,
		     const uint8_t nonce[CSR_NONCE_LEN], const char *san, int validity_days,
		     char serial_hex[65], uint8_t **der, size_t *len, struct errbuf *err)
{
	struct pl_hsm *h = ctx;
	struct csr_info ci;
	struct issue_result res;
	int rc;

	(void)san;            /* the issue context expands the profile's template */
	(void)validity_days;  /* ... and carries its validity */
	memset(&ci, 0, sizeof(ci));
	memset(&res, 0, sizeof(res));
	if ((rc = csr_check(&h->pol, csr, csr_len, unique_id, nonce, &h->store, &ci, err)))
		return rc == ST_EEXIST ? ST_EPOLICY : rc;
	if (strcmp(ci.pubkey_hash, pubkey_hash)) {
		csr_info_clear(&ci);
		return errbuf_set(err, ST_EPOLICY, "CSR public key changed between checks");
	}
	rc = issue_cert(h->ic, &ci, unit_id, &res, err);
	csr_info_clear(&ci);
	if (rc) {
		issue_result_clear(&res);
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
	ST_IGNORE(app_checkpoint_maybe(h->hsm, h->db, &h->cp, NULL, NULL));
	return ST_OK;
}

static int hsm_injected(void *ctx, const char *serial_hex, struct errbuf *err)
{
	struct pl_hsm *h = ctx;

	return db_cert_injected(h->db, serial_hex, err);
}

static int hsm_revoke(void *ctx, const char *serial_hex, const char *reason, struct errbuf *err)
{
	struct pl_hsm *h = ctx;

	return db_cert_revoke(h->db, serial_hex, reason, h->actor, err);
}

void pl_hsm_ops(struct pl_hsm *h, struct pl_ca_ops *ops)
{
	ops->issue = hsm_issue;
	ops->injected = hsm_injected;
	ops->revoke = hsm_revoke;
	ops->ctx = h;
}
