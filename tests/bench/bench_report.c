/*
 * bench_report: the lot report (`station report`) and `unit show` on large
 * databases, each against a baseline measured in the same run.
 *   1. The report of a lot of 100,000 units (BENCH_REPORT_UNITS) vs the CSV
 *      export of the same lot: at most 5x its time (issue 15).
 *   2. Peak RSS of the report, in a fresh process each, on lots of 10,000,
 *      100,000 and 1,000,000 units: the same (one streaming pass into
 *      fixed-size bins; what grows is SQLite's caches, up to their bound).
 *   3. `unit show` (db_trace_board) on a database of 1,000,000 units
 *      (BENCH_TRACE_UNITS) with an audit event per unit vs one primary-key
 *      lookup of a unit on the same database, one-off as `unit show` runs
 *      its queries (prepare, step, finalize): under 10x; and vs the same
 *      trace on the lot of 10,000: indexed means it does not grow much.
 * Exits 1 when a bound is not met.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <sqlite3.h>

#include "tests/rig/bench_clock.h"
#include "tests/rig/lot_build.h"
#include "db/db.h"
#include "db/export.h"
#include "db/report.h"
#include "db/trace.h"
#include "export/export_fmt.h"
#include "export/report.h"

static void die(const char *what, const struct errbuf *err)
{
	lot_die("bench_report", what, err ? err->msg : NULL);
}

static void make_db(const char *path, long n, int certs, int events)
{
	EVP_PKEY *ca_key = certs ? EVP_EC_gen("P-256") : NULL;
	X509 *ca = certs ? lot_cert(ca_key, "bench CA", 1, ca_key, NULL) : NULL;
	struct errbuf err;
	struct db *db;
	double t0 = bench_now_s();

	unlink(path);
	if (db_open(path, "bench", &db, &err))
		die("open", &err);
	db_close(db);
	lot_build(path, 1, n, ca_key, ca, events);
	printf("database of %ld units built in %.1f s\n", n, bench_now_s() - t0);
	X509_free(ca);
	EVP_PKEY_free(ca_key);
}

/* The report as the command makes it, without the chain's verification
 * (the export's timing leaves it out too). */
static void report(const char *db_path, const char *out)
{
	struct report_agg *a = calloc(1, sizeof(*a));
	struct report_audit au = { .verified = 1 };
	struct errbuf err;
	struct db *db;
	FILE *f = fopen(out, "w");

	if (!a || !f || db_open(db_path, "bench", &db, &err))
		die("report: open", NULL);
	report_agg_init(a, "BIG");
	if (db_report_lot(db, "BIG", &a->counts, &a->span, report_agg_row, a, &err))
		die("report", &err);
	report_agg_finish(a);
	if (report_html_write(f, a, &au, &err) || fclose(f))
		die("report: write", &err);
	db_close(db);
	free(a);
}

static int csv_row(const struct db_export_row *r, void *ctx)
{
	struct errbuf err;

	return export_csv_row(ctx, r, &err);
}

static void csv(const char *db_path, const char *out)
{
	struct errbuf err;
	struct db *db;
	FILE *f = fopen(out, "w");

	if (!f || db_open(db_path, "bench", &db, &err) || export_csv_header(f, &err))
		die("csv: open", NULL);
	if (db_export_lot(db, "BIG", NULL, csv_row, f, &err))
		die("csv", &err);
	fclose(f);
	db_close(db);
}

/* Peak RSS (KiB) of the report in a fresh process: this binary again. */
static long report_rss(const char *self, const char *db_path)
{
	struct rusage ru;
	int status;
	pid_t pid = fork();

	if (pid == 0) {
		execl(self, self, "--report", db_path, (char *)NULL);
		_exit(127);
	}
	if (pid < 0 || wait4(pid, &status, 0, &ru) != pid || !WIFEXITED(status) ||
	    WEXITSTATUS(status))
		die("report in a child process", NULL);
	return ru.ru_maxrss;
}

static double time_trace(struct db *db, const char *uid, int reps)
{
	struct errbuf err;
	double t0 = bench_now_s();

	for (int i = 0; i < reps; i++) {
		json_t *j = NULL;

		if (db_trace_board(db, uid, &j, &err))
			die("unit show", &err);
		json_decref(j);
	}
	return (bench_now_s() - t0) / reps;
}

/* A primary-key lookup of a unit: one-off (prepared, stepped and finalized
 * each time, as `unit show` runs each of its queries once per process), or on
 * a statement prepared once. */
static double time_pk(const char *path, long n, int reps, int one_off)
{
	static const char sql[] = "SELECT * FROM units WHERE id = ?1";
	sqlite3_stmt *st = NULL;
	sqlite3 *sq;
	double t0;

	if (sqlite3_open_v2(path, &sq, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK ||
	    (!one_off && sqlite3_prepare_v2(sq, sql, -1, &st, NULL) != SQLITE_OK))
		die("primary-key lookup", NULL);
	t0 = bench_now_s();
	for (int i = 0; i < reps; i++) {
		if (one_off && sqlite3_prepare_v2(sq, sql, -1, &st, NULL) != SQLITE_OK)
			die("primary-key lookup: prepare", NULL);
		sqlite3_bind_int64(st, 1, 1 + (i * 7919L) % n);
		if (sqlite3_step(st) != SQLITE_ROW)
			die("primary-key lookup: no row", NULL);
		if (one_off) {
			sqlite3_finalize(st);
			st = NULL;
		} else {
			sqlite3_reset(st);
		}
	}
	t0 = (bench_now_s() - t0) / reps;
	sqlite3_finalize(st);
	sqlite3_close(sq);
	return t0;
}

int main(int argc, char **argv)
{
	const char *e = getenv("BENCH_REPORT_UNITS"), *t = getenv("BENCH_TRACE_UNITS");
	long n = e ? atol(e) : 100000, big = t ? atol(t) : 1000000, small = n / 10;
	double t0, t_csv, t_report, t_pk, t_pk_prepared, t_trace_big, t_trace_small;
	long rss_small, rss_lot, rss_big;
	struct errbuf err;
	struct db *db;
	char uid[25];
	int bad = 0;

	if (argc == 3 && !strcmp(argv[1], "--report")) {
		report(argv[2], "child.html");
		return 0;
	}
	if (n < 1000)
		n = 1000, small = 100;
	make_db("small.db", small, 1, 1);
	make_db("lot.db", n, 1, 0);

	/* 1. time: CSV export, then the report, of the same lot */
	t0 = bench_now_s();
	csv("lot.db", "lot.csv");
	t_csv = bench_now_s() - t0;
	t0 = bench_now_s();
	report("lot.db", "lot.html");
	t_report = bench_now_s() - t0;
	printf("baseline: csv export of %ld units  %8.0f units/s\n", n, n / t_csv);
	printf("report of the same lot            %8.0f units/s  %.2fx the csv time (bound 5x)\n",
	       n / t_report, t_report / t_csv);
	bad |= t_report > 5 * t_csv;

	/* 2. memory: what SQLite's caches hold (2 MB of pages, its temporary
	 * b-trees for the distinct-board counts) and nothing that grows with the
	 * lot: at 10x the lot, and again at 100x, the same */
	make_db("big.db", big, 0, 1);
	rss_small = report_rss(argv[0], "small.db");
	rss_lot = report_rss(argv[0], "lot.db");
	rss_big = report_rss(argv[0], "big.db");
	printf("report peak RSS: %ld units %ld KiB, %ld units %ld KiB (%.2fx), %ld units %ld KiB"
	       " (%.2fx of %ld) (bounds 1.25x, 1.10x)\n", small, rss_small, n, rss_lot,
	       (double)rss_lot / (double)rss_small, big, rss_big,
	       (double)rss_big / (double)rss_lot, n);
	bad |= rss_lot > rss_small * 5 / 4 || rss_big > rss_lot * 11 / 10;
	if (!getenv("BENCH_KEEP"))
		unlink("lot.db");

	/* 3. unit show on a large database vs a primary-key lookup */
	lot_uid(big / 2, uid);
	if (db_open("big.db", "bench", &db, &err))
		die("open big.db", &err);
	time_trace(db, uid, 20);                /* warm the page cache as a second look would */
	t_trace_big = time_trace(db, uid, 200);
	db_close(db);
	t_pk = time_pk("big.db", big, 20000, 1);
	t_pk_prepared = time_pk("big.db", big, 20000, 0);
	lot_uid(small / 2, uid);
	if (db_open("small.db", "bench", &db, &err))
		die("open small.db", &err);
	time_trace(db, uid, 20);
	t_trace_small = time_trace(db, uid, 200);
	db_close(db);
	printf("baseline: primary-key lookup, one-off, %ld units  %8.1f us"
	       " (%.1f us on a prepared statement)\n", big, t_pk * 1e6, t_pk_prepared * 1e6);
	printf("unit show, %ld units  %8.1f us  %.2fx the one-off lookup (bound 10x), "
	       "%.2fx the prepared one\n", big, t_trace_big * 1e6, t_trace_big / t_pk,
	       t_trace_big / t_pk_prepared);
	printf("unit show, %ld units  %8.1f us  (at %ld units: %.2fx of it)\n", small,
	       t_trace_small * 1e6, big, t_trace_big / t_trace_small);
	bad |= t_trace_big > 10 * t_pk;
	if (!getenv("BENCH_KEEP")) {
		unlink("big.db");
		unlink("small.db");
	}
	if (bad)
		printf("bench_report: a bound is not met\n");
	return bad;
}
