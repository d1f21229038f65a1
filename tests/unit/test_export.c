/* Unit tests: the per-lot export -- the query on a real SQLite file (counts,
 * every unit, which certificates are attached, NULL-safe), the CSV and JSON
 * lines records, base64url, the JWK thumbprint against an independently
 * computed vector, and manifests signed in software and by a real SoftHSM
 * audit key, verified, then refused when tampered with. */
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

#include "db.h"
#include "export.h"
#include "export_fmt.h"
#include "hsm_test_util.h"
#include "jose.h"
#include "manifest.h"
#include "rework.h"

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

static X509 *make_cert(EVP_PKEY *subject_key, const char *cn, long serial, EVP_PKEY *issuer_key,
		       X509 *issuer)
{
	X509 *x = X509_new();

	X509_set_version(x, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(x), serial);
	X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
				   (const unsigned char *)cn, -1, -1, 0);
	X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer) : X509_get_subject_name(x));
	X509_gmtime_adj(X509_getm_notBefore(x), 0);
	X509_gmtime_adj(X509_getm_notAfter(x), 86400);
	X509_set_pubkey(x, subject_key);
	assert_true(X509_sign(x, issuer_key, EVP_sha256()) > 0);
	return x;
}

static void pki_init(struct pki *p, const char *cn)
{
	p->ca_key = tu_key("P-256");
	assert_non_null(p->ca_key);
	p->ca = make_cert(p->ca_key, cn, 1, p->ca_key, NULL);
}

static void pki_free(struct pki *p)
{
	X509_free(p->ca);
	EVP_PKEY_free(p->ca_key);
}

/* A device certificate for uid, DER (malloc'd); serial as stored in *hex. */
static uint8_t *device_der(struct pki *p, const char *uid, long serial, size_t *len, char hex[65])
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

static int64_t unit(struct db *db, const char *uid, const char *lot, const char *bay,
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

static void finish(struct db *db, int64_t id, const char *uid, const char *lot,
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

static void issue(struct fixture *f, int64_t unit_id, const char *uid, const char *pk,
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
 * Lot L1:  A  pass (injected)          B  fail at lock (revoked), then pass again
 *          C  reject at csr-policy     D  interrupted, certificate issued (found by unit id)
 *          E  interrupted, a serial only reserved (not a certificate)
 * Lot L2:  one unit of A's (not in L1's export).  Lot L3: an allowlist only.
 */
static int setup(void **state)
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
	assert_int_equal(db_allowlist_import(f->db, csv, "L3", NULL, NULL, "eng", &rows, &err), ST_OK);
	*state = f;
	return 0;
}

static int teardown(void **state)
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

static int collect(const struct db_export_row *r, void *ctx)
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

static void test_lot_rows_and_counts(void **state)
{
	struct fixture *f = *state;
	struct db_export_counts c;
	struct errbuf err;
	struct got g = { 0 };

	assert_int_equal(db_export_lot(f->db, "L1", &c, collect, &g, &err), ST_OK);
	assert_int_equal(c.units, 6);
	assert_int_equal(c.pass, 2);
	assert_int_equal(c.fail, 1);
	assert_int_equal(c.reject, 1);
	assert_int_equal(c.interrupted, 2);
	assert_int_equal(c.in_progress, 0);
	assert_int_equal(c.boards, 5);
	assert_int_equal(c.boards_passed, 2);
	assert_int_equal(c.boards_finished, 5);
	assert_int_equal(c.boards_first_pass, 1);    /* B passed on its second attempt */
	assert_int_equal(c.allowlisted, 0);
	assert_true(export_yield(&c) > 0.39 && export_yield(&c) < 0.41);
	assert_true(export_first_pass_yield(&c) > 0.19 && export_first_pass_yield(&c) < 0.21);

	assert_int_equal(g.n, 6);
	for (int i = 1; i < g.n; i++)
		assert_true(g.r[i].id > g.r[i - 1].id);
	assert_string_equal(g.r[0].uid, UID_A);
	assert_string_equal(g.r[0].status, "pass");
	assert_string_equal(g.r[0].serial, f->serial_pass);
	assert_string_equal(g.r[0].cert_status, "injected");
	assert_string_equal(g.r[0].profile, "widget");
	assert_int_equal(g.r[0].profile_version, 1);
	assert_true(g.r[0].der_len > 100 && g.r[0].finished > 0);

	assert_string_equal(g.r[1].status, "fail");
	assert_string_equal(g.r[1].cert_status, "revoked");
	assert_string_equal(g.r[1].revoke_reason, "cessationOfOperation");
	assert_true(g.r[1].revoked > 0);
	assert_string_equal(g.r[2].status, "pass");          /* B again */

	assert_string_equal(g.r[3].status, "reject");        /* C: no certificate, no profile */
	assert_string_equal(g.r[3].serial, "");
	assert_string_equal(g.r[3].cert_status, "");
	assert_string_equal(g.r[3].profile, "");
	assert_int_equal(g.r[3].profile_version, 0);

	assert_string_equal(g.r[4].uid, UID_D);              /* found by unit id */
	assert_string_equal(g.r[4].serial, f->serial_int);
	assert_string_equal(g.r[4].cert_status, "revoked");
	assert_string_equal(g.r[5].uid, UID_E);              /* reserved only: no certificate */
	assert_string_equal(g.r[5].serial, "");
	assert_int_equal(g.r[5].der_len, 0);
}

static int stop_at_two(const struct db_export_row *r, void *ctx)
{
	int *n = ctx;

	return ++*n == 2 ? ST_ECANCELED : ST_OK;
}

static void test_lot_unknown_empty_and_stop(void **state)
{
	struct fixture *f = *state;
	struct db_export_counts c;
	struct errbuf err;
	struct got g = { 0 };
	int n = 0;

	assert_int_equal(db_export_lot(f->db, "NOPE", &c, collect, &g, &err), ST_ENOTFOUND);
	assert_non_null(strstr(err.msg, "no lot NOPE"));
	assert_int_equal(g.n, 0);
	assert_int_equal(db_export_lot(f->db, "", &c, NULL, NULL, &err), ST_EINVAL);
	/* an allowlist and no unit yet: a lot, nothing in it */
	assert_int_equal(db_export_lot(f->db, "L3", &c, collect, &g, &err), ST_OK);
	assert_int_equal(c.units, 0);
	assert_int_equal(c.allowlisted, 2);
	assert_int_equal(g.n, 0);
	assert_true(export_yield(&c) < 0);
	/* L2 holds only its own unit */
	assert_int_equal(db_export_lot(f->db, "L2", &c, collect, &g, &err), ST_OK);
	assert_int_equal(g.n, 1);
	assert_int_equal(c.boards_first_pass, 0);
	/* fn's code stops the walk and comes back; the handle is usable after */
	assert_int_equal(db_export_lot(f->db, "L1", NULL, stop_at_two, &n, &err), ST_ECANCELED);
	assert_int_equal(n, 2);
	assert_int_equal(db_export_lot(f->db, "L1", &c, NULL, NULL, &err), ST_OK);
	assert_int_equal(db_begin(f->db, &err), ST_OK);
	assert_int_equal(db_export_lot(f->db, "L1", &c, NULL, NULL, &err), ST_ESTATE);
	db_rollback(f->db);
}

/* The certificates table with more NULLs than schema 2 allows: even signed
 * rows without unit, unique id, key hash or times (rebuilt by hand without
 * its CHECK), and a unit naming a serial that is only reserved.  The export
 * must neither crash nor attach an unsigned row, and still find the signed
 * ones (the interrupted unit's by its unit id, with no index left). */
static void test_lot_nullable_certificates(void **state)
{
	static const char sql[] =
		"BEGIN;"
		"CREATE TABLE c2 (serial TEXT PRIMARY KEY, unit_id INTEGER REFERENCES units(id),"
		" unique_id TEXT, pubkey_hash TEXT, status TEXT NOT NULL, der BLOB,"
		" reserved_ms INTEGER, issued_ms INTEGER, injected_ms INTEGER, revoked_ms INTEGER,"
		" revoke_reason TEXT);"
		"INSERT INTO c2 SELECT serial, unit_id, unique_id, pubkey_hash, status, der,"
		" reserved_ms, issued_ms, injected_ms, revoked_ms, revoke_reason FROM certificates;"
		"DROP TABLE certificates; ALTER TABLE c2 RENAME TO certificates;"
		"INSERT INTO certificates (serial, status) VALUES ('4001', 'reserved');"
		"UPDATE certificates SET unique_id = NULL, pubkey_hash = NULL, unit_id = NULL,"
		" issued_ms = NULL, reserved_ms = NULL WHERE status IN ('reserved', 'injected');"
		/* C's unit now names a serial that is only reserved, with NULLs */
		"UPDATE units SET cert_serial = '4001' WHERE unique_id = '" UID_C "';"
		"COMMIT;";
	struct fixture *f = *state;
	struct db_export_counts c;
	struct errbuf err;
	struct got g = { 0 };
	sqlite3 *sq;
	char *msg = NULL;

	db_close(f->db);
	assert_int_equal(sqlite3_open(f->path, &sq), SQLITE_OK);
	assert_int_equal(sqlite3_exec(sq, sql, NULL, NULL, &msg), SQLITE_OK);
	sqlite3_close(sq);
	assert_int_equal(db_open(f->path, "st1", &f->db, &err), ST_OK);
	assert_int_equal(db_export_lot(f->db, "L1", &c, collect, &g, &err), ST_OK);
	assert_int_equal(g.n, 6);
	assert_string_equal(g.r[0].serial, f->serial_pass);   /* injected, NULL unit_id */
	assert_string_equal(g.r[0].cert_status, "injected");
	assert_true(g.r[0].der_len > 100);
	assert_string_equal(g.r[3].uid, UID_C);                /* reserved only: none */
	assert_string_equal(g.r[3].serial, "");
	assert_string_equal(g.r[4].serial, f->serial_int);     /* still found by unit id */
	assert_string_equal(g.r[5].serial, "");
}



struct csv_rows {
	int row, field;
	char cells[8][24][512];
};

static void cb_field(void *s, size_t len, void *ctx)
{
	struct csv_rows *c = ctx;

	if (c->row < 8 && c->field < 24)
		snprintf(c->cells[c->row][c->field], 512, "%.*s", (int)len, (const char *)s);
	c->field++;
}

static void cb_row(int ch, void *ctx)
{
	struct csv_rows *c = ctx;

	assert_int_equal(c->field, 24);
	c->row++;
	c->field = 0;
}

struct writer {
	FILE *f;
	int csv;
};

static int write_row(const struct db_export_row *r, void *ctx)
{
	struct writer *w = ctx;
	struct errbuf err;

	return w->csv ? export_csv_row(w->f, r, &err) : export_jsonl_row(w->f, r, &err);
}

static void test_csv(void **state)
{
	struct fixture *f = *state;
	static struct csv_rows rows;
	struct csv_parser p;
	struct errbuf err;
	struct writer w = { NULL, 1 };
	char *buf = NULL;
	size_t len = 0;

	memset(&rows, 0, sizeof(rows));
	w.f = open_memstream(&buf, &len);
	assert_int_equal(export_csv_header(w.f, &err), ST_OK);
	assert_int_equal(db_export_lot(f->db, "L1", NULL, write_row, &w, &err), ST_OK);
	fclose(w.f);
	assert_memory_equal(buf, EXPORT_CSV_HEADER "\r\n", strlen(EXPORT_CSV_HEADER) + 2);
	/* the reason with a comma, quotes and a line break is one quoted field */
	assert_non_null(strstr(buf, ",\"board refused LOCK, \"\"E5\"\"\nretry\","));
	/* parsed back (libcsv, strict): 24 fields a row, the values as stored */
	csv_init(&p, CSV_STRICT | CSV_STRICT_FINI);
	assert_int_equal(csv_parse(&p, buf, len, cb_field, cb_row, &rows), len);
	assert_int_equal(csv_fini(&p, cb_field, cb_row, &rows), 0);
	csv_free(&p);
	assert_int_equal(rows.row, 7);
	assert_string_equal(rows.cells[0][0], "unit_id");
	assert_string_equal(rows.cells[0][23], "cert_der_base64");
	assert_string_equal(rows.cells[1][1], UID_A);
	assert_string_equal(rows.cells[1][3], "pass");
	assert_string_equal(rows.cells[1][9], "widget");
	assert_string_equal(rows.cells[1][10], "1");
	assert_string_equal(rows.cells[1][18], f->serial_pass);
	assert_string_equal(rows.cells[1][19], "injected");
	assert_string_equal(rows.cells[1][16], "");          /* not superseded */
	assert_int_equal(strlen(rows.cells[1][14]), 24);     /* 2026-11-22T01:02:03.456Z */
	assert_true(strlen(rows.cells[1][23]) > 100);
	assert_string_equal(rows.cells[1][21], "");          /* not revoked */
	assert_string_equal(rows.cells[2][5], "board refused LOCK, \"E5\"\nretry");
	assert_string_equal(rows.cells[2][22], "cessationOfOperation");
	assert_string_equal(rows.cells[4][10], "");          /* unknown profile */
	assert_string_equal(rows.cells[4][23], "");
	free(buf);
}

static void test_jsonl(void **state)
{
	struct fixture *f = *state;
	struct db_export_counts c;
	struct errbuf err;
	struct writer w = { NULL, 0 };
	json_t *j, *cert;
	char *buf = NULL, *line, *save = NULL;
	size_t len = 0;
	int n = 0;

	w.f = open_memstream(&buf, &len);
	assert_int_equal(db_export_lot(f->db, "L1", &c, write_row, &w, &err), ST_OK);
	assert_int_equal(export_jsonl_summary(w.f, "L1", &c, &err), ST_OK);
	fclose(w.f);
	for (line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save), n++) {
		j = json_loads(line, JSON_REJECT_DUPLICATES, NULL);
		assert_non_null(j);
		if (n == 0) {
			assert_string_equal(json_string_value(json_object_get(j, "record")), "unit");
			cert = json_object_get(j, "certificate");
			assert_string_equal(json_string_value(json_object_get(cert, "status")), "injected");
			assert_true(json_is_null(json_object_get(cert, "revoked")));
			assert_non_null(strstr(json_string_value(json_object_get(cert, "pem")),
					       "-----BEGIN CERTIFICATE-----\n"));
			assert_int_equal(json_integer_value(json_object_get(
				json_object_get(j, "profile"), "version")), 1);
		}
		if (n == 3) {
			assert_true(json_is_null(json_object_get(j, "certificate")));
			assert_true(json_is_null(json_object_get(json_object_get(j, "profile"), "name")));
		}
		if (n == 6) {
			assert_string_equal(json_string_value(json_object_get(j, "record")), "summary");
			assert_int_equal(json_integer_value(json_object_get(j, "units")), 6);
			assert_int_equal(json_integer_value(json_object_get(j, "boards_first_pass")), 1);
			assert_true(json_real_value(json_object_get(j, "yield")) == 0.4);
			assert_true(json_real_value(json_object_get(j, "first_pass_yield")) == 0.2);
		}
		json_decref(j);
	}
	assert_int_equal(n, 7);
	free(buf);
}

/* ---- base64url and the key id -------------------------------------------------- */

static void test_b64url(void **state)
{
	static const uint8_t b[] = { 0xfb, 0xff, 0xfe, 'a' };
	uint8_t *d;
	size_t n;
	char *s;

	(void)state;
	s = jose_b64url(b, 4);
	assert_string_equal(s, "-__-YQ");
	d = jose_unb64url(s, strlen(s), &n);
	assert_int_equal(n, 4);
	assert_memory_equal(d, b, 4);
	free(d);
	free(s);
	assert_null(jose_unb64url("+__-YQ", 6, &n));     /* standard alphabet */
	assert_null(jose_unb64url("-__-YQ==", 8, &n));   /* padding */
	assert_null(jose_unb64url("-__-Y", 5, &n));      /* impossible length */
	assert_null(jose_unb64url("", 0, &n));
}

/* A P-256 key made with `openssl ecparam`; its RFC 7638 thumbprint computed
 * apart (python3 hashlib): base64url(SHA-256(
 * '{"crv":"P-256","kty":"EC","x":"cQ5PR8AIKXYq0e7xFcu4xXeTyL0njFh_aGE-_8Lyo_0",'
 * '"y":"9IL5sVB4x6JR874Ra4k5UD2lOCKYhEjYSqRPSSetDis"}')). */
static EVP_PKEY *vector_key(void)
{
	static const char pem[] =
		"-----BEGIN PUBLIC KEY-----\n"
		"MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEcQ5PR8AIKXYq0e7xFcu4xXeTyL0n\n"
		"jFh/aGE+/8Lyo/30gvmxUHjHolHzvhFriTlQPaU4IpiESNhKpE9JJ60OKw==\n"
		"-----END PUBLIC KEY-----\n";
	BIO *b = BIO_new_mem_buf(pem, -1);
	EVP_PKEY *k = PEM_read_bio_PUBKEY(b, NULL, NULL, NULL);

	BIO_free(b);
	assert_non_null(k);
	return k;
}

static void test_kid(void **state)
{
	EVP_PKEY *k = vector_key(), *p384 = tu_key("P-384"), *rsa = tu_key("RSA-2048");
	struct errbuf err;
	char kid[64];

	(void)state;
	assert_int_equal(jose_kid(k, kid, &err), ST_OK);
	assert_string_equal(kid, "tzYe2KtrFeJ5BqtUrJRjZGrfubMoBrdx9iDKUPGhMcE");
	assert_int_equal(jose_kid(p384, kid, &err), ST_EINVAL);
	assert_non_null(strstr(err.msg, "P-256"));
	assert_int_equal(jose_kid(rsa, kid, &err), ST_EINVAL);
	EVP_PKEY_free(k);
	EVP_PKEY_free(p384);
	EVP_PKEY_free(rsa);
}

/* ---- manifests ------------------------------------------------------------------ */

static int soft_sign(void *ctx, const uint8_t *msg, size_t len, uint8_t **sig, size_t *sig_len,
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

static int add_pass(const struct db_export_row *r, void *ctx)
{
	struct mctx *m = ctx;

	return strcmp(r->status, "pass") ? ST_OK : manifest_add(&m->w, r, &m->err);
}

/* As `station export` does: one entry per board as provisioned now. */
static int add_current_pass(const struct db_export_row *r, void *ctx)
{
	struct mctx *m = ctx;

	return strcmp(r->status, "pass") || r->superseded_by ? ST_OK : manifest_add(&m->w, r, &m->err);
}

static int soft_sign_fwd(void *ctx, const uint8_t *msg, size_t len, uint8_t **sig,
			 size_t *sig_len, struct errbuf *err);

/* Rework: the board's first PASS is superseded (its certificate revoked,
 * superseded) and a second PASS provisions it again.  Both are in the CSV
 * and JSON lines, with superseded_by and rework_id; the manifest has one
 * entry for the board, the current one, and verifies (no unique id twice). */
static void test_lot_rework(void **state)
{
	struct fixture *f = *state;
	EVP_PKEY *key = tu_key("P-256");
	struct manifest_signer s = { soft_sign_fwd, key, key };
	struct db_export_counts c;
	struct manifest_summary sum;
	struct db_rework rw;
	struct errbuf err;
	struct got g = { 0 };
	struct mctx m;
	char hex1[65], hex2[65], *buf = NULL;
	size_t len = 0;
	int64_t u1, u2, rows;
	FILE *fp = fopen("l5.csv", "w");

	fprintf(fp, "unique_id,lot,model,hw_revision\n%s,L5,W,A\n", UID_E);
	fclose(fp);
	assert_int_equal(db_allowlist_import(f->db, "l5.csv", "L5", NULL, NULL, "eng", &rows, &err), ST_OK);
	u1 = unit(f->db, UID_E, "L5", "1-1", f->profile_hash);
	issue(f, u1, UID_E, PK("5"), 0x5001, hex1);
	assert_int_equal(db_cert_injected(f->db, hex1, &err), ST_OK);
	finish(f->db, u1, UID_E, "L5", DB_UNIT_PASS, "commit", "certificate", hex1);
	assert_int_equal(db_rework_authorise(f->db, UID_E, "replaced the MCU", "eng", &rw, &err), ST_OK);
	u2 = unit(f->db, UID_E, "L5", "1-2", f->profile_hash);
	issue(f, u2, UID_E, PK("6"), 0x5002, hex2);
	assert_int_equal(db_begin(f->db, &err), ST_OK);
	assert_int_equal(db_cert_injected(f->db, hex2, &err), ST_OK);
	assert_int_equal(db_rework_consume(f->db, rw.id, u2, "op", &err), ST_OK);
	finish(f->db, u2, UID_E, "L5", DB_UNIT_PASS, "commit", "certificate", hex2);
	assert_int_equal(db_commit(f->db, &err), ST_OK);

	assert_int_equal(db_export_lot(f->db, "L5", &c, collect, &g, &err), ST_OK);
	assert_int_equal(c.pass, 2);
	assert_int_equal(c.superseded, 1);
	assert_int_equal(c.boards, 1);
	assert_int_equal(c.boards_passed, 1);
	assert_int_equal(g.n, 2);
	assert_int_equal(g.r[0].superseded_by, rw.id);
	assert_int_equal(g.r[0].rework_id, 0);
	assert_string_equal(g.r[0].cert_status, "revoked");
	assert_string_equal(g.r[0].revoke_reason, "superseded");
	assert_int_equal(g.r[1].superseded_by, 0);
	assert_int_equal(g.r[1].rework_id, rw.id);
	assert_string_equal(g.r[1].cert_status, "injected");

	{
		struct writer w = { open_memstream(&buf, &len), 0 };
		char want[64];

		assert_int_equal(db_export_lot(f->db, "L5", NULL, write_row, &w, &err), ST_OK);
		fclose(w.f);
		snprintf(want, sizeof(want), "\"superseded_by\":%lld,\"rework_id\":null",
			 (long long)rw.id);
		assert_non_null(strstr(buf, want));
		snprintf(want, sizeof(want), "\"superseded_by\":null,\"rework_id\":%lld",
			 (long long)rw.id);
		assert_non_null(strstr(buf, want));
		free(buf);
	}

	fp = fopen("l5.json", "w");
	assert_int_equal(manifest_begin(&m.w, fp, &s, f->pki.ca, c.pass - c.superseded, &err), ST_OK);
	assert_int_equal(db_export_lot(f->db, "L5", NULL, add_current_pass, &m, &m.err), ST_OK);
	assert_int_equal(manifest_end(&m.w, &err), ST_OK);
	fclose(fp);
	assert_int_equal(manifest_verify_file("l5.json", key, f->pki.ca, &sum, &err), ST_OK);
	assert_int_equal(sum.entries, 1);
	EVP_PKEY_free(key);
}

static void write_manifest(struct fixture *f, const struct manifest_signer *s, X509 *ca,
			   const char *path, int want)
{
	struct db_export_counts c;
	struct mctx m;
	struct errbuf err;
	FILE *fp = fopen(path, "w");
	int rc;

	assert_int_equal(db_export_lot(f->db, "L1", &c, NULL, NULL, &err), ST_OK);
	assert_int_equal(manifest_begin(&m.w, fp, s, ca, c.pass, &err), ST_OK);
	rc = db_export_lot(f->db, "L1", &c, add_pass, &m, &err);
	assert_int_equal(rc, want);
	if (rc == ST_OK)
		assert_int_equal(manifest_end(&m.w, &err), ST_OK);
	else
		assert_int_equal(manifest_end(&m.w, &err), ST_ESTATE);
	fclose(fp);
}

/* Rewrites byte `at` of the file's nth "jws" value with c. */
static void poke(const char *src, const char *dst, int nth, size_t at, char c)
{
	char buf[65536], *p = buf;
	FILE *fp = fopen(src, "r");
	size_t n = fread(buf, 1, sizeof(buf) - 1, fp);

	fclose(fp);
	buf[n] = '\0';
	for (int i = 0; i <= nth; i++)
		p = strstr(p, "\"jws\":\"") + 7;
	p[at] = p[at] == c ? (char)(c + 1) : c;
	fp = fopen(dst, "w");
	fwrite(buf, 1, n, fp);
	fclose(fp);
}

static void test_manifest_soft(void **state)
{
	struct fixture *f = *state;
	EVP_PKEY *key = tu_key("P-256"), *other = tu_key("P-256"), *p384 = tu_key("P-384");
	struct manifest_signer s = { soft_sign, key, key };
	struct manifest_summary sum;
	struct manifest_writer w;
	struct errbuf err;
	struct pki stranger;
	FILE *fp;

	write_manifest(f, &s, f->pki.ca, "m.json", ST_OK);
	assert_int_equal(manifest_verify_file("m.json", key, NULL, &sum, &err), ST_OK);
	assert_int_equal(sum.entries, 2);
	assert_string_equal(sum.lot, "L1");
	assert_int_equal(strlen(sum.id), 32);
	assert_int_equal(manifest_verify_file("m.json", key, f->pki.ca, &sum, &err), ST_OK);

	/* the trusted CA is another one */
	pki_init(&stranger, "Test CA");
	assert_int_equal(manifest_verify_file("m.json", key, stranger.ca, &sum, &err), ST_ETAMPER);
	assert_non_null(strstr(err.msg, "m.json: entry 1 (" UID_A "): the chain's CA certificate is not the trusted CA"));
	/* another signer */
	assert_int_equal(manifest_verify_file("m.json", other, NULL, &sum, &err), ST_ETAMPER);
	assert_non_null(strstr(err.msg, "signed by another key"));
	assert_int_equal(manifest_verify_file("m.json", p384, NULL, &sum, &err), ST_EINVAL);
	/* one byte of the second entry's header, payload or signature */
	poke("m.json", "t.json", 1, 5, 'A');
	assert_int_equal(manifest_verify_file("t.json", key, NULL, &sum, &err), ST_ETAMPER);
	assert_non_null(strstr(err.msg, "t.json: entry 2 ("));
	poke("m.json", "t.json", 0, 200, 'A');
	assert_int_equal(manifest_verify_file("t.json", key, NULL, &sum, &err), ST_ETAMPER);
	assert_non_null(strstr(err.msg, "signature does not verify"));
	assert_int_equal(manifest_verify_file("nothere.json", key, NULL, &sum, &err), ST_EIO);

	/* a certificate that the CA given did not issue is refused while writing */
	write_manifest(f, &s, stranger.ca, "bad.json", ST_ECRYPTO);
	pki_free(&stranger);
	/* begin refuses no entries and a signer that is not P-256 */
	fp = fopen("x.json", "w");
	assert_int_equal(manifest_begin(&w, fp, &s, f->pki.ca, 0, &err), ST_EINVAL);
	s.pub = p384;
	assert_int_equal(manifest_begin(&w, fp, &s, f->pki.ca, 1, &err), ST_EINVAL);
	fclose(fp);
	EVP_PKEY_free(key);
	EVP_PKEY_free(other);
	EVP_PKEY_free(p384);
}

/* A certificate without DER: schema 2 allows it for a revoked row (a serial
 * reserved, perhaps signed in a crash, never recorded, then revoked by
 * recovery).  The CSV and JSON lines still list it (serial and status, no
 * DER); a manifest refuses a passed unit without its signed certificate, by
 * name. */
static void test_manifest_missing_der(void **state)
{
	struct fixture *f = *state;
	EVP_PKEY *key = tu_key("P-256");
	struct manifest_signer s = { soft_sign, key, key };
	struct errbuf err;
	char sql[256];
	sqlite3 *sq;

	assert_int_equal(sqlite3_open(f->path, &sq), SQLITE_OK);
	snprintf(sql, sizeof(sql), "UPDATE certificates SET der = NULL, status = 'revoked',"
		 " revoke_reason = 'unspecified' WHERE serial = '%s'", f->serial_pass);
	assert_int_equal(sqlite3_exec(sq, sql, NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(sq);
	{
		struct writer w = { NULL, 1 };
		char *buf = NULL;
		size_t len = 0;

		for (w.csv = 1; w.csv >= 0; w.csv--) {
			w.f = open_memstream(&buf, &len);
			assert_int_equal(db_export_lot(f->db, "L1", NULL, write_row, &w, &err), ST_OK);
			fclose(w.f);
			assert_non_null(strstr(buf, f->serial_pass));
			if (w.csv)
				assert_non_null(strstr(buf, ",unspecified,\r\n"));  /* no DER */
			else
				assert_non_null(strstr(buf, "\"status\":\"revoked\",\"issued\""));
			free(buf);
		}
	}
	write_manifest(f, &s, f->pki.ca, "nd.json", ST_ESTATE);
	{
		struct mctx m;
		struct db_export_counts c;
		FILE *fp = fopen("nd.json", "w");

		assert_int_equal(manifest_begin(&m.w, fp, &s, f->pki.ca, 2, &err), ST_OK);
		assert_int_equal(db_export_lot(f->db, "L1", &c, add_pass, &m, &m.err), ST_ESTATE);
		assert_non_null(strstr(m.err.msg, " (" UID_A ") passed but has no signed certificate"));
		assert_int_equal(manifest_end(&m.w, &err), ST_ESTATE);
		fclose(fp);
	}
	EVP_PKEY_free(key);
}

static int hsm_sign(void *ctx, const uint8_t *msg, size_t len, uint8_t **sig, size_t *sig_len,
		    struct errbuf *err)
{
	return hsm_audit_sign(ctx, msg, len, sig, sig_len, err);
}

/* The real thing: the audit key of a SoftHSM token signs, the CA of that
 * token is x5c[1]. */
static void test_manifest_softhsm(void **state)
{
	struct fixture *f = *state;
	struct hsm_config cfg;
	struct hsm *h = NULL;
	struct errbuf err;
	struct manifest_signer s = { 0 };
	struct manifest_summary sum;
	struct mctx m;
	const uint8_t *der;
	const unsigned char *p;
	size_t len, dlen;
	char hex[65];
	uint8_t *dev;
	int64_t id;
	FILE *fp;

	assert_int_equal(tu_make_token("exp-tok", "ec-p256", &cfg), 0);
	assert_int_equal(hsm_open(&cfg, &h, &err), ST_OK);
	assert_int_equal(hsm_audit_pubkey(h, &der, &len), ST_OK);
	p = der;
	s.pub = d2i_PUBKEY(NULL, &p, (long)len);
	s.sign = hsm_sign;
	s.ctx = h;
	/* a unit whose certificate the token's CA signed */
	{
		X509 *x;
		EVP_PKEY *k = tu_key("P-256");

		x = make_cert(k, UID_C, 0x3001, hsm_ca_key(h), hsm_ca_cert(h));
		dev = NULL;
		dlen = (size_t)i2d_X509(x, &dev);
		X509_free(x);
		EVP_PKEY_free(k);
	}
	snprintf(hex, sizeof(hex), "3001");
	id = unit(f->db, UID_C, "L4", "1-1", f->profile_hash);
	{
		const char *serials[] = { hex };

		assert_int_equal(db_cert_reserve(f->db, serials, 1, &err), ST_OK);
	}
	assert_int_equal(db_cert_issued(f->db, hex, id, UID_C, PK("7"), dev, dlen, &err), ST_OK);
	assert_int_equal(db_cert_injected(f->db, hex, &err), ST_OK);
	finish(f->db, id, UID_C, "L4", DB_UNIT_PASS, "commit", "certificate", hex);
	OPENSSL_free(dev);

	fp = fopen("hsm.json", "w");
	assert_int_equal(manifest_begin(&m.w, fp, &s, hsm_ca_cert(h), 1, &err), ST_OK);
	assert_int_equal(db_export_lot(f->db, "L4", NULL, add_pass, &m, &err), ST_OK);
	assert_int_equal(manifest_end(&m.w, &err), ST_OK);
	fclose(fp);
	assert_int_equal(manifest_verify_file("hsm.json", s.pub, hsm_ca_cert(h), &sum, &err), ST_OK);
	assert_int_equal(sum.entries, 1);
	assert_string_equal(sum.lot, "L4");
	EVP_PKEY_free(s.pub);
	hsm_close(h);
}

static int soft_sign_fwd(void *ctx, const uint8_t *msg, size_t len, uint8_t **sig,
			 size_t *sig_len, struct errbuf *err)
{
	return soft_sign(ctx, msg, len, sig, sig_len, err);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_lot_rows_and_counts, setup, teardown),
		cmocka_unit_test_setup_teardown(test_lot_unknown_empty_and_stop, setup, teardown),
		cmocka_unit_test_setup_teardown(test_lot_nullable_certificates, setup, teardown),
		cmocka_unit_test_setup_teardown(test_lot_rework, setup, teardown),
		cmocka_unit_test_setup_teardown(test_csv, setup, teardown),
		cmocka_unit_test_setup_teardown(test_jsonl, setup, teardown),
		cmocka_unit_test(test_b64url),
		cmocka_unit_test(test_kid),
		cmocka_unit_test_setup_teardown(test_manifest_soft, setup, teardown),
		cmocka_unit_test_setup_teardown(test_manifest_missing_der, setup, teardown),
		cmocka_unit_test_setup_teardown(test_manifest_softhsm, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
