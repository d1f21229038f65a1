/*
 * ledger_settle: an engineer settles the claims a station left open when it
 * will not start again (retired, its disk lost), from that station's own
 * chain in the ledger (ledger.h, ledger_settle_station).
 *
 * A station settles its own open claims when its line starts, from its
 * journal (app/pl_ledger.c).  A station that never starts again would leave
 * its boards refused everywhere ("in progress there").  The ledger holds the
 * verdicts that station pushed: the `unit-result` event of the claimed unit
 * decides, exactly as the journal would.  A claim whose unit has no verdict
 * in the ledger (the station died before pushing it) may have a certificate
 * on the board: it stays claimed unless the engineer says otherwise.
 */
#include "ledger/ledger_int.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Each open claim of the station with the verdict its chain in the ledger
 * gives its unit ('' when none), in one statement: the claims are locked for
 * the transaction, so a station coming back meanwhile waits. */
static const char SQL_OPEN_CLAIMS[] =
	"SELECT p.unique_id, p.unit_id, coalesce(r.status, ''), coalesce(r.serial, '')"
	" FROM provisioned p LEFT JOIN LATERAL ("
	"  SELECT e.detail::jsonb->>'status' AS status,"
	"   e.detail::jsonb->>'cert_serial' AS serial FROM events e"
	"  WHERE e.station_id = p.station_id AND e.kind = 'unit-result'"
	"   AND e.detail::jsonb->>'unit' = p.unit_id::text"
	"  ORDER BY e.seq DESC LIMIT 1) r ON true"
	" WHERE p.station_id = $1 AND p.state = 'claimed'"
	" ORDER BY p.unique_id FOR UPDATE OF p";

static int check_silent(struct ledger *l, const char *sid, int min_silence_s,
			struct ledger_settled *out, struct errbuf *err)
{
	const char *p[1] = { sid };
	PGresult *r;
	int rc;

	if ((rc = ledger_exec(l, "read the station",
			      "SELECT extract(epoch FROM now() - last_contact) FROM stations"
			      " WHERE station_id = $1 FOR UPDATE", 1, p, &r, NULL, err)))
		return rc;
	out->since_contact_s = PQntuples(r) ? strtod(PQgetvalue(r, 0, 0), NULL) : -1;
	PQclear(r);
	if (out->since_contact_s >= 0 && out->since_contact_s < min_silence_s)
		return errbuf_setr(err, ST_EBUSY, ST_ORIGIN_POLICY, ST_R_INVALID,
				   "station %s reached the ledger %.0f s ago (less than %d s):"
				   " it is not retired; a station settles its own claims when its"
				   " line starts", sid, out->since_contact_s, min_silence_s);
	return ST_OK;
}

int ledger_settle_station(struct ledger *l, const char *station_id, int min_silence_s,
			  int release_unknown, struct ledger_settled *out, struct errbuf *err)
{
	const char *p[1] = { station_id };
	PGresult *r = NULL, *h;
	int rc, n;

	memset(out, 0, sizeof(*out));
	if (!strcmp(station_id, l->cfg.station_id))
		return errbuf_setr(err, ST_EINVAL, ST_ORIGIN_CONFIG, ST_R_INVALID,
				   "station %s is this station: it settles its own claims when its"
				   " line starts", station_id);
	if ((rc = ledger_begin(l, err)))
		return rc;
	if ((rc = check_silent(l, station_id, min_silence_s, out, err)) ||
	    (rc = ledger_exec(l, "read the open claims", SQL_OPEN_CLAIMS, 1, p, &r, NULL, err)))
		goto fail;
	n = PQntuples(r);
	for (int i = 0; i < n && rc == ST_OK; i++) {
		const char *uid = PQgetvalue(r, i, 0), *status = PQgetvalue(r, i, 2);
		int64_t unit = strtoll(PQgetvalue(r, i, 1), NULL, 10);
		int put_back = 0;

		if (!strcmp(status, "pass")) {
			rc = ledger_claim_commit_tx(l, station_id, uid, unit, PQgetvalue(r, i, 3),
						    err);
			out->committed++;
		} else if (status[0] || release_unknown) {
			rc = ledger_claim_undo_tx(l, station_id, uid, unit, &put_back, err);
			if (put_back)
				out->put_back++;
			else
				out->released++;
			if (!status[0])
				out->released_unknown++;
		} else {
			out->unknown++;
		}
	}
	PQclear(r);
	if (rc || (rc = ledger_exec(l, "release the station's holds",
				    "DELETE FROM in_progress WHERE station_id = $1", 1, p, &h, NULL,
				    err)))
		goto fail;
	out->holds = strtoll(PQcmdTuples(h), NULL, 10);
	PQclear(h);
	return ledger_commit(l, err);
fail:
	ledger_rollback(l);
	return rc;
}
