/*
 * ledger_rows: the stations' rows in the ledger (schema 4).  A push writes
 * them in its transaction, all in two statements (one upsert, one delete)
 * whatever their number: the batch travels as one JSON parameter that
 * jsonb_to_recordset unpacks, so no value is ever spliced into SQL.  The
 * readers stream in libpq's single-row mode: one row in memory at a time.
 */
#include "ledger/ledger_int.h"

#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char SQL_UPSERT[] =
	"INSERT INTO rows (station_id, tbl, key, seq, content, lot, unique_id)"
	" SELECT $1, r.t, r.k, r.seq, r.c, nullif(r.lot, ''), nullif(r.uid, '')"
	" FROM jsonb_to_recordset($2::jsonb)"
	"  AS r(t text, k text, seq bigint, c text, lot text, uid text, del boolean)"
	" WHERE NOT r.del"
	" ON CONFLICT (station_id, tbl, key) DO UPDATE SET seq = EXCLUDED.seq,"
	"  content = EXCLUDED.content, lot = EXCLUDED.lot, unique_id = EXCLUDED.unique_id"
	" WHERE rows.seq < EXCLUDED.seq";
static const char SQL_DELETE[] =
	"DELETE FROM rows d USING jsonb_to_recordset($2::jsonb)"
	"  AS r(t text, k text, seq bigint, del boolean)"
	" WHERE r.del AND d.station_id = $1 AND d.tbl = r.t AND d.key = r.k AND d.seq < r.seq";

/* The latest row event of each (table, key) after rows_from, beside the row. */
static const char SQL_CHECK[] =
	"WITH ev AS (SELECT DISTINCT ON (d->>'t', d->>'k') d->>'t' AS t, d->>'k' AS k, seq,"
	"  d->>'h' AS h FROM (SELECT seq, detail::jsonb AS d FROM events"
	"   WHERE station_id = $1 AND kind = 'row' AND seq > $2::bigint) x"
	"  ORDER BY d->>'t', d->>'k', seq DESC),"
	" r AS (SELECT tbl, key, seq, content, lot FROM rows WHERE station_id = $1)"
	" SELECT coalesce(ev.t, r.tbl), coalesce(ev.k, r.key), coalesce(ev.seq, 0),"
	"  coalesce(ev.h, ''), coalesce(r.seq, 0), r.content, coalesce(r.lot, '')"
	" FROM ev FULL JOIN r ON r.tbl = ev.t AND r.key = ev.k ORDER BY 1, 2";
static const char SQL_ROWS_FROM[] = "SELECT rows_from FROM stations WHERE station_id = $1";
/* The order a reader loads them in: a lot before its allowlist, units before
 * their certificates, and units in the factory's order (started_ms, station,
 * the station's unit id). */
static const char SQL_LOT[] =
	"SELECT station_id, tbl, key, seq, content FROM rows"
	" WHERE (lot = $1 AND tbl IN ('units', 'certificates', 'lots', 'allowlist'))"
	"  OR tbl = 'profiles'"
	" ORDER BY CASE tbl WHEN 'lots' THEN 1 WHEN 'allowlist' THEN 2 WHEN 'profiles' THEN 3"
	"  WHEN 'units' THEN 4 ELSE 5 END,"
	" CASE WHEN tbl = 'units' THEN (jsonb_path_query_first(content::jsonb,"
	"  'strict $[*] ? (@[0] == \"started_ms\")') ->> 2)::bigint END,"
	" station_id, CASE WHEN tbl = 'units' THEN key::bigint END, key";

static json_t *rows_json(const struct ledger_row *rows, size_t n)
{
	json_t *a = json_array();

	for (size_t i = 0; a && i < n; i++) {
		const struct ledger_row *r = &rows[i];
		json_t *o = json_pack("{s:s, s:s, s:I, s:s, s:s, s:s, s:b}", "t", r->table,
				      "k", r->key, "seq", (json_int_t)r->seq,
				      "c", r->content ? r->content : "", "lot", r->lot ? r->lot : "",
				      "uid", r->unique_id ? r->unique_id : "", "del", r->deleted);

		if (!o || json_array_append_new(a, o)) {
			json_decref(a);
			return NULL;
		}
	}
	return a;
}

int ledger_rows_put(struct ledger *l, const struct ledger_row *rows, size_t n,
		    struct errbuf *err)
{
	json_t *a = rows_json(rows, n);
	char *js = a ? json_dumps(a, JSON_COMPACT) : NULL;
	const char *p[2] = { l->cfg.station_id, js };
	int rc;

	json_decref(a);
	if (!js)
		return errbuf_set(err, ST_ENOMEM, "ledger: the rows cannot be encoded");
	rc = ledger_run(l, "push rows", SQL_UPSERT, 2, p, err);
	if (rc == ST_OK)
		rc = ledger_run(l, "push deleted rows", SQL_DELETE, 2, p, err);
	free(js);
	return rc;
}

/* Runs sql in single-row mode, calling fn per row; fn's non-zero return
 * stops it (the rest is read and dropped: the connection stays usable). */
static int stream_rows(struct ledger *l, const char *what, const char *sql, int n,
		  const char *const *params, int (*fn)(PGresult *r, void *ctx), void *ctx,
		  struct errbuf *err)
{
	PGresult *r;
	char msg[400] = "";
	int rc, stop = 0;

	if ((rc = ledger_connect(l, err)))
		return rc;
	if (!PQsendQueryParams(l->pg, sql, n, NULL, params, NULL, NULL, 0) ||
	    !PQsetSingleRowMode(l->pg)) {
		snprintf(msg, sizeof(msg), "%s", PQerrorMessage(l->pg));
		while ((r = PQgetResult(l->pg)))
			PQclear(r);
		l->down = 1;
		return errbuf_setr(err, ST_EIO, ST_ORIGIN_DB, ST_R_LEDGER_UNREACHABLE,
				   "ledger unreachable (%s): %s", what, msg);
	}
	while ((r = PQgetResult(l->pg))) {
		ExecStatusType s = PQresultStatus(r);

		if (s == PGRES_SINGLE_TUPLE && !stop && !msg[0])
			stop = fn(r, ctx);
		else if (s != PGRES_SINGLE_TUPLE && s != PGRES_TUPLES_OK && !msg[0])
			snprintf(msg, sizeof(msg), "%s", PQresultErrorMessage(r));
		PQclear(r);
	}
	if (msg[0]) {
		for (char *c = msg; *c; c++)
			if (*c == '\n')
				*c = ' ';
		if (PQstatus(l->pg) != CONNECTION_OK) {
			l->down = 1;
			return errbuf_setr(err, ST_EIO, ST_ORIGIN_DB, ST_R_LEDGER_UNREACHABLE,
					   "ledger unreachable (%s): %s", what, msg);
		}
		return errbuf_setr(err, ST_EDB, ST_ORIGIN_DB, ST_R_DB, "ledger: %s: %s", what, msg);
	}
	return stop;
}

/* A read of every station's rows may take longer than a claim: its own
 * deadline (LEDGER_READ_MS), in a read-only transaction that ends it. */
static int stream(struct ledger *l, const char *what, const char *sql, int n,
		  const char *const *params, int (*fn)(PGresult *r, void *ctx), void *ctx,
		  struct errbuf *err)
{
	char set[64];
	int rc;

	snprintf(set, sizeof(set), "SET LOCAL statement_timeout = %d", LEDGER_READ_MS);
	if ((rc = ledger_run(l, "begin", "BEGIN READ ONLY", 0, NULL, err)))
		return rc;
	if ((rc = ledger_run(l, "set the read's deadline", set, 0, NULL, err)) ||
	    (rc = stream_rows(l, what, sql, n, params, fn, ctx, err)) ||
	    (rc = ledger_run(l, "commit", "COMMIT", 0, NULL, err))) {
		ledger_rollback(l);
		return rc;
	}
	return ST_OK;
}

struct check_walk {
	int (*fn)(const struct ledger_row_check *r, void *ctx);
	void *ctx;
};

static int check_one(PGresult *r, void *ctx)
{
	struct check_walk *w = ctx;
	struct ledger_row_check c;

	c.table = PQgetvalue(r, 0, 0);
	c.key = PQgetvalue(r, 0, 1);
	c.event_seq = strtoll(PQgetvalue(r, 0, 2), NULL, 10);
	c.event_h = PQgetvalue(r, 0, 3);
	c.row_seq = strtoll(PQgetvalue(r, 0, 4), NULL, 10);
	c.content = PQgetisnull(r, 0, 5) ? NULL : PQgetvalue(r, 0, 5);
	c.lot = PQgetvalue(r, 0, 6);
	return w->fn(&c, w->ctx);
}

int ledger_rows_check(struct ledger *l, const char *station_id, int64_t *rows_from,
		      int (*fn)(const struct ledger_row_check *r, void *ctx), void *ctx,
		      struct errbuf *err)
{
	struct check_walk w = { fn, ctx };
	char from[24];
	const char *p[2] = { station_id, from };
	PGresult *r;
	int rc;

	if ((rc = ledger_exec(l, "read the rows' start", SQL_ROWS_FROM, 1, p, &r, NULL, err)))
		return rc;
	*rows_from = PQntuples(r) ? strtoll(PQgetvalue(r, 0, 0), NULL, 10) : 0;
	PQclear(r);
	snprintf(from, sizeof(from), "%" PRId64, *rows_from);
	return stream(l, "check the rows", SQL_CHECK, 2, p, check_one, &w, err);
}

struct lot_walk {
	int (*fn)(const struct ledger_row_at *r, void *ctx);
	void *ctx;
};

static int lot_one(PGresult *r, void *ctx)
{
	struct lot_walk *w = ctx;
	struct ledger_row_at a;

	a.station_id = PQgetvalue(r, 0, 0);
	a.table = PQgetvalue(r, 0, 1);
	a.key = PQgetvalue(r, 0, 2);
	a.seq = strtoll(PQgetvalue(r, 0, 3), NULL, 10);
	a.content = PQgetvalue(r, 0, 4);
	return w->fn(&a, w->ctx);
}

int ledger_rows_lot(struct ledger *l, const char *lot,
		    int (*fn)(const struct ledger_row_at *r, void *ctx), void *ctx,
		    struct errbuf *err)
{
	struct lot_walk w = { fn, ctx };
	const char *p[1] = { lot };

	return stream(l, "read the lot's rows", SQL_LOT, 1, p, lot_one, &w, err);
}

struct ids_walk {
	int (*fn)(const char *unique_id, void *ctx);
	void *ctx;
};

static int id_one(PGresult *r, void *ctx)
{
	struct ids_walk *w = ctx;

	return w->fn(PQgetvalue(r, 0, 0), w->ctx);
}

int ledger_allowlist_foreach(struct ledger *l, const char *lot,
			     int (*fn)(const char *unique_id, void *ctx), void *ctx,
			     struct errbuf *err)
{
	struct ids_walk w = { fn, ctx };
	const char *p[1] = { lot };

	return stream(l, "read the allowlist", "SELECT unique_id FROM allowlist WHERE lot = $1"
		      " ORDER BY imported_at, unique_id", 1, p, id_one, &w, err);
}
