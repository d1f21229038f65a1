/*
 * station role grant NAME ROLE [--login LOGIN] [--force-login] | revoke NAME
 *            | list | recover
 *
 * Manages the roles table (db/roles.h): which person (NAME, as --user gives
 * it) holds which role, bound to which OS login.  grant and revoke need an
 * engineer; the first engineer of a database may be granted only by root or
 * by the owner of the database file (cli_role.h, docs/engineer.md "Roles").
 *
 * Nothing here can lock the owner out: grant refuses a LOGIN this machine
 * does not have (getpwnam) unless --force-login, and root may always run
 * `role recover`, which makes root's own login an engineer (audited).
 */
#include "cli/cli.h"
#include "cli/cli_role.h"
#include "db/db.h"
#include "db/roles.h"

#include <errno.h>
#include <getopt.h>
#include <pwd.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void role_usage(FILE *f)
{
	fprintf(f,
		"usage: station role grant NAME ROLE [--login LOGIN] [--force-login]\n"
		"       station role revoke NAME\n"
		"       station role list\n"
		"       station role recover          (root only)\n"
		"\n"
		"ROLE is operator (runs a lot), qa (replays batches) or engineer (profiles,\n"
		"allowlists, rework, revoke, checkpoints, roles).  NAME is the person as\n"
		"--user names them in the audit log; LOGIN (default: NAME) is the OS account\n"
		"they must be logged in as.  grant and revoke need an engineer.  Until a\n"
		"database has an engineer no role is checked, and only root or the owner of\n"
		"the database file may grant the first one.  The last engineer cannot be\n"
		"revoked or demoted.  LOGIN must exist on this machine unless --force-login\n"
		"(a login that will exist).  recover: root grants the engineer role to its\n"
		"own login (name = login = root's), whatever the roles say, audited.\n");
}

/* The first engineer: root, or whoever owns the database file. */
static int may_bootstrap(const struct cli_ctx *ctx)
{
	struct stat sb;

	if (getuid() == 0)
		return 1;
	return stat(ctx->db_path, &sb) == 0 && sb.st_uid == getuid();
}

static int login_exists(const char *login)
{
	struct passwd pw, *res = NULL;
	char buf[4096];

	return getpwnam_r(login, &pw, buf, sizeof(buf), &res) == 0 && res != NULL;
}

/* root, always: the way back when the engineers' logins are gone or wrong */
static int role_recover(struct cli_ctx *ctx, struct db *db, int argc)
{
	struct errbuf err;
	char detail[160];
	int rc;

	if (argc != 1)
		return cli_usage_error("role", "recover takes no arguments");
	if (getuid() != 0)
		return cli_fail("role recover: only root may recover the roles (this is login %s)",
				ctx->login);
	if (!db_role_valid_name(ctx->login))
		return cli_fail("role recover: root's login '%s' is not a valid name", ctx->login);
	snprintf(detail, sizeof(detail), "{\"name\":\"%s\",\"login\":\"%s\"}", ctx->login,
		 ctx->login);
	if ((rc = db_begin(db, &err)) == ST_OK) {
		rc = db_role_grant(db, ctx->login, ctx->login, DB_ROLE_ENGINEER, ctx->login, &err);
		if (rc == ST_OK)
			rc = db_audit_append(db, "role-recover", ctx->login, detail, NULL, &err);
		rc = rc == ST_OK ? db_commit(db, &err) : (db_rollback(db), rc);
	}
	if (rc)
		return cli_fail("role recover: %s", err.msg);
	printf("%s is engineer (login %s): recovered by root\n", ctx->login, ctx->login);
	return CLI_EXIT_OK;
}

static int role_grant(struct cli_ctx *ctx, struct db *db, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "login",       required_argument, NULL, 'l' },
		{ "force-login", no_argument,       NULL, 'f' },
		{ NULL, 0, NULL, 0 },
	};
	const char *name = NULL, *role_s = NULL, *login = NULL;
	enum db_role role;
	struct errbuf err;
	int c, rc, force = 0;

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
		if (c == 'f') {
			force = 1;
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
	/* a role bound to a login nobody can use locks its holder out */
	if (!force && !login_exists(login))
		return cli_fail("role grant: there is no login %s on this machine (name the OS"
				" account with --login LOGIN, or add --force-login for a login that"
				" will exist)", login);
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
	if (strcmp(sub, "grant") && strcmp(sub, "revoke") && strcmp(sub, "list") &&
	    strcmp(sub, "recover"))
		return cli_usage_error("role", "unknown subcommand '%s'", sub);
	if (!strcmp(sub, "list") && argc != 2)
		return cli_usage_error("role", "list takes no arguments");
	/* before the database is opened: root's way in must not depend on it */
	if (!strcmp(sub, "recover") && getuid() != 0)
		return cli_fail("role recover: only root may recover the roles (this is login %s)",
				ctx->login);
	snprintf(what, sizeof(what), "role %s", sub);
	if (cli_db_open(ctx, what, &db))
		return CLI_EXIT_FAIL;
	if (!strcmp(sub, "grant")) {
		rc = role_grant(ctx, db, argc - 1, argv + 1);
	} else if (!strcmp(sub, "recover")) {
		rc = role_recover(ctx, db, argc - 1);
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
