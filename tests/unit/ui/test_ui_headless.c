/* Unit tests: ui_headless, the JSON-lines event writer. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ui/headless.h"

static struct ev_event base(enum ev_kind kind)
{
	struct ev_event ev;

	memset(&ev, 0, sizeof(ev));
	ev.seq = 42;
	ev.t_ms = 1795313133850LL;      /* 2026-11-22T02:05:33.850Z */
	ev.kind = kind;
	ev.bay_index = 2;
	snprintf(ev.bay, sizeof(ev.bay), "1-1.3");
	snprintf(ev.unique_id, sizeof(ev.unique_id), "0A1B2C3D4E5F60718293A4B5");
	return ev;
}

/* Runs the sink into a memory stream; returns the text written (malloc'd). */
static char *through_sink(const struct ev_event *evs, int n)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	struct ui_headless h;

	assert_non_null(f);
	ui_headless_init(&h, f);
	for (int i = 0; i < n; i++)
		ui_headless_sink(&evs[i], &h);
	assert_int_equal(h.lines, n);
	assert_false(h.write_failed);
	fclose(f);
	return buf;
}

static void test_unit_result_exact_line(void **state)
{
	struct ev_event ev = base(EV_UNIT_RESULT);
	char *out;

	(void)state;
	ev.stage = EV_STAGE_FLASH;
	ev.outcome = EV_OUT_FAIL;
	ev.unit_id = 17;
	snprintf(ev.reason, sizeof(ev.reason), "board said \"no\" at 0x4000");
	out = through_sink(&ev, 1);
	assert_string_equal(out,
		"{\"seq\":42,\"t_ms\":1795313133850,\"time\":\"2026-11-22T02:05:33.850Z\","
		"\"kind\":\"unit-result\",\"bay_index\":2,\"bay\":\"1-1.3\","
		"\"unique_id\":\"0A1B2C3D4E5F60718293A4B5\",\"stage\":\"flash\",\"outcome\":\"fail\","
		"\"reason\":\"board said \\\"no\\\" at 0x4000\",\"unit_id\":17}\n");
	free(out);
}

/* A failed unit's reason code follows reason; line-started carries its
 * fields as keys after the common ones. */
static void test_reason_code_and_line_fields(void **state)
{
	struct ev_event evs[2];
	char *out, *nl;

	(void)state;
	evs[0] = base(EV_UNIT_RESULT);
	evs[0].stage = EV_STAGE_LOCK;
	evs[0].outcome = EV_OUT_FAIL;
	evs[0].reason_code = ST_R_LOCK_REFUSED;
	evs[0].unit_id = 9;
	snprintf(evs[0].reason, sizeof(evs[0].reason), "board refused to lock");
	evs[1] = base(EV_LINE_STARTED);
	evs[1].bay_index = -1;
	evs[1].bay[0] = evs[1].unique_id[0] = '\0';
	snprintf(evs[1].line.station_id, sizeof(evs[1].line.station_id), "st-07");
	snprintf(evs[1].line.operator_name, sizeof(evs[1].line.operator_name), "ann");
	snprintf(evs[1].line.profile, sizeof(evs[1].line.profile), "widget");
	evs[1].line.profile_version = 2;
	snprintf(evs[1].line.lot, sizeof(evs[1].line.lot), "L1");
	evs[1].line.nbays = 4;
	out = through_sink(evs, 2);
	nl = strchr(out, '\n');
	assert_non_null(nl);
	*nl = '\0';
	assert_non_null(strstr(out, "\"outcome\":\"fail\",\"reason\":\"board refused to lock\","
				    "\"reason_code\":\"lock_refused\",\"unit_id\":9}"));
	assert_non_null(strstr(nl + 1, "\"reason\":null,\"station_id\":\"st-07\",\"operator\":\"ann\","
				       "\"profile\":\"widget\",\"profile_version\":2,\"lot\":\"L1\","
				       "\"bays\":4}\n"));
	free(out);
}

static void test_line_event_nulls_and_parse_back(void **state)
{
	struct ev_event evs[2];
	json_error_t jerr;
	char *out, *nl;
	json_t *o;

	(void)state;
	evs[0] = base(EV_LINE_STARTED);
	evs[0].bay_index = -1;
	evs[0].bay[0] = evs[0].unique_id[0] = '\0';
	evs[1] = base(EV_PROGRESS);
	evs[1].seq = 43;
	evs[1].stage = EV_STAGE_FLASH;
	evs[1].done = 3 * 65536;
	evs[1].total = 4 * 65536;
	out = through_sink(evs, 2);

	/* exactly two lines, each a complete JSON object */
	nl = strchr(out, '\n');
	assert_non_null(nl);
	assert_string_equal(strchr(nl + 1, '\n'), "\n");
	*nl = '\0';
	o = json_loads(out, 0, &jerr);
	assert_non_null(o);
	assert_int_equal(json_integer_value(json_object_get(o, "bay_index")), -1);
	assert_true(json_is_null(json_object_get(o, "bay")));
	assert_true(json_is_null(json_object_get(o, "unique_id")));
	assert_true(json_is_null(json_object_get(o, "reason")));
	assert_string_equal(json_string_value(json_object_get(o, "kind")), "line-started");
	assert_string_equal(json_string_value(json_object_get(o, "stage")), "none");
	assert_null(json_object_get(o, "unit_id"));
	assert_null(json_object_get(o, "progress"));
	json_decref(o);

	o = json_loads(nl + 1, 0, &jerr);
	assert_non_null(o);
	assert_int_equal(json_integer_value(json_object_get(o, "seq")), 43);
	assert_int_equal(json_integer_value(json_object_get(o, "done")), 3 * 65536);
	assert_int_equal(json_integer_value(json_object_get(o, "total")), 4 * 65536);
	assert_float_equal(json_real_value(json_object_get(o, "progress")), 0.75, 1e-12);
	assert_string_equal(json_string_value(json_object_get(o, "stage")), "flash");
	assert_int_equal(json_object_size(o), 13);
	json_decref(o);
	free(out);
}

static void test_bad_utf8_and_unterminated_fields(void **state)
{
	struct ev_event ev = base(EV_LOG);
	json_error_t jerr;
	json_t *o;
	char *line;
	const char *r;

	(void)state;
	/* valid 2-, 3- and 4-byte sequences, then garbage: lone continuation,
	 * truncated lead, overlong '/', a UTF-16 surrogate */
	snprintf(ev.reason, sizeof(ev.reason),
		 "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80|\x80|\xc3|\xc0\xaf|\xed\xa0\x80|end");
	memset(ev.bay, 'B', sizeof(ev.bay));    /* no terminator at all */
	line = ui_headless_format(&ev);
	assert_non_null(line);
	o = json_loads(line, 0, &jerr);
	assert_non_null(o);
	r = json_string_value(json_object_get(o, "reason"));
	assert_string_equal(r, "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80|?|?|??|???|end");
	assert_int_equal(strlen(json_string_value(json_object_get(o, "bay"))), EV_BAY_LEN);
	json_decref(o);
	free(line);
}

static void test_every_kind_is_valid_json(void **state)
{
	(void)state;
	for (int k = 0; k <= EV_KIND_COUNT; k++) {
		struct ev_event ev = base((enum ev_kind)k);
		json_error_t jerr;
		char *line;
		json_t *o;

		memset(ev.reason, 'r', sizeof(ev.reason));     /* full, unterminated */
		ev.stage = (enum ev_stage)(k % (EV_STAGE_COUNT + 1));
		ev.outcome = (enum ev_outcome)(k % (EV_OUT_COUNT + 1));
		line = ui_headless_format(&ev);
		assert_non_null(line);
		assert_int_equal(line[strlen(line) - 1], '\n');
		assert_null(strchr(line, '\n') == line + strlen(line) - 1 ? NULL : line);
		o = json_loads(line, 0, &jerr);
		assert_non_null(o);
		assert_string_equal(json_string_value(json_object_get(o, "kind")),
				    ev_kind_name((enum ev_kind)k));
		assert_int_equal(strlen(json_string_value(json_object_get(o, "reason"))),
				 EV_REASON_LEN);
		json_decref(o);
		free(line);
	}
}

static void test_iso8601(void **state)
{
	char buf[32];

	(void)state;
	ui_iso8601_ms(buf, sizeof(buf), 0);
	assert_string_equal(buf, "1970-01-01T00:00:00.000Z");
	ui_iso8601_ms(buf, sizeof(buf), 1795313133007LL);
	assert_string_equal(buf, "2026-11-22T02:05:33.007Z");
	ui_iso8601_ms(buf, sizeof(buf), -1);
	assert_string_equal(buf, "1969-12-31T23:59:59.999Z");
}

static void test_write_failure_is_reported(void **state)
{
	struct ev_event ev = base(EV_LOG);
	struct ui_headless h;
	FILE *f = fopen("/dev/full", "w");

	(void)state;
	if (!f)
		skip();
	ui_headless_init(&h, f);
	ui_headless_sink(&ev, &h);
	assert_true(h.write_failed);
	assert_int_equal(h.lines, 0);
	fclose(f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_unit_result_exact_line),
		cmocka_unit_test(test_line_event_nulls_and_parse_back),
		cmocka_unit_test(test_reason_code_and_line_fields),
		cmocka_unit_test(test_bad_utf8_and_unterminated_fields),
		cmocka_unit_test(test_every_kind_is_valid_json),
		cmocka_unit_test(test_iso8601),
		cmocka_unit_test(test_write_failure_is_reported),
	};

	return cmocka_run_group_tests_name("ui_headless", tests, NULL, NULL);
}
