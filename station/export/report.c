/*
 * report: the lot report's aggregation, one unit at a time into fixed-size
 * bins and bounded tables.  See report.h.
 */
#include "export/report.h"

#include <stdlib.h>
#include <string.h>

static const int64_t rate_widths_ms[] = {
	10000, 30000, 60000, 300000, 900000, 3600000, 7200000, 14400000, 28800000,
	86400000, 604800000,
};

void report_agg_init(struct report_agg *a, const char *lot)
{
	memset(a, 0, sizeof(*a));
	snprintf(a->lot, sizeof(a->lot), "%s", lot);
	snprintf(a->bays.other.name, REPORT_NAME_MAX, "other");
	snprintf(a->operators.other.name, REPORT_NAME_MAX, "other");
	snprintf(a->reasons.other.name, REPORT_NAME_MAX, "other");
}

/* The bins follow the span db_report_lot() read before the first row. */
static void agg_size(struct report_agg *a)
{
	int64_t span = a->span.last_ms - a->span.first_ms + 1, w = 0;
	size_t i;

	a->sized = 1;
	for (i = 0; i < sizeof(rate_widths_ms) / sizeof(rate_widths_ms[0]); i++) {
		w = rate_widths_ms[i];
		if ((span + w - 1) / w <= REPORT_RATE_BINS)
			break;
	}
	/* a lot longer than 96 weeks: widen the last step as far as needed */
	if ((span + w - 1) / w > REPORT_RATE_BINS)
		w = (span + REPORT_RATE_BINS - 1) / REPORT_RATE_BINS;
	a->rate_bin_ms = w;
	a->rate_bins = (int)((span + w - 1) / w);
	if (a->rate_bins < 1)
		a->rate_bins = 1;
	if (a->rate_bins > REPORT_RATE_BINS)
		a->rate_bins = REPORT_RATE_BINS;
	/* equal bins whose last one holds the longest unit */
	a->cycle_bin_ms = a->span.max_duration_ms / REPORT_CYCLE_BINS + 1;
}

static struct report_group *group_of(struct report_groups *gs, const char *name)
{
	int i;

	if (!*name)
		name = "-";
	for (i = 0; i < gs->n; i++)
		if (!strncmp(gs->g[i].name, name, REPORT_NAME_MAX - 1))
			return &gs->g[i];
	if (gs->n < REPORT_MAX_KEYS) {
		struct report_group *g = &gs->g[gs->n++];

		snprintf(g->name, sizeof(g->name), "%s", name);
		return g;
	}
	gs->other_used = 1;
	return &gs->other;
}

static void group_add(struct report_group *g, int pass, int failed, int64_t dur)
{
	g->units++;
	g->pass += pass;
	g->failed += failed;
	if (dur >= 0) {
		g->dur_sum_ms += dur;
		g->dur_n++;
	}
}

int report_agg_row(const struct db_report_unit *u, void *ctx)
{
	struct report_agg *a = ctx;
	int pass = !strcmp(u->status, "pass");
	int failed = !strcmp(u->status, "fail") || !strcmp(u->status, "reject") ||
		!strcmp(u->status, "interrupted");
	int64_t dur = u->finished_ms >= 0 ? u->duration_ms : -1;

	if (!a->sized)
		agg_size(a);
	a->walked++;
	if (u->finished_ms >= 0 && u->finished_ms >= a->span.first_ms) {
		int64_t b = (u->finished_ms - a->span.first_ms) / a->rate_bin_ms;

		a->rate[b < a->rate_bins ? b : a->rate_bins - 1]++;
	}
	if (dur >= 0) {
		int64_t b = dur / a->cycle_bin_ms;

		a->cycle[b < REPORT_CYCLE_BINS ? b : REPORT_CYCLE_BINS - 1]++;
		a->cycle_n++;
		a->cycle_sum_ms += dur;
	}
	group_add(group_of(&a->bays, u->bay), pass, failed, dur);
	group_add(group_of(&a->operators, u->operator_name), pass, failed, dur);
	if (failed)
		group_add(group_of(&a->reasons, u->reason_code[0] ? u->reason_code : "UNKNOWN"),
			  0, 1, dur);
	return 0;
}

static int by_failed_desc(const void *x, const void *y)
{
	const struct report_group *a = x, *b = y;

	if (a->failed != b->failed)
		return a->failed < b->failed ? 1 : -1;
	return strcmp(a->name, b->name);
}

static int by_name(const void *x, const void *y)
{
	return strcmp(((const struct report_group *)x)->name,
		      ((const struct report_group *)y)->name);
}

void report_agg_finish(struct report_agg *a)
{
	if (!a->sized)
		agg_size(a);
	qsort(a->reasons.g, (size_t)a->reasons.n, sizeof(a->reasons.g[0]), by_failed_desc);
	qsort(a->bays.g, (size_t)a->bays.n, sizeof(a->bays.g[0]), by_name);
	qsort(a->operators.g, (size_t)a->operators.n, sizeof(a->operators.g[0]), by_name);
}
