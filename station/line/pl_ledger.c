/*
 * pl_ledger: a unit's steps in the factory ledger (pipeline.h, struct
 * pl_ledger_ops).  Write-ahead order across the two stores, for one unit:
 *   1. the unit row in SQLite (db_unit_begin, as without a ledger);
 *   2. hold: the ledger knows the board is here (a clone on two stations
 *      at once is seen by both);
 *   3. claim: the id and the public key are this station's in the ledger,
 *      committed there BEFORE the serial is reserved in SQLite and signed;
 *   4. reserve, sign, inject, commit: SQLite, as without a ledger;
 *   5. done: the claim is committed (PASS) or released, after the local
 *      record.
 * A crash between 3 and 5 leaves a claim of this station: the next attempt
 * here takes it again, another station is refused (the safe side).
 */
#include "line/pl_int.h"

#include <string.h>

/* ST_ENOTFOUND without a ledger: the station's own list said no. */
int pl_ledger_allowlisted(struct pl_unit *r)
{
	const struct pl_ledger_ops *lg = &r->cfg->ledger;

	if (!lg->ctx)
		return ST_ENOTFOUND;
	return lg->allowlisted(lg->ctx, r->cfg->lot, r->u.unique_id, &r->err);
}

int pl_ledger_hold(struct pl_unit *r)
{
	const struct pl_ledger_ops *lg = &r->cfg->ledger;
	int rc;

	if (!lg->ctx)
		return ST_OK;
	rc = lg->hold(lg->ctx, r->u.unique_id, r->u.id, &r->err);
	if (rc == ST_OK)
		r->ledger_held = 1;
	else if (r->err.reason != ST_R_LEDGER_UNREACHABLE)
		r->reject = 1;
	return rc;
}

int pl_ledger_claim(struct pl_unit *r)
{
	const struct pl_ledger_ops *lg = &r->cfg->ledger;
	int rc;

	if (!lg->ctx)
		return ST_OK;
	rc = lg->claim(lg->ctx, r->u.unique_id, r->cfg->lot, r->facts.pubkey_hash, r->u.id,
		       r->reworked, &r->err);
	if (rc && r->err.reason != ST_R_LEDGER_UNREACHABLE)
		r->reject = 1;
	return rc;
}

void pl_ledger_done(struct pl_unit *r, int passed)
{
	const struct pl_ledger_ops *lg = &r->cfg->ledger;

	if (!lg->ctx || !r->ledger_held)
		return;
	lg->done(lg->ctx, r->u.unique_id, r->u.id, passed, r->u.cert_serial);
	r->ledger_held = 0;
}
