/*
 * In-process fakes for testing and benchmarking the pipeline logic alone:
 * a board that speaks pl_board_ops with real OpenSSL keys (device key made on
 * the "board", CSR bound to the nonce, manufacturer attestation, proof of
 * possession) and fault knobs per stage; a transport over a table of such
 * boards; a CA with an in-memory key that checks CSRs with the station's own
 * policy (hsm/csr_policy.h, P-256 as the profiles here) and writes ahead to
 * the real database.
 *
 * These are mocks for one module's tests (tests/unit/line/, through its
 * pipeline_rig.h) and for the in-process figures of tests/bench/bench_line.c.
 * End-to-end claims go through libusb and the real board (tests/e2e/line_*.sh).
 * Header-only (static functions) so both can include it.
 */
#ifndef TEST_PIPELINE_FAKES_H
#define TEST_PIPELINE_FAKES_H

#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "core/clock.h"
#include "core/hex.h"
#include "db/db.h"
#include "hsm/certstore.h"
#include "hsm/csr_policy.h"
#include "line/pipeline.h"

enum fb_fault {
	FB_OK = 0,
	FB_TIMEOUT_ONCE,   /* transient fault at fault_stage, then fine */
	FB_TIMEOUT,        /* times out at fault_stage every time */
	FB_UNPLUG,         /* goes away at fault_stage */
	FB_FLASH_CORRUPT,  /* image in flash differs from what was sent */
	FB_WRONG_SUBJECT,  /* CSR for another id */
	FB_WRONG_NONCE,    /* CSR with a stale nonce */
	FB_BAD_ATTEST,     /* attestation signature over the wrong message */
	FB_FOREIGN_ATTEST, /* attestation cert from another manufacturer CA */
	FB_READBACK_BAD,   /* certificate read back is corrupted */
	FB_PROVE_WRONG,    /* proves with another key */
	FB_REUSE_KEY,      /* keygen "generates" a key shared with other boards */
};

struct fb_board {
	char uid[EV_UID_LEN];
	char usb_serial[EV_UID_LEN];
	pthread_mutex_t lock;
	EVP_PKEY *attest_key;
	uint8_t attest_cert[PL_ATTEST_CERT_MAX];
	size_t attest_cert_len;
	EVP_PKEY *dev_key;
	uint8_t *cert;
	size_t cert_len;
	char fw_sha[65];
	int locked;
	int unplugged;
	enum fb_fault fault;
	enum ev_stage fault_stage;
	int fault_fired;
	int keygen_ms, flash_ms;   /* latency */
	int keygens, opens;
};

static EVP_PKEY *fb_ec_key(const char *curve)
{
	return EVP_PKEY_Q_keygen(NULL, NULL, "EC", curve);
}

/* A certificate for CN=cn with key pk, signed by (ca, ca_key); self-signed when
 * ca is NULL.  CA:TRUE when is_ca. */
static X509 *fb_make_cert(const char *cn, EVP_PKEY *pk, X509 *ca, EVP_PKEY *ca_key,
			  int is_ca, int days)
{
	X509 *x = X509_new();
	X509_NAME *name = X509_NAME_new();
	X509V3_CTX v3;
	X509_EXTENSION *ext;
	uint8_t sn[8];

	RAND_bytes(sn, sizeof(sn));
	sn[0] &= 0x7f;
	X509_set_version(x, 2);
	ASN1_INTEGER_set_uint64(X509_get_serialNumber(x),
				((uint64_t)sn[0] << 24 | sn[1] << 16 | sn[2] << 8 | sn[3]) + 1);
	X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
	X509_set_subject_name(x, name);
	X509_set_issuer_name(x, ca ? X509_get_subject_name(ca) : name);
	X509_NAME_free(name);
	X509_gmtime_adj(X509_getm_notBefore(x), -3600);
	X509_gmtime_adj(X509_getm_notAfter(x), (long)days * 86400);
	X509_set_pubkey(x, pk);
	X509V3_set_ctx(&v3, ca ? ca : x, x, NULL, NULL, 0);
	ext = X509V3_EXT_conf_nid(NULL, &v3, NID_basic_constraints,
				  is_ca ? "critical,CA:TRUE" : "critical,CA:FALSE");
	X509_add_ext(x, ext, -1);
	X509_EXTENSION_free(ext);
	if (is_ca) {
		ext = X509V3_EXT_conf_nid(NULL, &v3, NID_key_usage, "critical,keyCertSign,cRLSign");
		X509_add_ext(x, ext, -1);
		X509_EXTENSION_free(ext);
	}
	X509_sign(x, ca_key, EVP_sha256());
	return x;
}

static size_t fb_der(X509 *x, uint8_t *out, size_t max)
{
	unsigned char *p = NULL;
	int n = i2d_X509(x, &p);

	if (n <= 0 || (size_t)n > max) {
		OPENSSL_free(p);
		return 0;
	}
	memcpy(out, p, (size_t)n);
	OPENSSL_free(p);
	return (size_t)n;
}

/* The manufacturer: a CA that signs each board's attestation certificate. */
struct fb_mfr {
	EVP_PKEY *key;
	X509 *cert;
	uint8_t der[4096];
	size_t der_len;
};

static void fb_mfr_init(struct fb_mfr *m, const char *name)
{
	m->key = fb_ec_key("P-256");
	m->cert = fb_make_cert(name, m->key, NULL, m->key, 1, 3650);
	m->der_len = fb_der(m->cert, m->der, sizeof(m->der));
}

static void fb_mfr_free(struct fb_mfr *m)
{
	X509_free(m->cert);
	EVP_PKEY_free(m->key);
}

static EVP_PKEY *fb_shared_key;   /* FB_REUSE_KEY: one key for every such board */
static pthread_mutex_t fb_shared_lock = PTHREAD_MUTEX_INITIALIZER;

static struct fb_board *fb_board_new(const char *uid, struct fb_mfr *mfr)
{
	struct fb_board *b = calloc(1, sizeof(*b));
	X509 *ac;

	snprintf(b->uid, sizeof(b->uid), "%s", uid);
	snprintf(b->usb_serial, sizeof(b->usb_serial), "%s", uid);
	pthread_mutex_init(&b->lock, NULL);
	b->attest_key = fb_ec_key("P-256");
	ac = fb_make_cert(uid, b->attest_key, mfr->cert, mfr->key, 0, 3650);
	b->attest_cert_len = fb_der(ac, b->attest_cert, sizeof(b->attest_cert));
	X509_free(ac);
	return b;
}

static void fb_board_free(struct fb_board *b)
{
	if (!b)
		return;
	EVP_PKEY_free(b->attest_key);
	EVP_PKEY_free(b->dev_key);
	free(b->cert);
	pthread_mutex_destroy(&b->lock);
	free(b);
}

/* The fault for this stage, if any: returns an st_rc to fail with, or 0. */
static int fb_fault_at(struct fb_board *b, enum ev_stage s, struct errbuf *err)
{
	if (b->unplugged)
		return errbuf_set(err, ST_ENODEV, "board gone");
	if (b->fault_stage != s)
		return 0;
	switch (b->fault) {
	case FB_TIMEOUT_ONCE:
		if (b->fault_fired++)
			return 0;
		return errbuf_set(err, ST_ETIMEOUT, "transfer timed out (once)");
	case FB_TIMEOUT:
		return errbuf_set(err, ST_ETIMEOUT, "transfer timed out");
	case FB_UNPLUG:
		b->unplugged = 1;
		return errbuf_set(err, ST_ENODEV, "board unplugged");
	default:
		return 0;
	}
}

static int fb_info(void *h, struct pl_board_info *out, struct errbuf *err)
{
	struct fb_board *b = h;
	int rc;

	pthread_mutex_lock(&b->lock);
	if ((rc = fb_fault_at(b, EV_STAGE_IDENTIFY, err)) == 0) {
		memset(out, 0, sizeof(*out));
		snprintf(out->unique_id, sizeof(out->unique_id), "%s", b->uid);
		snprintf(out->firmware_sha256, sizeof(out->firmware_sha256), "%s", b->fw_sha);
		out->locked = b->locked;
		out->has_cert = b->cert != NULL;
		memcpy(out->attest_cert, b->attest_cert, b->attest_cert_len);
		out->attest_cert_len = b->attest_cert_len;
	}
	pthread_mutex_unlock(&b->lock);
	return rc;
}

static int fb_flash(void *h, const uint8_t *image, size_t len, pl_progress_fn cb, void *ctx,
		    struct errbuf *err)
{
	struct fb_board *b = h;
	uint8_t d[32];
	int rc;

	pthread_mutex_lock(&b->lock);
	rc = fb_fault_at(b, EV_STAGE_FLASH, err);
	pthread_mutex_unlock(&b->lock);
	if (rc)
		return rc;
	for (int i = 1; i <= 4; i++) {
		clock_sleep_ms(b->flash_ms / 4);
		cb((uint64_t)len * (uint64_t)i / 4, len, ctx);
	}
	SHA256(image, len, d);
	if (b->fault == FB_FLASH_CORRUPT)
		d[0] ^= 1;
	pthread_mutex_lock(&b->lock);
	hex_encode(d, 32, b->fw_sha);
	pthread_mutex_unlock(&b->lock);
	return ST_OK;
}

static int fb_keygen(void *h, enum profile_key_type type, struct errbuf *err)
{
	struct fb_board *b = h;
	EVP_PKEY *k;
	int rc;

	pthread_mutex_lock(&b->lock);
	rc = fb_fault_at(b, EV_STAGE_KEYGEN, err);
	if (!rc && b->locked)
		rc = errbuf_set(err, ST_ESTATE, "board is locked");
	pthread_mutex_unlock(&b->lock);
	if (rc)
		return rc;
	clock_sleep_ms(b->keygen_ms);
	if (b->fault == FB_REUSE_KEY) {
		pthread_mutex_lock(&fb_shared_lock);
		if (!fb_shared_key)
			fb_shared_key = fb_ec_key("P-256");
		EVP_PKEY_up_ref(fb_shared_key);
		k = fb_shared_key;
		pthread_mutex_unlock(&fb_shared_lock);
	} else if (type == PROFILE_KEY_EC_P384) {
		k = fb_ec_key("P-384");
	} else if (type == PROFILE_KEY_RSA_3072) {
		k = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)3072);
	} else {
		k = fb_ec_key("P-256");
	}
	if (!k)
		return errbuf_set(err, ST_ECRYPTO, "keygen failed");
	pthread_mutex_lock(&b->lock);
	EVP_PKEY_free(b->dev_key);
	b->dev_key = k;
	b->keygens++;
	pthread_mutex_unlock(&b->lock);
	return ST_OK;
}

static int fb_get_csr(void *h, const uint8_t nonce[32], uint8_t **der, size_t *len,
		      struct errbuf *err)
{
	struct fb_board *b = h;
	X509_REQ *req;
	X509_NAME *name;
	char hexn[65];
	unsigned char *p = NULL;
	int n, rc;
	uint8_t stale[32];

	pthread_mutex_lock(&b->lock);
	rc = fb_fault_at(b, EV_STAGE_CSR, err);
	if (!rc && !b->dev_key)
		rc = errbuf_set(err, ST_ESTATE, "no key");
	if (rc) {
		pthread_mutex_unlock(&b->lock);
		return rc;
	}
	req = X509_REQ_new();
	name = X509_NAME_new();
	X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
				   (const unsigned char *)(b->fault == FB_WRONG_SUBJECT ?
							   "FFFFFFFFFFFFFFFFFFFFFFFF" : b->uid),
				   -1, -1, 0);
	X509_REQ_set_subject_name(req, name);
	X509_NAME_free(name);
	X509_REQ_set_pubkey(req, b->dev_key);
	memset(stale, 0x42, sizeof(stale));
	hex_encode(b->fault == FB_WRONG_NONCE ? stale : nonce, 32, hexn);
	X509_REQ_add1_attr_by_NID(req, NID_pkcs9_challengePassword, MBSTRING_ASC,
				  (const unsigned char *)hexn, 64);
	X509_REQ_sign(req, b->dev_key,
		      EVP_PKEY_get_bits(b->dev_key) == 384 ? EVP_sha384() : EVP_sha256());
	pthread_mutex_unlock(&b->lock);
	n = i2d_X509_REQ(req, &p);
	X509_REQ_free(req);
	if (n <= 0)
		return errbuf_set(err, ST_ECRYPTO, "CSR encode");
	*der = malloc((size_t)n);
	memcpy(*der, p, (size_t)n);
	*len = (size_t)n;
	OPENSSL_free(p);
	return ST_OK;
}

static int fb_sign_msg(EVP_PKEY *k, const char *tag, const uint8_t *a, size_t alen,
		       const uint8_t *c, size_t clen, uint8_t **sig, size_t *sig_len)
{
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	size_t n = 0;
	int ok = 0;

	if (EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, k) == 1 &&
	    EVP_DigestSignUpdate(md, tag, strlen(tag)) == 1 &&
	    EVP_DigestSignUpdate(md, a, alen) == 1 &&
	    (!clen || EVP_DigestSignUpdate(md, c, clen) == 1) &&
	    EVP_DigestSignFinal(md, NULL, &n) == 1) {
		*sig = malloc(n);
		ok = EVP_DigestSignFinal(md, *sig, &n) == 1;
		*sig_len = n;
	}
	EVP_MD_CTX_free(md);
	return ok ? ST_OK : ST_ECRYPTO;
}

static int fb_attest(void *h, const uint8_t nonce[32], const uint8_t csr_sha256[32],
		     uint8_t **sig, size_t *sig_len, struct errbuf *err)
{
	struct fb_board *b = h;
	uint8_t wrong[32];
	int rc;

	pthread_mutex_lock(&b->lock);
	rc = fb_fault_at(b, EV_STAGE_ATTEST, err);
	pthread_mutex_unlock(&b->lock);
	if (rc)
		return rc;
	memcpy(wrong, csr_sha256, 32);
	wrong[5] ^= 0x80;
	return fb_sign_msg(b->attest_key, "station-attest-v1", nonce, 32,
			   b->fault == FB_BAD_ATTEST ? wrong : csr_sha256, 32, sig, sig_len);
}

static int fb_write_cert(void *h, const uint8_t *der, size_t len, struct errbuf *err)
{
	struct fb_board *b = h;
	int rc;

	pthread_mutex_lock(&b->lock);
	rc = fb_fault_at(b, EV_STAGE_INJECT, err);
	if (!rc && b->locked)
		rc = errbuf_set(err, ST_ESTATE, "board is locked");
	if (!rc) {
		free(b->cert);
		b->cert = malloc(len);
		memcpy(b->cert, der, len);
		b->cert_len = len;
	}
	pthread_mutex_unlock(&b->lock);
	return rc;
}

static int fb_read_cert(void *h, uint8_t **der, size_t *len, struct errbuf *err)
{
	struct fb_board *b = h;
	int rc;

	pthread_mutex_lock(&b->lock);
	rc = fb_fault_at(b, EV_STAGE_PROVE, err);
	if (!rc && !b->cert)
		rc = errbuf_set(err, ST_ESTATE, "no certificate");
	if (!rc) {
		*der = malloc(b->cert_len);
		memcpy(*der, b->cert, b->cert_len);
		*len = b->cert_len;
		if (b->fault == FB_READBACK_BAD)
			(*der)[*len / 2] ^= 0x01;
	}
	pthread_mutex_unlock(&b->lock);
	return rc;
}

static int fb_prove(void *h, const uint8_t challenge[32], uint8_t **sig, size_t *sig_len,
		    struct errbuf *err)
{
	struct fb_board *b = h;
	EVP_PKEY *k;
	int rc;

	pthread_mutex_lock(&b->lock);
	rc = b->unplugged ? errbuf_set(err, ST_ENODEV, "board gone") : 0;
	pthread_mutex_unlock(&b->lock);
	if (rc)
		return rc;
	k = b->fault == FB_PROVE_WRONG ? fb_ec_key("P-256") : b->dev_key;
	rc = fb_sign_msg(k, "station-prove-v1", challenge, 32, NULL, 0, sig, sig_len);
	if (k != b->dev_key)
		EVP_PKEY_free(k);
	return rc;
}

static int fb_lock(void *h, struct errbuf *err)
{
	struct fb_board *b = h;
	int rc;

	pthread_mutex_lock(&b->lock);
	rc = fb_fault_at(b, EV_STAGE_LOCK, err);
	if (!rc)
		b->locked = 1;
	pthread_mutex_unlock(&b->lock);
	return rc;
}

static void fb_close(void *h)
{
	(void)h;
}

static const struct pl_board_ops fb_ops = {
	fb_info, fb_flash, fb_keygen, fb_get_csr, fb_attest, fb_write_cert,
	fb_read_cert, fb_prove, fb_lock, fb_close, NULL,
};

/* ---- transport: a bench of ports, each with a board or not ---------------- */

#define FT_MAX_PORTS 64

struct fake_transport {
	pthread_mutex_t lock;
	int nports;
	char port[FT_MAX_PORTS][EV_BAY_LEN];
	struct fb_board *board[FT_MAX_PORTS];
	uint32_t instance[FT_MAX_PORTS];   /* bumped by every plug */
	int scans;
};

static void ft_init(struct fake_transport *t, int nports)
{
	memset(t, 0, sizeof(*t));
	pthread_mutex_init(&t->lock, NULL);
	t->nports = nports;
	for (int i = 0; i < nports; i++)
		snprintf(t->port[i], sizeof(t->port[i]), "1-%d", i + 1);
}

static void ft_plug(struct fake_transport *t, int port, struct fb_board *b)
{
	pthread_mutex_lock(&t->lock);
	t->board[port] = b;
	t->instance[port]++;
	if (b)
		b->unplugged = 0;
	pthread_mutex_unlock(&t->lock);
}

static void ft_unplug(struct fake_transport *t, int port)
{
	pthread_mutex_lock(&t->lock);
	if (t->board[port]) {
		pthread_mutex_lock(&t->board[port]->lock);
		t->board[port]->unplugged = 1;
		pthread_mutex_unlock(&t->board[port]->lock);
	}
	t->board[port] = NULL;
	pthread_mutex_unlock(&t->lock);
}

static int ft_scan(void *ctx, struct pl_present *out, int max, int *n, struct errbuf *err)
{
	struct fake_transport *t = ctx;

	*n = 0;
	pthread_mutex_lock(&t->lock);
	t->scans++;
	for (int i = 0; i < t->nports && *n < max; i++) {
		if (!t->board[i])
			continue;
		snprintf(out[*n].port, sizeof(out[*n].port), "%s", t->port[i]);
		snprintf(out[*n].serial, sizeof(out[*n].serial), "%s", t->board[i]->usb_serial);
		out[*n].instance = t->instance[i];
		(*n)++;
	}
	pthread_mutex_unlock(&t->lock);
	return ST_OK;
}

static int ft_open(void *ctx, const char *port, const struct pl_board_ops **ops, void **h,
		   char serial[EV_UID_LEN], struct errbuf *err)
{
	struct fake_transport *t = ctx;
	int rc = ST_ENODEV;

	pthread_mutex_lock(&t->lock);
	for (int i = 0; i < t->nports; i++) {
		if (strcmp(t->port[i], port) || !t->board[i])
			continue;
		*ops = &fb_ops;
		*h = t->board[i];
		snprintf(serial, EV_UID_LEN, "%s", t->board[i]->usb_serial);
		t->board[i]->opens++;
		rc = ST_OK;
	}
	pthread_mutex_unlock(&t->lock);
	if (rc)
		errbuf_set(err, rc, "no board at %s", port);
	return rc;
}

/* ---- CA: in-memory key, write-ahead to the real database ------------------- */

struct fake_ca {
	struct db *db;
	EVP_PKEY *key;
	X509 *cert;
	struct csr_policy pol;
	struct hsm_certstore store;  /* the clone lookup: the real database */
	int days;                  /* validity: the CA's profile's */
	pthread_mutex_t lock;
	int fail_issue;            /* the next issue fails after reserving */
	int fail_unreachable;      /* the next N issues fail as a token whose
				    * transport is gone (reason hsm_unreachable) */
	int issued;
};

/* A CSR the policy accepted. */
struct pl_csr {
	struct csr_info ci;
};

static int fca_pubkey_seen(void *ctx, const char *pubkey_hash, int *seen, struct errbuf *err)
{
	return db_pubkey_seen(ctx, pubkey_hash, seen, err);
}

/* As the station's (app/certstore_db.c): certified, or shown by another board */
static int fca_pubkey_seen_by(void *ctx, const char *pubkey_hash, const char *unique_id,
			      int *seen, struct errbuf *err)
{
	return db_pubkey_seen_by_other(ctx, pubkey_hash, unique_id, seen, err);
}

static void fca_init(struct fake_ca *ca, struct db *db)
{
	memset(ca, 0, sizeof(*ca));
	ca->db = db;
	ca->key = fb_ec_key("P-256");
	ca->cert = fb_make_cert("Test Station CA", ca->key, NULL, ca->key, 1, 3650);
	csr_policy_for_key(&ca->pol, CSR_KEY_EC_P256, 0);
	ca->store.ctx = db;
	ca->store.pubkey_seen = fca_pubkey_seen;
	ca->store.pubkey_seen_by = fca_pubkey_seen_by;
	ca->days = 365;
	pthread_mutex_init(&ca->lock, NULL);
}

static void fca_free(struct fake_ca *ca)
{
	EVP_PKEY_free(ca->key);
	X509_free(ca->cert);
	pthread_mutex_destroy(&ca->lock);
}

static int fca_check_csr(void *ctx, const uint8_t *der, size_t len, const char *uid,
			 const uint8_t nonce[32], struct pl_csr **out,
			 struct pl_csr_facts *facts, struct errbuf *err)
{
	struct fake_ca *ca = ctx;
	struct pl_csr *c = calloc(1, sizeof(*c));
	int rc;

	*out = NULL;
	memset(facts, 0, sizeof(*facts));
	if (!c)
		return errbuf_set(err, ST_ENOMEM, "out of memory");
	rc = csr_check(&ca->pol, der, len, uid, nonce, &ca->store, &c->ci, err);
	snprintf(facts->pubkey_hash, sizeof(facts->pubkey_hash), "%s", c->ci.pubkey_hash);
	if (rc) {
		free(c);
		return rc;
	}
	memcpy(facts->csr_sha256, c->ci.der_sha256, 32);
	*out = c;
	return ST_OK;
}

static void fca_csr_free(void *ctx, struct pl_csr *c)
{
	(void)ctx;
	if (!c)
		return;
	csr_info_clear(&c->ci);
	free(c);
}

static int fca_sign(void *ctx, const struct pl_csr *csr, int64_t unit_id, char serial_hex[65],
		    uint8_t **der, size_t *len, struct errbuf *err)
{
	struct fake_ca *ca = ctx;
	X509 *x;
	uint8_t sn[16];
	BIGNUM *bn;
	char *h;
	unsigned char *out = NULL;
	int n, rc, fail;

	RAND_bytes(sn, sizeof(sn));
	sn[0] &= 0x7f;
	bn = BN_bin2bn(sn, sizeof(sn), NULL);
	h = BN_bn2hex(bn);
	{
		const char *z = h;

		while (z[0] == '0' && z[1])
			z++;   /* BN_bn2hex pads to whole bytes */
		snprintf(serial_hex, 65, "%s", z);
	}
	for (char *c = serial_hex; *c; c++)
		*c = (char)tolower((unsigned char)*c);
	OPENSSL_free(h);
	{
		const char *one = serial_hex;

		rc = db_cert_reserve(ca->db, &one, 1, err);
	}
	if (rc) {
		BN_free(bn);
		return rc;
	}
	pthread_mutex_lock(&ca->lock);
	fail = ca->fail_issue;
	ca->fail_issue = 0;
	if (!fail && ca->fail_unreachable > 0) {
		ca->fail_unreachable--;
		fail = 2;
	}
	pthread_mutex_unlock(&ca->lock);
	if (fail) {
		struct errbuf e2;

		/* as issue_cert(): a token that fails while signing may have
		 * signed, so the serial is revoked at once */
		BN_free(bn);
		/* best effort, as there: the test is about the signing failure */
		ST_IGNORE(db_cert_revoke(ca->db, serial_hex, "cessationOfOperation", "station",
					 &e2));
		if (fail == 2)
			return errbuf_setr(err, ST_EHSM, ST_ORIGIN_HSM, ST_R_HSM_UNREACHABLE,
					   "token unreachable (test)");
		return errbuf_set(err, ST_EHSM, "token refused to sign (test)");
	}
	x = fb_make_cert(csr->ci.unique_id, csr->ci.pkey, ca->cert, ca->key, 0, ca->days);
	BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x));
	X509_sign(x, ca->key, EVP_sha256());
	BN_free(bn);
	n = i2d_X509(x, &out);
	X509_free(x);
	if (n <= 0)
		return errbuf_set(err, ST_ECRYPTO, "encode");
	if ((rc = db_cert_issued(ca->db, serial_hex, unit_id, csr->ci.unique_id,
				 csr->ci.pubkey_hash, out, (size_t)n, err))) {
		OPENSSL_free(out);
		return rc;
	}
	*der = malloc((size_t)n);
	memcpy(*der, out, (size_t)n);
	*len = (size_t)n;
	OPENSSL_free(out);
	pthread_mutex_lock(&ca->lock);
	ca->issued++;
	pthread_mutex_unlock(&ca->lock);
	return ST_OK;
}

static void fca_ops(struct fake_ca *ca, struct pl_ca_ops *ops)
{
	ops->check_csr = fca_check_csr;
	ops->sign = fca_sign;
	ops->csr_free = fca_csr_free;
	ops->ctx = ca;
}

#endif
