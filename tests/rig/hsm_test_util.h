/*
 * Helpers for the HSM unit tests and the HSM benchmark (header only: each test
 * binary is built from one .c file).
 *
 * - tu_make_token(): a real SoftHSM token made by hsm/softhsm-setup.sh in the
 *   scratch directory (its own SOFTHSM2_CONF and token dir).
 * - tu_make_csr(): a board-like CSR made in software: key, subject, nonce as
 *   challengePassword, optional requested extensions.
 * - struct tu_store: an in-memory certificate store with db.h's signatures, so
 *   hsm/ can be tested without the database.
 */
#ifndef STATION_HSM_TEST_UTIL_H
#define STATION_HSM_TEST_UTIL_H

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "core/hex.h"
#include "hsm/certstore.h"
#include "hsm/hsm.h"

static inline const char *tu_top(void)
{
	const char *t = getenv("STATION_TOP");

	return t && *t ? t : ".";
}

static inline const char *tu_scratch(void)
{
	const char *s = getenv("STATION_SCRATCH");

	return s && *s ? s : ".";
}

/* Makes a token under <scratch>/<name> with softhsm-setup.sh and fills cfg from
 * its hsm.ini.  Returns 0 on success. */
static inline int tu_make_token(const char *name, const char *key_type, struct hsm_config *cfg)
{
	char cmd[2048], ini[1024];
	struct errbuf e;

	snprintf(cmd, sizeof(cmd),
		 "'%s/hsm/softhsm-setup.sh' --dir '%s/%s' --label '%s' --key-type %s >/dev/null",
		 tu_top(), tu_scratch(), name, name, key_type);
	if (system(cmd) != 0)
		return -1;
	snprintf(ini, sizeof(ini), "%s/%s/hsm.ini", tu_scratch(), name);
	hsm_config_init(cfg);
	if (hsm_config_load_ini(cfg, ini, &e) != ST_OK) {
		fprintf(stderr, "%s\n", e.msg);
		return -1;
	}
	return 0;
}

static inline EVP_PKEY *tu_key(const char *kind)
{
	if (!strcmp(kind, "P-256"))
		return EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	if (!strcmp(kind, "P-384"))
		return EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384");
	if (!strcmp(kind, "P-224"))
		return EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-224");
	if (!strcmp(kind, "RSA-2048"))
		return EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
	if (!strcmp(kind, "RSA-3072"))
		return EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)3072);
	return NULL;
}

/* A CSR for key with subject CN=cn (and O=org when org is set), the nonce as
 * challengePassword (none when nonce is NULL), and a requested basicConstraints
 * CA:TRUE + SAN when evil_exts.  DER in *der (OPENSSL_free). */
static inline int tu_make_csr(EVP_PKEY *key, const char *cn, const char *org,
			      const uint8_t *nonce, int evil_exts, uint8_t **der, size_t *len)
{
	X509_REQ *req = X509_REQ_new();
	X509_NAME *n = X509_NAME_new();
	const EVP_MD *md = EVP_sha256();
	char hex[65];
	int l, ok;

	ok = req && n &&
	     X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0) &&
	     (!org || X509_NAME_add_entry_by_txt(n, "O", MBSTRING_ASC,
						 (const unsigned char *)org, -1, -1, 0)) &&
	     X509_REQ_set_subject_name(req, n) && X509_REQ_set_pubkey(req, key);
	if (ok && nonce) {
		hex_encode(nonce, 32, hex);
		ok = X509_REQ_add1_attr_by_NID(req, NID_pkcs9_challengePassword, MBSTRING_ASC,
					       (const unsigned char *)hex, 64);
	}
	if (ok && evil_exts) {
		STACK_OF(X509_EXTENSION) *exts = sk_X509_EXTENSION_new_null();
		X509V3_CTX ctx;
		X509_EXTENSION *e1, *e2;

		X509V3_set_ctx_nodb(&ctx);
		X509V3_set_ctx(&ctx, NULL, NULL, req, NULL, 0);
		e1 = X509V3_EXT_conf_nid(NULL, &ctx, NID_basic_constraints, "critical,CA:TRUE");
		e2 = X509V3_EXT_conf_nid(NULL, &ctx, NID_subject_alt_name, "DNS:evil.example");
		ok = exts && e1 && e2 && sk_X509_EXTENSION_push(exts, e1) &&
		     sk_X509_EXTENSION_push(exts, e2) && X509_REQ_add_extensions(req, exts);
		sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
	}
	if (EVP_PKEY_get_base_id(key) == EVP_PKEY_EC && EVP_PKEY_get_bits(key) == 384)
		md = EVP_sha384();
	ok = ok && X509_REQ_sign(req, key, md) > 0;
	*der = NULL;
	l = ok ? i2d_X509_REQ(req, der) : -1;
	X509_NAME_free(n);
	X509_REQ_free(req);
	if (l <= 0)
		return -1;
	*len = (size_t)l;
	return 0;
}

/* ---- in-memory certificate store ---------------------------------------- */

#define TU_STORE_MAX 4096

/* The life of a record, as the station's database has it (db/db.h). */
enum tu_cert_status { TU_CERT_RESERVED = 0, TU_CERT_ISSUED, TU_CERT_INJECTED, TU_CERT_REVOKED, TU_CERT_VOID };

struct tu_cert {
	char serial[65];
	char pubkey_hash[65];   /* "" while reserved */
	char unique_id[65];
	int status;
	char reason[32];
	int64_t revoked_ms;
	int64_t unit_id;
};

struct tu_store {
	pthread_mutex_t mu;
	struct tu_cert certs[TU_STORE_MAX];
	int n;
	int fail_issued;      /* make issued() fail (write-ahead test) */
	int fail_revoke;      /* make revoke() fail too */
	int calls_reserve, calls_issued, calls_release, calls_revoke;
};

static inline struct tu_store *tu_store_of(void *ctx) { return ctx; }

static inline struct tu_cert *tu_find(struct tu_store *s, const char *serial)
{
	for (int i = 0; i < s->n; i++)
		if (!strcmp(s->certs[i].serial, serial))
			return &s->certs[i];
	return NULL;
}

/* How many records have this status. */
static inline int tu_count(struct tu_store *s, int status)
{
	int n = 0;

	for (int i = 0; i < s->n; i++)
		n += s->certs[i].status == status;
	return n;
}

static inline int tu_pubkey_seen(void *db, const char *h, int *seen, struct errbuf *err)
{
	struct tu_store *s = tu_store_of(db);

	pthread_mutex_lock(&s->mu);
	*seen = 0;
	for (int i = 0; i < s->n; i++)
		if (!strcmp(s->certs[i].pubkey_hash, h))
			*seen = 1;
	pthread_mutex_unlock(&s->mu);
	return ST_OK;
}

/* All or nothing, like the database's transaction. */
static inline int tu_reserve(void *db, const char *const *serials, size_t n,
			     struct errbuf *err)
{
	struct tu_store *s = tu_store_of(db);
	int rc = ST_OK;

	pthread_mutex_lock(&s->mu);
	s->calls_reserve++;
	for (size_t i = 0; i < n && rc == ST_OK; i++)
		if (tu_find(s, serials[i]))
			rc = errbuf_set(err, ST_EEXIST, "serial %s taken", serials[i]);
	if (rc == ST_OK && s->n + (int)n > TU_STORE_MAX)
		rc = errbuf_set(err, ST_EDB, "store full");
	for (size_t i = 0; i < n && rc == ST_OK; i++) {
		struct tu_cert *c = &s->certs[s->n++];

		memset(c, 0, sizeof(*c));
		snprintf(c->serial, sizeof(c->serial), "%s", serials[i]);
		c->status = TU_CERT_RESERVED;
	}
	pthread_mutex_unlock(&s->mu);
	return rc;
}

static inline int tu_issued(void *db, const char *serial, int64_t unit_id,
			    const char *uid, const char *pkh, const uint8_t *der, size_t len,
			    struct errbuf *err)
{
	struct tu_store *s = tu_store_of(db);
	struct tu_cert *c;
	int rc = ST_OK;

	pthread_mutex_lock(&s->mu);
	s->calls_issued++;
	c = tu_find(s, serial);
	if (s->fail_issued)
		rc = errbuf_set(err, ST_EDB, "disk full (simulated)");
	else if (!c || c->status != TU_CERT_RESERVED || c->pubkey_hash[0])
		rc = errbuf_set(err, ST_EDB, "serial %s not reserved", serial);
	for (int i = 0; i < s->n && rc == ST_OK; i++)
		if (!strcmp(s->certs[i].pubkey_hash, pkh))
			rc = errbuf_set(err, ST_EEXIST, "public key already certified (serial %s)",
					s->certs[i].serial);
	if (rc == ST_OK) {
		c->status = TU_CERT_ISSUED;
		c->unit_id = unit_id;
		snprintf(c->unique_id, sizeof(c->unique_id), "%s", uid);
		snprintf(c->pubkey_hash, sizeof(c->pubkey_hash), "%s", pkh);
	}
	pthread_mutex_unlock(&s->mu);
	return rc;
}

static inline int tu_release(void *db, const char *const *serials, size_t n,
			     struct errbuf *err)
{
	struct tu_store *s = tu_store_of(db);
	int rc = ST_OK;

	pthread_mutex_lock(&s->mu);
	s->calls_release++;
	for (size_t i = 0; i < n && rc == ST_OK; i++) {
		struct tu_cert *c = tu_find(s, serials[i]);

		if (!c || c->status != TU_CERT_RESERVED || c->pubkey_hash[0])
			rc = errbuf_set(err, ST_ESTATE, "serial %s is not reserved and unsigned",
					serials[i]);
	}
	for (size_t i = 0; i < n && rc == ST_OK; i++)
		tu_find(s, serials[i])->status = TU_CERT_VOID;
	pthread_mutex_unlock(&s->mu);
	return rc;
}

/* Marks a record revoked (tests call it directly; the store's revoke goes through it). */
static inline int tu_revoke(struct tu_store *s, const char *serial, const char *reason)
{
	struct tu_cert *c = tu_find(s, serial);

	if (!c || c->status == TU_CERT_VOID || c->status == TU_CERT_REVOKED)
		return -1;
	c->status = TU_CERT_REVOKED;
	snprintf(c->reason, sizeof(c->reason), "%s", reason);
	c->revoked_ms = 1700000000000LL;
	return 0;
}

static inline int tu_store_revoke(void *db, const char *serial, const char *reason,
				  const char *actor, struct errbuf *err)
{
	struct tu_store *s = tu_store_of(db);
	int rc = ST_OK;

	pthread_mutex_lock(&s->mu);
	s->calls_revoke++;
	if (s->fail_revoke || tu_revoke(s, serial, reason))
		rc = errbuf_set(err, ST_EDB, "cannot revoke %s (simulated)", serial);
	pthread_mutex_unlock(&s->mu);
	return rc;
}

static inline int tu_foreach(void *db,
			     int (*fn)(const struct hsm_revoked *c, void *ctx), void *ctx,
			     struct errbuf *err)
{
	struct tu_store *s = tu_store_of(db);

	for (int i = 0; i < s->n; i++) {
		struct hsm_revoked r;

		if (s->certs[i].status != TU_CERT_REVOKED)
			continue;
		r.serial_hex = s->certs[i].serial;
		r.reason = s->certs[i].reason;
		r.revoked_ms = s->certs[i].revoked_ms;
		if (fn(&r, ctx))
			break;
	}
	return ST_OK;
}

static inline void tu_store_init(struct tu_store *s, struct hsm_certstore *cs)
{
	memset(s, 0, sizeof(*s));
	pthread_mutex_init(&s->mu, NULL);
	cs->ctx = s;
	cs->pubkey_seen = tu_pubkey_seen;
	cs->pubkey_seen_by = NULL;
	cs->reserve = tu_reserve;
	cs->issued = tu_issued;
	cs->release = tu_release;
	cs->revoke = tu_store_revoke;
	cs->foreach_revoked = tu_foreach;
	cs->crl_number = NULL;          /* the CRL number is the signing time */
}

#endif
