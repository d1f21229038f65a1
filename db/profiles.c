/*
 * profiles: versioned provisioning profiles.  The db stores the canonical text
 * and its SHA-256; parsing lives in station/config, the stored profile parsed
 * in station/app/profile_db.c.  Storing identical
 * content again returns the existing version; a change gets version + 1 and an
 * audit event naming who stored it.
 */
#include "db/db_int.h"

#include <jansson.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>

#define PROFILE_MAX (1024 * 1024)

static const char SQL_LATEST[] =
	"SELECT version, sha256, content FROM profiles WHERE name = ?"
	" ORDER BY version DESC LIMIT 1";
static const char SQL_LIST[] =
	"SELECT p.name, p.version, p.sha256, p.created_ms, p.created_by FROM profiles p"
	" WHERE p.version = (SELECT MAX(version) FROM profiles q WHERE q.name = p.name)"
	" ORDER BY p.name";
static const char SQL_EVENT[] =
	"SELECT json_extract(detail, '$.sha256') FROM events WHERE kind = 'profile-store'"
	" AND json_extract(detail, '$.name') = ? AND json_extract(detail, '$.version') = ?"
	" ORDER BY id DESC LIMIT 1";
static const char SQL_INSERT[] =
	"INSERT INTO profiles (name, version, sha256, content, created_ms, created_by)"
	" VALUES (?, ?, ?, ?, ?, ?)";

static int valid_profile_name(const char *s)
{
	size_t n = s ? strlen(s) : 0;

	if (n < 1 || n > 64)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (s[i] <= 0x20 || s[i] >= 0x7f)
			return 0;
	return 1;
}

int db_profile_store(struct db *db, const char *name, const char *content,
		     size_t len, const char *actor, int *version_out,
		     char hash_hex[65], struct errbuf *err)
{
	uint8_t sha[32];
	char hex[65], *detail = NULL;
	unsigned int sl = 0;
	sqlite3_stmt *st;
	int version = 0, owned = 0, rc;
	json_t *j;

	if (!valid_profile_name(name))
		return errbuf_set(err, ST_EINVAL, "profile name must be 1..64 printable characters without spaces");
	if (!content || len == 0 || len > PROFILE_MAX)
		return errbuf_set(err, ST_EINVAL, "profile %s: content must be 1..%d bytes", name, PROFILE_MAX);
	EVP_Digest(content, len, sha, &sl, EVP_sha256(), NULL);
	hex_encode(sha, 32, hex);

	db_lock(db);
	if ((rc = db_txn_begin(db, &owned, err)))
		goto out;
	if (!(st = db_stmt(db, SQL_LATEST, err))) {
		rc = ST_EDB;
		goto end;
	}
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		version = sqlite3_column_int(st, 0);
		if (!strcmp((const char *)sqlite3_column_text(st, 1), hex)) {
			sqlite3_reset(st);
			rc = ST_OK;       /* unchanged: same version, nothing to record */
			goto end;
		}
	} else if (rc != SQLITE_DONE) {
		rc = db_sqlerr(db, rc, err, "read profile");
		sqlite3_reset(st);
		goto end;
	}
	sqlite3_reset(st);
	version++;
	if (!(st = db_stmt(db, SQL_INSERT, err))) {
		rc = ST_EDB;
		goto end;
	}
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 2, version);
	sqlite3_bind_text(st, 3, hex, 64, SQLITE_STATIC);
	sqlite3_bind_blob(st, 4, content, (int)len, SQLITE_STATIC);
	sqlite3_bind_int64(st, 5, clock_realtime_ms());
	sqlite3_bind_text(st, 6, actor ? actor : "", -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	sqlite3_reset(st);
	if (rc != SQLITE_DONE) {
		rc = db_sqlerr(db, rc, err, "store profile");
		goto end;
	}
	if ((rc = db_row_audit_id_locked(db, "profiles", sqlite3_last_insert_rowid(db->sq),
					 actor, err)))
		goto end;
	j = json_pack("{s:s, s:i, s:s}", "name", name, "version", version, "sha256", hex);
	detail = j ? json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
	json_decref(j);
	rc = detail ? db_audit_append_locked(db, "profile-store", actor, detail, NULL, err)
		    : errbuf_set(err, ST_ENOMEM, "out of memory");
end:
	rc = db_txn_end(db, owned, rc, err);
out:
	db_unlock(db);
	free(detail);
	if (rc == ST_OK) {
		if (version_out)
			*version_out = version;
		if (hash_hex)
			memcpy(hash_hex, hex, 65);
	}
	return rc;
}

/*
 * The profile a line runs on is the one an engineer stored: the content's
 * SHA-256, recomputed, must be the row's and the one its profile-store event
 * put in the chain (issue 12).  The chain itself is verified by the caller
 * (run verifies first); this ties the row to its event, so a row rewritten
 * with its own matching sha256 column is still refused.
 */
static int matches_event(struct db *db, const char *name, int version, const char *column,
			 const uint8_t *content, size_t len, struct errbuf *err)
{
	uint8_t sha[32];
	unsigned int sl = 0;
	char hex[65], ev[65] = "";
	sqlite3_stmt *st;
	int rc;

	EVP_Digest(content, len, sha, &sl, EVP_sha256(), NULL);
	hex_encode(sha, 32, hex);
	if (!(st = db_stmt(db, SQL_EVENT, err)))
		return ST_EDB;
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 2, version);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW && sqlite3_column_text(st, 0))
		snprintf(ev, sizeof(ev), "%s", (const char *)sqlite3_column_text(st, 0));
	sqlite3_reset(st);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return db_sqlerr(db, rc, err, "read the profile-store event");
	if (!ev[0])
		return errbuf_set(err, ST_ETAMPER, "profile %s v%d has no profile-store event in the"
				  " audit chain: refused", name, version);
	if (strcmp(hex, column) || strcmp(hex, ev))
		return errbuf_set(err, ST_ETAMPER, "profile %s v%d: its content (sha256 %.16s...) is"
				  " not what its profile-store event recorded (%.16s...): refused",
				  name, version, hex, ev);
	return ST_OK;
}

int db_profile_load(struct db *db, const char *name, char **content, size_t *len,
		    int *version, char hash_hex[65], struct errbuf *err)
{
	sqlite3_stmt *st;
	int rc, n;

	*content = NULL;
	db_lock(db);
	if (!(st = db_stmt(db, SQL_LATEST, err))) {
		db_unlock(db);
		return ST_EDB;
	}
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		const void *blob = sqlite3_column_blob(st, 2);

		n = sqlite3_column_bytes(st, 2);
		*content = malloc((size_t)n + 1);
		if (!*content) {
			rc = errbuf_set(err, ST_ENOMEM, "out of memory");
		} else {
			if (n)
				memcpy(*content, blob, (size_t)n);
			(*content)[n] = '\0';
			if (len)
				*len = (size_t)n;
			if (version)
				*version = sqlite3_column_int(st, 0);
			if (hash_hex)
				snprintf(hash_hex, 65, "%s", (const char *)sqlite3_column_text(st, 1));
			rc = ST_OK;
		}
		if (rc == ST_OK) {
			char column[65], who[80];
			int v = sqlite3_column_int(st, 0);

			snprintf(column, sizeof(column), "%s", (const char *)sqlite3_column_text(st, 1));
			snprintf(who, sizeof(who), "%s", name);
			sqlite3_reset(st);
			rc = matches_event(db, who, v, column, (const uint8_t *)*content, (size_t)n,
					   err);
			if (rc) {
				free(*content);
				*content = NULL;
			}
		}
	} else if (rc == SQLITE_DONE) {
		rc = errbuf_set(err, ST_ENOTFOUND, "no profile named %s", name);
	} else {
		rc = db_sqlerr(db, rc, err, "load profile");
	}
	sqlite3_reset(st);
	db_unlock(db);
	return rc;
}

int db_profile_foreach(struct db *db,
		       int (*fn)(const struct db_profile_row *r, void *ctx), void *ctx,
		       struct errbuf *err)
{
	struct db_profile_row r;
	sqlite3_stmt *st;
	int rc;

	db_lock(db);
	if (!(st = db_prepare_once(db, SQL_LIST, err))) {
		db_unlock(db);
		return ST_EDB;
	}
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		r.name = (const char *)sqlite3_column_text(st, 0);
		r.version = sqlite3_column_int(st, 1);
		r.sha256 = (const char *)sqlite3_column_text(st, 2);
		r.created_ms = sqlite3_column_int64(st, 3);
		r.created_by = (const char *)sqlite3_column_text(st, 4);
		if (fn(&r, ctx)) {
			rc = SQLITE_DONE;
			break;
		}
	}
	rc = rc == SQLITE_DONE ? ST_OK : db_sqlerr(db, rc, err, "list profiles");
	sqlite3_finalize(st);
	db_unlock(db);
	return rc;
}
