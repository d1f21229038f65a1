/*
 * ledger_chain: every station's audit chain in the ledger.  The station pushes
 * its journal's events in order; the ledger's trigger refuses a gap or a
 * broken link, and a row already there must be the same row.
 */
#include "ledger/ledger_int.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char SQL_STATION[] =
	"INSERT INTO stations (station_id) VALUES ($1) ON CONFLICT (station_id) DO NOTHING";
static const char SQL_HEAD[] =
	"SELECT seq, hash FROM events WHERE station_id = $1 ORDER BY seq DESC LIMIT 1";
static const char SQL_PUSH[] =
	"INSERT INTO events (station_id, seq, ts, kind, actor, detail, prev_hash, hash)"
	" VALUES ($1, $2::bigint, $3, $4, $5, $6, $7, $8)"
	" ON CONFLICT (station_id, seq) DO NOTHING RETURNING seq";
static const char SQL_SAME[] =
	"SELECT ts = $3 AND kind = $4 AND actor = $5 AND detail = $6 AND prev_hash = $7"
	" AND hash = $8 FROM events WHERE station_id = $1 AND seq = $2::bigint";
static const char SQL_TOUCH[] =
	"UPDATE stations SET last_contact = now(), local_head = greatest($2::bigint,"
	"  (SELECT max(seq) FROM events WHERE station_id = $1)) WHERE station_id = $1";

int ledger_chain_head(struct ledger *l, int64_t *seq, char hash[65], struct errbuf *err)
{
	const char *p[1] = { l->cfg.station_id };
	PGresult *r;
	int rc;

	if ((rc = ledger_exec(l, "read the chain head", SQL_HEAD, 1, p, &r, NULL, err)))
		return rc;
	if (PQntuples(r) == 0) {
		*seq = 0;
		memset(hash, '0', 64);
		hash[64] = '\0';
	} else {
		*seq = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
		snprintf(hash, 65, "%s", PQgetvalue(r, 0, 1));
	}
	PQclear(r);
	return ST_OK;
}

#define PIPE_CHUNK 250
#define PUSH_STMT "station_push_event"

static int same_row(struct ledger *l, const struct ledger_event *e, struct errbuf *err)
{
	char seqs[24];
	const char *p[8] = { l->cfg.station_id, seqs, e->ts, e->kind, e->actor, e->detail,
			     e->prev_hash, e->hash };
	PGresult *r;
	int rc, same;

	snprintf(seqs, sizeof(seqs), "%" PRId64, e->seq);
	if ((rc = ledger_exec(l, "compare an event", SQL_SAME, 8, p, &r, NULL, err)))
		return rc;
	same = PQntuples(r) == 1 && !strcmp(PQgetvalue(r, 0, 0), "t");
	PQclear(r);
	if (!same)
		return errbuf_setr(err, ST_ETAMPER, ST_ORIGIN_DB, ST_R_TAMPER,
				   "ledger: event %" PRId64 " of station %s differs from the"
				   " journal's", e->seq, l->cfg.station_id);
	return ST_OK;
}

/* The connection is in an unknown state: drop it, the next call reconnects. */
static int lost(struct ledger *l, struct errbuf *err, const char *why)
{
	char msg[300];

	snprintf(msg, sizeof(msg), "%s", why);
	PQfinish(l->pg);
	l->pg = NULL;
	l->down = 1;
	return errbuf_setr(err, ST_EIO, ST_ORIGIN_DB, ST_R_LEDGER_UNREACHABLE,
			   "ledger unreachable (push events): %s", msg);
}

/* The inserts of a batch in libpq's pipeline mode, PIPE_CHUNK at a time (one
 * round trip per chunk, not per event; reading each chunk's results before
 * sending the next keeps both sockets' buffers small, so a blocking
 * connection cannot deadlock).  conflict[i] is set for a row already there. */
static int insert_pipelined(struct ledger *l, const struct ledger_event *ev, size_t n,
			    uint8_t *conflict, struct errbuf *err)
{
	char first_err[400] = "", first_state[6] = "";

	/* Parsed and planned once per session, not once per event. */
	if (!l->push_prepared) {
		PGresult *r = PQprepare(l->pg, PUSH_STMT, SQL_PUSH, 8, NULL);
		int ok = PQresultStatus(r) == PGRES_COMMAND_OK;

		if (!ok && PQstatus(l->pg) != CONNECTION_OK) {
			PQclear(r);
			return lost(l, err, PQerrorMessage(l->pg));
		}
		if (!ok) {
			snprintf(first_err, sizeof(first_err), "%s", PQresultErrorMessage(r));
			PQclear(r);
			for (char *c = first_err; *c; c++)
				if (*c == '\n')
					*c = ' ';
			return errbuf_setr(err, ST_EDB, ST_ORIGIN_DB, ST_R_DB,
					   "ledger: cannot prepare the push: %s", first_err);
		}
		PQclear(r);
		l->push_prepared = 1;
	}
	if (!PQenterPipelineMode(l->pg))
		return lost(l, err, PQerrorMessage(l->pg));
	for (size_t i = 0; i < n && !first_err[0]; i += PIPE_CHUNK) {
		size_t m = n - i < PIPE_CHUNK ? n - i : PIPE_CHUNK;
		PGresult *r;

		for (size_t k = 0; k < m; k++) {
			const struct ledger_event *e = &ev[i + k];
			char seqs[24];
			const char *p[8] = { l->cfg.station_id, seqs, e->ts, e->kind, e->actor,
					     e->detail, e->prev_hash, e->hash };

			snprintf(seqs, sizeof(seqs), "%" PRId64, e->seq);
			if (!PQsendQueryPrepared(l->pg, PUSH_STMT, 8, p, NULL, NULL, 0))
				return lost(l, err, PQerrorMessage(l->pg));
		}
		if (!PQpipelineSync(l->pg))
			return lost(l, err, PQerrorMessage(l->pg));
		for (size_t k = 0; k < m; k++) {
			ExecStatusType st;

			if (!(r = PQgetResult(l->pg)))
				return lost(l, err, PQerrorMessage(l->pg));
			st = PQresultStatus(r);
			if (st == PGRES_TUPLES_OK) {
				conflict[i + k] = PQntuples(r) == 0;
			} else if (st != PGRES_PIPELINE_ABORTED && !first_err[0]) {
				const char *ss = PQresultErrorField(r, PG_DIAG_SQLSTATE);

				snprintf(first_err, sizeof(first_err), "%s", PQresultErrorMessage(r));
				snprintf(first_state, sizeof(first_state), "%s", ss ? ss : "");
			}
			PQclear(r);
			if ((r = PQgetResult(l->pg))) {   /* each query's results end with NULL */
				PQclear(r);
				return lost(l, err, "unexpected result in the pipeline");
			}
		}
		if (!(r = PQgetResult(l->pg)) || PQresultStatus(r) != PGRES_PIPELINE_SYNC) {
			PQclear(r);
			return lost(l, err, PQerrorMessage(l->pg));
		}
		PQclear(r);
	}
	if (!PQexitPipelineMode(l->pg))
		return lost(l, err, PQerrorMessage(l->pg));
	if (!first_err[0])
		return ST_OK;
	for (char *c = first_err; *c; c++)
		if (*c == '\n')
			*c = ' ';
	if (!strncmp(first_state, "SL", 2))
		return errbuf_setr(err, ST_ETAMPER, ST_ORIGIN_DB, ST_R_TAMPER, "ledger: %s",
				   first_err);
	if (!strncmp(first_state, "08", 2) || !strncmp(first_state, "57", 2) ||
	    !strncmp(first_state, "53", 2) || PQstatus(l->pg) != CONNECTION_OK)
		return lost(l, err, first_err);
	return errbuf_setr(err, ST_EDB, ST_ORIGIN_DB, ST_R_DB, "ledger: push an event: %s",
			   first_err);
}

int ledger_chain_push(struct ledger *l, const struct ledger_event *ev, size_t n,
		      int64_t local_head, struct errbuf *err)
{
	return ledger_chain_push_rows(l, ev, n, NULL, 0, local_head, err);
}

int ledger_chain_push_rows(struct ledger *l, const struct ledger_event *ev, size_t n,
			   const struct ledger_row *rows, size_t nrows, int64_t local_head,
			   struct errbuf *err)
{
	char heads[24];
	const char *p[2] = { l->cfg.station_id, heads };
	uint8_t *conflict = n ? calloc(n, 1) : NULL;
	int rc;

	if (n && !conflict)
		return errbuf_set(err, ST_ENOMEM, "out of memory");
	snprintf(heads, sizeof(heads), "%" PRId64, local_head);
	if ((rc = ledger_run(l, "begin", "BEGIN", 0, NULL, err))) {
		free(conflict);
		return rc;
	}
	if ((rc = ledger_run(l, "register the station", SQL_STATION, 1, p, err)))
		goto fail;
	if (n && (rc = insert_pipelined(l, ev, n, conflict, err)))
		goto fail;
	/* a row already there (another push got it in first) must be this row */
	for (size_t i = 0; i < n; i++)
		if (conflict[i] && (rc = same_row(l, &ev[i], err)))
			goto fail;
	if (nrows && (rc = ledger_rows_put(l, rows, nrows, err)))
		goto fail;
	if ((rc = ledger_run(l, "record contact", SQL_TOUCH, 2, p, err)) ||
	    (rc = ledger_run(l, "commit", "COMMIT", 0, NULL, err)))
		goto fail;
	free(conflict);
	return ST_OK;
fail:
	if (l->pg)
		ledger_rollback(l);
	free(conflict);
	return rc;
}

int ledger_touch(struct ledger *l, int64_t local_head, struct errbuf *err)
{
	return ledger_chain_push(l, NULL, 0, local_head, err);
}

int ledger_stations(struct ledger *l, int (*fn)(const struct ledger_station *s, void *ctx),
		    void *ctx, struct errbuf *err)
{
	PGresult *r;
	int rc;

	if ((rc = ledger_exec(l, "list the stations",
			      "SELECT station_id, coalesce((SELECT max(seq) FROM events e"
			      "  WHERE e.station_id = s.station_id), 0), local_head,"
			      " extract(epoch FROM now() - last_contact),"
			      " to_char(last_contact AT TIME ZONE 'UTC',"
			      " 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"
			      " FROM stations s ORDER BY station_id", 0, NULL, &r, NULL, err)))
		return rc;
	for (int i = 0; i < PQntuples(r); i++) {
		struct ledger_station s;

		snprintf(s.station_id, sizeof(s.station_id), "%s", PQgetvalue(r, i, 0));
		s.head_seq = strtoll(PQgetvalue(r, i, 1), NULL, 10);
		s.local_head = strtoll(PQgetvalue(r, i, 2), NULL, 10);
		s.since_contact_s = strtod(PQgetvalue(r, i, 3), NULL);
		snprintf(s.last_contact, sizeof(s.last_contact), "%s", PQgetvalue(r, i, 4));
		if (fn(&s, ctx))
			break;
	}
	PQclear(r);
	return ST_OK;
}

/* Pages of 5000 rows keep memory flat on a long chain. */
int ledger_events(struct ledger *l, const char *station_id,
		  int (*fn)(const struct ledger_event *e, void *ctx), void *ctx,
		  struct errbuf *err)
{
	char after[24] = "0";
	const char *p[2] = { station_id, after };
	PGresult *r;
	int rc, n, stop = 0;

	do {
		if ((rc = ledger_exec(l, "read events",
				      "SELECT seq, ts, kind, actor, detail, prev_hash, hash FROM events"
				      " WHERE station_id = $1 AND seq > $2::bigint ORDER BY seq"
				      " LIMIT 5000", 2, p, &r, NULL, err)))
			return rc;
		n = PQntuples(r);
		for (int i = 0; i < n && !stop; i++) {
			struct ledger_event e;

			e.seq = strtoll(PQgetvalue(r, i, 0), NULL, 10);
			e.ts = PQgetvalue(r, i, 1);
			e.kind = PQgetvalue(r, i, 2);
			e.actor = PQgetvalue(r, i, 3);
			e.detail = PQgetvalue(r, i, 4);
			e.prev_hash = PQgetvalue(r, i, 5);
			e.hash = PQgetvalue(r, i, 6);
			snprintf(after, sizeof(after), "%" PRId64, e.seq);
			stop = fn(&e, ctx);
		}
		PQclear(r);
	} while (n == 5000 && !stop);
	return ST_OK;
}
