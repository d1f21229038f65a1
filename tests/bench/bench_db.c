/*
 * bench_db: the audit chain and the allowlist import at production scale.
 *
 *   1. appends N events (default 1,000,000; BENCH_DB_EVENTS) in transactions
 *      of 10,000, and a 10x smaller chain for the memory comparison;
 *   2. verifies each chain in a fresh child process and reports time and peak
 *      RSS, against a same-run baseline: a plain SELECT scan of the same rows
 *      in the same order (no hashing), also in a fresh child;
 *   3. imports a 100,000-row allowlist in one transaction and reports rows/s
 *      against a libcsv parse-only pass over the same file;
 *   4. 500 appends each committed on its own (synchronous=FULL) against 500
 *      bare write+fdatasync calls.
 * Figures are ratios to the baselines; absolute numbers depend on the machine.
 * Data goes to $BENCH_DIR (default ./bench-data), removed at the end.
 */
#include <csv.h>
#include <errno.h>
#include <fcntl.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "tests/rig/bench_clock.h"
#include "db/db.h"

static void die(const char *what, const struct errbuf *err)
{
	fprintf(stderr, "bench_db: %s: %s\n", what, err ? err->msg : strerror(errno));
	exit(1);
}

static void build_chain(const char *path, long n)
{
	struct errbuf err;
	struct db *db;
	char detail[64];
	double t0;

	unlink(path);
	if (db_open(path, "bench-st", &db, &err))
		die("open", &err);
	t0 = bench_now_s();
	for (long i = 0; i < n; i++) {
		if (i % 10000 == 0 && db_begin(db, &err))
			die("begin", &err);
		snprintf(detail, sizeof(detail), "{\"unit\":%ld,\"status\":\"pass\"}", i);
		if (db_audit_append(db, "unit-result", "op1", detail, NULL, &err))
			die("append", &err);
		if ((i % 10000 == 9999 || i == n - 1) && db_commit(db, &err))
			die("commit", &err);
	}
	printf("append   %8ld events  %7.2f s  %9.0f events/s\n", n, bench_now_s() - t0,
	       (double)n / (bench_now_s() - t0));
	db_close(db);
}

struct measure {
	double secs;
	long   rss_open_kib, rss_peak_kib;
	long   rows;
	int    ok;
};

/* The baseline: the rows verify reads, in verify's order, without hashing. */
static void raw_scan(const char *path, struct measure *m)
{
	sqlite3 *sq;
	sqlite3_stmt *st;
	size_t bytes = 0;
	double t0;

	if (sqlite3_open_v2(path, &sq, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK)
		return;
	sqlite3_prepare_v2(sq, "SELECT id, seq, station_id, ts, kind, actor, detail, prev_hash, hash"
			   " FROM events WHERE station_id = ? ORDER BY seq, id", -1, &st, NULL);
	sqlite3_bind_text(st, 1, "bench-st", -1, SQLITE_STATIC);
	m->rss_open_kib = bench_maxrss_kib();
	t0 = bench_now_s();
	while (sqlite3_step(st) == SQLITE_ROW) {
		for (int c = 2; c < 9; c++) {
			sqlite3_column_text(st, c);
			bytes += (size_t)sqlite3_column_bytes(st, c);
		}
		m->rows++;
	}
	m->secs = bench_now_s() - t0;
	m->ok = bytes > 0;
	sqlite3_finalize(st);
	sqlite3_close(sq);
	m->rss_peak_kib = bench_maxrss_kib();
}

static void verify(const char *path, struct measure *m)
{
	struct db_verify_result res;
	struct errbuf err;
	struct db *db;
	double t0;

	if (db_open(path, "bench-st", &db, &err))
		die("open", &err);
	m->rss_open_kib = bench_maxrss_kib();
	t0 = bench_now_s();
	m->ok = db_audit_verify(db, &res, &err) == ST_OK;
	m->secs = bench_now_s() - t0;
	m->rows = res.events;
	m->rss_peak_kib = bench_maxrss_kib();
	db_close(db);
}

/* Runs fn in a fresh child so each peak RSS is its own. */
static struct measure in_child(void (*fn)(const char *, struct measure *), const char *path)
{
	struct measure m;
	int fd[2], status;
	pid_t pid;

	memset(&m, 0, sizeof(m));
	if (pipe(fd))
		die("pipe", NULL);
	pid = fork();
	if (pid < 0)
		die("fork", NULL);
	if (pid == 0) {
		close(fd[0]);
		fn(path, &m);
		if (write(fd[1], &m, sizeof(m)) != (ssize_t)sizeof(m))
			_exit(1);
		_exit(0);
	}
	close(fd[1]);
	if (read(fd[0], &m, sizeof(m)) != (ssize_t)sizeof(m))
		die("child", NULL);
	close(fd[0]);
	waitpid(pid, &status, 0);
	return m;
}

static void bench_verify(const char *path, long n)
{
	struct measure scan, ver;

	build_chain(path, n);
	scan = in_child(raw_scan, path);
	ver = in_child(verify, path);
	if (!ver.ok || ver.rows != n || scan.rows != n) {
		fprintf(stderr, "bench_db: verify of %ld events failed (%ld rows)\n", n, ver.rows);
		exit(1);
	}
	printf("scan     %8ld rows    %7.3f s  peak RSS %6ld KiB (%ld KiB after open)\n",
	       scan.rows, scan.secs, scan.rss_peak_kib, scan.rss_open_kib);
	printf("verify   %8ld events  %7.3f s  peak RSS %6ld KiB (%ld KiB after open)"
	       "  %.0f events/s\n", ver.rows, ver.secs, ver.rss_peak_kib, ver.rss_open_kib,
	       (double)ver.rows / ver.secs);
	printf("RATIO verify/scan time %.2f; verify peak RSS growth over open %ld KiB "
	       "(%.2fx the RSS after open)\n", ver.secs / scan.secs,
	       ver.rss_peak_kib - ver.rss_open_kib,
	       (double)ver.rss_peak_kib / (double)ver.rss_open_kib);
}

/* Durable appends: each in its own transaction (as the line records a unit),
 * against the same number of bare write()+fdatasync() calls in the same
 * directory: the floor any durable record pays on this disk. */
static void bench_durable(const char *dir, int n)
{
	char path[512], rec[200];
	struct errbuf err;
	struct db *db;
	double t0, t_fsync, t_append;
	int fd;

	memset(rec, 'x', sizeof(rec));
	snprintf(path, sizeof(path), "%s/fsync.bin", dir);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (fd < 0)
		die(path, NULL);
	t0 = bench_now_s();
	for (int i = 0; i < n; i++)
		if (write(fd, rec, sizeof(rec)) != (ssize_t)sizeof(rec) || fdatasync(fd))
			die("fdatasync", NULL);
	t_fsync = bench_now_s() - t0;
	close(fd);
	unlink(path);
	snprintf(path, sizeof(path), "%s/durable.db", dir);
	unlink(path);
	if (db_open(path, "bench-st", &db, &err))
		die("open", &err);
	t0 = bench_now_s();
	for (int i = 0; i < n; i++)
		if (db_audit_append(db, "unit-result", "op1", "{\"status\":\"pass\"}", NULL, &err))
			die("append", &err);
	t_append = bench_now_s() - t0;
	db_close(db);
	unlink(path);
	printf("fsync    %8d writes   %7.3f s  %9.0f /s (write + fdatasync)\n", n, t_fsync,
	       n / t_fsync);
	printf("durable  %8d appends  %7.3f s  %9.0f /s (one transaction each)\n", n, t_append,
	       n / t_append);
	printf("RATIO durable append/fsync time %.2f\n", t_append / t_fsync);
}

/* ---- allowlist ---------------------------------------------------------- */

static void cb_field(void *s, size_t len, void *data)
{
	(void)s;
	*(size_t *)data += len;
}

static void cb_row(int c, void *data)
{
	(void)c;
	(void)data;
}

static double parse_only(const char *path, size_t *bytes)
{
	struct csv_parser p;
	char buf[65536];
	double t0 = bench_now_s();
	size_t n;
	FILE *f = fopen(path, "r");

	if (!f)
		die(path, NULL);
	csv_init(&p, CSV_STRICT | CSV_APPEND_NULL);
	while ((n = fread(buf, 1, sizeof(buf), f)) > 0)
		csv_parse(&p, buf, n, cb_field, cb_row, bytes);
	csv_fini(&p, cb_field, cb_row, bytes);
	csv_free(&p);
	fclose(f);
	return bench_now_s() - t0;
}

static void bench_allowlist(const char *dir, long rows)
{
	char csv[512], dbp[512];
	struct errbuf err;
	struct db *db;
	size_t bytes = 0;
	int64_t got = 0;
	double t0, t_import, t_parse;
	FILE *f;

	snprintf(csv, sizeof(csv), "%s/allow.csv", dir);
	snprintf(dbp, sizeof(dbp), "%s/allow.db", dir);
	f = fopen(csv, "w");
	if (!f)
		die(csv, NULL);
	fprintf(f, "unique_id,lot,model,hw_revision\n");
	for (long i = 0; i < rows; i++)
		fprintf(f, "%024lX,LOT-BENCH,Widget Pro,B2\n", 0x5000000000L + i);
	fclose(f);
	unlink(dbp);
	if (db_open(dbp, "bench-st", &db, &err))
		die("open", &err);
	t_parse = parse_only(csv, &bytes);
	t0 = bench_now_s();
	if (db_allowlist_import(db, csv, "LOT-BENCH", NULL, NULL, NULL, "bench", &got, &err))
		die("import", &err);
	t_import = bench_now_s() - t0;
	db_close(db);
	if (got != rows) {
		fprintf(stderr, "bench_db: imported %lld of %ld\n", (long long)got, rows);
		exit(1);
	}
	printf("parse    %8ld rows    %7.3f s  %9.0f rows/s (libcsv only)\n", rows, t_parse,
	       (double)rows / t_parse);
	printf("import   %8ld rows    %7.3f s  %9.0f rows/s (validate + insert + commit)\n",
	       rows, t_import, (double)rows / t_import);
	printf("RATIO import/parse time %.1f\n", t_import / t_parse);
	unlink(csv);
	unlink(dbp);
}

int main(void)
{
	const char *dir = getenv("BENCH_DIR") ? getenv("BENCH_DIR") : "bench-data";
	const char *ev = getenv("BENCH_DB_EVENTS");
	long n = ev ? atol(ev) : 1000000;
	char path[512];

	if (n < 1000)
		n = 1000;
	mkdir(dir, 0700);
	setvbuf(stdout, NULL, _IOLBF, 0);
	printf("== bench_db: audit chain of %ld and %ld events, allowlist of 100000 rows\n",
	       n / 10, n);
	snprintf(path, sizeof(path), "%s/chain-small.db", dir);
	bench_verify(path, n / 10);
	unlink(path);
	snprintf(path, sizeof(path), "%s/chain.db", dir);
	bench_verify(path, n);
	unlink(path);
	bench_allowlist(dir, 100000);
	bench_durable(dir, 500);
	rmdir(dir);
	return 0;
}
