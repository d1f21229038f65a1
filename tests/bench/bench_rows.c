/*
 * bench_rows: `audit verify` of a chain and every row it covers (issue 12).
 *
 * Builds a database through the real write path: each unit is created, marked
 * at one stage and finished (db_unit_begin/progress/finish: three row events
 * and a unit-result, 4 events per unit), in transactions of 2,500 units, until
 * N events (BENCH_ROWS_EVENTS, default 1,000,000) and a 10x smaller one.  Each
 * verify runs in a fresh child process and is compared with a plain scan of
 * everything it reads (every event's columns, then every unit row's columns),
 * in a fresh child too.  Scan and verify run in turn ROUNDS times and each
 * time is the best of its rounds (as bench_hsm does), so a burst of load on
 * the machine does not decide the ratio.  Prints time and peak-RSS ratios.
 * Data goes to $BENCH_DIR (default ./bench-data), removed at the end.
 */
#include <errno.h>
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
	fprintf(stderr, "bench_rows: %s: %s\n", what, err ? err->msg : strerror(errno));
	exit(1);
}

static void build(const char *path, long events)
{
	struct errbuf err;
	struct db *db;
	long units = events / 4;
	double t0;

	unlink(path);
	if (db_open(path, "bench-st", &db, &err))
		die("open", &err);
	t0 = bench_now_s();
	for (long i = 0; i < units; i++) {
		struct db_unit u;

		if (i % 2500 == 0 && db_begin(db, &err))
			die("begin", &err);
		memset(&u, 0, sizeof(u));
		snprintf(u.unique_id, sizeof(u.unique_id), "%024lX", (unsigned long)i);
		snprintf(u.lot, sizeof(u.lot), "LOT-1");
		snprintf(u.bay, sizeof(u.bay), "1-%ld", i % 16 + 1);
		snprintf(u.operator_name, sizeof(u.operator_name), "op1");
		snprintf(u.profile_hash, sizeof(u.profile_hash), "%064d", 7);
		if (db_unit_begin(db, &u, &err))
			die("unit begin", &err);
		snprintf(u.stage, sizeof(u.stage), "flash");
		snprintf(u.firmware_hash, sizeof(u.firmware_hash), "%064d", 9);
		if (db_unit_progress(db, &u, &err))
			die("unit progress", &err);
		u.status = i % 10 ? DB_UNIT_FAIL : DB_UNIT_REJECT;
		snprintf(u.reason, sizeof(u.reason), "bench");
		if (db_unit_finish(db, &u, &err))
			die("unit finish", &err);
		if ((i % 2500 == 2499 || i == units - 1) && db_commit(db, &err))
			die("commit", &err);
	}
	printf("build    %8ld units   %7.2f s  %9.0f events/s\n", units, bench_now_s() - t0,
	       (double)(units * 4) / (bench_now_s() - t0));
	db_close(db);
}

struct measure {
	double secs;
	long   rss_open_kib, rss_peak_kib;
	long   rows, events;
	int    ok;
};

static long scan_all(sqlite3 *sq, const char *q)
{
	sqlite3_stmt *st;
	size_t bytes = 0;
	long n = 0;

	sqlite3_prepare_v2(sq, q, -1, &st, NULL);
	while (sqlite3_step(st) == SQLITE_ROW) {
		for (int c = 0; c < sqlite3_column_count(st); c++) {
			sqlite3_column_text(st, c);
			bytes += (size_t)sqlite3_column_bytes(st, c);
		}
		n++;
	}
	sqlite3_finalize(st);
	return bytes ? n : -1;
}

/* The baseline: what verify reads, without hashing, parsing or looking up. */
static void raw_scan(const char *path, struct measure *m)
{
	sqlite3 *sq;
	double t0;

	if (sqlite3_open_v2(path, &sq, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK)
		return;
	m->rss_open_kib = bench_maxrss_kib();
	t0 = bench_now_s();
	m->events = scan_all(sq, "SELECT * FROM events ORDER BY station_id, seq");
	m->rows = scan_all(sq, "SELECT * FROM units");
	m->secs = bench_now_s() - t0;
	m->ok = m->events > 0 && m->rows > 0;
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
	if (!m->ok)
		fprintf(stderr, "bench_rows: verify: %s\n", err.msg);
	m->events = res.events;
	m->rows = res.rows;
	m->rss_peak_kib = bench_maxrss_kib();
	db_close(db);
}

static struct measure in_child(void (*fn)(const char *, struct measure *), const char *path)
{
	struct measure m;
	int fd[2], status;
	pid_t pid;

	memset(&m, 0, sizeof(m));
	if (pipe(fd))
		die("pipe", NULL);
	if ((pid = fork()) < 0)
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

#define ROUNDS 3

static long bench(const char *path, long n)
{
	struct measure scan = { 0 }, ver = { 0 };

	build(path, n);
	for (int r = 0; r < ROUNDS; r++) {
		struct measure s1 = in_child(raw_scan, path), v1 = in_child(verify, path);

		if (!v1.ok || !s1.ok || v1.events != s1.events || v1.rows != s1.rows) {
			fprintf(stderr, "bench_rows: verify of %ld events failed (%ld events, %ld rows)\n",
				n, v1.events, v1.rows);
			exit(1);
		}
		printf("round %d: scan %.3f s, verify %.3f s (%.2fx)\n", r + 1, s1.secs, v1.secs,
		       v1.secs / s1.secs);
		if (r == 0 || s1.secs < scan.secs)
			scan = s1;
		if (r == 0 || v1.secs < ver.secs)
			ver = v1;
	}
	printf("scan     %8ld events + %ld rows  %7.3f s  peak RSS %6ld KiB\n",
	       scan.events, scan.rows, scan.secs, scan.rss_peak_kib);
	printf("verify   %8ld events + %ld rows  %7.3f s  peak RSS %6ld KiB (%ld after open)\n",
	       ver.events, ver.rows, ver.secs, ver.rss_peak_kib, ver.rss_open_kib);
	printf("RATIO verify/scan time %.2f, best of %d each (target <= 4); verify peak RSS growth %ld KiB\n",
	       ver.secs / scan.secs, ROUNDS, ver.rss_peak_kib - ver.rss_open_kib);
	return ver.rss_peak_kib - ver.rss_open_kib;
}

int main(void)
{
	const char *dir = getenv("BENCH_DIR") ? getenv("BENCH_DIR") : "bench-data";
	const char *ev = getenv("BENCH_ROWS_EVENTS");
	long n = ev ? atol(ev) : 1000000, small, big;
	char path[512];

	if (n < 4000)
		n = 4000;
	mkdir(dir, 0700);
	setvbuf(stdout, NULL, _IOLBF, 0);
	printf("== bench_rows: verify of %ld and %ld events with their unit rows\n", n / 10, n);
	snprintf(path, sizeof(path), "%s/rows-small.db", dir);
	small = bench(path, n / 10);
	unlink(path);
	snprintf(path, sizeof(path), "%s/rows.db", dir);
	big = bench(path, n);
	unlink(path);
	printf("RATIO verify peak RSS growth %ldx events: %ld KiB vs %ld KiB (bounded: about equal)\n",
	       10L, big, small);
	rmdir(dir);
	return 0;
}
