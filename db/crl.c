/*
 * crl: what a CRL lists and its number, from the audit chain.
 *
 * The revoked serials come from the chain's `cert-revoked` events, not from
 * the certificates table's status: the chain is append-only and verified, so
 * a serial once revoked stays listed whatever is done to the table (an edit
 * of the table is also named by row verification).  Each CRL is an audited
 * row of `crls`: number 1, 2, 3 ... with the count of serials it listed.
 */
#include "db/db_int.h"

#include <jansson.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static const char SQL_REVOKED[] =
	"SELECT json_extract(detail, '$.serial'), json_extract(detail, '$.reason'), ts"
	" FROM events WHERE kind = 'cert-revoked' ORDER BY id";
static const char SQL_CRL_STATE[] =
	"SELECT count(*), coalesce(max(number), 0),"
	" coalesce((SELECT entries FROM crls ORDER BY number DESC LIMIT 1), 0) FROM crls";
static const char SQL_CRL_INSERT[] =
	"INSERT INTO crls (number, this_update_ms, entries, created_by) VALUES (?, ?, ?, ?)";

/* "2026-11-22T01:02:03.456Z" -> UTC ms; -1 when it is not that shape. */
static int64_t iso_ms(const char *s)
{
	struct tm tm;
	int ms = 0, n = 0;

	memset(&tm, 0, sizeof(tm));
	if (!s || sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d.%3dZ%n", &tm.tm_year, &tm.tm_mon,
			 &tm.tm_mday, &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &ms, &n) != 7 ||
	    s[n] != '\0')
		return -1;
	tm.tm_year -= 1900;
	tm.tm_mon -= 1;
	return (int64_t)timegm(&tm) * 1000 + ms;
}

int db_crl_foreach_revoked(struct db *db, int (*fn)(const struct db_revoked *r, void *ctx),
			   void *ctx, struct errbuf *err)
{
	sqlite3_stmt *st;
	int rc;

	db_lock(db);
	if (!(st = db_stmt(db, SQL_REVOKED, err))) {
		db_unlock(db);
		return ST_EDB;
	}
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct db_revoked r;
		const char *serial = (const char *)sqlite3_column_text(st, 0);

		if (!serial || !ids_serial_valid(serial)) {
			rc = errbuf_set(err, ST_ETAMPER, "a cert-revoked event names no valid serial");
			goto out;
		}
		snprintf(r.serial_hex, sizeof(r.serial_hex), "%s", serial);
		snprintf(r.reason, sizeof(r.reason), "%s",
			 sqlite3_column_text(st, 1) ? (const char *)sqlite3_column_text(st, 1) : "");
		r.revoked_ms = iso_ms((const char *)sqlite3_column_text(st, 2));
		if (r.revoked_ms < 0) {
			rc = errbuf_set(err, ST_ETAMPER, "the cert-revoked event of %s has a malformed time",
					r.serial_hex);
			goto out;
		}
		if (fn(&r, ctx)) {
			rc = SQLITE_DONE;
			break;
		}
	}
	rc = rc == SQLITE_DONE ? ST_OK : db_sqlerr(db, rc, err, "read revocations");
out:
	sqlite3_reset(st);
	db_unlock(db);
	return rc;
}

static int crl_next_locked(struct db *db, int64_t entries, const char *actor, int64_t *number,
			   struct errbuf *err)
{
	sqlite3_stmt *st = db_stmt(db, SQL_CRL_STATE, err);
	int64_t count, max, last_entries;
	int rc;

	if (!st)
		return ST_EDB;
	if ((rc = sqlite3_step(st)) != SQLITE_ROW) {
		sqlite3_reset(st);
		return db_sqlerr(db, rc, err, "read CRL state");
	}
	count = sqlite3_column_int64(st, 0);
	max = sqlite3_column_int64(st, 1);
	last_entries = sqlite3_column_int64(st, 2);
	sqlite3_reset(st);
	if (max != count)
		return errbuf_set(err, ST_ETAMPER,
				  "stored CRL numbers are not 1..%lld (highest %lld): the CRL state was altered",
				  (long long)count, (long long)max);
	if (entries < last_entries)
		return errbuf_set(err, ST_ETAMPER,
				  "CRL %lld listed %lld serials but the chain now has %lld: refusing to drop any",
				  (long long)max, (long long)last_entries, (long long)entries);
	if (!(st = db_stmt(db, SQL_CRL_INSERT, err)))
		return ST_EDB;
	sqlite3_bind_int64(st, 1, max + 1);
	sqlite3_bind_int64(st, 2, clock_realtime_ms());
	sqlite3_bind_int64(st, 3, entries);
	sqlite3_bind_text(st, 4, actor, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	sqlite3_reset(st);
	if (rc != SQLITE_DONE)
		return db_sqlerr(db, rc, err, "record CRL");
	if ((rc = db_row_audit_id_locked(db, "crls", max + 1, actor, err)) ||
	    (rc = db_audit_json_locked(db, "crl-issued", actor,
				       json_pack("{s:I, s:I}", "number", (json_int_t)(max + 1),
						 "entries", (json_int_t)entries), err)))
		return rc;
	*number = max + 1;
	return ST_OK;
}

int db_crl_next(struct db *db, int64_t entries, const char *actor, int64_t *number,
		struct errbuf *err)
{
	int owned, rc;

	db_lock(db);
	if (!(rc = db_txn_begin(db, &owned, err))) {
		rc = crl_next_locked(db, entries, actor && *actor ? actor : "station", number, err);
		rc = db_txn_end(db, owned, rc, err);
	}
	db_unlock(db);
	return rc;
}
