/* cli_role: the role check of configuration commands (cli_role.h). */
#include "cli/cli_role.h"

#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

void cli_role_login(char *out, size_t size)
{
	struct passwd pw, *res = NULL;
	char buf[4096];

	if (getpwuid_r(getuid(), &pw, buf, sizeof(buf), &res) == 0 && res && res->pw_name &&
	    db_role_valid_name(res->pw_name))
		snprintf(out, size, "%s", res->pw_name);
	else
		snprintf(out, size, "uid:%u", (unsigned)getuid());
}

int cli_role_enforced(struct db *db)
{
	struct errbuf e;
	int64_t n = 0;

	/* a failing count must not switch the check off: treat it as enforced */
	if (db_role_count(db, DB_ROLE_ENGINEER, &n, &e) != ST_OK)
		return 1;
	return n > 0;
}

/* "engineer", "operator or engineer", ... */
static void mask_names(unsigned mask, char *out, size_t size)
{
	static const enum db_role order[] = { DB_ROLE_OPERATOR, DB_ROLE_QA, DB_ROLE_ENGINEER };
	size_t n = 0, left = 0;

	for (size_t i = 0; i < 3; i++)
		left += (mask & order[i]) != 0;
	out[0] = '\0';
	for (size_t i = 0; i < 3; i++) {
		if (!(mask & order[i]))
			continue;
		left--;
		n += (size_t)snprintf(out + n, n < size ? size - n : 0, "%s%s",
				      db_role_name(order[i]),
				      left > 1 ? ", " : left == 1 ? " or " : "");
		if (n >= size)
			break;
	}
}

int cli_role_require(const struct cli_ctx *ctx, struct db *db, unsigned mask, const char *cmd)
{
	return cli_role_require_name(ctx, db, ctx->actor, mask, cmd);
}

int cli_role_require_name(const struct cli_ctx *ctx, struct db *db, const char *name,
			  unsigned mask, const char *cmd)
{
	struct db_role_row r;
	struct errbuf e;
	char want[64];
	int found = 0;

	if (!cli_role_enforced(db))
		return CLI_EXIT_OK;
	mask_names(mask, want, sizeof(want));
	if (db_role_get(db, name, &r, &found, &e) != ST_OK)
		return cli_fail("%s: roles: %s", cmd, e.msg);
	if (!found)
		return cli_fail("%s: %s has no role on this station (needs %s; an engineer grants"
				" one with `station role grant`)", cmd, name, want);
	if (strcmp(r.login, ctx->login))
		return cli_fail("%s: %s is bound to login %s, but this is login %s", cmd,
				name, r.login, ctx->login);
	if (!(r.role & mask))
		return cli_fail("%s: %s is %s; this needs %s", cmd, name,
				db_role_name(r.role) ? db_role_name(r.role) : "?", want);
	return CLI_EXIT_OK;
}
