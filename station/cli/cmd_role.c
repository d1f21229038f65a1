/*
 * station role grant NAME ROLE [--login LOGIN] | revoke NAME | list
 *
 * Manages the roles table (db/roles.h): which person (NAME, as --user gives
 * it) holds which role, bound to which OS login.  grant and revoke need an
 * engineer; the first engineer of a database may be granted only by root or
 * by the owner of the database file (cli_role.h, docs/engineer.md "Roles").
 */
#include "cli/cli.h"
#include "cli/cli_role.h"
#include "db/db.h"
#include "db/roles.h"

#include <errno.h>
#include <getopt.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void role_usage(FILE *f)
{
	fprintf(f,
		"usage: station role grant NAME ROLE [--login LOGIN]\n"
		"       station role revoke NAME\n"
		"       station role list\n"
		"\n"
		"ROLE is operator (runs a lot), qa (replays batches) or engineer (profiles,\n"
		"allowlists, rework, revoke, checkpoints, roles).  NAME is the person as\n"
		"--user names them in the audit log; LOGIN (default: NAME) is the OS account\n"
		"they must be logged in as.  grant and revoke need an engineer.  Until a\n"
		"database has an engineer no role is checked, and only root or the owner of\n"
		"the database file may grant the first one.  The last engineer cannot be\n"
		"revoked or demoted.\n");
}

/* The first engineer: root, or whoever owns the database file. */
static int may_bootstrap(const struct cli_ctx *ctx)
{
	struct stat sb;

	if (getuid() == 0)
		return 1;
	return stat(ctx->db_path, &sb) == 0 && sb.st_uid == getuid();
}

static int role_grant(struct cli_ctx *ctx, struct db *db, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "login", required_argument, NULL, 'l' },
		{ NULL, 0, NULL, 0 },
	};
	const char *name = NULL, *role_s = NULL, *login = NULL;
	enum db_role role;
	struct errbuf err;
	int c, rc;

	optind = 0;
	while (optind < argc) {
		c = getopt_long(argc, argv, "+l:", opts, NULL);
		if (c == -1) {
			if (optind >= argc)
				break;
			if (!name)
				name = argv[optind++];
			else if (!role_s)
				role_s = argv[optind++];
			else
				return cli_usage_error("role", "unexpected argument '%s'", argv[optind]);
			continue;
		}
		if (c != 'l')
			return cli_usage_error("role", "bad option");
		login = optarg;
	}
	if (!name || !role_s)
		return cli_usage_error("role", "grant needs NAME and ROLE");
	if ((role = db_role_from_name(role_s)) == DB_ROLE_NONE)
		return cli_usage_error("role", "unknown role '%s' (operator, qa, engineer)", role_s);
	if (!login)
		login = name;
	if (!db_role_valid_name(name) || !db_role_valid_name(login))
		return cli_usage_error("role", "NAME and LOGIN are 1..%d characters of letters, digits"
				       " and . _ @ -", DB_ROLE_NAME_MAX);
	if (cli_role_enforced(db)) {
		if ((rc = cli_role_require(ctx, db, DB_ROLE_ENGINEER, "role grant")))
			return rc;
	} else {
		if (role != DB_ROLE_ENGINEER)
			return cli_fail("role grant: this database has no engineer yet: grant the"
					" first engineer before any other role");
		if (!may_bootstrap(ctx))
			return cli_fail("role grant: only root or the owner of %s may grant the first"
					" engineer", ctx->db_path);
	}
	if ((rc = db_role_grant(db, name, login, role, ctx->actor, &err)) != ST_OK)
		return cli_fail("role grant: %s", err.msg);
	printf("%s is %s (login %s)\n", name, db_role_name(role), login);
	return CLI_EXIT_OK;
}

static int role_revoke(struct cli_ctx *ctx, struct db *db, int argc, char **argv)
{
	struct errbuf err;
	int rc;

	if (argc != 2)
		return cli_usage_error("role", "revoke needs exactly NAME");
	if (!db_role_valid_name(argv[1]))
		return cli_usage_error("role", "'%s' is not a name", argv[1]);
	if ((rc = cli_role_require(ctx, db, DB_ROLE_ENGINEER, "role revoke")))
		return rc;
	if ((rc = db_role_revoke(db, argv[1], ctx->actor, &err)) != ST_OK)
		return cli_fail("role revoke: %s", err.msg);
	printf("%s has no role now\n", argv[1]);
	return CLI_EXIT_OK;
}

static int print_role(const struct db_role_row *r, void *ctx)
{
	(void)ctx;
	printf("%s\t%s\t%s\t%s\n", r->name, db_role_name(r->role) ? db_role_name(r->role) : "?",
	       r->login, r->granted_by);
	return 0;
}

int cmd_role(struct cli_ctx *ctx, int argc, char **argv)
{
	const char *sub;
	struct errbuf err;
	char what[32];
	struct db *db;
	int rc;

	if (cli_wants_help(argc, argv)) {
		role_usage(stdout);
		return CLI_EXIT_OK;
	}
	if (argc < 2)
		return cli_usage_error("role", "missing grant, revoke or list");
	sub = argv[1];
	if (strcmp(sub, "grant") && strcmp(sub, "revoke") && strcmp(sub, "list"))
		return cli_usage_error("role", "unknown subcommand '%s'", sub);
	if (!strcmp(sub, "list") && argc != 2)
		return cli_usage_error("role", "list takes no arguments");
	snprintf(what, sizeof(what), "role %s", sub);
	if (cli_db_open(ctx, what, &db))
		return CLI_EXIT_FAIL;
	if (!strcmp(sub, "grant")) {
		rc = role_grant(ctx, db, argc - 1, argv + 1);
	} else if (!strcmp(sub, "revoke")) {
		rc = role_revoke(ctx, db, argc - 1, argv + 1);
	} else {
		if (!cli_role_enforced(db))
			printf("# no engineer yet: roles are not enforced on %s\n", ctx->db_path);
		rc = db_role_foreach(db, print_role, NULL, &err) == ST_OK ? CLI_EXIT_OK :
		     cli_fail("role list: %s", err.msg);
	}
	db_close(db);
	return rc;
}
