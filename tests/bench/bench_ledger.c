/*
 * bench_ledger: a station's journal of N events (default 100,000;
 * BENCH_LEDGER_EVENTS) pushed to a factory ledger started for the run
 * (tests/ledger-pg.sh: PostgreSQL 15 on a unix socket, fsync off like every
 * throwaway cluster of the tests), with pl_ledger_sync_now (the sync thread's
 * own code: batches of PL_LEDGER_BATCH in one transaction each).
 * The journal is a line's: units begun and finished (each a row event per
 * write and a unit-result event), so the push carries the rows with their
 * events (ledger schema 4).  Baseline, same run: reading the same events out
 * of the journal in the same batches (db_audit_since), without sending them;
 * and the same events pushed without their rows (ledger_chain_push, as a
 * schema 3 station did) under another station id: what the rows cost.
 * The target of issue 16 is >= 10,000 events/s.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "tests/rig/bench_clock.h"
#include "app/pl_ledger.h"
#include "db/db.h"
#include "db/rows_content.h"
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

struct copy {
	struct ledger_event ev[PL_LEDGER_BATCH];
	char *mem[PL_LEDGER_BATCH];
	size_t n;
};

static char *dup_or_die(const char *s)
{
	char *p = strdup(s ? s : "");

	if (!p)
		die("out of memory", NULL);
	return p;
}

static int copy_one(const struct db_chain_event *e, void *ctx)
{
	struct copy *c = ctx;
	struct ledger_event *o = &c->ev[c->n];

	o->seq = e->seq;
	o->ts = dup_or_die(e->ts);
	o->kind = dup_or_die(e->kind);
	o->actor = dup_or_die(e->actor);
	o->detail = dup_or_die(e->detail);
	o->prev_hash = dup_or_die(e->prev_hash);
	o->hash = dup_or_die(e->hash);
	c->n++;
	return 0;
}

static void copy_free(struct copy *c)
{
	for (size_t i = 0; i < c->n; i++) {
		free((char *)c->ev[i].ts);
		free((char *)c->ev[i].kind);
		free((char *)c->ev[i].actor);
		free((char *)c->ev[i].detail);
		free((char *)c->ev[i].prev_hash);
		free((char *)c->ev[i].hash);
	}
	c->n = 0;
}

/* The events alone, batch by batch, as the station pushed them before rows. */
static double push_events_only(const struct ledger_config *base, struct db *db, long n)
{
	struct ledger_config cfg = *base;
	struct copy *c = calloc(1, sizeof(*c));
	struct ledger *l;
	struct errbuf err;
	double t0;

	snprintf(cfg.station_id, sizeof(cfg.station_id), "bench-events-only");
	if (!c || ledger_open(&cfg, 1, &l, &err))
		die("open the ledger (events only)", c ? &err : NULL);
	t0 = bench_now_s();
	for (int64_t after = 0; after < n; after += PL_LEDGER_BATCH) {
		if (db_audit_since(db, after, PL_LEDGER_BATCH, copy_one, c, &err) ||
		    ledger_chain_push(l, c->ev, c->n, n, &err))
			die("push events only", &err);
		copy_free(c);
	}
	t0 = bench_now_s() - t0;
	ledger_close(l);
	free(c);
	return t0;
}

static int count_row(const struct db_row_push *r, void *ctx)
{
	int64_t *rows = ctx;

	(void)r;
	(*rows)++;
	return 0;
}

static int count_event(const struct db_chain_event *e, void *ctx)
{
	(void)e;
	(void)ctx;
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
	char dir[512];
	uint8_t head[32];
	double t0, read_s, push_s, bare_s, rows_s;
	int64_t rows = 0;
	int64_t pushed = 0, last = 0;
	int from, to;
	FILE *f;
	size_t got;

	if (!getcwd(dir, sizeof(dir)))
		die("getcwd", NULL);
	unlink("journal.db");
	if (db_open("journal.db", "bench-st", &db, &err))
		die("open", &err);
	/* units until the chain holds n events: begun (a row event), finished
	 * (a row event and a unit-result), a few hundred at a time */
	for (long i = 0; last < n; i++) {
		struct db_unit u;

		if (i % 500 == 0 && db_begin(db, &err))
			die("begin", &err);
		memset(&u, 0, sizeof(u));
		snprintf(u.unique_id, sizeof(u.unique_id), "%024lX", i);
		snprintf(u.lot, sizeof(u.lot), "BENCH");
		snprintf(u.bay, sizeof(u.bay), "1-%ld", i % 4 + 1);
		snprintf(u.operator_name, sizeof(u.operator_name), "op1");
		snprintf(u.pubkey_hash, sizeof(u.pubkey_hash), "%064lx", i);
		if (db_unit_begin(db, &u, &err))
			die("unit", &err);
		u.status = DB_UNIT_PASS;
		snprintf(u.stage, sizeof(u.stage), "commit");
		if (db_unit_finish(db, &u, &err) || db_audit_head(db, &last, head, &err))
			die("unit", &err);
		if ((i % 500 == 499 || last >= n) && db_commit(db, &err))
			die("commit", &err);
	}
	n = (long)last;
	last = 0;

	t0 = bench_now_s();
	for (int64_t after = 0; after < n; after += PL_LEDGER_BATCH)
		if (db_audit_since(db, after, PL_LEDGER_BATCH, count_one, &last, &err))
			die("read", &err);
	read_s = bench_now_s() - t0;
	/* the same batches with their rows gathered (what the push reads) */
	t0 = bench_now_s();
	for (int64_t after = 0; after < n; after += PL_LEDGER_BATCH)
		if (db_audit_batch(db, after, PL_LEDGER_BATCH, count_event, count_row, &rows, &err))
			die("read with rows", &err);
	rows_s = bench_now_s() - t0;

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
	bare_s = push_events_only(&cfg, db, n);
	db_close(db);
	pg("down", dir);
	if (pushed != n || last != n) {
		fprintf(stderr, "bench_ledger: pushed %lld of %ld\n", (long long)pushed, n);
		return 1;
	}
	printf("journal read  %8ld events  %7.3f s  %9.0f events/s (baseline)\n", n, read_s,
	       (double)n / read_s);
	printf("read + rows   %8ld events  %7.3f s  %9.0f events/s  %.3fx the read"
	       " (%lld rows gathered)\n", n, rows_s, (double)n / rows_s, read_s / rows_s,
	       (long long)rows);
	printf("events only   %8ld events  %7.3f s  %9.0f events/s  %.3fx the read"
	       " (the push without rows)\n", n, bare_s, (double)n / bare_s, read_s / bare_s);
	printf("ledger sync   %8ld events  %7.3f s  %9.0f events/s  %.3fx the read"
	       "  %.2fx the push without rows  (target >= 10000 events/s: %s)\n", n, push_s,
	       (double)n / push_s, read_s / push_s, bare_s / push_s,
	       (double)n / push_s >= 10000 ? "met" : "NOT met");
	return 0;
}
