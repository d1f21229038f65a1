/*
 * report: the lot report of `station report` (docs/engineer.md "Lot
 * report"): one pass over a lot's units (db/report.h) into fixed-size
 * aggregates, then one self-contained HTML file (report_html.c).
 *
 * Contract
 * - Bounded memory whatever the lot's size: the aggregate is one struct of
 *   fixed size.  Throughput has REPORT_RATE_BINS bins whose width is the
 *   smallest of 10 s, 30 s, 1 min, 5 min, 15 min, 1 h, 2 h, 4 h, 8 h, 1 day,
 *   7 days that fits the lot's span; cycle times have REPORT_CYCLE_BINS bins
 *   of equal width up to the longest unit.  Bays, operators and reason codes
 *   keep the first REPORT_MAX_KEYS names each, in the order met; the rest
 *   are summed in one "other" entry (other_used says it is in use).
 * - Pass db_report_lot() &a->counts and &a->span with report_agg_row() as
 *   the callback and a as its context, after report_agg_init(); then call
 *   report_agg_finish() (sorts the reasons for the Pareto, most first, the
 *   "other" entry last).
 * - A failure (Pareto) is a finished unit that did not pass: fail, reject or
 *   interrupted, keyed by its reason code ("UNKNOWN" when none was stored).
 *   Throughput counts finished units by their finish time; the cycle-time
 *   histogram and per-group means count units whose duration is known.
 * - report_html_write() writes the page: no script, no external resource
 *   (inline CSS and SVG only), readable printed.  Chart bars carry data-*
 *   attributes (docs/engineer.md) so tests and tools can read the figures
 *   back.  ST_EIO when the stream reports an error.
 */
#ifndef STATION_EXPORT_REPORT_H
#define STATION_EXPORT_REPORT_H

#include <stdint.h>
#include <stdio.h>

#include "core/errbuf.h"
#include "db/export.h"
#include "db/report.h"

#define REPORT_MAX_KEYS   32
#define REPORT_RATE_BINS  96
#define REPORT_CYCLE_BINS 20
#define REPORT_NAME_MAX   64

struct report_group {
	char name[REPORT_NAME_MAX];
	int64_t units, pass, failed;       /* failed: fail, reject, interrupted */
	int64_t dur_sum_ms, dur_n;
};

struct report_groups {
	struct report_group g[REPORT_MAX_KEYS];
	int n;
	struct report_group other;         /* everything past the first REPORT_MAX_KEYS */
	int other_used;
};

struct report_agg {
	char lot[65];
	struct db_export_counts counts;    /* filled by db_report_lot() */
	struct db_report_span span;        /* likewise */
	int sized;
	int64_t rate_bin_ms;               /* width of a throughput bin */
	int rate_bins;                     /* bins in use, 1..REPORT_RATE_BINS */
	int64_t rate[REPORT_RATE_BINS];    /* finished units per bin */
	int64_t cycle_bin_ms;              /* width of a cycle-time bin (>= 1) */
	int64_t cycle[REPORT_CYCLE_BINS];
	int64_t cycle_n, cycle_sum_ms;
	int64_t walked;                    /* units seen */
	struct report_groups bays, operators, reasons;
};

/* What the page says about the audit chain (it was verified before the walk). */
struct report_audit {
	int verified;
	int64_t events, rows, checkpoints;
	int64_t head_seq;
	char head_hash[65];
	char station_id[64];
	char generated[32];                /* ISO-8601 UTC, when the report was made */
};

void report_agg_init(struct report_agg *a, const char *lot);
int report_agg_row(const struct db_report_unit *u, void *ctx);   /* never stops (0) */
void report_agg_finish(struct report_agg *a);

ST_MUST_CHECK int report_html_write(FILE *f, const struct report_agg *a,
				    const struct report_audit *audit, struct errbuf *err);

#endif
