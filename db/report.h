/*
 * report (db side): the few columns of every unit of one lot that the lot
 * report (`station report`, station/export/report.h) aggregates, streamed.
 *
 * Contract
 * - db_report_lot() reads one snapshot (a read transaction, as the export):
 *   it fills *counts (the export's, db/export.h: yield counts only boards on
 *   the allowlist) and *span, then calls fn once per unit of the lot in unit
 *   id order.  One prepared statement over the units table (its lot index),
 *   no join: the walk holds one row at a time, whatever the lot's size.
 * - Strings live until fn returns; NULL columns come back as "" or -1
 *   (duration_ms, finished_ms unknown).  A non-zero return from fn stops the
 *   walk and is returned as is.  fn must not call db_* on this handle.
 * - ST_ENOTFOUND when the lot has neither an allowlist nor any unit.
 */
#ifndef STATION_DB_REPORT_H
#define STATION_DB_REPORT_H

#include <stdint.h>

#include "core/errbuf.h"
#include "db/db.h"
#include "db/export.h"

struct db_report_unit {
	int64_t unit_id;
	const char *unique_id, *bay, *operator_name, *status, *reason_code;
	int64_t started_ms, finished_ms;   /* finished_ms -1 while in progress */
	int64_t duration_ms;               /* -1 when unknown */
	int on_allowlist;
};

/* What the report needs to size its fixed bins before the walk. */
struct db_report_span {
	int64_t first_ms, last_ms;         /* earliest start, latest finish (0 when no unit) */
	int64_t max_duration_ms;           /* longest finished unit (0 when none) */
};

ST_MUST_CHECK int db_report_lot(struct db *db, const char *lot, struct db_export_counts *counts,
				struct db_report_span *span,
				int (*fn)(const struct db_report_unit *u, void *ctx), void *ctx,
				struct errbuf *err);

#endif
