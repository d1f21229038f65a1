/*
 * station ledger init | status | verify | push   LEDGER-OPTIONS
 * station ledger settle --station S [--release-unknown] [--min-silence SECONDS]
 *
 * The factory ledger (docs/factory.md).  init creates or migrates its schema;
 * status shows each station's chain in it (head, journal head, lag, last
 * contact); verify walks every station's chain in the ledger (seq without a
 * gap, each hash recomputed, each link to the previous hash) and, when this
 * station's journal (--db) exists, checks that the ledger's rows of this
 * station are the journal's rows; push sends what the journal holds that the
 * ledger does not (what `station run` does by itself in the background);
 * settle (engineer) settles the claims a retired station left open, from its
 * chain in the ledger, and records it in this station's audit log.
 */
#include "cli/cli.h"
#include "cli/cli_ledger.h"
#include "cli/cli_role.h"
#include "cli/run_control.h"
#include "app/pl_ledger.h"
#include "core/ids.h"
#include "db/db.h"
#include "ledger/ledger.h"

#include <getopt.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <unistd.h>

static void usage(FILE *f)
{
	fprintf(f,
		"usage: station ledger init|status|verify|push LEDGER-OPTIONS\n"
		"       station ledger settle --station ID [--release-unknown]\n"
		"                             [--min-silence SECONDS] LEDGER-OPTIONS\n"
		"\n"
		"  init    create the ledger's schema, or migrate it to this station's version\n"
		"  status  each station's chain in the ledger: head, journal head, lag, last\n"
		"          contact\n"
		"  verify  every station's chain in the ledger (no gap, hashes, links), and\n"
		"          this station's rows against its journal (--db) when it exists\n"
		"  push    send the journal's events the ledger does not hold yet\n"
		"  settle  (engineer) the claims a retired station left open, by the\n"
		"          verdicts of its own chain in the ledger; a claim without one\n"
		"          stays open unless --release-unknown; refused while the station\n"
		"          reached the ledger less than --min-silence seconds ago (600)\n"
		"\n" CLI_LEDGER_USAGE);
}

static int do_init(struct ledger *l)
{
	struct errbuf e;
	int from = 0, to = 0;

	if (ledger_migrate(l, &from, &to, &e))
		return cli_fail("ledger init: %s", e.msg);
	if (from == to)
		printf("ledger schema: version %d (already current)\n", to);
	else
		printf("ledger schema: version %d -> %d\n", from, to);
	return CLI_EXIT_OK;
}

static int status_one(const struct ledger_station *s, void *ctx)
{
	int *n = ctx;

	if (!(*n)++)
		printf("%-20s %10s %10s %8s  %s\n", "STATION", "HEAD", "JOURNAL", "LAG",
		       "LAST CONTACT");
	printf("%-20s %10" PRId64 " %10" PRId64 " %8" PRId64 "  %s (%.0f s ago)\n", s->station_id,
	       s->head_seq, s->local_head, s->local_head - s->head_seq, s->last_contact,
	       s->since_contact_s);
	return 0;
}

static int do_status(struct ledger *l)
{
	struct errbuf e;
	int n = 0;

	if (ledger_stations(l, status_one, &n, &e))
		return cli_fail("ledger status: %s", e.msg);
	if (!n)
		printf("no station has pushed to this ledger yet\n");
	return CLI_EXIT_OK;
}

/* ---- verify ------------------------------------------------------------- */

struct vchain {
	const char *station_id;
	struct db *journal;       /* this station's journal, or NULL */
	int64_t expect, rows, journal_rows;
	char prev[65];
	char bad[400];
	struct errbuf *err;
};

struct local_row {
	char hash[65];
	int found;
	int same;
	const struct ledger_event *e;
};

static int local_one(const struct db_chain_event *le, void *ctx)
{
	struct local_row *lr = ctx;
	const struct ledger_event *e = lr->e;

	lr->found = 1;
	lr->same = le->seq == e->seq && !strcmp(le->ts, e->ts) && !strcmp(le->kind, e->kind) &&
		   !strcmp(le->actor, e->actor) && !strcmp(le->detail, e->detail) &&
		   !strcmp(le->prev_hash, e->prev_hash) && !strcmp(le->hash, e->hash);
	return 1;
}

static int verify_event(const struct ledger_event *e, void *ctx)
{
	struct vchain *v = ctx;
	char h[65];

	if (e->seq != v->expect) {
		snprintf(v->bad, sizeof(v->bad), "event %" PRId64 " follows event %" PRId64
			 " (a gap)", e->seq, v->expect - 1);
		return 1;
	}
	if (strcmp(e->prev_hash, v->prev)) {
		snprintf(v->bad, sizeof(v->bad), "event %" PRId64 " does not link to event %"
			 PRId64, e->seq, e->seq - 1);
		return 1;
	}
	if (db_audit_event_hash_hex(v->station_id, e->seq, e->ts, e->kind, e->actor, e->detail,
				    e->prev_hash, h) || strcmp(h, e->hash)) {
		snprintf(v->bad, sizeof(v->bad), "event %" PRId64 " was edited (its hash does not"
			 " match its content)", e->seq);
		return 1;
	}
	if (v->journal) {
		struct local_row lr = { .e = e };

		if (db_audit_since(v->journal, e->seq - 1, 1, local_one, &lr, v->err)) {
			snprintf(v->bad, sizeof(v->bad), "journal: %.300s", v->err->msg);
			return 1;
		}
		if (!lr.found || !lr.same) {
			snprintf(v->bad, sizeof(v->bad), "event %" PRId64 " %s the journal", e->seq,
				 lr.found ? "differs from" : "is not in");
			return 1;
		}
		v->journal_rows++;
	}
	snprintf(v->prev, sizeof(v->prev), "%s", e->hash);
	v->expect++;
	v->rows++;
	return 0;
}

struct vall {
	struct ledger *l;
	struct db *journal;
	const char *journal_station;
	int bad, n;
	struct errbuf *err;
	int rc;
};

static int verify_station(const struct ledger_station *s, void *ctx)
{
	struct vall *va = ctx;
	struct vchain v = { .station_id = s->station_id, .expect = 1, .err = va->err };

	memset(v.prev, '0', 64);
	v.prev[64] = '\0';
	if (va->journal && !strcmp(s->station_id, va->journal_station))
		v.journal = va->journal;
	va->n++;
	if ((va->rc = ledger_events(va->l, s->station_id, verify_event, &v, va->err)))
		return 1;
	if (!v.bad[0] && v.rows != s->head_seq)
		snprintf(v.bad, sizeof(v.bad), "the ledger's head says %" PRId64 " events, the"
			 " chain holds %" PRId64, s->head_seq, v.rows);
	if (v.bad[0]) {
		printf("station %s: FAILED: %s\n", s->station_id, v.bad);
		va->bad++;
		return 0;
	}
	printf("station %s: %" PRId64 " events, chain intact%s", s->station_id, v.rows,
	       v.journal ? ", equal to the journal" : "");
	if (v.journal) {
		int64_t lseq = 0;
		uint8_t lh[32];

		if (db_audit_head(v.journal, &lseq, lh, va->err) == ST_OK && lseq > v.rows)
			printf(" (the journal holds %" PRId64 " more, not pushed yet)",
			       lseq - v.rows);
	}
	printf("\n");
	return 0;
}

static int do_verify(struct cli_ctx *ctx, struct ledger *l, struct db *journal)
{
	struct errbuf e;
	struct vall va = { .l = l, .journal = journal, .journal_station = ctx->station_id,
			   .err = &e };

	errbuf_clear(&e);
	if (ledger_stations(l, verify_station, &va, &e) || va.rc)
		return cli_fail("ledger verify: %s", e.msg);
	if (!va.n)
		printf("no station has pushed to this ledger yet\n");
	if (va.bad)
		return cli_fail("ledger verify: %d of %d station chains FAILED", va.bad, va.n);
	return CLI_EXIT_OK;
}

static int do_push(struct ledger_config *cfg, struct db *db)
{
	struct pl_ledger *g;
	struct errbuf e;
	int64_t pushed = 0;
	int rc;

	if (pl_ledger_open(cfg, db, NULL, 0, &g, &e))
		return cli_fail("ledger push: %s", e.msg);
	rc = pl_ledger_sync_now(g, &pushed, &e);
	pl_ledger_close(g);
	if (rc)
		return cli_fail("ledger push: %s (%" PRId64 " events pushed)", e.msg, pushed);
	printf("pushed %" PRId64 " events\n", pushed);
	return CLI_EXIT_OK;
}

struct settle_opts {
	const char *station;
	int release_unknown, min_silence_s;
};

static int do_settle(struct cli_ctx *ctx, struct ledger *l, struct db *db,
		     const struct settle_opts *so)
{
	struct ledger_settled s;
	struct errbuf e;
	json_t *d;
	char *detail;
	int rc;

	if (ledger_settle_station(l, so->station, so->min_silence_s, so->release_unknown, &s, &e))
		return cli_fail("ledger settle: %s", e.msg);
	printf("station %s: %" PRId64 " committed, %" PRId64 " released, %" PRId64
	       " put back (reworks), %" PRId64 " left claimed (no verdict in the ledger), %"
	       PRId64 " holds removed\n", so->station, s.committed, s.released, s.put_back,
	       s.unknown, s.holds);
	if (s.released_unknown)
		printf("%" PRId64 " claim(s) without a verdict were released (--release-unknown)\n",
		       s.released_unknown);
	/* the settling is the engineer's act: this station's chain says so */
	d = json_pack("{s:s, s:I, s:I, s:I, s:I, s:I, s:b}", "station", so->station,
		      "committed", (json_int_t)s.committed, "released", (json_int_t)s.released,
		      "put_back", (json_int_t)s.put_back, "unknown", (json_int_t)s.unknown,
		      "released_unknown", (json_int_t)s.released_unknown, "forced",
		      so->release_unknown);
	detail = d ? json_dumps(d, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
	json_decref(d);
	rc = detail ? db_audit_append(db, "ledger-settle", ctx->actor, detail, NULL, &e) :
		      errbuf_set(&e, ST_ENOMEM, "out of memory");
	free(detail);
	if (rc)
		return cli_fail("ledger settle: settled in the ledger, but not recorded here: %s",
				e.msg);
	return CLI_EXIT_OK;
}

/* 1: one of settle's options, taken; 0: not one; -1: a bad value. */
static int settle_option(struct settle_opts *so, int c, const char *arg)
{
	switch (c) {
	case 'S':
		so->station = arg;
		return 1;
	case 'U':
		so->release_unknown = 1;
		return 1;
	case 'M':
		return runctl_parse_int(arg, 0, 7 * 86400, &so->min_silence_s) ? -1 : 1;
	default:
		return 0;
	}
}

/* Options up to the next non-option (the subcommand, or the end). */
static int parse_options(int argc, char **argv, const struct option *opts,
			 struct cli_ledger *lo, struct settle_opts *so)
{
	int c, t;

	while ((c = getopt_long(argc, argv, "+h", opts, NULL)) != -1) {
		t = settle_option(so, c, optarg);
		if (t < 0 || (t == 0 && !cli_ledger_option(lo, c, optarg)))
			return -1;
	}
	return 0;
}

int cmd_ledger(struct cli_ctx *ctx, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ "station", required_argument, NULL, 'S' },
		{ "release-unknown", no_argument, NULL, 'U' },
		{ "min-silence", required_argument, NULL, 'M' },
		CLI_LEDGER_LONG_OPTIONS,
		{ NULL, 0, NULL, 0 },
	};
	struct cli_ledger lo = { 0 };
	struct settle_opts so = { NULL, 0, 600 };
	struct ledger_config cfg;
	struct ledger *l = NULL;
	struct db *db = NULL;
	struct errbuf e;
	const char *sub;
	int rc;

	if (cli_wants_help(argc, argv)) {
		usage(stdout);
		return CLI_EXIT_OK;
	}
	if (parse_options(argc, argv, opts, &lo, &so))
		return cli_usage_error("ledger", "bad option");
	if (optind >= argc)
		return cli_usage_error("ledger", "init, status, verify or push?");
	sub = argv[optind++];
	/* options may also follow the subcommand */
	if (parse_options(argc, argv, opts, &lo, &so))
		return cli_usage_error("ledger", "bad option");
	if (optind < argc)
		return cli_usage_error("ledger", "unexpected argument '%s'", argv[optind]);
	if (strcmp(sub, "init") && strcmp(sub, "status") && strcmp(sub, "verify") &&
	    strcmp(sub, "push") && strcmp(sub, "settle"))
		return cli_usage_error("ledger", "unknown subcommand '%s'", sub);
	if (!strcmp(sub, "settle") != !!so.station)
		return cli_usage_error("ledger", so.station ? "--station is settle's" :
				       "settle: which station? (--station ID)");
	if ((so.release_unknown || so.min_silence_s != 600) && strcmp(sub, "settle"))
		return cli_usage_error("ledger", "--release-unknown and --min-silence are settle's");
	if (so.station && !ids_station_valid(so.station))
		return cli_usage_error("ledger", "settle: --station must be a station id"
				       " (1..64 of A-Z a-z 0-9 . _ -)");
	/* the journal names the station; verify reads it only if it exists;
	 * settle records the engineer's act in it */
	if (!strcmp(sub, "push") || !strcmp(sub, "settle") ||
	    (!strcmp(sub, "verify") && access(ctx->db_path, F_OK) == 0)) {
		if (cli_db_open(ctx, "ledger", &db))
			return CLI_EXIT_FAIL;
	}
	if (!strcmp(sub, "settle") && cli_role_require(ctx, db, DB_ROLE_ENGINEER, "ledger settle")) {
		db_close(db);
		return CLI_EXIT_FAIL;
	}
	if ((rc = cli_ledger_config(&lo, "ledger", ctx->station_id, &cfg)) <= 0) {
		db_close(db);
		return rc < 0 ? CLI_EXIT_USAGE :
		       cli_usage_error("ledger", "no ledger: --ledger CONNINFO or $STATION_LEDGER");
	}
	if (!strcmp(sub, "push")) {
		rc = do_push(&cfg, db);
		db_close(db);
		return rc;
	}
	if (ledger_open(&cfg, strcmp(sub, "init") != 0, &l, &e)) {
		db_close(db);
		return cli_fail("ledger %s: %s", sub, e.msg);
	}
	if (!strcmp(sub, "init"))
		rc = do_init(l);
	else if (!strcmp(sub, "status"))
		rc = do_status(l);
	else if (!strcmp(sub, "settle"))
		rc = do_settle(ctx, l, db, &so);
	else
		rc = do_verify(ctx, l, db);
	ledger_close(l);
	db_close(db);
	return rc;
}
