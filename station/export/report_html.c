/*
 * report_html: the lot report as one HTML page (report.h): inline CSS (with
 * print rules) and inline SVG charts, no script and no external resource, so
 * the file reads the same offline, archived, or printed.
 *
 * Chart bars carry data-* attributes (bar-rate: data-start, data-units;
 * bar-pareto: data-reason, data-count; bar-cycle: data-lo-ms, data-hi-ms,
 * data-count) so that a test or a tool reads the figures back without
 * parsing geometry.
 */
#include "core/clock.h"
#include "export/report.h"

#include <errno.h>
#include <string.h>

#define CHART_W 900
#define CHART_H 240
#define PAD_L   56
#define PAD_B   70
#define PAD_T   16
#define MAX_SLOT 90.0   /* a lot with few bars still looks like a chart */

static void esc(FILE *f, const char *s)
{
	for (; *s; s++) {
		switch (*s) {
		case '<': fputs("&lt;", f); break;
		case '>': fputs("&gt;", f); break;
		case '&': fputs("&amp;", f); break;
		case '"': fputs("&quot;", f); break;
		case '\'': fputs("&#39;", f); break;
		default: fputc(*s, f);
		}
	}
}

static void pct(FILE *f, int64_t num, int64_t den)
{
	if (den <= 0)
		fputs("&ndash;", f);
	else
		fprintf(f, "%.1f%%", 100.0 * (double)num / (double)den);
}

static const char CSS[] =
	"body{font:14px/1.4 sans-serif;color:#222;margin:24px;max-width:960px}"
	"h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px;"
	"border-bottom:1px solid #ccc}"
	".meta{color:#555}.kpis{display:flex;flex-wrap:wrap;gap:12px;margin:16px 0}"
	".kpi{border:1px solid #ccc;border-radius:6px;padding:8px 14px;min-width:110px}"
	".kpi b{display:block;font-size:24px}.kpi span{color:#555;font-size:12px}"
	"table{border-collapse:collapse;min-width:60%}td,th{border:1px solid #ccc;"
	"padding:3px 10px;text-align:right}th{background:#f2f2f2}td:first-child,"
	"th:first-child{text-align:left}"
	"svg text{font:11px sans-serif;fill:#333}.ok{color:#176c2a;font-weight:bold}"
	".bad{color:#b00020;font-weight:bold}code{font-size:12px;word-break:break-all}"
	"@media print{body{margin:0;max-width:none}h2{break-after:avoid}"
	"svg,table,.kpis{break-inside:avoid}.kpi{border-color:#000}"
	"rect{print-color-adjust:exact;-webkit-print-color-adjust:exact}}";

static void kpi(FILE *f, const char *label, int64_t num, int64_t den, int as_pct)
{
	fputs("<div class=\"kpi\"><b>", f);
	if (as_pct)
		pct(f, num, den);
	else
		fprintf(f, "%lld", (long long)num);
	fprintf(f, "</b><span>%s</span></div>\n", label);
}

static void axes(FILE *f, int64_t ymax, const char *ylabel)
{
	int plot_h = CHART_H - PAD_B - PAD_T;

	fprintf(f, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"#333\"/>\n",
		PAD_L, PAD_T, PAD_L, PAD_T + plot_h);
	fprintf(f, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"#333\"/>\n",
		PAD_L, PAD_T + plot_h, CHART_W - 8, PAD_T + plot_h);
	fprintf(f, "<text x=\"%d\" y=\"%d\" text-anchor=\"end\">%lld</text>\n", PAD_L - 4,
		PAD_T + 10, (long long)ymax);
	fprintf(f, "<text x=\"%d\" y=\"%d\" text-anchor=\"end\">0</text>\n", PAD_L - 4,
		PAD_T + plot_h);
	fprintf(f, "<text x=\"12\" y=\"%d\" transform=\"rotate(-90 12 %d)\" "
		"text-anchor=\"middle\">%s</text>\n", PAD_T + plot_h / 2, PAD_T + plot_h / 2, ylabel);
}

static double bar_h(int64_t v, int64_t ymax)
{
	return ymax > 0 ? (double)(CHART_H - PAD_B - PAD_T) * (double)v / (double)ymax : 0;
}

static void label(FILE *f, double x, const char *text)
{
	int y = CHART_H - PAD_B + 14;

	fprintf(f, "<text x=\"%.1f\" y=\"%d\" transform=\"rotate(-35 %.1f %d)\" "
		"text-anchor=\"end\">", x, y, x, y);
	esc(f, text);
	fputs("</text>\n", f);
}

static void chart_rate(FILE *f, const struct report_agg *a)
{
	double slot = (double)(CHART_W - PAD_L - 8) / a->rate_bins, per_hour;
	int64_t ymax = 0;
	int i, every = a->rate_bins > 24 ? (a->rate_bins + 23) / 24 : 1;

	if (slot > MAX_SLOT)
		slot = MAX_SLOT;
	per_hour = 3600000.0 / (double)a->rate_bin_ms;
	for (i = 0; i < a->rate_bins; i++)
		if ((int64_t)(a->rate[i] * per_hour + 0.5) > ymax)
			ymax = (int64_t)(a->rate[i] * per_hour + 0.5);
	fprintf(f, "<svg id=\"chart-rate\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" "
		"role=\"img\" aria-label=\"units per hour\">\n", CHART_W, CHART_H, CHART_W, CHART_H);
	axes(f, ymax, "units/hour");
	for (i = 0; i < a->rate_bins; i++) {
		int64_t start = a->span.first_ms + i * a->rate_bin_ms;
		int64_t rate = (int64_t)(a->rate[i] * per_hour + 0.5);
		double h = bar_h(rate, ymax), x = PAD_L + i * slot;
		char iso[CLOCK_ISO_LEN] = "";

		ST_IGNORE(clock_iso_ms(start, iso));
		fprintf(f, "<rect class=\"bar-rate\" data-start=\"%s\" data-units=\"%lld\" "
			"data-per-hour=\"%lld\" x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" "
			"fill=\"#3b6ea5\"><title>%s: %lld units (%lld/h)</title></rect>\n", iso,
			(long long)a->rate[i], (long long)rate, x + 1, CHART_H - PAD_B - h,
			slot > 3 ? slot - 2 : slot, h, iso, (long long)a->rate[i], (long long)rate);
		if (i % every == 0)
			label(f, x + slot / 2, iso + 11);   /* hh:mm:ss.mmmZ */
	}
	fputs("</svg>\n", f);
}

static void chart_pareto(FILE *f, const struct report_agg *a)
{
	const struct report_groups *r = &a->reasons;
	int n = r->n + r->other_used, i;
	double slot, cum = 0;
	int64_t ymax = 0, total = 0;

	for (i = 0; i < n; i++) {
		const struct report_group *g = i < r->n ? &r->g[i] : &r->other;

		total += g->failed;
		if (g->failed > ymax)
			ymax = g->failed;
	}
	if (!n) {
		fputs("<p>No failure in this lot.</p>\n", f);
		return;
	}
	slot = (double)(CHART_W - PAD_L - 40) / n;
	if (slot > MAX_SLOT)
		slot = MAX_SLOT;
	fprintf(f, "<svg id=\"chart-pareto\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" "
		"role=\"img\" aria-label=\"failures by reason code\">\n", CHART_W, CHART_H,
		CHART_W, CHART_H);
	axes(f, ymax, "failures");
	for (i = 0; i < n; i++) {
		const struct report_group *g = i < r->n ? &r->g[i] : &r->other;
		double h = bar_h(g->failed, ymax), x = PAD_L + i * slot;

		fputs("<rect class=\"bar-pareto\" data-reason=\"", f);
		esc(f, g->name);
		fprintf(f, "\" data-count=\"%lld\" x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" "
			"height=\"%.1f\" fill=\"#d9822b\"><title>", (long long)g->failed, x + 2,
			CHART_H - PAD_B - h, slot - 4, h);
		esc(f, g->name);
		fprintf(f, ": %lld</title></rect>\n", (long long)g->failed);
		label(f, x + slot / 2, g->name);
	}
	fputs("<polyline class=\"pareto-cumulative\" fill=\"none\" stroke=\"#b00020\" "
	      "stroke-width=\"2\" points=\"", f);
	for (i = 0; i < n; i++) {
		const struct report_group *g = i < r->n ? &r->g[i] : &r->other;

		cum += (double)g->failed;
		fprintf(f, "%.1f,%.1f ", PAD_L + i * slot + slot / 2,
			PAD_T + (CHART_H - PAD_B - PAD_T) * (1 - cum / (double)total));
	}
	fputs("\"/>\n", f);
	fprintf(f, "<text x=\"%.1f\" y=\"%d\" fill=\"#b00020\">100%% (cumulative)</text>\n",
		PAD_L + n * slot + 4, PAD_T + 10);
	fputs("</svg>\n", f);
}

static void chart_cycle(FILE *f, const struct report_agg *a)
{
	double slot = (double)(CHART_W - PAD_L - 8) / REPORT_CYCLE_BINS;
	int64_t ymax = 0;
	int i;

	for (i = 0; i < REPORT_CYCLE_BINS; i++)
		if (a->cycle[i] > ymax)
			ymax = a->cycle[i];
	fprintf(f, "<svg id=\"chart-cycle\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" "
		"role=\"img\" aria-label=\"cycle time histogram\">\n", CHART_W, CHART_H,
		CHART_W, CHART_H);
	axes(f, ymax, "units");
	for (i = 0; i < REPORT_CYCLE_BINS; i++) {
		int64_t lo = i * a->cycle_bin_ms, hi = lo + a->cycle_bin_ms;
		double h = bar_h(a->cycle[i], ymax), x = PAD_L + i * slot;
		char text[48];

		fprintf(f, "<rect class=\"bar-cycle\" data-lo-ms=\"%lld\" data-hi-ms=\"%lld\" "
			"data-count=\"%lld\" x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" "
			"fill=\"#4f9a5a\"><title>%lld-%lld ms: %lld</title></rect>\n", (long long)lo,
			(long long)hi, (long long)a->cycle[i], x + 1, CHART_H - PAD_B - h, slot - 2,
			h, (long long)lo, (long long)hi, (long long)a->cycle[i]);
		snprintf(text, sizeof(text), "%.2f s", (double)lo / 1000.0);
		label(f, x + 1, text);
	}
	fputs("</svg>\n", f);
}

static void group_row(FILE *f, const struct report_group *g)
{
	fputs("<tr><td>", f);
	esc(f, g->name);
	fprintf(f, "</td><td>%lld</td><td>%lld</td><td>%lld</td><td>", (long long)g->units,
		(long long)g->pass, (long long)g->failed);
	pct(f, g->pass, g->pass + g->failed);
	if (g->dur_n)
		fprintf(f, "</td><td>%.2f</td></tr>\n",
			(double)g->dur_sum_ms / (double)g->dur_n / 1000.0);
	else
		fputs("</td><td>&ndash;</td></tr>\n", f);
}

static void group_table(FILE *f, const char *id, const char *what,
			const struct report_groups *gs)
{
	int i;

	fprintf(f, "<table id=\"%s\"><tr><th>%s</th><th>units</th><th>pass</th>"
		"<th>failed</th><th>pass rate</th><th>mean cycle (s)</th></tr>\n", id, what);
	for (i = 0; i < gs->n; i++)
		group_row(f, &gs->g[i]);
	if (gs->other_used)
		group_row(f, &gs->other);
	fputs("</table>\n", f);
}

int report_html_write(FILE *f, const struct report_agg *a, const struct report_audit *au,
		      struct errbuf *err)
{
	const struct db_export_counts *c = &a->counts;
	char first[CLOCK_ISO_LEN] = "-", last[CLOCK_ISO_LEN] = "-";

	if (a->walked) {
		ST_IGNORE(clock_iso_ms(a->span.first_ms, first));
		ST_IGNORE(clock_iso_ms(a->span.last_ms, last));
	}
	fputs("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n<title>Lot ", f);
	esc(f, a->lot);
	fprintf(f, " report</title>\n<style>%s</style></head><body>\n<h1>Lot ", CSS);
	esc(f, a->lot);
	fputs("</h1>\n<p class=\"meta\">station ", f);
	esc(f, au->station_id);
	fprintf(f, " &middot; report made %s &middot; units from %s to %s</p>\n", au->generated,
		first, last);

	fputs("<div class=\"kpis\" id=\"kpis\">\n", f);
	kpi(f, "yield (boards on the allowlist)", c->boards_passed, c->boards, 1);
	kpi(f, "first-pass yield", c->boards_first_pass, c->boards_finished, 1);
	kpi(f, "units (attempts)", c->units, 0, 0);
	kpi(f, "pass", c->pass, 0, 0);
	kpi(f, "fail", c->fail, 0, 0);
	kpi(f, "reject", c->reject, 0, 0);
	kpi(f, "interrupted", c->interrupted, 0, 0);
	kpi(f, "in progress", c->in_progress, 0, 0);
	kpi(f, "strangers (not counted)", c->strangers, 0, 0);
	fprintf(f, "</div>\n<p>Yield: %lld of %lld boards on the allowlist passed; first-pass "
		"yield: %lld of %lld boards with a finished attempt passed at their first.  "
		"%lld units of %lld boards not on the allowlist are not counted.</p>\n",
		(long long)c->boards_passed, (long long)c->boards, (long long)c->boards_first_pass,
		(long long)c->boards_finished, (long long)c->stranger_units,
		(long long)c->strangers);

	if (!a->walked) {
		/* a lot with an allowlist and no unit yet: nothing to chart */
		fputs("<p id=\"no-units\">No unit has been run on this lot yet.</p>\n", f);
		goto audit;
	}
	fprintf(f, "<h2>Throughput (units per hour, bins of %lld s)</h2>\n",
		(long long)(a->rate_bin_ms / 1000));
	chart_rate(f, a);
	fputs("<h2>Failures by reason code (Pareto)</h2>\n", f);
	chart_pareto(f, a);
	fprintf(f, "<h2>Cycle time (%lld units, mean %.2f s)</h2>\n", (long long)a->cycle_n,
		a->cycle_n ? (double)a->cycle_sum_ms / (double)a->cycle_n / 1000.0 : 0.0);
	chart_cycle(f, a);
	fputs("<h2>Bays</h2>\n", f);
	group_table(f, "table-bays", "bay", &a->bays);
	fputs("<h2>Operators</h2>\n", f);
	group_table(f, "table-operators", "operator", &a->operators);

audit:
	fputs("<h2>Audit</h2>\n<p id=\"audit\">", f);
	if (au->verified)
		fprintf(f, "<span class=\"ok\">Audit chain verified</span> before this report: "
			"%lld events, %lld rows under the chain, %lld signed checkpoints.",
			(long long)au->events, (long long)au->rows, (long long)au->checkpoints);
	else
		fputs("<span class=\"bad\">Audit chain NOT verified.</span>", f);
	fprintf(f, "</p>\n<p>Chain head: sequence %lld, hash <code id=\"chain-head\">%s</code></p>\n",
		(long long)au->head_seq, au->head_hash);
	fputs("</body></html>\n", f);
	if (ferror(f))
		return errbuf_set(err, ST_EIO, "write report: %s", strerror(errno));
	return ST_OK;
}
