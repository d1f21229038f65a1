/*
 * Shared by the export unit tests (test_export.c, test_manifest.c; header
 * only: each test binary is built from one .c file): a software CA and device
 * certificates, and a real SQLite file holding a lot with every kind of unit
 * (setup() says which), the row collector, the CSV/JSONL writer callback, a
 * software signer and the manifest callbacks.
 */
#ifndef STATION_EXPORT_RIG_H
#define STATION_EXPORT_RIG_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <csv.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "db/db.h"
#include "db/export.h"
#include "export/export_fmt.h"
#include "tests/rig/hsm_test_util.h"
#include "export/jose.h"
#include "export/manifest.h"
#include "db/rework.h"
#include "tests/rig/lot_build.h"

#define UID_A "0123456789ABCDEF01234567"
#define UID_B "0123456789ABCDEF01234568"
#define UID_C "0123456789ABCDEF01234569"
#define UID_D "0123456789ABCDEF0123456A"
#define UID_E "0123456789ABCDEF0123456B"
#define PK(c) c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c \
	      c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c

/* ---- a software CA and device certificates -------------------------------- */

struct pki {
	EVP_PKEY *ca_key;
	X509 *ca;
};

/* The certificate builder is the benchmarks' (tests/rig/lot_build.h): one copy. */
static inline X509 *make_cert(EVP_PKEY *subject_key, const char *cn, long serial,
			      EVP_PKEY *issuer_key, X509 *issuer)
{
	return lot_cert(subject_key, cn, serial, issuer_key, issuer);
}

static inline void pki_init(struct pki *p, const char *cn)
{
	p->ca_key = tu_key("P-256");
	assert_non_null(p->ca_key);
	p->ca = make_cert(p->ca_key, cn, 1, p->ca_key, NULL);
}

static inline void pki_free(struct pki *p)
{
	X509_free(p->ca);
	EVP_PKEY_free(p->ca_key);
}

/* A device certificate for uid, DER (malloc'd); serial as stored in *hex. */
static inline uint8_t *device_der(struct pki *p, const char *uid, long serial, size_t *len,
				  char hex[65])
{
	EVP_PKEY *k = tu_key("P-256");
	X509 *x = make_cert(k, uid, serial, p->ca_key, p->ca);
	uint8_t *der = NULL;
	int n = i2d_X509(x, &der);

	assert_true(n > 0);
	*len = (size_t)n;
	snprintf(hex, 65, "%lx", serial);
	X509_free(x);
	EVP_PKEY_free(k);
	return der;
}

/* ---- the database ------------------------------------------------------------- */

struct fixture {
	char path[64];
	struct db *db;
	struct pki pki;
	char serial_pass[65], serial_fail[65], serial_int[65], serial_res[65];
	char profile_hash[65];
};

static inline int64_t unit(struct db *db, const char *uid, const char *lot, const char *bay,
		    const char *profile_hash)
{
	struct db_unit u;
	struct errbuf err;

	memset(&u, 0, sizeof(u));
	snprintf(u.unique_id, sizeof(u.unique_id), "%s", uid);
	snprintf(u.lot, sizeof(u.lot), "%s", lot);
	snprintf(u.bay, sizeof(u.bay), "%s", bay);
	snprintf(u.operator_name, sizeof(u.operator_name), "olga");
	snprintf(u.profile_hash, sizeof(u.profile_hash), "%s", profile_hash);
	snprintf(u.firmware_hash, sizeof(u.firmware_hash), PK("f"));
	assert_int_equal(db_unit_begin(db, &u, &err), ST_OK);
	return u.id;
}

static inline void finish(struct db *db, int64_t id, const char *uid, const char *lot,
		   enum db_unit_status st, const char *stage, const char *reason, const char *serial)
{
	struct db_unit u;
	struct errbuf err;

	memset(&u, 0, sizeof(u));
	u.id = id;
	u.status = st;
	snprintf(u.unique_id, sizeof(u.unique_id), "%s", uid);
	snprintf(u.lot, sizeof(u.lot), "%s", lot);
	snprintf(u.stage, sizeof(u.stage), "%s", stage);
	snprintf(u.reason, sizeof(u.reason), "%s", reason);
	snprintf(u.cert_serial, sizeof(u.cert_serial), "%s", serial);
	assert_int_equal(db_unit_finish(db, &u, &err), ST_OK);
}

static inline void issue(struct fixture *f, int64_t unit_id, const char *uid, const char *pk,
		  long serial, char hex[65])
{
	struct errbuf err;
	size_t len;
	uint8_t *der = device_der(&f->pki, uid, serial, &len, hex);

	const char *serials[] = { hex };

	assert_int_equal(db_cert_reserve(f->db, serials, 1, &err), ST_OK);
	assert_int_equal(db_cert_issued(f->db, hex, unit_id, uid, pk, der, len, &err), ST_OK);
	OPENSSL_free(der);
}

/*
 * Lot L1 (allowlist A..E, model W, revision A or B):
 *          A  pass (injected)          B  fail at lock (revoked), then pass again
 *          C  reject at csr-policy     D  interrupted, certificate issued (found by unit id)
 *          E  interrupted, a serial only reserved (not a certificate)
 * Lot L2:  one unit of A's (not in L1's export).  Lot L3: an allowlist only.
 */
static inline int setup(void **state)
{
	static int n;
	static const char profile[] = "[product]\nname = widget\n";
	struct fixture *f = calloc(1, sizeof(*f));
	char csv[64], hex2[65];
	struct errbuf err;
	int64_t a, b, b2, c, d, e, other, rows;
	int version;
	FILE *fp;

	if (!f)
		return -1;
	snprintf(f->path, sizeof(f->path), "export%d.db", n);
	snprintf(csv, sizeof(csv), "l3-%d.csv", n++);
	if (db_open(f->path, "st1", &f->db, &err))
		return -1;
	pki_init(&f->pki, "Test CA");
	assert_int_equal(db_profile_store(f->db, "widget", profile, strlen(profile), "eng",
					  &version, f->profile_hash, &err), ST_OK);

	/* L1's allowlist: its yield counts these boards only (issue 15) */
	fp = fopen(csv, "w");
	fprintf(fp, "unique_id,lot,model,hw_revision\n%s,L1,W,A\n%s,L1,W,A\n%s,L1,W,B\n"
		"%s,L1,W,B\n%s,L1,W,B\n", UID_A, UID_B, UID_C, UID_D, UID_E);
	fclose(fp);
	assert_int_equal(db_allowlist_import(f->db, csv, "L1", NULL, NULL, NULL, "eng", &rows, &err), ST_OK);

	a = unit(f->db, UID_A, "L1", "1-1", f->profile_hash);
	issue(f, a, UID_A, PK("a"), 0x1001, f->serial_pass);
	assert_int_equal(db_cert_injected(f->db, f->serial_pass, &err), ST_OK);
	finish(f->db, a, UID_A, "L1", DB_UNIT_PASS, "commit", "certificate", f->serial_pass);

	b = unit(f->db, UID_B, "L1", "1-2", f->profile_hash);
	issue(f, b, UID_B, PK("b"), 0x1002, f->serial_fail);
	assert_int_equal(db_cert_revoke(f->db, f->serial_fail, "cessationOfOperation", "station",
					&err), ST_OK);
	finish(f->db, b, UID_B, "L1", DB_UNIT_FAIL, "lock", "board refused LOCK, \"E5\"\nretry",
	       f->serial_fail);
	b2 = unit(f->db, UID_B, "L1", "1-2", f->profile_hash);
	issue(f, b2, UID_B, PK("c"), 0x1003, hex2);
	assert_int_equal(db_cert_injected(f->db, hex2, &err), ST_OK);
	finish(f->db, b2, UID_B, "L1", DB_UNIT_PASS, "commit", "certificate", hex2);

	c = unit(f->db, UID_C, "L1", "1-3", PK("9"));    /* a profile hash nobody stored */
	finish(f->db, c, UID_C, "L1", DB_UNIT_REJECT, "csr-policy", "wrong subject", "");

	d = unit(f->db, UID_D, "L1", "1-4", f->profile_hash);
	issue(f, d, UID_D, PK("d"), 0x1004, f->serial_int);
	assert_int_equal(db_cert_revoke(f->db, f->serial_int, "cessationOfOperation", "station",
					&err), ST_OK);
	finish(f->db, d, UID_D, "L1", DB_UNIT_INTERRUPTED, "inject", "interrupted", "");

	e = unit(f->db, UID_E, "L1", "1-1", f->profile_hash);
	snprintf(f->serial_res, sizeof(f->serial_res), "2001");
	{
		const char *res[] = { f->serial_res, "2002", "2003" };

		/* reserved ahead: no unit, no board, no key (NULL columns) */
		assert_int_equal(db_cert_reserve(f->db, res, 3, &err), ST_OK);
		assert_int_equal(db_cert_void(f->db, res + 2, 1, &err), ST_OK);
	}
	finish(f->db, e, UID_E, "L1", DB_UNIT_INTERRUPTED, "sign", "interrupted", f->serial_res);

	other = unit(f->db, UID_A, "L2", "1-1", f->profile_hash);
	finish(f->db, other, UID_A, "L2", DB_UNIT_FAIL, "identify", "x", "");

	fp = fopen(csv, "w");
	fprintf(fp, "unique_id,lot,model,hw_revision\n%s,L3,W,A\n%s,L3,W,A\n",
		"0123456789ABCDEF0123AAAA", "0123456789ABCDEF0123AAAB");
	fclose(fp);
	assert_int_equal(db_allowlist_import(f->db, csv, "L3", NULL, NULL, NULL, "eng", &rows, &err), ST_OK);
	*state = f;
	return 0;
}

static inline int teardown(void **state)
{
	struct fixture *f = *state;

	db_close(f->db);
	pki_free(&f->pki);
	free(f);
	return 0;
}

/* Rows kept past the callback. */
struct got {
	int n;
	struct {
		int64_t id, profile_version, finished;
		char uid[25], status[16], stage[32], serial[65], cert_status[16], profile[65];
		char reason[200], revoke_reason[32];
		size_t der_len;
		int64_t revoked, superseded_by, rework_id;
	} r[16];
};

static inline int collect(const struct db_export_row *r, void *ctx)
{
	struct got *g = ctx;

	assert_true(g->n < 16);
	g->r[g->n].id = r->unit_id;
	g->r[g->n].profile_version = r->profile_version;
	g->r[g->n].finished = r->finished_ms;
	snprintf(g->r[g->n].uid, 25, "%s", r->unique_id);
	snprintf(g->r[g->n].status, 16, "%s", r->status);
	snprintf(g->r[g->n].stage, 32, "%s", r->stage);
	snprintf(g->r[g->n].serial, 65, "%s", r->cert_serial);
	snprintf(g->r[g->n].cert_status, 16, "%s", r->cert_status);
	snprintf(g->r[g->n].profile, 65, "%s", r->profile_name);
	snprintf(g->r[g->n].reason, 200, "%s", r->reason);
	snprintf(g->r[g->n].revoke_reason, 32, "%s", r->revoke_reason);
	g->r[g->n].der_len = r->cert_der_len;
	g->r[g->n].revoked = r->revoked_ms;
	g->r[g->n].superseded_by = r->superseded_by;
	g->r[g->n].rework_id = r->rework_id;
	assert_true(!r->cert_der || r->cert_serial[0]);
	g->n++;
	return 0;
}

struct writer {
	FILE *f;
	int csv;
};

static inline int write_row(const struct db_export_row *r, void *ctx)
{
	struct writer *w = ctx;
	struct errbuf err;

	return w->csv ? export_csv_row(w->f, r, &err) : export_jsonl_row(w->f, r, &err);
}

/* ---- signing in software, writing manifests ------------------------------------ */

static inline int soft_sign(void *ctx, const uint8_t *msg, size_t len, uint8_t **sig, size_t *sig_len,
		     struct errbuf *err)
{
	EVP_MD_CTX *mc = EVP_MD_CTX_new();
	size_t n = 0;
	int ok;

	ok = EVP_DigestSignInit(mc, NULL, EVP_sha256(), NULL, ctx) == 1 &&
	     EVP_DigestSign(mc, NULL, &n, msg, len) == 1 && (*sig = OPENSSL_malloc(n)) &&
	     EVP_DigestSign(mc, *sig, &n, msg, len) == 1;
	EVP_MD_CTX_free(mc);
	*sig_len = n;
	return ok ? ST_OK : errbuf_set(err, ST_ECRYPTO, "sign");
}

struct mctx {
	struct manifest_writer w;
	struct errbuf err;
};

static inline int add_pass(const struct db_export_row *r, void *ctx)
{
	struct mctx *m = ctx;

	return strcmp(r->status, "pass") ? ST_OK : manifest_add(&m->w, r, &m->err);
}

/* As `station export` does: one entry per board as provisioned now. */
static inline int add_current_pass(const struct db_export_row *r, void *ctx)
{
	struct mctx *m = ctx;

	return strcmp(r->status, "pass") || r->superseded_by ? ST_OK : manifest_add(&m->w, r, &m->err);
}

#endif
