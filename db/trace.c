/*
 * trace: one board's whole record.  See trace.h.
 *
 * Each section is one prepared statement whose columns are named as the JSON
 * keys they become (rows_json turns a row into an object by column name), so
 * the SQL is the one description of each section.  Times are formatted by
 * SQLite (strftime %f: milliseconds); stage_ms and detail are JSON text and
 * are parsed into objects.
 */
#include "db/db_int.h"
#include "db/trace.h"
#include "db/schema.h"
#include "core/ids.h"

#include <stdlib.h>
#include <string.h>

#define ISO(c) "strftime('%Y-%m-%dT%H:%M:%fZ', " c " / 1000.0, 'unixepoch')"
/* the index finds candidates, json_extract (in the query, not the schema)
 * keeps only the top-level field: db/schema.h */
#define EV_UID DB_EV_INDEXED " AND " DB_EV_UID " = ?1 AND json_extract(detail, '$.unique_id')"
#define EV_SERIAL DB_EV_INDEXED " AND " DB_EV_SERIAL " = ?1 AND json_extract(detail, '$.serial')"

static const char SQL_BY_UNIT[] = "SELECT unique_id FROM units WHERE id = ?2";
static const char SQL_BY_SERIAL[] =
	"SELECT unique_id FROM certificates WHERE serial = ?1 AND unique_id IS NOT NULL";
static const char SQL_UID_KNOWN[] =
	"SELECT EXISTS (SELECT 1 FROM units WHERE unique_id = ?1)"
	" OR EXISTS (SELECT 1 FROM allowlist WHERE unique_id = ?1)"
	" OR EXISTS (SELECT 1 FROM certificates WHERE unique_id = ?1)";
static const char SQL_ALLOWLIST[] =
	"SELECT l.name AS lot, a.model AS model, a.hw_revision AS hw_revision,"
	" a.import_sha256 AS import_sha256, a.line AS line"
	" FROM allowlist a JOIN lots l ON l.id = a.lot_id WHERE a.unique_id = ?1";
#define ATTEMPT_COLS \
	"SELECT id AS unit_id, " ISO("started_ms") " AS started, " ISO("finished_ms") " AS finished," \
	" station_id, lot, bay, operator, status, stage, reason, reason_code, reason_plain," \
	" duration_ms, stage_ms, model, hw_revision, cert_serial, profile_hash, firmware_hash," \
	" pubkey_hash, superseded_by, rework_id FROM units"
static const char SQL_ATTEMPTS[] = ATTEMPT_COLS " WHERE unique_id = ?1 ORDER BY id";
static const char SQL_ATTEMPT_ONE[] = ATTEMPT_COLS " WHERE id = ?2";
#define CERT_COLS \
	"SELECT serial, status, unit_id, " ISO("issued_ms") " AS issued," \
	" " ISO("injected_ms") " AS injected, " ISO("revoked_ms") " AS revoked, revoke_reason" \
	" FROM certificates"
static const char SQL_CERTS[] =
	CERT_COLS " WHERE unique_id = ?1 ORDER BY reserved_ms, serial";
static const char SQL_CERTS_UNIT[] =
	CERT_COLS " WHERE unit_id = ?2 AND status NOT IN ('reserved', 'void')"
	" ORDER BY reserved_ms, serial";
static const char SQL_REWORKS[] =
	"SELECT id, reason, authorised_by, " ISO("authorised_ms") " AS authorised,"
	" old_unit_id, old_serial, new_unit_id, " ISO("consumed_ms") " AS consumed"
	" FROM reworks WHERE unique_id = ?1 ORDER BY id";
/* the board's events, then those of each of its certificates: each an
 * index search on its expression index (a join on the expression is not
 * matched to the index by SQLite, so the serials are looked up one by one) */
#define EVENT_COLS "SELECT id, station_id, seq, ts, kind, actor, detail FROM events"
static const char SQL_EVENTS_UID[] = EVENT_COLS " WHERE " EV_UID " = ?1";
static const char SQL_EVENTS_SERIAL[] = EVENT_COLS " WHERE " EV_SERIAL " = ?1";

const char *const db_trace_sql[] = {
	SQL_BY_UNIT, SQL_BY_SERIAL, SQL_UID_KNOWN, SQL_ALLOWLIST, SQL_ATTEMPTS, SQL_ATTEMPT_ONE,
	SQL_CERTS, SQL_CERTS_UNIT, SQL_REWORKS, SQL_EVENTS_UID, SQL_EVENTS_SERIAL,
};
const int db_trace_sql_count = sizeof(db_trace_sql) / sizeof(db_trace_sql[0]);

static int bind(sqlite3_stmt *st, const char *uid, int64_t unit)
{
	int n = sqlite3_bind_parameter_count(st);

	if (n >= 1)
		sqlite3_bind_text(st, 1, uid, -1, SQLITE_STATIC);
	if (n >= 2)
		sqlite3_bind_int64(st, 2, unit);
	return n;
}

static json_t *column_json(sqlite3_stmt *st, int i)
{
	const char *name = sqlite3_column_name(st, i);
	const char *text;
	json_t *j;

	switch (sqlite3_column_type(st, i)) {
	case SQLITE_NULL:
		return json_null();
	case SQLITE_INTEGER:
		return json_integer(sqlite3_column_int64(st, i));
	default:
		text = (const char *)sqlite3_column_text(st, i);
		if (!text)
			return json_null();
		/* JSON held as text: an object in the record, or null when empty */
		if (!strcmp(name, "stage_ms") || !strcmp(name, "detail")) {
			j = text[0] ? json_loads(text, 0, NULL) : NULL;
			return j ? j : text[0] ? json_string(text) : json_null();
		}
		return json_string(text);
	}
}

/* Runs sql (bound to uid, unit) and appends each row, as an object keyed by
 * column name, to *arr (a new array when *arr is NULL). */
static int rows_json(struct db *db, const char *sql, const char *uid, int64_t unit,
		     json_t *arr, struct errbuf *err)
{
	sqlite3_stmt *st = db_prepare_once(db, sql, err);
	int rc;

	if (!st)
		return ST_EDB;
	bind(st, uid, unit);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		json_t *row = json_object();

		for (int i = 0; row && i < sqlite3_column_count(st); i++)
			json_object_set_new(row, sqlite3_column_name(st, i), column_json(st, i));
		if (!row || json_array_append_new(arr, row)) {
			sqlite3_finalize(st);
			return errbuf_set(err, ST_ENOMEM, "out of memory");
		}
	}
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? ST_OK : db_sqlerr(db, rc, err, "read the board's record");
}

/* One text column of the first row, or ST_ENOTFOUND. */
static int one_text(struct db *db, const char *sql, const char *uid, int64_t unit,
		    char *out, size_t cap, struct errbuf *err)
{
	sqlite3_stmt *st = db_prepare_once(db, sql, err);
	int rc;

	if (!st)
		return ST_EDB;
	bind(st, uid, unit);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		const unsigned char *s = sqlite3_column_text(st, 0);

		snprintf(out, cap, "%s", s ? (const char *)s : "");
		rc = ST_OK;
	} else {
		rc = rc == SQLITE_DONE ? ST_ENOTFOUND : db_sqlerr(db, rc, err, "look up the board");
	}
	sqlite3_finalize(st);
	return rc;
}

static int all_digits(const char *s)
{
	if (!*s || strlen(s) > 18)
		return 0;
	for (; *s; s++)
		if (*s < '0' || *s > '9')
			return 0;
	return 1;
}

static int lower_hex(const char *s)
{
	if (!*s || strlen(s) > 64)
		return 0;
	for (; *s; s++)
		if (!((*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'f')))
			return 0;
	return 1;
}

/* KEY -> the board's unique id ("" for a unit of no valid id, then *unit). */
static int resolve(struct db *db, const char *key, char uid[65], int64_t *unit,
		   const char **how, struct errbuf *err)
{
	char known[8];
	int rc;

	*unit = 0;
	if (ids_uid_valid(key)) {
		*how = "unique_id";
		snprintf(uid, 65, "%s", key);
		if ((rc = one_text(db, SQL_UID_KNOWN, key, 0, known, sizeof(known), err)))
			return rc;
		return strcmp(known, "1") ? ST_ENOTFOUND : ST_OK;
	}
	/* a unit id; digits alone could also be a serial: tried next */
	if (all_digits(key)) {
		int64_t id = strtoll(key, NULL, 10);

		*how = "unit_id";
		rc = one_text(db, SQL_BY_UNIT, "", id, uid, 65, err);
		if (rc != ST_ENOTFOUND) {
			*unit = rc == ST_OK ? id : 0;
			return rc;
		}
	}
	/* serials are stored lower-case; one typed from a label may not be */
	{
		char low[65];
		size_t i;

		for (i = 0; key[i] && i < sizeof(low) - 1; i++)
			low[i] = (char)(key[i] >= 'A' && key[i] <= 'F' ? key[i] - 'A' + 'a' : key[i]);
		low[i] = '\0';
		if (!key[i] && lower_hex(low)) {
			*how = "cert_serial";
			return one_text(db, SQL_BY_SERIAL, low, 0, uid, 65, err);
		}
	}
	return ST_ENOTFOUND;
}

static int by_id(const void *a, const void *b)
{
	json_int_t x = json_integer_value(json_object_get(*(json_t *const *)a, "id"));
	json_int_t y = json_integer_value(json_object_get(*(json_t *const *)b, "id"));

	return x < y ? -1 : x > y;
}

/* The events naming uid or one of its certificates, each once, by id. */
static int board_events(struct db *db, const char *uid, json_t *certs, json_t *events,
			struct errbuf *err)
{
	json_t *all = json_array(), *v, **list;
	json_int_t last = 0;
	size_t i, n;
	int rc;

	if (!all)
		return errbuf_set(err, ST_ENOMEM, "out of memory");
	rc = rows_json(db, SQL_EVENTS_UID, uid, 0, all, err);
	json_array_foreach(certs, i, v) {
		if (rc)
			break;
		rc = rows_json(db, SQL_EVENTS_SERIAL, json_string_value(json_object_get(v, "serial")),
			       0, all, err);
	}
	n = json_array_size(all);
	list = rc || !n ? NULL : malloc(n * sizeof(*list));
	if (!rc && n && !list)
		rc = errbuf_set(err, ST_ENOMEM, "out of memory");
	if (list) {
		for (i = 0; i < n; i++)
			list[i] = json_array_get(all, i);
		qsort(list, n, sizeof(*list), by_id);
		for (i = 0; i < n; i++) {
			json_int_t id = json_integer_value(json_object_get(list[i], "id"));

			if (id != last)
				json_array_append(events, list[i]);
			last = id;
		}
		free(list);
	}
	json_decref(all);
	return rc;
}

static int trace_locked(struct db *db, const char *key, json_t *j, struct errbuf *err)
{
	json_t *attempts = json_array(), *certs = json_array(), *reworks = json_array();
	json_t *events = json_array(), *allow = json_array();
	const char *how = "";
	char uid[65] = "";
	int64_t unit = 0;
	int rc;

	if (!attempts || !certs || !reworks || !events || !allow) {
		rc = errbuf_set(err, ST_ENOMEM, "out of memory");
		goto out;
	}
	if ((rc = resolve(db, key, uid, &unit, &how, err))) {
		if (rc == ST_ENOTFOUND)
			errbuf_set(err, ST_ENOTFOUND, "no board, unit or certificate %s in %s",
				   key, db->path);
		goto out;
	}
	if (uid[0]) {
		unit = 0;
		if ((rc = rows_json(db, SQL_ALLOWLIST, uid, 0, allow, err)) ||
		    (rc = rows_json(db, SQL_ATTEMPTS, uid, 0, attempts, err)) ||
		    (rc = rows_json(db, SQL_CERTS, uid, 0, certs, err)) ||
		    (rc = rows_json(db, SQL_REWORKS, uid, 0, reworks, err)) ||
		    (rc = board_events(db, uid, certs, events, err)))
			goto out;
	} else if ((rc = rows_json(db, SQL_ATTEMPT_ONE, "", unit, attempts, err)) ||
		   (rc = rows_json(db, SQL_CERTS_UNIT, "", unit, certs, err))) {
		goto out;
	}
	json_object_set_new(j, "query", json_string(key));
	json_object_set_new(j, "matched_by", json_string(how));
	json_object_set_new(j, "unique_id", json_string(uid));
	json_object_set(j, "allowlist", json_array_size(allow) ? json_array_get(allow, 0) :
			json_null());
	json_object_set(j, "attempts", attempts);
	json_object_set(j, "certificates", certs);
	json_object_set(j, "reworks", reworks);
	json_object_set(j, "events", events);
out:
	json_decref(attempts);
	json_decref(certs);
	json_decref(reworks);
	json_decref(events);
	json_decref(allow);
	return rc;
}

int db_trace_board(struct db *db, const char *key, json_t **out, struct errbuf *err)
{
	json_t *j;
	int rc;

	*out = NULL;
	if (!key || !*key || strlen(key) > 64)
		return errbuf_set(err, ST_ENOTFOUND, "no board, unit or certificate '%s'",
				  key ? key : "");
	if (!(j = json_object()))
		return errbuf_set(err, ST_ENOMEM, "out of memory");
	db_lock(db);
	if (db->in_txn) {
		db_unlock(db);
		json_decref(j);
		return errbuf_set(err, ST_ESTATE, "unit show: not inside a transaction");
	}
	/* one snapshot: a deferred read transaction, rolled back (nothing to keep) */
	rc = sqlite3_exec(db->sq, "BEGIN", NULL, NULL, NULL);
	if (rc != SQLITE_OK) {
		rc = db_sqlerr(db, rc, err, "begin unit show");
	} else {
		rc = trace_locked(db, key, j, err);
		sqlite3_exec(db->sq, "ROLLBACK", NULL, NULL, NULL);
	}
	db_unlock(db);
	if (rc) {
		json_decref(j);
		return rc;
	}
	*out = j;
	return ST_OK;
}
