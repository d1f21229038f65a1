/*
 * station ledger init | status | verify | push   LEDGER-OPTIONS
 *
 * The factory ledger (docs/factory.md).  init creates or migrates its schema;
 * status shows each station's chain in it (head, journal head, lag, last
 * contact); verify walks every station's chain in the ledger (seq without a
 * gap, each hash recomputed, each link to the previous hash) and every
 * station's rows in it (each hashes to its row event: app/factory_verify.h)
 * and, when this station's journal (--db) exists, checks that the ledger's
 * events of this station are the journal's; push sends what the journal holds that the
 * ledger does not (what `station run` does by itself in the background).
 */
#include "cli/cli.h"
#include "cli/cli_ledger.h"
#include "app/factory_verify.h"
#include "app/pl_ledger.h"
#include "db/db.h"
#include "ledger/ledger.h"

#include <getopt.h>
#include <inttypes.h>
#include <string.h>
#include <unistd.h>

static void usage(FILE *f)
{
	fprintf(f,
		"usage: station ledger init|status|verify|push LEDGER-OPTIONS\n"
		"\n"
		"  init    create the ledger's schema, or migrate it to this station's version\n"
		"  status  each station's chain in the ledger: head, journal head, lag, last\n"
		"          contact\n"
		"  verify  every station's chain in the ledger (no gap, hashes, links) and\n"
		"          rows (each hashes to its row event), and this station's events\n"
		"          against its journal (--db) when it exists\n"
		"  push    send the journal's events the ledger does not hold yet\n"
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

static int verify_print(const struct factory_verify_station *s, void *ctx)
{
	(void)ctx;
	if (s->bad[0]) {
		printf("station %s: FAILED: %s\n", s->station_id, s->bad);
		return 0;
	}
	printf("station %s: %" PRId64 " events, chain intact, %" PRId64 " rows equal to their"
	       " row events", s->station_id, s->events, s->rows);
	if (s->rows_from)
		printf(" (from event %" PRId64 ")", s->rows_from + 1);
	if (s->journal)
		printf(", equal to the journal");
	if (s->journal_more)
		printf(" (the journal holds %" PRId64 " more, not pushed yet)", s->journal_more);
	printf("\n");
	return 0;
}

static int do_verify(struct cli_ctx *ctx, struct ledger *l, struct db *journal)
{
	struct errbuf e;
	int bad = 0, n = 0;

	if (factory_verify(l, journal, ctx->station_id, verify_print, NULL, &bad, &n, &e))
		return cli_fail("ledger verify: %s", e.msg);
	if (!n)
		printf("no station has pushed to this ledger yet\n");
	if (bad)
		return cli_fail("ledger verify: %d of %d stations FAILED", bad, n);
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

int cmd_ledger(struct cli_ctx *ctx, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "help", no_argument, NULL, 'h' },
		CLI_LEDGER_LONG_OPTIONS,
		{ NULL, 0, NULL, 0 },
	};
	struct cli_ledger lo = { 0 };
	struct ledger_config cfg;
	struct ledger *l = NULL;
	struct db *db = NULL;
	struct errbuf e;
	const char *sub;
	int c, rc;

	if (cli_wants_help(argc, argv)) {
		usage(stdout);
		return CLI_EXIT_OK;
	}
	while ((c = getopt_long(argc, argv, "+h", opts, NULL)) != -1)
		if (!cli_ledger_option(&lo, c, optarg))
			return cli_usage_error("ledger", "bad option");
	if (optind >= argc)
		return cli_usage_error("ledger", "init, status, verify or push?");
	sub = argv[optind++];
	/* options may also follow the subcommand */
	while ((c = getopt_long(argc, argv, "+h", opts, NULL)) != -1)
		if (!cli_ledger_option(&lo, c, optarg))
			return cli_usage_error("ledger", "bad option");
	if (optind < argc)
		return cli_usage_error("ledger", "unexpected argument '%s'", argv[optind]);
	if (strcmp(sub, "init") && strcmp(sub, "status") && strcmp(sub, "verify") &&
	    strcmp(sub, "push"))
		return cli_usage_error("ledger", "unknown subcommand '%s'", sub);
	/* the journal names the station; verify reads it only if it exists */
	if (!strcmp(sub, "push") || (!strcmp(sub, "verify") && access(ctx->db_path, F_OK) == 0)) {
		if (cli_db_open(ctx, "ledger", &db))
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
	else
		rc = do_verify(ctx, l, db);
	ledger_close(l);
	db_close(db);
	return rc;
}
