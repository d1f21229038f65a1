/*
 * station profile add FILE | list | show NAME
 *
 * add validates the file strictly (profile.h), pins the CA and manufacturer CA
 * certificates by SHA-256 (checks the file's pins, fills missing ones from the
 * certificates, printed), stores its canonical text as a
 * new version with its SHA-256 (db_profile_store appends the audit event naming
 * who did it).  Nothing is stored when the file has any error.
 */
#include "cli/cli.h"
#include "cli/cli_ledger.h"
#include "cli/cli_role.h"

#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "db/db.h"
#include "config/profile.h"
#include "ledger/ledger.h"

static void usage(FILE *f)
{
	fprintf(f,
		"usage: station profile add FILE [--ledger CONNINFO] [--ledger-password-file FILE]\n"
		"       station profile list\n"
		"       station profile show NAME\n"
		"\n"
		"add   validate FILE and store it as a new version (content hash recorded)\n"
		"list  every profile: name, latest version, its SHA-256, when and by whom\n"
		"show  the latest version of NAME in canonical form\n"
		"add --ledger: the profile also goes to the factory ledger, where a station\n"
		"      that does not hold it reads it at `station run --ledger` (hash checked)\n"
		CLI_LEDGER_USAGE
		"The file format is described in docs/engineer.md (Profiles).\n");
}

/* The stored text and its hash, into the factory ledger. */
static int to_ledger(const struct ledger_config *cfg, const char *name, const char *canon,
		     const char *hash, const char *actor)
{
	struct ledger *led = NULL;
	struct errbuf e;
	int added = 0, rc;

	errbuf_clear(&e);
	if ((rc = ledger_open(cfg, 1, &led, &e)) == ST_OK)
		rc = ledger_profile_put(led, name, canon, hash, actor, &added, &e);
	ledger_close(led);
	if (rc)
		return cli_fail("profile add: ledger: %s", e.msg);
	printf("ledger: profile %s sha256 %s %s\n", name, hash,
	       added ? "added" : "was there already");
	return CLI_EXIT_OK;
}

static int do_add(struct cli_ctx *ctx, const char *path, const struct ledger_config *lcfg)
{
	struct profile p;
	struct errbuf e;
	struct db *db = NULL;
	char *canon = NULL, hash[65];
	size_t len = 0;
	int version = 0;

	int pinned = 0;

	errbuf_clear(&e);
	if (profile_parse_file(path, &p, &e))
		return cli_fail("profile add: %s", e.msg);
	/* the stored profile pins its trust anchors: a file that states a pin
	 * must match it now; a missing pin is taken from the file, and shown */
	if (profile_pin_anchors(&p, &pinned, &e))
		return cli_fail("profile add: %s", e.msg);
	if (profile_canonical(&p, &canon, &len, &e))
		return cli_fail("profile add: %s", e.msg);
	if (cli_db_open(ctx, "profile add", &db)) {
		free(canon);
		return CLI_EXIT_FAIL;
	}
	if (cli_role_require(ctx, db, DB_ROLE_ENGINEER, "profile add")) {
		free(canon);
		db_close(db);
		return CLI_EXIT_FAIL;
	}
	if (db_profile_store(db, p.name, canon, len, ctx->actor, &version, hash, &e)) {
		free(canon);
		db_close(db);
		return cli_fail("profile add: %s", e.msg);
	}
	db_close(db);
	if (pinned & 1)
		printf("pinned ca_cert_sha256 = %s (%s)\n", p.hsm_ca_cert_sha256, p.hsm_ca_cert);
	if (pinned & 2)
		printf("pinned manufacturer_ca_sha256 = %s (%s)\n", p.mfr_ca_sha256, p.mfr_ca_cert);
	printf("profile %s version %d sha256 %s\n", p.name, version, hash);
	version = lcfg ? to_ledger(lcfg, p.name, canon, hash, ctx->actor) : CLI_EXIT_OK;
	free(canon);
	return version;
}

static int print_profile(const struct db_profile_row *r, void *ctx)
{
	int *n = ctx;

	printf("%-24s %7d  %-64s  %s\n", r->name, r->version, r->sha256, r->created_by);
	(*n)++;
	return 0;
}

static int do_list(struct cli_ctx *ctx)
{
	struct errbuf e;
	struct db *db = NULL;
	int n = 0, rc;

	if (cli_db_open(ctx, "profile list", &db))
		return CLI_EXIT_FAIL;
	printf("%-24s %7s  %-64s  %s\n", "NAME", "VERSION", "SHA256", "CREATED BY");
	rc = db_profile_foreach(db, print_profile, &n, &e);
	db_close(db);
	if (rc)
		return cli_fail("profile list: %s", e.msg);
	if (!n)
		fprintf(stderr, "station: no profiles (add one with `station profile add FILE`)\n");
	return CLI_EXIT_OK;
}

static int do_show(struct cli_ctx *ctx, const char *name)
{
	struct errbuf e;
	struct db *db = NULL;
	char *content = NULL, hash[65];
	size_t len = 0;
	int version = 0;

	if (cli_db_open(ctx, "profile show", &db))
		return CLI_EXIT_FAIL;
	if (db_profile_load(db, name, &content, &len, &version, hash, &e)) {
		db_close(db);
		return cli_fail("profile show: %s", e.msg);
	}
	db_close(db);
	printf("# profile %s version %d sha256 %s\n", name, version, hash);
	fwrite(content, 1, len, stdout);
	free(content);
	return CLI_EXIT_OK;
}

static int add_main(struct cli_ctx *ctx, int argc, char **argv)
{
	static const struct option opts[] = {
		CLI_LEDGER_LONG_OPTIONS,
		{ NULL, 0, NULL, 0 },
	};
	struct cli_ledger lo = { 0 };
	struct ledger_config lcfg;
	int c, rc;

	optind = 0;    /* glibc: re-initialise getopt for the verb's argv */
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (!cli_ledger_option(&lo, c, optarg)) {
			usage(stderr);
			return CLI_EXIT_USAGE;
		}
	}
	if (argc - optind != 1)
		return cli_usage_error("profile", "add takes exactly one FILE");
	/* only an explicit --ledger: $STATION_LEDGER alone does not publish */
	if (!lo.conninfo)
		return do_add(ctx, argv[optind], NULL);
	if ((rc = cli_ledger_config(&lo, "profile", ctx->station_id, &lcfg)) < 0)
		return CLI_EXIT_USAGE;
	return do_add(ctx, argv[optind], rc ? &lcfg : NULL);
}

int cmd_profile(struct cli_ctx *ctx, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	while ((c = getopt_long(argc, argv, "+h", opts, NULL)) != -1) {
		if (c == 'h') {
			usage(stdout);
			return CLI_EXIT_OK;
		}
		usage(stderr);
		return CLI_EXIT_USAGE;
	}
	argc -= optind;
	argv += optind;
	if (argc < 1)
		return cli_usage_error("profile", "missing subcommand (add, list, show)");
	if (!strcmp(argv[0], "add"))
		return add_main(ctx, argc, argv);
	if (!strcmp(argv[0], "list")) {
		if (argc != 1)
			return cli_usage_error("profile", "list takes no argument");
		return do_list(ctx);
	}
	if (!strcmp(argv[0], "show")) {
		if (argc != 2)
			return cli_usage_error("profile", "show takes exactly one NAME");
		return do_show(ctx, argv[1]);
	}
	return cli_usage_error("profile", "unknown subcommand '%s'", argv[0]);
}
