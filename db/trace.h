/*
 * trace: everything the database knows about one board, for `station unit
 * show` (docs/engineer.md "Traceability").
 *
 * Contract
 * - db_trace_board() finds the board by KEY: its unique id (24 upper-case
 *   hex digits), a unit id (decimal), or a certificate serial (lower-case
 *   hex, as stored).  ST_ENOTFOUND when nothing matches (and for a serial
 *   only reserved or void: it names no board).
 * - *out is a new JSON object (caller json_decref()s it):
 *     {"query", "matched_by": "unique_id"|"unit_id"|"cert_serial",
 *      "unique_id", "allowlist": {lot, model, hw_revision, import_sha256, line} | null,
 *      "attempts": [units, oldest first, with reason_code, reason_plain,
 *                   duration_ms, stage_ms {stage: ms}],
 *      "certificates": [{serial, status, unit_id, issued, injected, revoked, revoke_reason}],
 *      "reworks": [{id, reason, authorised_by, authorised, old_unit_id, old_serial,
 *                   new_unit_id, consumed}],
 *      "events": [audit events whose detail names the board ("unique_id") or
 *                 one of its certificates ("serial"), in storage order, detail parsed]}
 *   Times are ISO-8601 UTC with milliseconds, null when not.  A unit whose
 *   board gave no valid id (malformed_id) is found by its unit id alone: the
 *   record then holds that unit, its certificates and no events.
 * - Every query is an index search (no table scan): the board's units
 *   (units_uid), certificates (certificates_uid), reworks (reworks_uid), its
 *   allowlist row, and events through the expression indexes events_uid and
 *   events_serial (migration 6).  db_trace_sql lists the statements so a test
 *   can EXPLAIN QUERY PLAN each.
 * - One read transaction: the record is one snapshot while the line runs.
 */
#ifndef STATION_DB_TRACE_H
#define STATION_DB_TRACE_H

#include <jansson.h>

#include "db/db.h"
#include "core/errbuf.h"

ST_MUST_CHECK int db_trace_board(struct db *db, const char *key, json_t **out,
				 struct errbuf *err);

extern const char *const db_trace_sql[];
extern const int db_trace_sql_count;

#endif
