/*
 * bench_export: `station export` on a large lot.
 *
 * Builds a lot of N units (default 5,000; BENCH_EXPORT_UNITS), 90 % passed
 * with an injected certificate (distinct, signed by a software CA), 10 %
 * failed, in a real SQLite file.  Then, each against a same-run baseline:
 *   1. CSV and JSON-lines exports (to a file) vs the bare walk of the same rows
 *      (db_export_lot with a callback that does nothing): the cost of
 *      formatting;
 *   2. the manifest signed by the audit key of a real SoftHSM token vs the same
 *      manifest signed by a software P-256 key: the cost of the HSM per entry;
 *   3. `export verify` of that manifest vs writing it in software.
 * Figures are ratios (and units/s for scale); absolute numbers depend on the
 * machine.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "tests/rig/bench_clock.h"
#include "tests/rig/hsm_test_util.h"
#include "tests/rig/lot_build.h"
#include "db/db.h"
#include "db/export.h"
#include "export/export_fmt.h"
#include "export/manifest.h"

static void die(const char *what, const struct errbuf *err)
{
	fprintf(stderr, "bench_export: %s: %s\n", what, err ? err->msg : "failed");
	exit(1);
}

static int nothing(const struct db_export_row *r, void *ctx)
{
	(*(long *)ctx)++;
	return 0;
}

struct fmt_ctx {
	FILE *f;
	int csv;
	struct errbuf err;
};

static int fmt_row(const struct db_export_row *r, void *ctx)
{
	struct fmt_ctx *c = ctx;

	return c->csv ? export_csv_row(c->f, r, &c->err) : export_jsonl_row(c->f, r, &c->err);
}

struct man_ctx {
	struct manifest_writer w;
	struct errbuf err;
};

static int man_row(const struct db_export_row *r, void *ctx)
{
	struct man_ctx *m = ctx;

	return strcmp(r->status, "pass") ? 0 : manifest_add(&m->w, r, &m->err);
}

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

static int hsm_sign(void *ctx, const uint8_t *msg, size_t len, uint8_t **sig, size_t *sig_len,
		    struct errbuf *err)
{
	return hsm_audit_sign(ctx, msg, len, sig, sig_len, err);
}

static double time_manifest(struct db *db, const struct manifest_signer *s, X509 *ca,
			    int64_t count, const char *path)
{
	struct man_ctx m;
	struct errbuf err;
	FILE *f = fopen(path, "w");
	double t0 = bench_now_s();

	if (!f || manifest_begin(&m.w, f, s, ca, count, &err))
		die("manifest begin", &err);
	if (db_export_lot(db, "BIG", NULL, man_row, &m, &err))
		die("manifest", &m.err);
	if (manifest_end(&m.w, &err))
		die("manifest end", &err);
	fclose(f);
	return bench_now_s() - t0;
}

static void set_top(void)
{
	const char *t = getenv("TOP");
	char exe[4096];
	ssize_t n;

	if (t && *t) {
		setenv("STATION_TOP", t, 1);
		return;
	}
	/* build/bench/bench_export -> the tree is three levels up */
	n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n <= 0)
		die("cannot find the source tree: set TOP", NULL);
	exe[n] = '\0';
	for (int i = 0; i < 3; i++)
		*strrchr(exe, '/') = '\0';
	setenv("STATION_TOP", exe, 1);
}

int main(void)
{
	const char *e = getenv("BENCH_EXPORT_UNITS");
	long n = e ? atol(e) : 5000, walked = 0;
	EVP_PKEY *ca_key = tu_key("P-256"), *soft = tu_key("P-256");
	X509 *ca = lot_cert(ca_key, "bench CA", 1, ca_key, NULL);
	struct db_export_counts c;
	struct manifest_signer ss = { soft_sign, soft, soft }, hs = { 0 };
	struct manifest_summary sum;
	struct hsm_config cfg;
	struct hsm *h;
	struct errbuf err;
	struct db *db;
	double t0, t_walk, t_csv, t_jsonl, t_soft, t_hsm, t_verify;
	const uint8_t *der;
	const unsigned char *p;
	size_t len;

	if (n < 100)
		n = 100;
	set_top();
	unlink("export.db");
	if (db_open("export.db", "bench", &db, &err))
		die("open", &err);
	t0 = bench_now_s();
	lot_build("export.db", 1, n, ca_key, ca, 0);
	printf("lot of %ld units (%ld passed) built in %.1f s\n", n, n - n / 10, bench_now_s() - t0);

	t0 = bench_now_s();
	if (db_export_lot(db, "BIG", &c, nothing, &walked, &err) || walked != n)
		die("walk", &err);
	t_walk = bench_now_s() - t0;
	for (int csv = 1; csv >= 0; csv--) {
		struct fmt_ctx fc = { fopen(csv ? "big.csv" : "big.jsonl", "w"), csv, { 0 } };

		t0 = bench_now_s();
		if (csv && export_csv_header(fc.f, &err))
			die("csv header", &err);
		if (db_export_lot(db, "BIG", &c, fmt_row, &fc, &err))
			die("export", &fc.err);
		if (!csv && export_jsonl_summary(fc.f, "BIG", &c, &err))
			die("jsonl summary", &err);
		fclose(fc.f);
		*(csv ? &t_csv : &t_jsonl) = bench_now_s() - t0;
	}
	printf("baseline: walk of the rows        %8.0f units/s\n", n / t_walk);
	printf("csv export                        %8.0f units/s  %.2fx the walk's time\n",
	       n / t_csv, t_csv / t_walk);
	printf("jsonl export                      %8.0f units/s  %.2fx the walk's time\n",
	       n / t_jsonl, t_jsonl / t_walk);

	t_soft = time_manifest(db, &ss, ca, c.pass, "soft.manifest");
	if (tu_make_token("bench-exp", "ec-p256", &cfg) || hsm_open(&cfg, &h, &err))
		die("SoftHSM token", &err);
	if (hsm_audit_pubkey(h, &der, &len))
		die("audit public key", &err);
	p = der;
	hs.pub = d2i_PUBKEY(NULL, &p, (long)len);
	hs.sign = hsm_sign;
	hs.ctx = h;
	t_hsm = time_manifest(db, &hs, ca, c.pass, "hsm.manifest");
	t0 = bench_now_s();
	if (manifest_verify_file("hsm.manifest", hs.pub, ca, &sum, &err) || sum.entries != c.pass)
		die("verify", &err);
	t_verify = bench_now_s() - t0;
	printf("baseline: manifest, software key  %8.0f entries/s\n", c.pass / t_soft);
	printf("manifest, SoftHSM audit key       %8.0f entries/s  %.2fx the software time\n",
	       c.pass / t_hsm, t_hsm / t_soft);
	printf("export verify (offline)           %8.0f entries/s  %.2fx the software signing time\n",
	       c.pass / t_verify, t_verify / t_soft);
	EVP_PKEY_free(hs.pub);
	hsm_close(h);
	db_close(db);
	X509_free(ca);
	EVP_PKEY_free(ca_key);
	EVP_PKEY_free(soft);
	if (!getenv("BENCH_KEEP"))
		unlink("export.db");
	return 0;
}
