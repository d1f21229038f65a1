/* Unit tests: the lot report's aggregation (export/report.h) -- the streaming
 * read of a real SQLite lot (db/report.h) against the export's counts, the
 * fixed-size bins and the bounded tables with their "other" entry, the Pareto
 * order, and the HTML page (bars per chart, names escaped, nothing external). */
#include "tests/unit/export/export_rig.h"
#include "export/report.h"

static void test_report_real_lot(void **state)
{
	struct fixture *f = *state;
	struct db_export_counts c;
	struct report_agg *a = calloc(1, sizeof(*a));
	struct errbuf err;
	int64_t sum = 0;
	int i;

	assert_non_null(a);
	report_agg_init(a, "L1");
	assert_int_equal(db_report_lot(f->db, "L1", &a->counts, &a->span, report_agg_row, a, &err),
			 ST_OK);
	report_agg_finish(a);
	assert_int_equal(db_export_lot(f->db, "L1", &c, NULL, NULL, &err), ST_OK);
	assert_memory_equal(&c, &a->counts, sizeof(c));     /* the export's yield, to the unit */
	assert_int_equal(a->walked, 6);                     /* L1 only: not L2's unit */
	assert_true(a->span.first_ms > 0 && a->span.last_ms >= a->span.first_ms);
	/* fail, reject, two interrupted: four failures in the Pareto, most first */
	for (i = 0; i < a->reasons.n; i++) {
		sum += a->reasons.g[i].failed;
		if (i)
			assert_true(a->reasons.g[i].failed <= a->reasons.g[i - 1].failed);
	}
	assert_int_equal(sum, 4);
	assert_int_equal(a->bays.n, 4);                     /* 1-1 .. 1-4, sorted */
	assert_string_equal(a->bays.g[0].name, "1-1");
	assert_int_equal(a->bays.g[0].units, 2);
	assert_int_equal(a->bays.g[1].units, 2);
	assert_int_equal(a->bays.g[1].pass, 1);
	assert_int_equal(a->bays.g[1].failed, 1);
	assert_int_equal(a->operators.n, 1);
	assert_int_equal(a->operators.g[0].units, 6);
	assert_false(a->bays.other_used);
	for (i = 0, sum = 0; i < a->rate_bins; i++)
		sum += a->rate[i];
	assert_int_equal(sum, 6);                           /* every unit finished */

	/* L3: an allowlist, no unit: a page without charts */
	report_agg_init(a, "L3");
	assert_int_equal(db_report_lot(f->db, "L3", &a->counts, &a->span, report_agg_row, a, &err),
			 ST_OK);
	report_agg_finish(a);
	assert_int_equal(a->walked, 0);
	assert_int_equal(a->counts.allowlisted, 2);
	{
		struct report_audit au = { .verified = 1 };
		char *buf = NULL;
		size_t len = 0;
		FILE *mf = open_memstream(&buf, &len);

		assert_int_equal(report_html_write(mf, a, &au, &err), ST_OK);
		fclose(mf);
		assert_non_null(strstr(buf, "id=\"no-units\""));
		assert_null(strstr(buf, "<svg"));
		free(buf);
	}

	report_agg_init(a, "NOPE");
	assert_int_equal(db_report_lot(f->db, "NOPE", &a->counts, &a->span, report_agg_row, a, &err),
			 ST_ENOTFOUND);
	free(a);
}

static void row(struct report_agg *a, const char *bay, const char *op, const char *status,
		const char *code, int64_t finished, int64_t dur)
{
	struct db_report_unit u = {
		.unit_id = a->walked + 1, .unique_id = "X", .bay = bay, .operator_name = op,
		.status = status, .reason_code = code, .started_ms = finished - dur,
		.finished_ms = finished, .duration_ms = dur, .on_allowlist = 1,
	};

	assert_int_equal(report_agg_row(&u, a), 0);
}

static void test_report_bounded(void **state)
{
	struct report_agg *a = calloc(1, sizeof(*a));
	const int64_t t0 = 1700000000000;
	char name[32], code[32];
	int i, j;

	(void)state;
	assert_non_null(a);
	report_agg_init(a, "LB");
	/* what db_report_lot() reads first: two hours, the longest unit 1999 ms */
	a->span.first_ms = t0;
	a->span.last_ms = t0 + 2 * 3600000;
	a->span.max_duration_ms = 1999;
	for (i = 0; i < 40; i++) {
		snprintf(name, sizeof(name), "bay-%02d", i);
		snprintf(code, sizeof(code), "code_%02d", i);
		/* code_i fails i+1 times: 40 codes, 32 kept, 8 summed in "other" */
		for (j = 0; j <= i; j++)
			row(a, name, name, "fail", code, t0 + i * 60000, 100 * j % 2000);
		row(a, name, name, "pass", "", t0 + 2 * 3600000, 1999);
	}
	row(a, "", "", "reject", "", t0, 0);                 /* no bay, no code */
	report_agg_finish(a);

	assert_int_equal(a->rate_bin_ms, 300000);            /* 5 min: 25 bins of 96 */
	assert_int_equal(a->rate_bins, 25);
	assert_int_equal(a->rate[24], 40);                   /* the passes at the end */
	assert_int_equal(a->cycle_bin_ms, 100);
	/* the 40 passes of 1999 ms, and the 22 failures of 1900 ms (j = 19 or 39) */
	assert_int_equal(a->cycle[REPORT_CYCLE_BINS - 1], 40 + 22);
	assert_int_equal(a->bays.n, REPORT_MAX_KEYS);
	assert_true(a->bays.other_used);
	assert_string_equal(a->bays.other.name, "other");
	/* bays 32..39 and the unnamed one, which arrives after the table is full */
	assert_int_equal(a->bays.other.units, (33 + 40) * 8 / 2 + 8 + 1);
	assert_int_equal(a->operators.other.units, a->bays.other.units);
	assert_int_equal(a->reasons.n, REPORT_MAX_KEYS);
	assert_string_equal(a->reasons.g[0].name, "code_31"); /* the most kept, first */
	assert_int_equal(a->reasons.g[0].failed, 32);
	assert_string_equal(a->reasons.g[31].name, "code_00");
	assert_int_equal(a->reasons.other.failed, (33 + 40) * 8 / 2 + 1);   /* + UNKNOWN */
	assert_int_equal(a->walked, 40 * 41 / 2 + 40 + 1);
	free(a);
}

static size_t count(const char *s, const char *what)
{
	size_t n = 0;

	for (; (s = strstr(s, what)); s++)
		n++;
	return n;
}

static void test_report_html(void **state)
{
	struct report_agg *a = calloc(1, sizeof(*a));
	struct report_audit au = { .verified = 1, .events = 9, .head_seq = 9 };
	struct errbuf err;
	char *buf = NULL;
	size_t len = 0;
	FILE *f;

	(void)state;
	assert_non_null(a);
	snprintf(au.head_hash, sizeof(au.head_hash), PK("e"));
	report_agg_init(a, "LH");
	a->span.first_ms = 1700000000000;
	a->span.last_ms = a->span.first_ms + 50000;
	a->span.max_duration_ms = 900;
	row(a, "<b>", "o&p", "pass", "", a->span.first_ms + 1000, 900);
	row(a, "1-1", "o&p", "fail", "timeout", a->span.first_ms + 20000, 400);
	row(a, "1-1", "o&p", "reject", "not_on_lot", a->span.first_ms + 50000, 10);
	row(a, "1-1", "o&p", "fail", "timeout", a->span.first_ms + 50000, 10);
	report_agg_finish(a);
	assert_non_null(f = open_memstream(&buf, &len));
	assert_int_equal(report_html_write(f, a, &au, &err), ST_OK);
	fclose(f);
	assert_int_equal(count(buf, "<rect class=\"bar-pareto\""), 2);
	assert_non_null(strstr(buf, "data-reason=\"timeout\" data-count=\"2\""));
	assert_int_equal(count(buf, "<rect class=\"bar-cycle\""), REPORT_CYCLE_BINS);
	assert_int_equal(count(buf, "<rect class=\"bar-rate\""), 6);     /* 50 s in 10 s bins */
	assert_non_null(strstr(buf, "<td>&lt;b&gt;</td>"));
	assert_non_null(strstr(buf, "<td>o&amp;p</td><td>4</td><td>1</td><td>3</td>"));
	assert_null(strstr(buf, "<td><b>"));
	assert_null(strstr(buf, "http"));
	assert_null(strstr(buf, "<script"));
	assert_non_null(strstr(buf, PK("e")));
	free(buf);
	free(a);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_report_real_lot, setup, teardown),
		cmocka_unit_test(test_report_bounded),
		cmocka_unit_test(test_report_html),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
