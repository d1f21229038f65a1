/*
 * roles: who may change the station's configuration (docs/engineer.md "Roles").
 *
 * A row binds a person's name (what --user gives, and what the audit log
 * records as the actor) to the OS login that person must be using, with one
 * role.  The check itself (station/cli/cli_role.c) compares the calling process's
 * login (getpwuid(getuid())) with the row: a name is not an identity unless
 * the OS agrees.  The table only stores and audits; every change appends a
 * "role-grant" or "role-revoke" event naming who made it, in the same
 * transaction.  The last engineer cannot be revoked or demoted, so once a
 * station has an engineer it always has one.
 */
#ifndef STATION_DB_ROLES_H
#define STATION_DB_ROLES_H

#include <stdint.h>

#include "db/db.h"

enum db_role {
	DB_ROLE_NONE     = 0,
	DB_ROLE_OPERATOR = 1,     /* runs a lot */
	DB_ROLE_QA       = 2,     /* replays batches */
	DB_ROLE_ENGINEER = 4,     /* configuration: profiles, allowlists, rework, revoke ... */
};

#define DB_ROLE_NAME_MAX 63       /* bytes of a name or a login */

/* "operator", "qa", "engineer"; NULL for anything else. */
const char *db_role_name(enum db_role r);
/* DB_ROLE_NONE when s names no role. */
enum db_role db_role_from_name(const char *s);
/* 1 if s is 1..DB_ROLE_NAME_MAX bytes of [A-Za-z0-9._@-] (a name or a login). */
int db_role_valid_name(const char *s);

struct db_role_row {
	char    name[DB_ROLE_NAME_MAX + 1];
	char    login[DB_ROLE_NAME_MAX + 1];
	enum db_role role;
	char    granted_by[64];
	int64_t granted_ms;
};

/* Gives name the role, bound to login (a new row, or the existing one
 * changed).  ST_ESTATE when that would demote the last engineer. */
ST_MUST_CHECK int db_role_grant(struct db *db, const char *name, const char *login,
				enum db_role role,
				const char *actor, struct errbuf *err);
/* Removes name's role.  ST_ENOTFOUND when it has none; ST_ESTATE for the last
 * engineer. */
ST_MUST_CHECK int db_role_revoke(struct db *db, const char *name, const char *actor,
				 struct errbuf *err);
/* name's row: *found = 1 and *out filled, or *found = 0. */
ST_MUST_CHECK int db_role_get(struct db *db, const char *name, struct db_role_row *out, int *found,
			      struct errbuf *err);
/* How many names hold role. */
ST_MUST_CHECK int db_role_count(struct db *db, enum db_role role, int64_t *n, struct errbuf *err);
/* Calls fn for each row, by name; fn returns non-zero to stop. */
ST_MUST_CHECK int db_role_foreach(struct db *db, int (*fn)(const struct db_role_row *r, void *ctx),
				  void *ctx, struct errbuf *err);

#endif
