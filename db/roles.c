/*
 * roles: the roles table (roles.h).  Every call runs once per command, so its
 * statements are prepared per call and keep out of the handle's statement
 * cache, which the line's hot paths use.
 */
#include "db/db_int.h"
#include "db/roles.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

static const char SQL_GET[] =
	"SELECT name, login, role, granted_by, granted_ms FROM roles WHERE name = ?";
static const char SQL_COUNT[] = "SELECT count(*) FROM roles WHERE role = ?";
static const char SQL_ALL[] =
	"SELECT name, login, role, granted_by, granted_ms FROM roles ORDER BY name";
static const char SQL_UPSERT[] =
	"INSERT INTO roles (name, login, role, granted_by, granted_ms) VALUES (?1, ?2, ?3, ?4, ?5)"
	" ON CONFLICT (name) DO UPDATE SET login = ?2, role = ?3, granted_by = ?4, granted_ms = ?5";
static const char SQL_DELETE[] = "DELETE FROM roles WHERE name = ?";

static const char *const role_names[] = { "operator", "qa", "engineer" };
static const enum db_role role_values[] = { DB_ROLE_OPERATOR, DB_ROLE_QA, DB_ROLE_ENGINEER };
#define NROLES (sizeof(role_values) / sizeof(role_values[0]))

const char *db_role_name(enum db_role r)
{
	for (size_t i = 0; i < NROLES; i++)
		if (role_values[i] == r)
			return role_names[i];
	return NULL;
}

enum db_role db_role_from_name(const char *s)
{
	for (size_t i = 0; s && i < NROLES; i++)
		if (!strcmp(s, role_names[i]))
			return role_values[i];
	return DB_ROLE_NONE;
}

int db_role_valid_name(const char *s)
{
	size_t n = s ? strlen(s) : 0;

	if (n < 1 || n > DB_ROLE_NAME_MAX)
		return 0;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '.' || c == '_' || c == '@' || c == '-'))
			return 0;
	}
	return 1;
}

static void row_from(sqlite3_stmt *st, struct db_role_row *r)
{
	const unsigned char *s;

	memset(r, 0, sizeof(*r));
	s = sqlite3_column_text(st, 0);
	snprintf(r->name, sizeof(r->name), "%s", s ? (const char *)s : "");
	s = sqlite3_column_text(st, 1);
	snprintf(r->login, sizeof(r->login), "%s", s ? (const char *)s : "");
	r->role = db_role_from_name((const char *)sqlite3_column_text(st, 2));
	s = sqlite3_column_text(st, 3);
	snprintf(r->granted_by, sizeof(r->granted_by), "%s", s ? (const char *)s : "");
	r->granted_ms = sqlite3_column_int64(st, 4);
}

static int get_locked(struct db *db, const char *name, struct db_role_row *out, int *found,
		      struct errbuf *err)
{
	sqlite3_stmt *st = db_prepare_once(db, SQL_GET, err);
	int rc;

	*found = 0;
	if (!st)
		return ST_EDB;
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		row_from(st, out);
		*found = 1;
		rc = ST_OK;
	} else if (rc == SQLITE_DONE) {
		rc = ST_OK;
	} else {
		rc = db_sqlerr(db, rc, err, "look up role");
	}
	sqlite3_finalize(st);
	return rc;
}

static int count_locked(struct db *db, enum db_role role, int64_t *n, struct errbuf *err)
{
	sqlite3_stmt *st = db_prepare_once(db, SQL_COUNT, err);
	int rc;

	*n = 0;
	if (!st)
		return ST_EDB;
	sqlite3_bind_text(st, 1, db_role_name(role), -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		*n = sqlite3_column_int64(st, 0);
		rc = ST_OK;
	} else {
		rc = db_sqlerr(db, rc, err, "count roles");
	}
	sqlite3_finalize(st);
	return rc;
}

/* ST_ESTATE if name is the last engineer. */
static int not_last_engineer(struct db *db, const char *name, const char *what,
			     struct errbuf *err)
{
	struct db_role_row r;
	int64_t n = 0;
	int found = 0, rc;

	if ((rc = get_locked(db, name, &r, &found, err)))
		return rc;
	if (!found || r.role != DB_ROLE_ENGINEER)
		return ST_OK;
	if ((rc = count_locked(db, DB_ROLE_ENGINEER, &n, err)))
		return rc;
	if (n <= 1)
		return errbuf_set(err, ST_ESTATE,
				  "%s is the last engineer: grant another engineer before you %s it",
				  name, what);
	return ST_OK;
}

static int grant_locked(struct db *db, const char *name, const char *login, enum db_role role,
			const char *actor, struct errbuf *err)
{
	sqlite3_stmt *st;
	int rc;

	if (role != DB_ROLE_ENGINEER && (rc = not_last_engineer(db, name, "demote", err)))
		return rc;
	if (!(st = db_prepare_once(db, SQL_UPSERT, err)))
		return ST_EDB;
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, login, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, db_role_name(role), -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 4, actor, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 5, clock_realtime_ms());
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return db_sqlerr(db, rc, err, "grant role");
	if ((rc = db_row_audit_locked(db, "roles", name, actor, err)))
		return rc;
	return db_audit_json_locked(db, "role-grant", actor,
		     json_pack("{s:s, s:s, s:s}", "name", name, "login", login,
			       "role", db_role_name(role)), err);
}

int db_role_grant(struct db *db, const char *name, const char *login, enum db_role role,
		  const char *actor, struct errbuf *err)
{
	int owned, rc;

	if (!db_role_valid_name(name) || !db_role_valid_name(login))
		return errbuf_set(err, ST_EINVAL, "a name and a login are 1..%d characters of"
				  " letters, digits and . _ @ -", DB_ROLE_NAME_MAX);
	if (!db_role_name(role))
		return errbuf_set(err, ST_EINVAL, "no role %d (operator, qa, engineer)", (int)role);
	if (!actor || !*actor)
		return errbuf_set(err, ST_EINVAL, "a role grant needs the granter's name");
	db_lock(db);
	if (!(rc = db_txn_begin(db, &owned, err))) {
		rc = grant_locked(db, name, login, role, actor, err);
		rc = db_txn_end(db, owned, rc, err);
	}
	db_unlock(db);
	return rc;
}

static int revoke_locked(struct db *db, const char *name, const char *actor, struct errbuf *err)
{
	struct db_role_row r;
	sqlite3_stmt *st;
	int found = 0, rc;

	if ((rc = get_locked(db, name, &r, &found, err)))
		return rc;
	if (!found)
		return errbuf_set(err, ST_ENOTFOUND, "%s has no role", name);
	if ((rc = not_last_engineer(db, name, "revoke", err)))
		return rc;
	if (!(st = db_prepare_once(db, SQL_DELETE, err)))
		return ST_EDB;
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return db_sqlerr(db, rc, err, "revoke role");
	if ((rc = db_row_audit_locked(db, "roles", name, actor, err)))
		return rc;
	return db_audit_json_locked(db, "role-revoke", actor,
		     json_pack("{s:s, s:s, s:s}", "name", name, "login", r.login,
			       "role", db_role_name(r.role) ? db_role_name(r.role) : "?"), err);
}

int db_role_revoke(struct db *db, const char *name, const char *actor, struct errbuf *err)
{
	int owned, rc;

	if (!db_role_valid_name(name))
		return errbuf_set(err, ST_EINVAL, "'%s' is not a name", name ? name : "");
	if (!actor || !*actor)
		return errbuf_set(err, ST_EINVAL, "a role revocation needs the revoker's name");
	db_lock(db);
	if (!(rc = db_txn_begin(db, &owned, err))) {
		rc = revoke_locked(db, name, actor, err);
		rc = db_txn_end(db, owned, rc, err);
	}
	db_unlock(db);
	return rc;
}

int db_role_get(struct db *db, const char *name, struct db_role_row *out, int *found,
		struct errbuf *err)
{
	int rc;

	db_lock(db);
	rc = get_locked(db, name, out, found, err);
	db_unlock(db);
	return rc;
}

int db_role_count(struct db *db, enum db_role role, int64_t *n, struct errbuf *err)
{
	int rc;

	if (!db_role_name(role))
		return errbuf_set(err, ST_EINVAL, "no role %d", (int)role);
	db_lock(db);
	rc = count_locked(db, role, n, err);
	db_unlock(db);
	return rc;
}

/* Collects first, then calls fn without the lock (fn may call db_*). */
int db_role_foreach(struct db *db, int (*fn)(const struct db_role_row *r, void *ctx),
		    void *ctx, struct errbuf *err)
{
	struct db_role_row *list = NULL, *grown;
	size_t n = 0, cap = 0;
	sqlite3_stmt *st;
	int rc;

	db_lock(db);
	if (!(st = db_prepare_once(db, SQL_ALL, err))) {
		db_unlock(db);
		return ST_EDB;
	}
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (n == cap) {
			cap = cap ? cap * 2 : 8;
			if (!(grown = realloc(list, cap * sizeof(*list)))) {
				rc = SQLITE_NOMEM;
				break;
			}
			list = grown;
		}
		row_from(st, &list[n++]);
	}
	sqlite3_finalize(st);
	if (rc == SQLITE_NOMEM)
		rc = errbuf_set(err, ST_ENOMEM, "out of memory");
	else if (rc != SQLITE_DONE)
		rc = db_sqlerr(db, rc, err, "list roles");
	else
		rc = ST_OK;
	db_unlock(db);
	for (size_t i = 0; rc == ST_OK && i < n; i++)
		if (fn(&list[i], ctx))
			break;
	free(list);
	return rc;
}
