/*
 * bench_ledger: a station's journal of N events (default 100,000;
 * BENCH_LEDGER_EVENTS) pushed to a factory ledger started for the run
 * (tests/ledger-pg.sh: PostgreSQL 15 on a unix socket, fsync off like every
 * throwaway cluster of the tests), with pl_ledger_sync_now (the sync thread's
 * own code: batches of PL_LEDGER_BATCH in one transaction each).
 * Baseline, same run: reading the same events out of the journal in the same
 * batches (db_audit_since), without sending them.  The target of issue 16 is
 * >= 10,000 events/s.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "tests/rig/bench_clock.h"
#include "app/pl_ledger.h"
#include "db/db.h"
#include "ledger/ledger.h"

static void die(const char *what, const struct errbuf *err)
{
	fprintf(stderr, "bench_ledger: %s: %s\n", what, err ? err->msg : "failed");
	exit(1);
}

static int count_one(const struct db_chain_event *e, void *ctx)
{
	int64_t *last = ctx;

	*last = e->seq;
	return 0;
}

static int pg(const char *what, const char *dir)
{
	char cmd[1200];
	const char *top = getenv("TOP") ? getenv("TOP") : ".";

	snprintf(cmd, sizeof(cmd), "bash '%s/tests/ledger-pg.sh' %s '%s' >/dev/null", top, what, dir);
	return system(cmd);
}

int main(void)
{
	long n = getenv("BENCH_LEDGER_EVENTS") ? atol(getenv("BENCH_LEDGER_EVENTS")) : 100000;
	struct ledger_config cfg;
	struct pl_ledger *g;
	struct ledger *l;
	struct errbuf err;
	struct db *db;
	char dir[512], detail[64];
	double t0, read_s, push_s;
	int64_t pushed = 0, last = 0;
	int from, to;
	FILE *f;
	size_t got;

	if (!getcwd(dir, sizeof(dir)))
		die("getcwd", NULL);
	unlink("journal.db");
	if (db_open("journal.db", "bench-st", &db, &err))
		die("open", &err);
	for (long i = 0; i < n; i++) {
		if (i % 10000 == 0 && db_begin(db, &err))
			die("begin", &err);
		snprintf(detail, sizeof(detail), "{\"unit\":%ld,\"status\":\"pass\"}", i);
		if (db_audit_append(db, "unit-result", "op1", detail, NULL, &err))
			die("append", &err);
		if ((i % 10000 == 9999 || i == n - 1) && db_commit(db, &err))
			die("commit", &err);
	}

	t0 = bench_now_s();
	for (int64_t after = 0; after < n; after += PL_LEDGER_BATCH)
		if (db_audit_since(db, after, PL_LEDGER_BATCH, count_one, &last, &err))
			die("read", &err);
	read_s = bench_now_s() - t0;

	if (pg("up", dir))
		die("start PostgreSQL (tests/ledger-pg.sh)", NULL);
	memset(&cfg, 0, sizeof(cfg));
	if (!(f = fopen("conninfo", "r")))
		die("conninfo", NULL);
	got = fread(cfg.conninfo, 1, sizeof(cfg.conninfo) - 1, f);
	fclose(f);
	cfg.conninfo[got] = '\0';
	snprintf(cfg.password_file, sizeof(cfg.password_file), "ledger.pw");
	snprintf(cfg.station_id, sizeof(cfg.station_id), "bench-st");
	if (ledger_open(&cfg, 0, &l, &err) || ledger_migrate(l, &from, &to, &err))
		die("init", &err);
	ledger_close(l);
	if (pl_ledger_open(&cfg, db, NULL, 0, &g, &err))
		die("open the ledger", &err);
	t0 = bench_now_s();
	if (pl_ledger_sync_now(g, &pushed, &err))
		die("push", &err);
	push_s = bench_now_s() - t0;
	pl_ledger_close(g);
	db_close(db);
	pg("down", dir);
	if (pushed != n || last != n) {
		fprintf(stderr, "bench_ledger: pushed %lld of %ld\n", (long long)pushed, n);
		return 1;
	}
	printf("journal read  %8ld events  %7.3f s  %9.0f events/s (baseline)\n", n, read_s,
	       (double)n / read_s);
	printf("ledger sync   %8ld events  %7.3f s  %9.0f events/s  %.3fx the read"
	       "  (target >= 10000 events/s: %s)\n", n, push_s, (double)n / push_s,
	       read_s / push_s, (double)n / push_s >= 10000 ? "met" : "NOT met");
	return 0;
}
