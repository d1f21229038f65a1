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
	"SELECT head_seq, head_hash FROM stations WHERE station_id = $1";
static const char SQL_PUSH[] =
	"INSERT INTO events (station_id, seq, ts, kind, actor, detail, prev_hash, hash)"
	" VALUES ($1, $2::bigint, $3, $4, $5, $6, $7, $8)"
	" ON CONFLICT (station_id, seq) DO NOTHING RETURNING seq";
static const char SQL_SAME[] =
	"SELECT ts = $3 AND kind = $4 AND actor = $5 AND detail = $6 AND prev_hash = $7"
	" AND hash = $8 FROM events WHERE station_id = $1 AND seq = $2::bigint";
static const char SQL_TOUCH[] =
	"UPDATE stations SET last_contact = now(), local_head = greatest($2::bigint, head_seq)"
	" WHERE station_id = $1";

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

static int push_one(struct ledger *l, const struct ledger_event *e, struct errbuf *err)
{
	char seqs[24];
	const char *p[8] = { l->cfg.station_id, seqs, e->ts, e->kind, e->actor, e->detail,
			     e->prev_hash, e->hash };
	PGresult *r;
	char st[6];
	int rc, fresh;

	snprintf(seqs, sizeof(seqs), "%" PRId64, e->seq);
	rc = ledger_exec(l, "push an event", SQL_PUSH, 8, p, &r, st, err);
	if (rc) {
		if (!strncmp(st, "SL", 2)) {
			char msg[sizeof(err->msg)];

			memcpy(msg, err->msg, sizeof(msg));
			return errbuf_setr(err, ST_ETAMPER, ST_ORIGIN_DB, ST_R_TAMPER, "%s", msg);
		}
		return rc;
	}
	fresh = PQntuples(r) == 1;
	PQclear(r);
	if (fresh)
		return ST_OK;
	/* already there (another push got it in first): it must be this row */
	if ((rc = ledger_exec(l, "compare an event", SQL_SAME, 8, p, &r, NULL, err)))
		return rc;
	fresh = PQntuples(r) == 1 && !strcmp(PQgetvalue(r, 0, 0), "t");
	PQclear(r);
	if (!fresh)
		return errbuf_setr(err, ST_ETAMPER, ST_ORIGIN_DB, ST_R_TAMPER,
				   "ledger: event %" PRId64 " of station %s differs from the"
				   " journal's", e->seq, l->cfg.station_id);
	return ST_OK;
}

int ledger_chain_push(struct ledger *l, const struct ledger_event *ev, size_t n,
		      int64_t local_head, struct errbuf *err)
{
	char heads[24];
	const char *p[2] = { l->cfg.station_id, heads };
	int rc;

	snprintf(heads, sizeof(heads), "%" PRId64, local_head);
	if ((rc = ledger_run(l, "begin", "BEGIN", 0, NULL, err)))
		return rc;
	if ((rc = ledger_run(l, "register the station", SQL_STATION, 1, p, err)))
		goto fail;
	for (size_t i = 0; i < n; i++)
		if ((rc = push_one(l, &ev[i], err)))
			goto fail;
	if ((rc = ledger_run(l, "record contact", SQL_TOUCH, 2, p, err)) ||
	    (rc = ledger_run(l, "commit", "COMMIT", 0, NULL, err)))
		goto fail;
	return ST_OK;
fail:
	ledger_rollback(l);
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
			      "SELECT station_id, head_seq, local_head,"
			      " extract(epoch FROM now() - last_contact),"
			      " to_char(last_contact AT TIME ZONE 'UTC',"
			      " 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"
			      " FROM stations ORDER BY station_id", 0, NULL, &r, NULL, err)))
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
