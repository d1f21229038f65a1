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
#include "cli/cli_role.h"

#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "db/db.h"
#include "config/profile.h"

static void usage(FILE *f)
{
	fprintf(f,
		"usage: station profile add FILE\n"
		"       station profile list\n"
		"       station profile show NAME\n"
		"\n"
		"add   validate FILE and store it as a new version (content hash recorded)\n"
		"list  every profile: name, latest version, its SHA-256, when and by whom\n"
		"show  the latest version of NAME in canonical form\n"
		"The file format is described in docs/engineer.md (Profiles).\n");
}

static int do_add(struct cli_ctx *ctx, const char *path)
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
	free(canon);
	db_close(db);
	if (pinned & 1)
		printf("pinned ca_cert_sha256 = %s (%s)\n", p.hsm_ca_cert_sha256, p.hsm_ca_cert);
	if (pinned & 2)
		printf("pinned manufacturer_ca_sha256 = %s (%s)\n", p.mfr_ca_sha256, p.mfr_ca_cert);
	printf("profile %s version %d sha256 %s\n", p.name, version, hash);
	return CLI_EXIT_OK;
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
	if (!strcmp(argv[0], "add")) {
		if (argc != 2)
			return cli_usage_error("profile", "add takes exactly one FILE");
		return do_add(ctx, argv[1]);
	}
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
