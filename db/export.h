/*
 * export (db side): every unit of one lot, with its profile and certificate,
 * for `station export` (docs/engineer.md, "## Export").
 *
 * Contract
 * - db_export_lot() reads one consistent snapshot (a read transaction: WAL
 *   readers never block the line, and units committed while the export runs
 *   are not half in it).  It fills *counts first, then calls fn once per unit
 *   of the lot, passed and failed, in unit id order.
 * - A certificate is attached only when it was signed or revoked: status
 *   issued, injected or revoked.  A serial only reserved (ahead, in batches) or
 *   void is not a certificate and is not exported; cert_serial is then "".  The unit's
 *   certificate is the one named in units.cert_serial, or, for a unit that
 *   never reached its verdict (interrupted), the latest one recorded with its
 *   unit id.
 * - NULL columns come back as "" or 0; strings and the DER live until fn
 *   returns.  fn must not call other db_* functions on this handle (the
 *   handle is held for the whole walk).  A non-zero return from fn stops the
 *   walk and is returned as is (fn sets its own errbuf).
 * - ST_ENOTFOUND when the lot has neither an allowlist nor any unit.
 */
#ifndef STATION_DB_EXPORT_H
#define STATION_DB_EXPORT_H

#include <stddef.h>
#include <stdint.h>

#include "db/db.h"
#include "core/errbuf.h"

struct db_export_row {
	int64_t unit_id;
	const char *unique_id, *lot, *bay, *operator_name, *station_id;
	const char *status;            /* db_unit_status_name() values */
	const char *stage, *reason;
	const char *profile_name;      /* "" when no stored profile has profile_hash */
	int64_t profile_version;       /* 0 when unknown */
	const char *profile_hash, *firmware_hash, *pubkey_hash;
	int64_t started_ms, finished_ms;   /* finished_ms 0 while in progress */
	int64_t superseded_by;         /* the rework that superseded this PASS, 0 if none */
	int64_t rework_id;             /* the rework this unit provisioned the board again for */
	const char *cert_serial;       /* "" when no certificate was signed */
	const char *cert_status;       /* "issued", "injected", "revoked" or "" */
	const uint8_t *cert_der;       /* NULL when none, also for a revoked serial
					  that was never recorded as signed */
	size_t cert_der_len;
	int64_t issued_ms, revoked_ms; /* 0 when not */
	const char *revoke_reason;     /* RFC 5280 name, "" when not revoked */
	/* migration 6 (docs/database.md "Unit records") */
	const char *reason_code;       /* st_reason_name, "" for a pass */
	const char *reason_plain;      /* the reason without ids, "" for a pass */
	int64_t duration_ms;           /* -1 when unknown (in progress, older rows) */
	const char *stage_ms;          /* JSON object of stage times, "" when unknown */
	const char *model, *hw_revision;   /* from the allowlist, "" when not known */
	int on_allowlist;              /* the board is on this lot's allowlist */
};

/* Units are attempts; boards are distinct unique ids.  Yield = boards with a
 * PASS / boards; first-pass yield = boards whose first finished attempt was a
 * PASS / boards with a finished attempt (as the line's screen counts it).
 * Boards are those on the lot's allowlist only: a stranger (a board tried on
 * the lot but not on its allowlist, rejected not_on_lot) is counted apart
 * and never in a yield. */
struct db_export_counts {
	int64_t units, pass, fail, reject, interrupted, in_progress;
	int64_t superseded;            /* PASS units a rework superseded (in pass too) */
	int64_t boards, boards_passed;
	int64_t boards_finished, boards_first_pass;
	int64_t allowlisted;           /* ids on the lot's allowlist */
	int64_t strangers;             /* distinct ids tried, not on the allowlist */
	int64_t stranger_units;        /* their units, with the units of no valid id */
};

ST_MUST_CHECK int db_export_lot(struct db *db, const char *lot, struct db_export_counts *counts,
				int (*fn)(const struct db_export_row *r, void *ctx), void *ctx,
				struct errbuf *err);

#endif
