/*
 * cli_role: who is calling, and may they (docs/engineer.md "Roles").
 *
 * The caller's identity is the OS login of the process (getpwuid(getuid())),
 * never free text.  --user NAME picks which person of that login acts (a
 * shared bench account may serve several operators); the roles table
 * (db/roles.h) must bind NAME to that login, and NAME's role must be one the
 * command accepts.
 *
 * Enforcement starts with the first engineer: a database with no engineer
 * (a fresh station) checks nothing, and only root or the owner of the
 * database file may grant that first engineer (`station role grant`).
 */
#ifndef STATION_CLI_ROLE_H
#define STATION_CLI_ROLE_H

#include <stddef.h>

#include "cli/cli.h"
#include "db/db.h"
#include "db/roles.h"

/* The OS login of this process, or "uid:N" when it has no passwd entry. */
void cli_role_login(char *out, size_t size);

/* CLI_EXIT_OK when ctx's user may run cmd, which accepts the roles in mask
 * (DB_ROLE_* or'd); otherwise prints one line ("station: CMD: NAME ...") and
 * returns CLI_EXIT_FAIL. */
int cli_role_require(const struct cli_ctx *ctx, struct db *db, unsigned mask, const char *cmd);

/* The same for another person than --user (run --operator NAME): NAME must
 * be bound to this login and hold a role in mask. */
int cli_role_require_name(const struct cli_ctx *ctx, struct db *db, const char *name,
			  unsigned mask, const char *cmd);

/* 1 when the database has at least one engineer (roles are enforced). */
int cli_role_enforced(struct db *db);

#endif
