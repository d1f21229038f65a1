/*
 * Unit tests: issuing and the CRL (hsm/issue.c, hsm/crl.c) against a real
 * SoftHSM EC P-256 token made in the scratch directory (one token for the
 * whole binary), on CSRs that passed the policy (csr_rig.h): the certificate's
 * contents, the write-ahead serial reservation and what happens when its
 * records fail, the clone race, the post-signing check, serials, issuing from
 * threads, and the CRL.  Issued certificates and the CRL are also checked by
 * the openssl command line.  The CSR policy alone is in test_csr_policy.c.
 */
#include "tests/unit/hsm/csr_rig.h"

#include <ctype.h>
#include <openssl/bn.h>
#include <time.h>

#include "hsm/crl.h"
#include "hsm/hsm.h"
#include "hsm/issue.h"

static struct hsm_config cfg;
static struct hsm *hsm;
static struct issue_profile prof = { .validity_days = 3650 };
static struct tu_store group_store;
static struct hsm_certstore group_cs;
static struct issue_ctx *ic;          /* on group_store, for tests that only verify */

static int group_setup(void **state)
{
	struct errbuf e;

	(void)state;
	snprintf(prof.san_template, sizeof(prof.san_template), "URI:urn:dev:uid:%%s");
	if (tu_make_token("tok", "ec-p256", &cfg))
		return -1;
	tu_store_init(&group_store, &group_cs);
	if (hsm_open(&cfg, &hsm, &e) != ST_OK ||
	    issue_ctx_new(hsm, &prof, &group_cs, &ic, &e) != ST_OK) {
		fprintf(stderr, "setup: %s\n", e.msg);
		return -1;
	}
	csr_policy_default(&pol);
	return 0;
}

static int group_teardown(void **state)
{
	(void)state;
	issue_ctx_free(ic);
	hsm_close(hsm);
	return 0;
}

/* An issuing context of its own on the test's store (it reserves serials there). */
static struct issue_ctx *ctx_on(const struct hsm_certstore *cs)
{
	struct issue_ctx *c = NULL;
	struct errbuf e;

	if (issue_ctx_new(hsm, &prof, cs, &c, &e) != ST_OK)
		fail_msg("issue_ctx_new: %s", e.msg);
	return c;
}

static void write_pem_cert(const char *path, const uint8_t *der, size_t len)
{
	const unsigned char *p = der;
	X509 *x = d2i_X509(NULL, &p, (long)len);
	FILE *f = fopen(path, "w");

	assert_non_null(x);
	assert_non_null(f);
	assert_int_equal(PEM_write_X509(f, x), 1);
	fclose(f);
	X509_free(x);
}

/* `openssl verify -CAfile ca.pem` on the given files; 0 when all verify. */
static int openssl_verify(char **paths, int n)
{
	char cmd[65536];
	size_t off;

	off = (size_t)snprintf(cmd, sizeof(cmd), "openssl verify -purpose sslclient -CAfile '%s'",
			       cfg.ca_cert);
	for (int i = 0; i < n; i++)
		off += (size_t)snprintf(cmd + off, sizeof(cmd) - off, " '%s'", paths[i]);
	snprintf(cmd + off, sizeof(cmd) - off, " >/dev/null");
	assert_true(off < sizeof(cmd) - 16);
	return system(cmd);
}

/* ---- issuing ------------------------------------------------------------ */

static void test_issue_verifies_and_ignores_requested_extensions(void **state)
{
	const char *kinds[] = { "P-256", "P-384", "RSA-3072" };
	struct hsm_certstore cs;
	struct tu_store *s = calloc(1, sizeof(*s));
	char path[3][1024], *paths[3];

	struct issue_ctx *c;

	(void)state;
	tu_store_init(s, &cs);
	c = ctx_on(&cs);
	for (int i = 0; i < 3; i++) {
		struct issue_result r;
		struct tu_cert *rec;
		struct csr_info ci;
		struct errbuf e;
		const unsigned char *p;
		X509 *x;
		BASIC_CONSTRAINTS *bc;
		GENERAL_NAMES *san;
		const GENERAL_NAME *gn;
		char *sn_hex;
		BIGNUM *sn_bn;

		/* every CSR asks for CA:TRUE and a DNS SAN: neither may appear */
		assert_int_equal(check(kinds[i], UID, NULL, 0, 1, &cs, &ci, &e), ST_OK);
		assert_int_equal(issue_cert(c, &ci, 100 + i, &r, &e), ST_OK);
		/* recorded, bound to its unit, board and key */
		assert_int_equal(tu_count(s, TU_CERT_ISSUED), i + 1);
		rec = tu_find(s, r.serial_hex);
		assert_non_null(rec);
		assert_int_equal(rec->status, TU_CERT_ISSUED);
		assert_int_equal(rec->unit_id, 100 + i);
		assert_string_equal(rec->unique_id, UID);
		assert_string_equal(rec->pubkey_hash, ci.pubkey_hash);
		p = r.der;
		x = d2i_X509(NULL, &p, (long)r.der_len);
		assert_non_null(x);
		bc = X509_get_ext_d2i(x, NID_basic_constraints, NULL, NULL);
		assert_non_null(bc);
		assert_int_equal(bc->ca, 0);
		assert_int_equal(X509_EXTENSION_get_critical(X509_get_ext(x,
			X509_get_ext_by_NID(x, NID_basic_constraints, -1))), 1);
		BASIC_CONSTRAINTS_free(bc);
		san = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
		assert_non_null(san);
		assert_int_equal(sk_GENERAL_NAME_num(san), 1);
		gn = sk_GENERAL_NAME_value(san, 0);
		assert_int_equal(gn->type, GEN_URI);
		assert_string_equal((const char *)ASN1_STRING_get0_data(gn->d.uniformResourceIdentifier),
				    "urn:dev:uid:0123456789ABCDEF01234567");
		GENERAL_NAMES_free(san);
		assert_true(X509_get_extension_flags(x) & EXFLAG_KUSAGE);
		assert_true(X509_get_key_usage(x) & KU_DIGITAL_SIGNATURE);
		assert_int_equal(!!(X509_get_key_usage(x) & KU_KEY_AGREEMENT), i < 2);
		assert_true(X509_get_extended_key_usage(x) & XKU_SSL_CLIENT);
		assert_non_null(X509_get0_subject_key_id(x));
		assert_non_null(X509_get0_authority_key_id(x));
		assert_int_equal(X509_get_signature_nid(x), NID_ecdsa_with_SHA256);
		/* the serial: positive, the hex recorded, 64+ bits */
		sn_bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(x), NULL);
		assert_non_null(sn_bn);
		assert_false(BN_is_negative(sn_bn));
		sn_hex = BN_bn2hex(sn_bn);
		BN_free(sn_bn);
		for (char *c = sn_hex; *c; c++)
			*c = (char)tolower((unsigned char)*c);
		/* BN_bn2hex pads to whole bytes; the record has no leading zero */
		assert_string_equal(sn_hex + (sn_hex[0] == '0'), r.serial_hex);
		assert_true(strlen(r.serial_hex) >= 16);
		OPENSSL_free(sn_hex);
		X509_free(x);
		snprintf(path[i], sizeof(path[i]), "%s/cert%d.pem", tu_scratch(), i);
		write_pem_cert(path[i], r.der, r.der_len);
		paths[i] = path[i];
		issue_result_clear(&r);
		csr_info_clear(&ci);
	}
	assert_int_equal(openssl_verify(paths, 3), 0);
	/* one batch reserved for the three; closing voids the rest, none left reserved */
	assert_int_equal(s->calls_reserve, 1);
	issue_ctx_free(c);
	assert_int_equal(tu_count(s, TU_CERT_VOID), ISSUE_SERIAL_BATCH - 3);
	assert_int_equal(tu_count(s, TU_CERT_RESERVED), 0);
	free(s);
}

static void test_pubkey_seen_before(void **state)
{
	uint8_t nonce[32], *der;
	size_t len = 0;
	EVP_PKEY *k = tu_key("P-256");
	struct hsm_certstore cs;
	struct tu_store *s = calloc(1, sizeof(*s));
	struct issue_result r;
	struct csr_info ci;
	struct errbuf e;

	struct issue_ctx *c;

	(void)state;
	tu_store_init(s, &cs);
	c = ctx_on(&cs);
	rand_nonce(nonce);
	assert_int_equal(tu_make_csr(k, UID, NULL, nonce, 0, &der, &len), 0);
	assert_int_equal(csr_check(&pol, der, len, UID, nonce, &cs, &ci, &e), ST_OK);
	assert_int_equal(issue_cert(c, &ci, 1, &r, &e), ST_OK);
	issue_result_clear(&r);
	csr_info_clear(&ci);
	OPENSSL_free(der);
	/* the same key again, in a fresh, correct CSR for another challenge */
	rand_nonce(nonce);
	assert_int_equal(tu_make_csr(k, UID, NULL, nonce, 0, &der, &len), 0);
	assert_int_equal(csr_check(&pol, der, len, UID, nonce, &cs, &ci, &e), ST_EEXIST);
	assert_non_null(strstr(e.msg, "certified before"));
	/* released, but the caller still learns which key it was */
	assert_null(ci.req);
	assert_null(ci.pkey);
	assert_int_equal(strlen(ci.pubkey_hash), 64);
	OPENSSL_free(der);
	EVP_PKEY_free(k);
	issue_ctx_free(c);
	free(s);
}

/* Two bays, one cloned key, both past the policy's lookup before either is
 * recorded: the second certificate is signed, refused by the record (the key
 * is certified once), never returned, and its serial revoked at once. */
static void test_clone_race_revokes_the_loser(void **state)
{
	uint8_t nonce[2][32], *der[2];
	size_t len[2];
	EVP_PKEY *k = tu_key("P-256");
	struct hsm_certstore cs;
	struct tu_store *s = calloc(1, sizeof(*s));
	struct issue_result r[2];
	struct csr_info ci[2];
	struct issue_ctx *c;
	struct errbuf e;
	struct tu_cert *lost = NULL;

	(void)state;
	tu_store_init(s, &cs);
	c = ctx_on(&cs);
	for (int i = 0; i < 2; i++) {
		rand_nonce(nonce[i]);
		assert_int_equal(tu_make_csr(k, UID, NULL, nonce[i], 0, &der[i], &len[i]), 0);
		assert_int_equal(csr_check(&pol, der[i], len[i], UID, nonce[i], &cs, &ci[i], &e), ST_OK);
	}
	assert_int_equal(issue_cert(c, &ci[0], 1, &r[0], &e), ST_OK);
	assert_int_equal(issue_cert(c, &ci[1], 2, &r[1], &e), ST_EEXIST);
	assert_non_null(strstr(e.msg, "already certified"));
	assert_null(r[1].der);
	assert_int_equal(tu_count(s, TU_CERT_ISSUED), 1);
	assert_int_equal(tu_count(s, TU_CERT_REVOKED), 1);
	assert_int_equal(s->calls_revoke, 1);
	for (int i = 0; i < s->n; i++)
		if (s->certs[i].status == TU_CERT_REVOKED)
			lost = &s->certs[i];
	assert_non_null(lost);
	assert_string_equal(lost->reason, "cessationOfOperation");
	assert_string_not_equal(lost->serial, r[0].serial_hex);
	issue_result_clear(&r[0]);
	for (int i = 0; i < 2; i++) {
		csr_info_clear(&ci[i]);
		OPENSSL_free(der[i]);
	}
	EVP_PKEY_free(k);
	issue_ctx_free(c);
	assert_int_equal(tu_count(s, TU_CERT_RESERVED), 0);
	free(s);
}

/* Serials come from committed batches: one reservation per ISSUE_SERIAL_BATCH
 * certificates, each serial used once. */
static void test_serial_batches(void **state)
{
	struct hsm_certstore cs;
	struct tu_store *s = calloc(1, sizeof(*s));
	char seen[2 * ISSUE_SERIAL_BATCH + 1][ISSUE_SERIAL_HEX];
	struct issue_ctx *c;
	struct errbuf e;
	int n = 2 * ISSUE_SERIAL_BATCH + 1;

	(void)state;
	tu_store_init(s, &cs);
	c = ctx_on(&cs);
	assert_int_equal(s->calls_reserve, 0);  /* nothing reserved before it is needed */
	for (int i = 0; i < n; i++) {
		struct issue_result r;
		struct csr_info ci;

		assert_int_equal(check("P-256", UID, NULL, 0, 0, &cs, &ci, &e), ST_OK);
		assert_int_equal(issue_cert(c, &ci, i + 1, &r, &e), ST_OK);
		assert_int_equal(s->calls_reserve, i / ISSUE_SERIAL_BATCH + 1);
		snprintf(seen[i], sizeof(seen[i]), "%s", r.serial_hex);
		for (int j = 0; j < i; j++)
			assert_string_not_equal(seen[i], seen[j]);
		issue_result_clear(&r);
		csr_info_clear(&ci);
	}
	assert_int_equal(tu_count(s, TU_CERT_ISSUED), n);
	assert_int_equal(tu_count(s, TU_CERT_RESERVED), 3 * ISSUE_SERIAL_BATCH - n);
	issue_ctx_free(c);
	assert_int_equal(s->calls_release, 1);
	assert_int_equal(tu_count(s, TU_CERT_VOID), 3 * ISSUE_SERIAL_BATCH - n);
	assert_int_equal(tu_count(s, TU_CERT_RESERVED), 0);
	free(s);
}

/* If the record cannot be committed, no certificate leaves issue_cert(), and
 * the serial it was signed with is revoked (or, if even that fails, left
 * reserved for recovery: never voided as if unsigned). */
static void test_write_ahead(void **state)
{
	struct hsm_certstore cs, none;
	struct tu_store *s = calloc(1, sizeof(*s));
	struct issue_result r;
	struct csr_info ci;
	struct issue_ctx *c, *c2 = NULL;
	struct errbuf e;

	(void)state;
	tu_store_init(s, &cs);
	c = ctx_on(&cs);
	s->fail_issued = 1;
	assert_int_equal(check("P-256", UID, NULL, 0, 0, &cs, &ci, &e), ST_OK);
	assert_int_equal(issue_cert(c, &ci, 1, &r, &e), ST_EDB);
	assert_null(r.der);
	assert_int_equal(r.der_len, 0);
	assert_non_null(strstr(e.msg, "disk full"));
	assert_int_equal(s->calls_reserve, 1);   /* reserved before signing */
	assert_int_equal(s->calls_issued, 1);
	assert_int_equal(s->calls_revoke, 1);    /* the signed orphan */
	assert_int_equal(tu_count(s, TU_CERT_REVOKED), 1);
	/* the revoke fails too: that serial stays reserved */
	s->fail_revoke = 1;
	assert_int_equal(issue_cert(c, &ci, 1, &r, &e), ST_EDB);
	assert_int_equal(s->calls_revoke, 2);
	assert_int_equal(tu_count(s, TU_CERT_RESERVED), ISSUE_SERIAL_BATCH - 1);
	issue_ctx_free(c);
	assert_int_equal(tu_count(s, TU_CERT_VOID), ISSUE_SERIAL_BATCH - 2);
	assert_int_equal(tu_count(s, TU_CERT_RESERVED), 1);  /* for recovery to revoke */
	/* a reservation that fails: nothing is signed */
	s->fail_issued = 0;
	memset(&none, 0, sizeof(none));
	assert_int_equal(issue_ctx_new(hsm, &prof, &none, &c2, &e), ST_EINVAL);
	assert_null(c2);
	assert_int_equal(issue_ctx_new(hsm, &prof, NULL, &c2, &e), ST_EINVAL);
	csr_info_clear(&ci);
	free(s);
}

/* A serial reservation that fails stops issuing before anything is signed. */
static int reserve_fails(void *db, const char *const *serials, size_t n, struct errbuf *err)
{
	return errbuf_set(err, ST_EDB, "database is locked (simulated)");
}

static void test_no_signature_without_reservation(void **state)
{
	struct hsm_certstore cs;
	struct tu_store *s = calloc(1, sizeof(*s));
	struct issue_result r;
	struct csr_info ci;
	struct issue_ctx *c;
	struct errbuf e;

	(void)state;
	tu_store_init(s, &cs);
	cs.reserve = reserve_fails;
	c = ctx_on(&cs);
	assert_int_equal(check("P-256", UID, NULL, 0, 0, &cs, &ci, &e), ST_OK);
	assert_int_equal(issue_cert(c, &ci, 1, &r, &e), ST_EDB);
	assert_non_null(strstr(e.msg, "reserve certificate serials"));
	assert_null(r.der);
	assert_int_equal(s->calls_issued, 0);
	assert_int_equal(s->calls_revoke, 0);
	assert_int_equal(s->n, 0);
	issue_ctx_free(c);
	assert_int_equal(s->calls_release, 0);
	csr_info_clear(&ci);
	free(s);
}

/* The post-signing check refuses what a relying party would refuse. */
static void test_verify_catches_bad_certificates(void **state)
{
	struct hsm_certstore cs;
	struct tu_store *s = calloc(1, sizeof(*s));
	struct issue_result r;
	struct csr_info ci, other;
	struct errbuf e;
	EVP_PKEY *k = tu_key("P-256");
	X509 *x;
	const unsigned char *p;
	unsigned char *der2 = NULL;
	int len2;

	(void)state;
	tu_store_init(s, &cs);
	assert_int_equal(check("P-256", UID, NULL, 0, 0, &cs, &ci, &e), ST_OK);
	assert_int_equal(issue_cert(ic, &ci, 1, &r, &e), ST_OK);
	assert_int_equal(issue_verify(ic, &ci, r.der, r.der_len, &e), ST_OK);
	/* a flipped bit in the signed part (the validity years) */
	r.der[r.der_len / 3] ^= 0x01;
	assert_int_equal(issue_verify(ic, &ci, r.der, r.der_len, &e), ST_ECRYPTO);
	r.der[r.der_len / 3] ^= 0x01;
	/* truncated */
	assert_int_equal(issue_verify(ic, &ci, r.der, r.der_len - 1, &e), ST_ECRYPTO);
	/* right CA, but not the CSR's key */
	assert_int_equal(check("P-256", UID, NULL, 0, 0, NULL, &other, &e), ST_OK);
	assert_int_equal(issue_verify(ic, &other, r.der, r.der_len, &e), ST_ECRYPTO);
	assert_non_null(strstr(e.msg, "CSR's key"));
	csr_info_clear(&other);
	/* the same certificate re-signed by a key that is not the CA's */
	p = r.der;
	x = d2i_X509(NULL, &p, (long)r.der_len);
	assert_non_null(x);
	assert_true(X509_sign(x, k, EVP_sha256()) > 0);
	len2 = i2d_X509(x, &der2);
	assert_true(len2 > 0);
	assert_int_equal(issue_verify(ic, &ci, der2, (size_t)len2, &e), ST_ECRYPTO);
	assert_non_null(strstr(e.msg, "signature"));
	OPENSSL_free(der2);
	X509_free(x);
	EVP_PKEY_free(k);
	issue_result_clear(&r);
	csr_info_clear(&ci);
	free(s);
}

static void test_serials(void **state)
{
	char a[ISSUE_SERIAL_HEX], b[ISSUE_SERIAL_HEX];
	struct errbuf e;

	(void)state;
	for (int i = 0; i < 200; i++) {
		assert_int_equal(issue_new_serial(a, &e), ST_OK);
		assert_int_equal(issue_new_serial(b, &e), ST_OK);
		assert_string_not_equal(a, b);
		assert_true(strlen(a) <= 32 && strlen(a) >= 16);
		assert_true(a[0] != '0');
		assert_true(strchr("1234567", a[0]) || strlen(a) < 32);  /* top bit clear */
		for (char *c = a; *c; c++)
			assert_non_null(strchr("0123456789abcdef", *c));
	}
}

/* ---- threads ------------------------------------------------------------ */

#define THREADS 4
#define PER_THREAD 25

struct worker {
	struct hsm_certstore *cs;
	struct issue_ctx *ic;
	int index;
	int failures;
	uint8_t *der[PER_THREAD];
	size_t len[PER_THREAD];
};

static void *issue_worker(void *arg)
{
	struct worker *w = arg;

	for (int i = 0; i < PER_THREAD; i++) {
		uint8_t nonce[32], *der;
		size_t len = 0;
		EVP_PKEY *k = tu_key("P-256");
		struct issue_result r;
		struct csr_info ci;
		struct errbuf e;

		RAND_bytes(nonce, sizeof(nonce));
		if (!k || tu_make_csr(k, UID, NULL, nonce, 0, &der, &len) != 0) {
			w->failures++;
			EVP_PKEY_free(k);
			continue;
		}
		if (csr_check(&pol, der, len, UID, nonce, w->cs, &ci, &e) != ST_OK ||
		    issue_cert(w->ic, &ci, w->index * 1000 + i, &r, &e) != ST_OK) {
			fprintf(stderr, "thread %d: %s\n", w->index, e.msg);
			w->failures++;
		} else {
			w->der[i] = r.der;
			w->len[i] = r.der_len;
			csr_info_clear(&ci);
		}
		OPENSSL_free(der);
		EVP_PKEY_free(k);
	}
	return NULL;
}

static void test_issue_from_threads(void **state)
{
	static struct worker w[THREADS];
	static char path[THREADS * PER_THREAD][512];
	static char *paths[THREADS * PER_THREAD];
	pthread_t t[THREADS];
	struct hsm_certstore cs;
	struct tu_store *s = calloc(1, sizeof(*s));
	struct issue_ctx *c;
	int n = 0;

	(void)state;
	tu_store_init(s, &cs);
	c = ctx_on(&cs);
	for (int i = 0; i < THREADS; i++) {
		memset(&w[i], 0, sizeof(w[i]));
		w[i].cs = &cs;
		w[i].ic = c;
		w[i].index = i;
		assert_int_equal(pthread_create(&t[i], NULL, issue_worker, &w[i]), 0);
	}
	for (int i = 0; i < THREADS; i++)
		assert_int_equal(pthread_join(t[i], NULL), 0);
	for (int i = 0; i < THREADS; i++) {
		assert_int_equal(w[i].failures, 0);
		for (int j = 0; j < PER_THREAD; j++) {
			snprintf(path[n], sizeof(path[n]), "%s/t%d-%d.pem", tu_scratch(), i, j);
			write_pem_cert(path[n], w[i].der[j], w[i].len[j]);
			paths[n] = path[n];
			n++;
			OPENSSL_free(w[i].der[j]);
		}
	}
	/* every certificate recorded once, with a distinct serial; the serials
	 * reserved and unused are voided when the context closes */
	assert_int_equal(tu_count(s, TU_CERT_ISSUED), THREADS * PER_THREAD);
	for (int i = 0; i < s->n; i++)
		for (int j = i + 1; j < s->n; j++)
			assert_string_not_equal(s->certs[i].serial, s->certs[j].serial);
	assert_int_equal(openssl_verify(paths, n), 0);
	issue_ctx_free(c);
	assert_int_equal(tu_count(s, TU_CERT_RESERVED), 0);
	assert_int_equal(tu_count(s, TU_CERT_ISSUED) + tu_count(s, TU_CERT_VOID), s->n);
	free(s);
}

/* ---- the next batch reserved while other bays issue -------------------- */

/* An issuing context on store s seen through cs, whose reserve and issued
 * are replaced by the given ones (the in-memory store's kept in *inner). */
static struct issue_ctx *ctx_wrapped(struct tu_store *s, struct hsm_certstore *cs,
				     struct hsm_certstore *inner,
				     int (*reserve)(void *, const char *const *, size_t, struct errbuf *),
				     int (*issued)(void *, const char *, int64_t, const char *,
						   const char *, const uint8_t *, size_t, struct errbuf *))
{
	tu_store_init(s, cs);
	*inner = *cs;
	cs->reserve = reserve;
	cs->issued = issued;
	return ctx_on(cs);
}

/* A store whose second reservation, and third issued record, wait at gates the
 * test opens: a refill (or a record) in flight, held as long as needed. */
static struct gates {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct hsm_certstore inner;
	int reserve_calls, issued_calls;
	int in_refill, in_record;       /* a call is waiting at its gate */
	int open_refill, open_record;
} g = { .mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER };

static void gate_wait(int *arrived, const int *open)
{
	pthread_mutex_lock(&g.mu);
	*arrived = 1;
	pthread_cond_broadcast(&g.cv);
	while (!*open)
		pthread_cond_wait(&g.cv, &g.mu);
	pthread_mutex_unlock(&g.mu);
}

static void gate_open(int *open)
{
	pthread_mutex_lock(&g.mu);
	*open = 1;
	pthread_cond_broadcast(&g.cv);
	pthread_mutex_unlock(&g.mu);
}

/* Waits up to 10 s for *flag; 0 when it never came. */
static int gate_arrived(const int *flag)
{
	struct timespec until;
	int ok;

	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += 10;
	pthread_mutex_lock(&g.mu);
	while (!*flag && pthread_cond_timedwait(&g.cv, &g.mu, &until) == 0)
		;
	ok = *flag;
	pthread_mutex_unlock(&g.mu);
	return ok;
}

static int gated_reserve(void *ctx, const char *const *serials, size_t n, struct errbuf *err)
{
	if (__atomic_add_fetch(&g.reserve_calls, 1, __ATOMIC_SEQ_CST) == 2)
		gate_wait(&g.in_refill, &g.open_refill);
	return g.inner.reserve(g.inner.ctx, serials, n, err);
}

static int gated_issued(void *ctx, const char *serial, int64_t unit_id, const char *uid,
			const char *pkh, const uint8_t *der, size_t len, struct errbuf *err)
{
	if (__atomic_add_fetch(&g.issued_calls, 1, __ATOMIC_SEQ_CST) == 3)
		gate_wait(&g.in_record, &g.open_record);
	return g.inner.issued(g.inner.ctx, serial, unit_id, uid, pkh, der, len, err);
}

struct one_issue {
	struct issue_ctx *ic;
	const struct hsm_certstore *cs;
	int64_t unit;
	int rc, done;
};

static void *issue_one_cert(void *arg)
{
	struct one_issue *o = arg;
	struct issue_result r;
	struct csr_info ci;
	struct errbuf e;

	o->rc = check("P-256", UID, NULL, 0, 0, o->cs, &ci, &e);
	if (o->rc == ST_OK && (o->rc = issue_cert(o->ic, &ci, o->unit, &r, &e)) == ST_OK)
		issue_result_clear(&r);
	if (o->rc == ST_OK)
		csr_info_clear(&ci);
	pthread_mutex_lock(&g.mu);
	o->done = 1;
	pthread_cond_broadcast(&g.cv);
	pthread_mutex_unlock(&g.mu);
	return NULL;
}

/* With another bay issuing, the bay that finds the pool low reserves the next
 * batch before it is empty, and the others keep taking serials meanwhile:
 * a refill (a durable commit) never stalls them.  Nothing is left reserved. */
static void test_refill_ahead_does_not_stall(void **state)
{
	struct hsm_certstore cs;
	struct tu_store *s = calloc(1, sizeof(*s));
	struct one_issue alone, first, second, third;
	pthread_t t1, t2, t3;
	struct issue_ctx *c;

	(void)state;
	c = ctx_wrapped(s, &cs, &g.inner, gated_reserve, gated_issued);
	alone = (struct one_issue){ .ic = c, .cs = &cs, .unit = 1 };
	first = (struct one_issue){ .ic = c, .cs = &cs, .unit = 2 };
	second = (struct one_issue){ .ic = c, .cs = &cs, .unit = 3 };
	third = (struct one_issue){ .ic = c, .cs = &cs, .unit = 4 };

	/* 0: one bay alone takes from the first batch and refills only when it
	 * is empty (two certificates: ISSUE_SERIAL_BATCH - 2 left) */
	for (int i = 0; i < 2; i++) {
		issue_one_cert(&alone);
		assert_int_equal(alone.rc, ST_OK);
	}
	assert_int_equal(g.reserve_calls, 1);
	/* 1: a bay held at its record (it stays busy) */
	assert_int_equal(pthread_create(&t1, NULL, issue_one_cert, &first), 0);
	assert_true(gate_arrived(&g.in_record));
	/* 2: a second bay takes serials until the pool is low, then refills
	 * ahead of need: its reservation waits at the gate */
	assert_int_equal(pthread_create(&t2, NULL, issue_one_cert, &second), 0);
	assert_true(gate_arrived(&g.in_refill));
	/* 3: a third bay is not held by that refill: a serial is left for it */
	assert_int_equal(pthread_create(&t3, NULL, issue_one_cert, &third), 0);
	assert_true(gate_arrived(&third.done));
	assert_int_equal(third.rc, ST_OK);

	gate_open(&g.open_refill);
	gate_open(&g.open_record);
	assert_int_equal(pthread_join(t1, NULL), 0);
	assert_int_equal(pthread_join(t2, NULL), 0);
	assert_int_equal(pthread_join(t3, NULL), 0);
	assert_int_equal(first.rc, ST_OK);
	assert_int_equal(second.rc, ST_OK);
	assert_int_equal(g.reserve_calls, 2);
	assert_int_equal(tu_count(s, TU_CERT_ISSUED), 5);
	issue_ctx_free(c);
	assert_int_equal(tu_count(s, TU_CERT_RESERVED), 0);
	assert_int_equal(tu_count(s, TU_CERT_VOID), 2 * ISSUE_SERIAL_BATCH - 5);
	free(s);
}

/* ---- reservations grow with the bays issuing --------------------------- */

#define HELD_BAYS 8
#define ALONE_CERTS 40

/* A store that holds the first HELD_BAYS issued records until the test lets
 * them go, and notes the size of each reservation. */
static struct holds {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct hsm_certstore inner;
	int held, open;
	size_t reserve_n[64];
	int reserves;
} h8 = { .mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER };

static int noting_reserve(void *ctx, const char *const *serials, size_t n, struct errbuf *err)
{
	pthread_mutex_lock(&h8.mu);
	if (h8.reserves < 64)
		h8.reserve_n[h8.reserves] = n;
	h8.reserves++;
	pthread_mutex_unlock(&h8.mu);
	return h8.inner.reserve(h8.inner.ctx, serials, n, err);
}

static int holding_issued(void *ctx, const char *serial, int64_t unit_id, const char *uid,
			  const char *pkh, const uint8_t *der, size_t len, struct errbuf *err)
{
	pthread_mutex_lock(&h8.mu);
	if (unit_id <= HELD_BAYS) {
		h8.held++;
		pthread_cond_broadcast(&h8.cv);
		while (!h8.open)
			pthread_cond_wait(&h8.cv, &h8.mu);
	}
	pthread_mutex_unlock(&h8.mu);
	return h8.inner.issued(h8.inner.ctx, serial, unit_id, uid, pkh, der, len, err);
}

/* With HELD_BAYS bays busy at their records, a ninth bay's reservations are
 * of two serials per bay issuing (18), where one or two bays reserve
 * ISSUE_SERIAL_BATCH: a line of many bays does not wait on a refill every
 * few certificates.  No reservation exceeds ISSUE_SERIAL_BATCH_MAX, every
 * serial is used once, and nothing is left reserved. */
static void test_reservations_grow_with_bays(void **state)
{
	struct hsm_certstore cs;
	struct tu_store *s = calloc(1, sizeof(*s));
	struct one_issue bay[HELD_BAYS], ninth;
	pthread_t t[HELD_BAYS];
	struct timespec until;
	size_t reserved = 0, largest = 0;
	struct issue_ctx *c;

	(void)state;
	c = ctx_wrapped(s, &cs, &h8.inner, noting_reserve, holding_issued);
	for (int i = 0; i < HELD_BAYS; i++) {
		bay[i] = (struct one_issue){ .ic = c, .cs = &cs, .unit = i + 1 };
		assert_int_equal(pthread_create(&t[i], NULL, issue_one_cert, &bay[i]), 0);
	}
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += 10;
	pthread_mutex_lock(&h8.mu);
	while (h8.held < HELD_BAYS && pthread_cond_timedwait(&h8.cv, &h8.mu, &until) == 0)
		;
	assert_int_equal(h8.held, HELD_BAYS);
	pthread_mutex_unlock(&h8.mu);

	/* a ninth bay issues alone while the others are held: more certificates
	 * than the reservations so far can have left */
	ninth = (struct one_issue){ .ic = c, .cs = &cs, .unit = HELD_BAYS + 1 };
	for (int i = 0; i < ALONE_CERTS; i++) {
		issue_one_cert(&ninth);
		assert_int_equal(ninth.rc, ST_OK);
	}
	pthread_mutex_lock(&h8.mu);
	h8.open = 1;
	pthread_cond_broadcast(&h8.cv);
	pthread_mutex_unlock(&h8.mu);
	for (int i = 0; i < HELD_BAYS; i++) {
		assert_int_equal(pthread_join(t[i], NULL), 0);
		assert_int_equal(bay[i].rc, ST_OK);
	}
	assert_true(h8.reserves <= 64);
	for (int i = 0; i < h8.reserves; i++) {
		assert_true(h8.reserve_n[i] >= ISSUE_SERIAL_BATCH);
		assert_true(h8.reserve_n[i] <= ISSUE_SERIAL_BATCH_MAX);
		reserved += h8.reserve_n[i];
		largest = h8.reserve_n[i] > largest ? h8.reserve_n[i] : largest;
	}
	/* made while nine bays were inside issue_cert */
	assert_int_equal(h8.reserve_n[h8.reserves - 1], 2 * (HELD_BAYS + 1));
	assert_int_equal(largest, 2 * (HELD_BAYS + 1));
	assert_int_equal(tu_count(s, TU_CERT_ISSUED), HELD_BAYS + ALONE_CERTS);
	issue_ctx_free(c);
	assert_int_equal(tu_count(s, TU_CERT_RESERVED), 0);
	assert_int_equal((size_t)tu_count(s, TU_CERT_VOID), reserved - (HELD_BAYS + ALONE_CERTS));
	free(s);
}

/* ---- CRL ---------------------------------------------------------------- */

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void test_crl_lists_exactly_the_revoked(void **state)
{
	struct hsm_certstore cs;
	struct tu_store *s = calloc(1, sizeof(*s));
	const char *reasons[] = { "keyCompromise", "superseded", "cessationOfOperation" };
	char *want[3], got[8][65], *gotp[8], cmd[2048], line[512], crl_path[1024];
	uint8_t *der;
	size_t len = 0;
	int64_t count;
	int ngot = 0, saw_reason = 0;
	struct issue_ctx *c;
	struct errbuf e;
	FILE *f;

	(void)state;
	tu_store_init(s, &cs);
	c = ctx_on(&cs);
	/* six issued certificates, three of them revoked */
	for (int i = 0; i < 6; i++) {
		struct issue_result r;
		struct csr_info ci;

		assert_int_equal(check("P-256", UID, NULL, 0, 0, &cs, &ci, &e), ST_OK);
		assert_int_equal(issue_cert(c, &ci, i, &r, &e), ST_OK);
		if (i % 2 == 0)
			want[i / 2] = tu_find(s, r.serial_hex)->serial;
		issue_result_clear(&r);
		csr_info_clear(&ci);
	}
	issue_ctx_free(c);  /* the unused serials are void: not on the CRL */
	for (int i = 0; i < 3; i++)
		assert_int_equal(tu_revoke(s, want[i], reasons[i]), 0);
	assert_int_equal(crl_build(hsm, &cs, 7, &der, &len, &count, &e), ST_OK);
	assert_int_equal(count, 3);
	snprintf(crl_path, sizeof(crl_path), "%s/ca.crl", tu_scratch());
	assert_int_equal(crl_write(crl_path, der, len, 1, &e), ST_OK);
	OPENSSL_free(der);
	/* the openssl tool's reading: signature, and exactly these serials */
	snprintf(cmd, sizeof(cmd), "openssl crl -in '%s' -CAfile '%s' -noout 2>&1", crl_path, cfg.ca_cert);
	f = popen(cmd, "r");
	assert_non_null(f);
	assert_non_null(fgets(line, sizeof(line), f));
	assert_non_null(strstr(line, "verify OK"));
	pclose(f);
	snprintf(cmd, sizeof(cmd), "openssl crl -in '%s' -noout -text", crl_path);
	f = popen(cmd, "r");
	assert_non_null(f);
	while (fgets(line, sizeof(line), f)) {
		char *p = strstr(line, "Serial Number: ");

		if (strstr(line, "Key Compromise") || strstr(line, "Superseded") ||
		    strstr(line, "Cessation Of Operation"))
			saw_reason++;
		if (!p)
			continue;
		assert_true(ngot < 8);
		p += strlen("Serial Number: ");
		p[strcspn(p, "\r\n")] = '\0';
		for (char *c = p; *c; c++)
			*c = (char)tolower((unsigned char)*c);
		while (p[0] == '0' && p[1])  /* openssl pads to whole bytes */
			p++;
		snprintf(got[ngot], sizeof(got[ngot]), "%s", p);
		gotp[ngot] = got[ngot];
		ngot++;
	}
	pclose(f);
	assert_int_equal(ngot, 3);
	assert_int_equal(saw_reason, 3);
	qsort(want, 3, sizeof(want[0]), cmp_str);
	qsort(gotp, 3, sizeof(gotp[0]), cmp_str);
	for (int i = 0; i < 3; i++)
		assert_string_equal(gotp[i], want[i]);
	assert_int_equal(crl_reason_code("keyCompromise"), 1);
	assert_int_equal(crl_reason_code("KeyCompromise"), -1);
	free(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_issue_verifies_and_ignores_requested_extensions),
		cmocka_unit_test(test_pubkey_seen_before),
		cmocka_unit_test(test_write_ahead),
		cmocka_unit_test(test_no_signature_without_reservation),
		cmocka_unit_test(test_clone_race_revokes_the_loser),
		cmocka_unit_test(test_serial_batches),
		cmocka_unit_test(test_verify_catches_bad_certificates),
		cmocka_unit_test(test_serials),
		cmocka_unit_test(test_issue_from_threads),
		cmocka_unit_test(test_refill_ahead_does_not_stall),
		cmocka_unit_test(test_reservations_grow_with_bays),
		cmocka_unit_test(test_crl_lists_exactly_the_revoked),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
