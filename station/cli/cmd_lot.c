/*
 * station lot list | show LOT
 *
 * What the database knows of each lot (db_lot_foreach): ids allowlisted, units
 * that passed, failed and were rejected, and the first-pass yield, counted by
 * db_export_lot() as the export's summary counts them (db/export.h).  Read
 * only: no role is needed, as for `allowlist list`.
 */
#include "cli/cli.h"
#include "db/db.h"
#include "db/export.h"
#include "export/export_fmt.h"

#include <string.h>

static void usage(FILE *f)
{
	fprintf(f,
		"usage: station lot list\n"
		"       station lot show LOT\n"
		"\n"
		"list: one line per lot: ids allowlisted, units passed, failed, rejected,\n"
		"and the first-pass yield (boards whose first finished attempt passed, of\n"
		"the boards with a finished attempt).  show: one lot in full.\n");
}

static void pct(char *out, size_t size, const struct db_export_counts *c, double v)
{
	if (c->boards_finished)
		snprintf(out, size, "%.1f%%", 100 * v);
	else
		snprintf(out, size, "-");
}

struct list {
	struct db *db;
	struct errbuf *err;
	int rc, n;
};

static int list_one(const char *lot, void *arg)
{
	struct list *l = arg;
	struct db_export_counts c;
	char fpy[16];

	if ((l->rc = db_export_lot(l->db, lot, &c, NULL, NULL, l->err)))
		return 1;
	if (!l->n++)
		printf("%-24s %11s %7s %7s %7s %8s\n", "LOT", "ALLOWLISTED", "PASS", "FAIL",
		       "REJECT", "FPY");
	pct(fpy, sizeof(fpy), &c, export_first_pass_yield(&c));
	cli_print_name(stdout, lot);
	printf("%*s %11lld %7lld %7lld %7lld %8s\n", (int)(strlen(lot) < 24 ? 24 - strlen(lot) : 0),
	       "", (long long)c.allowlisted, (long long)c.pass, (long long)c.fail,
	       (long long)c.reject, fpy);
	return 0;
}

static int lot_list(struct db *db)
{
	struct errbuf e;
	struct list l = { db, &e, 0, 0 };

	errbuf_clear(&e);
	if (db_lot_foreach(db, list_one, &l, &e) || l.rc)
		return cli_fail("lot list: %s", e.msg);
	if (!l.n)
		printf("no lots yet (an engineer imports a lot's allowlist with"
		       " `station allowlist import`)\n");
	return CLI_EXIT_OK;
}

static int lot_show(struct db *db, const char *lot)
{
	struct db_export_counts c;
	char y[16], fpy[16];
	struct errbuf e;
	int rc;

	errbuf_clear(&e);
	rc = db_export_lot(db, lot, &c, NULL, NULL, &e);
	if (rc == ST_ENOTFOUND)
		return cli_unknown_lot(db, "lot show", lot);
	if (rc)
		return cli_fail("lot show: %s", e.msg);
	pct(y, sizeof(y), &c, export_yield(&c));
	pct(fpy, sizeof(fpy), &c, export_first_pass_yield(&c));
	printf("lot          ");
	cli_print_name(stdout, lot);
	printf("\nallowlisted  %lld\n", (long long)c.allowlisted);
	printf("units        %lld: pass %lld, fail %lld, reject %lld, interrupted %lld,"
	       " in progress %lld\n", (long long)c.units, (long long)c.pass, (long long)c.fail,
	       (long long)c.reject, (long long)c.interrupted, (long long)c.in_progress);
	printf("boards       %lld, passed %lld (reworked %lld)\n", (long long)c.boards,
	       (long long)c.boards_passed, (long long)c.superseded);
	printf("yield        %s, first-pass yield %s\n", y, fpy);
	return CLI_EXIT_OK;
}

int cmd_lot(struct cli_ctx *ctx, int argc, char **argv)
{
	struct db *db;
	int rc;

	if (cli_wants_help(argc, argv)) {
		usage(stdout);
		return CLI_EXIT_OK;
	}
	if (argc < 2)
		return cli_usage_error("lot", "missing list or show");
	if (!strcmp(argv[1], "list")) {
		if (argc != 2)
			return cli_usage_error("lot", "list takes no arguments");
	} else if (!strcmp(argv[1], "show")) {
		if (argc != 3)
			return cli_usage_error("lot", "show needs exactly LOT");
	} else {
		return cli_usage_error("lot", "unknown subcommand '%s' (list or show)", argv[1]);
	}
	if (cli_db_open(ctx, argv[1][0] == 'l' ? "lot list" : "lot show", &db))
		return CLI_EXIT_FAIL;
	rc = argv[1][0] == 'l' ? lot_list(db) : lot_show(db, argv[2]);
	db_close(db);
	return rc;
}
