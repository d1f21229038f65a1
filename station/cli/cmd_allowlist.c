/*
 * station allowlist import FILE --lot LOT (--sig FILE.sig --manufacturer-cert SIGNER.pem
 *                                           --manufacturer-ca CA.pem | --unsigned)
 * station allowlist list --lot LOT
 *
 * import: the manufacturer's CSV (docs/engineer.md "Allowlist"), all or nothing.
 * list:   the count, then one id per line.
 */
#include "cli/cli.h"
#include "core/ids.h"
#include "cli/cli_role.h"
#include "db/db.h"

#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli_ledger.h"
#include "ledger/ledger.h"
#include <unistd.h>

static void allowlist_usage(FILE *f)
{
	fprintf(f,
		"usage: station allowlist import FILE --lot LOT --sig FILE.sig --manufacturer-cert SIGNER.pem\n"
		"                                   --manufacturer-ca CA.pem\n"
		"       station allowlist import FILE --lot LOT --unsigned\n"
		"       station allowlist list --lot LOT\n"
		"  import --ledger CONNINFO [--ledger-password-file FILE]: the lot's ids also\n"
		"        go to the factory ledger, where every station sees them\n"
		"\n"
		"import  add the hardware ids of a manufacturer CSV (header\n"
		"        unique_id,lot,model,hw_revision) to LOT in one transaction.  Any bad\n"
		"        row, a duplicate id, or a signature that does not verify with the\n"
		"        manufacturer's signer certificate rejects the whole file (FILE:LINE:\n"
		"        reason) and nothing is written.  The signer must chain to the\n"
		"        manufacturer CA with digitalSignature key usage; the lot's first\n"
		"        signed import pins that CA (SHA-256), later imports must use it.\n"
		"        The import is an audit event (signer and CA fingerprints).\n"
		"        A file without a signature is refused unless --unsigned says the\n"
		"        engineer means it; the audit event then records signed:false.\n"
		"list    print the number of ids on LOT's allowlist, then the ids.\n");
}

struct id_list {
	char **ids;
	size_t n, cap;
};

static int collect_id(const char *uid, void *arg)
{
	struct id_list *l = arg;

	if (l->n == l->cap) {
		size_t cap = l->cap ? 2 * l->cap : 256;
		char **p = realloc(l->ids, cap * sizeof(*p));

		if (!p)
			return 1;
		l->ids = p;
		l->cap = cap;
	}
	if (!(l->ids[l->n] = strdup(uid)))
		return 1;
	l->n++;
	return 0;
}

/* The lot's ids, as this station holds them, into the factory ledger. */
static int to_ledger(struct db *db, const struct ledger_config *cfg, const char *lot,
		     const char *actor)
{
	struct id_list l = { 0 };
	struct ledger *led = NULL;
	struct errbuf err;
	int64_t added = 0, total = 0;
	int rc;

	errbuf_clear(&err);
	rc = db_allowlist_foreach(db, lot, collect_id, &l, &err);
	if (!rc && (rc = ledger_open(cfg, 1, &led, &err)) == ST_OK)
		rc = ledger_allowlist_add(led, lot, (const char *const *)l.ids, l.n, actor, &added,
					  &err) ||
		     ledger_allowlist_count(led, lot, &total, &err);
	ledger_close(led);
	for (size_t i = 0; i < l.n; i++)
		free(l.ids[i]);
	free(l.ids);
	if (rc)
		return cli_fail("allowlist import: ledger: %s", err.msg[0] ? err.msg :
				"out of memory");
	printf("ledger: %lld ids added to lot %s (%lld in the ledger)\n", (long long)added, lot,
	       (long long)total);
	return CLI_EXIT_OK;
}

static int allowlist_import(struct cli_ctx *ctx, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "lot",               required_argument, NULL, 'l' },
		{ "sig",               required_argument, NULL, 's' },
		{ "manufacturer-cert", required_argument, NULL, 'c' },
		{ "manufacturer-ca",   required_argument, NULL, 'a' },
		{ "unsigned",          no_argument,       NULL, 'u' },
		{ "help",              no_argument,       NULL, 'h' },
		CLI_LEDGER_LONG_OPTIONS,
		{ NULL, 0, NULL, 0 },
	};
	const char *lot = NULL, *sig = NULL, *cert = NULL, *ca = NULL, *file = NULL;
	struct cli_ledger lo = { 0 };
	struct ledger_config lcfg;
	struct errbuf err;
	int64_t rows = 0;
	struct db *db;
	int c, rc, unsigned_ok = 0, use_ledger;

	/* FILE may come before or after the options. */
	while (optind < argc) {
		if ((c = getopt_long(argc, argv, "+h", opts, NULL)) == -1) {
			if (file)
				return cli_usage_error("allowlist", "unexpected argument '%s'", argv[optind]);
			file = argv[optind++];
			continue;
		}
		switch (c) {
		case 'l': lot = optarg; break;
		case 's': sig = optarg; break;
		case 'c': cert = optarg; break;
		case 'a': ca = optarg; break;
		case 'u': unsigned_ok = 1; break;
		case 'h':
			allowlist_usage(stdout);
			return CLI_EXIT_OK;
		default:
			if (cli_ledger_option(&lo, c, optarg))
				break;
			return cli_usage_error("allowlist", "bad option for allowlist import");
		}
	}
	if (!file)
		return cli_usage_error("allowlist", "import needs the CSV FILE");
	if (!lot)
		return cli_usage_error("allowlist", "import needs --lot LOT");
	if (!ids_lot_valid(lot)) {
		fprintf(stderr, "station: allowlist import: a lot name is 1..%d printable characters"
			" without spaces, commas or quotes\n", IDS_LOT_MAX);
		return CLI_EXIT_USAGE;
	}
	if (!sig != !cert || !sig != !ca)
		return cli_usage_error("allowlist", "--sig, --manufacturer-cert and --manufacturer-ca"
				       " go together");
	/* Unsigned ids are unverified ids: make that the engineer's explicit choice. */
	if (!sig && !unsigned_ok)
		return cli_usage_error("allowlist", "no --sig: give the manufacturer's signature, "
				       "or --unsigned to import an unverified file");
	if (sig && unsigned_ok)
		return cli_usage_error("allowlist", "--unsigned contradicts --sig");
	errbuf_clear(&err);
	if (cli_db_open(ctx, "allowlist import", &db))
		return CLI_EXIT_FAIL;
	if ((rc = cli_ledger_config(&lo, "allowlist", ctx->station_id, &lcfg)) < 0) {
		db_close(db);
		return CLI_EXIT_USAGE;
	}
	if (cli_role_require(ctx, db, DB_ROLE_ENGINEER, "allowlist import")) {
		db_close(db);
		return CLI_EXIT_FAIL;
	}
	use_ledger = rc;
	rc = db_allowlist_import(db, file, lot, sig, cert, ca, ctx->actor, &rows, &err);
	if (rc) {
		db_close(db);
		return cli_fail("allowlist import: %s", err.msg);
	}
	/* the ledger gets the lot's whole list as this station holds it, checked
	 * (signature, rows) by the import above; again is harmless */
	if (use_ledger && (rc = to_ledger(db, &lcfg, lot, ctx->actor))) {
		db_close(db);
		return rc;
	}
	db_close(db);
	if (rows == 0) {
		printf("%s is already imported for lot %s: nothing to do\n", file, lot);
		return CLI_EXIT_OK;
	}
	printf("imported %lld ids into lot %s%s\n", (long long)rows, lot,
	       sig ? " (signature verified)" : " (unsigned)");
	return CLI_EXIT_OK;
}

static int print_id(const char *uid, void *arg)
{
	(void)arg;
	printf("%s\n", uid);
	return 0;
}

static int allowlist_list(struct cli_ctx *ctx, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "lot",  required_argument, NULL, 'l' },
		{ "help", no_argument,       NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *lot = NULL;
	struct errbuf err;
	int64_t count = 0;
	struct db *db;
	int c, rc;

	while ((c = getopt_long(argc, argv, "+h", opts, NULL)) != -1) {
		switch (c) {
		case 'l': lot = optarg; break;
		case 'h':
			allowlist_usage(stdout);
			return CLI_EXIT_OK;
		default:
			return cli_usage_error("allowlist", "bad option for allowlist list");
		}
	}
	if (optind < argc)
		return cli_usage_error("allowlist", "unexpected argument '%s'", argv[optind]);
	if (!lot)
		return cli_usage_error("allowlist", "list needs --lot LOT");
	errbuf_clear(&err);
	if (cli_db_open(ctx, "allowlist list", &db))
		return CLI_EXIT_FAIL;
	rc = db_allowlist_count(db, lot, &count, &err);
	if (!rc && count == 0) {
		rc = cli_unknown_lot(db, "allowlist list", lot);
		db_close(db);
		return rc;
	}
	if (!rc) {
		printf("%lld ids on lot %s\n", (long long)count, lot);
		rc = db_allowlist_foreach(db, lot, print_id, NULL, &err);
	}
	db_close(db);
	if (rc)
		return cli_fail("allowlist list: %s", err.msg);
	return CLI_EXIT_OK;
}

int cmd_allowlist(struct cli_ctx *ctx, int argc, char **argv)
{
	if (argc < 2) {
		allowlist_usage(stderr);
		return CLI_EXIT_USAGE;
	}
	if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
		allowlist_usage(stdout);
		return CLI_EXIT_OK;
	}
	optind = 0;    /* glibc: re-initialise getopt for the verb's argv */
	if (!strcmp(argv[1], "import"))
		return allowlist_import(ctx, argc - 1, argv + 1);
	if (!strcmp(argv[1], "list"))
		return allowlist_list(ctx, argc - 1, argv + 1);
	return cli_usage_error("allowlist", "unknown action '%s' (import or list)", argv[1]);
}
