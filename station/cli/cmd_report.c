/*
 * station report --lot LOT --out FILE.html [--ledger CONNINFO [--ledger-password-file F]]
 *
 * The lot report (docs/engineer.md "Lot report"): yield and first-pass
 * yield, units per hour over time, the failure Pareto by reason code, the
 * cycle-time histogram, per-bay and per-operator tables, and the audit
 * verification with the chain head, as one self-contained HTML page.
 *
 * The chain is verified first (nothing is reported from a database that
 * does not verify); the units are then read in one streaming pass into
 * fixed-size aggregates (export/report.h), so memory stays the same for a
 * lot of ten units or ten million.  The file is written atomically, mode
 * 0644.  Reads only: needs no role, like `lot show` and `unit show`.
 * With --ledger the lot is every station's, read from the factory ledger
 * once the whole ledger verified (app/factory_lot.h), through the same
 * db_report_lot(); the station's own database is not needed.
 */
#include "app/factory_lot.h"
#include "cli/cli.h"
#include "cli/cli_ledger.h"
#include "core/clock.h"
#include "core/fileio.h"
#include "core/hex.h"
#include "core/ids.h"
#include "db/db.h"
#include "db/report.h"
#include "export/report.h"

#include <getopt.h>
#include <stdlib.h>
#include <string.h>

static void report_usage(FILE *f)
{
	fprintf(f,
		"usage: station report --lot LOT --out FILE.html [LEDGER-OPTIONS]\n"
		"\n"
		"Write the lot's report as one self-contained HTML page (no network, inline\n"
		"SVG charts, readable printed): yield and first-pass yield, units per hour,\n"
		"failures by reason code (Pareto), cycle-time histogram, per-bay and\n"
		"per-operator tables, the audit verification and the chain head.  The\n"
		"database must verify first.  The file is replaced atomically.\n"
		"With --ledger: the lot of every station, from the factory ledger, which\n"
		"must verify first (docs/factory.md).\n"
		"\n" CLI_LEDGER_USAGE_EXPLICIT);
}

/* The lot of every station, from a ledger that verifies. */
static int ledger_source(const struct ledger_config *lc, const char *lot, struct ledger **l,
			 struct factory_lot **fl, struct report_audit *au, struct errbuf *err)
{
	const struct factory_lot_stats *st;
	int rc;

	if ((rc = ledger_open(lc, 1, l, err)) || (rc = factory_lot_open(*l, lot, fl, err)))
		return rc;
	st = factory_lot_stats(*fl);
	memset(au, 0, sizeof(*au));
	au->verified = 1;
	au->events = st->events;
	au->rows = st->rows;
	snprintf(au->station_id, sizeof(au->station_id), "factory ledger, %d stations",
		 st->stations);
	snprintf(au->head_hash, sizeof(au->head_hash), "one chain per station");
	ST_IGNORE(clock_iso_ms(clock_realtime_ms(), au->generated));
	return ST_OK;
}

static int write_report(struct cli_ctx *ctx, const char *lot, const char *out,
			const struct ledger_config *lc)
{
	struct factory_lot *fl = NULL;
	struct ledger *l = NULL;
	struct report_agg *agg = calloc(1, sizeof(*agg));
	struct db_verify_result vr;
	struct report_audit au;
	struct fileio_atomic fa;
	struct errbuf err;
	struct db *db = NULL;
	uint8_t head[32];
	int rc;

	if (!agg)
		return cli_fail("report: out of memory");
	if (lc) {
		errbuf_clear(&err);
		if ((rc = ledger_source(lc, lot, &l, &fl, &au, &err)) == ST_OK) {
			report_agg_init(agg, lot);
			rc = db_report_lot(factory_lot_db(fl), lot, &agg->counts, &agg->span,
					   report_agg_row, agg, &err);
		}
		factory_lot_close(fl);
		ledger_close(l);
		goto write;
	}
	if (cli_db_open(ctx, "report", &db)) {
		free(agg);
		return CLI_EXIT_FAIL;
	}
	if (cli_db_verified_res(db, "report", &vr)) {
		db_close(db);
		free(agg);
		return CLI_EXIT_FAIL;
	}
	memset(&au, 0, sizeof(au));
	au.verified = 1;
	au.events = vr.events;
	au.rows = vr.rows;
	au.checkpoints = vr.checkpoints;
	snprintf(au.station_id, sizeof(au.station_id), "%s", ctx->station_id);
	ST_IGNORE(clock_iso_ms(clock_realtime_ms(), au.generated));
	errbuf_clear(&err);
	if ((rc = db_audit_head(db, &au.head_seq, head, &err)) == ST_OK)
		hex_encode(head, sizeof(head), au.head_hash);
	else if (rc == ST_ENOTFOUND)
		rc = ST_OK;     /* an empty chain has no head: the page says sequence 0 */

	report_agg_init(agg, lot);
	if (rc == ST_OK)
		rc = db_report_lot(db, lot, &agg->counts, &agg->span, report_agg_row, agg, &err);
	if (rc == ST_ENOTFOUND) {
		rc = cli_unknown_lot(db, "report", lot);
		db_close(db);
		free(agg);
		return rc;
	}
	db_close(db);
write:
	if (rc == ST_OK) {
		report_agg_finish(agg);
		rc = fileio_atomic_open(&fa, out, 0644, &err);
		if (rc == ST_OK) {
			rc = report_html_write(fa.f, agg, &au, &err);
			if (rc == ST_OK)
				rc = fileio_atomic_commit(&fa, &err);
			else
				fileio_atomic_abort(&fa);
		}
	}
	if (rc == ST_OK)
		printf("report of lot %s: %lld units, yield %lld of %lld boards, "
		       "%d reason codes -> %s\n", lot, (long long)agg->counts.units,
		       (long long)agg->counts.boards_passed, (long long)agg->counts.boards,
		       agg->reasons.n + agg->reasons.other_used, out);
	free(agg);
	return rc == ST_OK ? CLI_EXIT_OK : cli_fail("report: %s", err.msg);
}

int cmd_report(struct cli_ctx *ctx, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "lot",  required_argument, NULL, 'l' },
		{ "out",  required_argument, NULL, 'o' },
		{ "help", no_argument,       NULL, 'h' },
		CLI_LEDGER_LONG_OPTIONS,
		{ NULL, 0, NULL, 0 },
	};
	struct cli_ledger lo = { 0 };
	struct ledger_config lc;
	const char *lot = NULL, *out = NULL;
	int c, ledger;

	if (cli_wants_help(argc, argv)) {
		report_usage(stdout);
		return CLI_EXIT_OK;
	}
	optind = 0;
	while ((c = getopt_long(argc, argv, "+l:o:h", opts, NULL)) != -1) {
		if (cli_ledger_option(&lo, c, optarg))
			continue;
		if (c == 'l')
			lot = optarg;
		else if (c == 'o')
			out = optarg;
		else
			return cli_usage_error("report", "bad option");
	}
	if (optind < argc)
		return cli_usage_error("report", "unexpected argument '%s'", argv[optind]);
	if (!lot || !out || !*out)
		return cli_usage_error("report", "--lot LOT and --out FILE.html are needed");
	if (!ids_lot_valid(lot))
		return cli_fail("report: lot name \"%.64s\" is not valid: 1..64 printable characters "
				"without spaces, commas or quotes", lot);
	/* only an explicit --ledger: $STATION_LEDGER configures the line, not this */
	if (!lo.conninfo && lo.password_file)
		return cli_usage_error("report", "--ledger-password-file without --ledger");
	if (lo.conninfo && (ledger = cli_ledger_config(&lo, "report", ctx->station_id, &lc)) <= 0)
		return ledger < 0 ? CLI_EXIT_USAGE : cli_usage_error("report", "--ledger is empty");
	return write_report(ctx, lot, out, lo.conninfo ? &lc : NULL);
}
