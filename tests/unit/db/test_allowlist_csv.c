/*
 * Unit tests: the allowlist file format (db/allowlist_csv.h) without a
 * database: rows handed on in order with their lines, the byte order mark
 * skipped, quoted fields, every refusal naming FILE:LINE, the first error stopping the parse,
 * and a refusal by the row callback passed through unchanged.  The import
 * around it is tested in test_db_records.c and tests/e2e/allowlist_import.sh.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "core/ids.h"
#include "db/allowlist_csv.h"
#include "db/db.h"

#define HDR  "unique_id,lot,model,hw_revision\n"
#define UID1 "0123456789ABCDEF01234567"
#define UID2 "0123456789ABCDEF01234568"

struct got {
	int  n;
	long line[4];
	char uid[4][32];
	int  refuse_at;      /* refuse the n-th row (1-based), 0 = never */
};

static int take(const struct allowlist_row *r, void *ctx, struct errbuf *err)
{
	struct got *g = ctx;

	if (g->refuse_at && g->n + 1 == g->refuse_at)
		return allowlist_csv_fail(r, err, ST_EEXIST, "refused %s", r->unique_id);
	assert_string_equal(r->path, "a.csv");
	assert_string_equal(r->lot, "L1");
	if (g->n < 4) {
		g->line[g->n] = r->line;
		snprintf(g->uid[g->n], sizeof(g->uid[0]), "%s", r->unique_id);
	}
	g->n++;
	return ST_OK;
}

static int parse(const char *text, struct got *g, int64_t *rows, struct errbuf *e)
{
	errbuf_clear(e);
	return allowlist_csv_parse((const uint8_t *)text, strlen(text), "a.csv", "L1", take, g,
				   rows, e);
}

static void test_rows_in_order(void **state)
{
	struct got g = { 0 };
	struct errbuf e;
	int64_t rows = -1;

	(void)state;
	assert_int_equal(parse("\xef\xbb\xbf" HDR UID1 ",L1,M,r1\r\n\"" UID2 "\",L1,\"M, X\",r1\n",
			       &g, &rows, &e), ST_OK);
	assert_int_equal(rows, 2);
	assert_int_equal(g.n, 2);
	assert_string_equal(g.uid[0], UID1);
	assert_int_equal(g.line[0], 2);
	assert_string_equal(g.uid[1], UID2);
	assert_int_equal(g.line[1], 3);
}

static void test_refusals_name_the_line(void **state)
{
	static const struct {
		const char *text, *msg;
	} cases[] = {
		{ "", "a.csv:1: empty file: expected the header \"unique_id,lot,model,hw_revision\"" },
		{ HDR, "a.csv: no rows after the header" },
		{ "uid,lot,model,hw_revision\n", "a.csv:1: header must be exactly "
		  "\"unique_id,lot,model,hw_revision\" (field 1 is \"uid\")" },
		{ HDR UID1 ",L1,M,r1\n0123456789abcdef01234567,L1,M,r1\n",
		  "a.csv:3: unique id \"0123456789abcdef01234567\" is not 24 upper-case hex digits" },
		{ HDR UID1 ",L2,M,r1\n", "a.csv:2: lot \"L2\" does not match --lot L1" },
		{ HDR UID1 ",L1,,r1\n", "a.csv:2: model must be 1..64 printable UTF-8 characters" },
		{ HDR UID1 ",L1,M\n", "a.csv:2: expected 4 fields (unique_id,lot,model,hw_revision), found 3" },
		{ HDR UID1 ",L1,M,\"r1\n", "a.csv:2: malformed CSV: " },
	};
	struct errbuf e;

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct got g = { 0 };
		int64_t rows = -1;

		assert_int_equal(parse(cases[i].text, &g, &rows, &e), ST_EINVAL);
		assert_int_equal(e.code, ST_EINVAL);
		assert_memory_equal(e.msg, cases[i].msg, strlen(cases[i].msg));
	}
}

static void test_line_too_long(void **state)
{
	static char text[ALLOWLIST_CSV_LINE_MAX + 200];
	struct got g = { 0 };
	struct errbuf e;
	int64_t rows;

	(void)state;
	snprintf(text, sizeof(text), HDR "%s,L1,M,", UID1);
	memset(text + strlen(text), 'r', ALLOWLIST_CSV_LINE_MAX);
	text[sizeof(text) - 2] = '\n';
	assert_int_equal(parse(text, &g, &rows, &e), ST_EINVAL);
	assert_string_equal(e.msg, "a.csv:2: line longer than 4096 bytes");
	assert_int_equal(g.n, 0);
}

static void test_callback_refusal_stops(void **state)
{
	struct got g = { .refuse_at = 2 };
	struct errbuf e;
	int64_t rows = -1;

	(void)state;
	assert_int_equal(parse(HDR UID1 ",L1,M,r1\n" UID2 ",L1,M,r1\nbad,L1,M,r1\n", &g, &rows, &e),
			 ST_EEXIST);
	assert_string_equal(e.msg, "a.csv:3: refused " UID2);
	assert_int_equal(g.n, 1);
	assert_int_equal(rows, 1);
}

static void test_unique_id_rule(void **state)
{
	(void)state;
	assert_true(ids_uid_valid(UID1));
	assert_false(ids_uid_valid("0123456789abcdef01234567"));
	assert_false(ids_uid_valid(UID1 "8"));
	assert_false(ids_uid_valid(NULL));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rows_in_order),
		cmocka_unit_test(test_refusals_name_the_line),
		cmocka_unit_test(test_line_too_long),
		cmocka_unit_test(test_callback_refusal_stops),
		cmocka_unit_test(test_unique_id_rule),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
