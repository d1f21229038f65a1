/*
 * pl_recover: crash recovery before the line takes boards (pipeline.h).
 * Units left in progress become interrupted; certificates reserved or issued
 * (no unit runs now, so none will be committed) and injected ones of those
 * units are revoked, so they appear on the next CRL.
 */
#include "line/pl_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct rec_list {
	struct db_unit *units;
	size_t nunits, cap_units;
	struct db_cert_row *certs;
	size_t ncerts, cap_certs;
	int oom;
};

static int collect_unit(const struct db_unit *u, void *ctx)
{
	struct rec_list *l = ctx;

	if (l->nunits == l->cap_units) {
		size_t cap = l->cap_units ? l->cap_units * 2 : 16;
		struct db_unit *n = realloc(l->units, cap * sizeof(*n));

		if (!n) {
			l->oom = 1;
			return 1;
		}
		l->units = n;
		l->cap_units = cap;
	}
	l->units[l->nunits++] = *u;
	return 0;
}

static int collect_cert(const struct db_cert_row *c, void *ctx)
{
	struct rec_list *l = ctx;

	if (c->status == DB_CERT_REVOKED)
		return 0;
	if (l->ncerts == l->cap_certs) {
		size_t cap = l->cap_certs ? l->cap_certs * 2 : 16;
		struct db_cert_row *n = realloc(l->certs, cap * sizeof(*n));

		if (!n) {
			l->oom = 1;
			return 1;
		}
		l->certs = n;
		l->cap_certs = cap;
	}
	l->certs[l->ncerts++] = *c;
	return 0;
}

int pl_recover(struct db *db, const char *actor, struct ev_bus *bus,
	       int *units_out, int *revoked_out, struct errbuf *err)
{
	struct rec_list l;
	int rc, revoked = 0;

	memset(&l, 0, sizeof(l));
	if (units_out)
		*units_out = 0;
	if (revoked_out)
		*revoked_out = 0;
	/* Collect first: the callbacks run under the database's lock. */
	if ((rc = db_unit_foreach_in_progress(db, collect_unit, &l, err)))
		goto out;
	if ((rc = db_cert_foreach(db, -1, collect_cert, &l, err)))
		goto out;
	if (l.oom) {
		rc = errbuf_set(err, ST_ENOMEM, "recovery: out of memory");
		goto out;
	}
	/* No unit runs now, so a certificate reserved or issued is an orphan (it
	 * may have been signed, or even reached a board, but was never committed);
	 * an injected one is an orphan if its unit did not pass. */
	for (size_t i = 0; i < l.ncerts; i++) {
		struct db_cert_row *c = &l.certs[i];
		int orphan = c->status == DB_CERT_RESERVED || c->status == DB_CERT_ISSUED;

		for (size_t j = 0; j < l.nunits && !orphan; j++)
			orphan = l.units[j].id == c->unit_id;
		if (!orphan)
			continue;
		if ((rc = db_cert_revoke(db, c->serial_hex, "cessationOfOperation", actor, err))) {
			errbuf_prefix(err, "recovery: revoking %s: ", c->serial_hex);
			goto out;
		}
		revoked++;
		if (bus && c->unique_id[0])
			ev_emitf(bus, EV_LOG, -1, "", c->unique_id, EV_STAGE_RECOVERY, EV_OUT_NONE,
				 "orphan certificate %s revoked", c->serial_hex);
		else if (bus)
			ev_emitf(bus, EV_LOG, -1, "", "", EV_STAGE_RECOVERY, EV_OUT_NONE,
				 "reserved serial %s revoked (it may have been signed)",
				 c->serial_hex);
	}
	for (size_t j = 0; j < l.nunits; j++) {
		struct db_unit *u = &l.units[j];
		struct ev_event ev;

		u->status = DB_UNIT_INTERRUPTED;
		/* the row follows every stage (pl_unit.c); only a power loss can
		 * leave it at an earlier one (identify or inject, the durable marks) */
		snprintf(u->reason, sizeof(u->reason),
			 "station stopped (crash or power loss) during stage %s", u->stage);
		u->reason_code = ST_R_INTERRUPTED;
		u->finished_ms = clock_realtime_ms();
		if ((rc = db_unit_finish(db, u, err))) {
			errbuf_prefix(err, "recovery: unit %lld: ", (long long)u->id);
			goto out;
		}
		memset(&ev, 0, sizeof(ev));
		ev.kind = EV_UNIT_RESULT;
		ev.bay_index = -1;
		snprintf(ev.bay, sizeof(ev.bay), "%s", u->bay);
		snprintf(ev.unique_id, sizeof(ev.unique_id), "%s", u->unique_id);
		ev.stage = EV_STAGE_RECOVERY;
		ev.outcome = EV_OUT_INTERRUPTED;
		snprintf(ev.reason, sizeof(ev.reason), "%s", u->reason);
		ev.reason_code = u->reason_code;
		ev.unit_id = u->id;
		if (bus)
			ev_emit(bus, &ev);
	}
	if (units_out)
		*units_out = (int)l.nunits;
	if (revoked_out)
		*revoked_out = revoked;
	rc = ST_OK;
out:
	free(l.units);
	free(l.certs);
	return rc;
}
