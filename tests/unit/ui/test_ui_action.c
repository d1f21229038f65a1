/* ui_action: every verdict has an action, the plain texts fit a tile, and
 * docs/operator.md holds the same table. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ui/action.h"

static void test_actions(void **state)
{
	(void)state;
	assert_string_equal(ui_action_for(UI_VERDICT_PASS, ST_R_NONE), UI_ACTION_PASS);
	assert_string_equal(ui_action_for(UI_VERDICT_FAIL, ST_R_BOARD_TIMEOUT), UI_ACTION_FAIL);
	assert_string_equal(ui_action_for(UI_VERDICT_REJECT, ST_R_NOT_ON_LOT), UI_ACTION_REJECT);
	/* a REJECT goes to QA whatever its code */
	assert_string_equal(ui_action_for(UI_VERDICT_REJECT, ST_R_UNPLUGGED), UI_ACTION_REJECT);
	assert_string_equal(ui_action_for(UI_VERDICT_FAIL, ST_R_UNPLUGGED), "plug it in again");
	assert_string_equal(ui_action_plain(ST_R_NOT_ON_LOT), "not on this lot's list");
	assert_null(ui_action_plain(ST_R_NONE));
}

static void test_table_fits_and_is_documented(void **state)
{
	char path[512], *doc;
	const char *top = getenv("STATION_TOP");
	int n;
	const struct ui_action_row *rows = ui_action_table(&n);
	FILE *f;
	long len;

	(void)state;
	snprintf(path, sizeof(path), "%s/docs/operator.md", top ? top : ".");
	f = fopen(path, "r");
	assert_non_null(f);
	fseek(f, 0, SEEK_END);
	len = ftell(f);
	rewind(f);
	doc = calloc(1, (size_t)len + 1);
	assert_non_null(doc);
	assert_int_equal(fread(doc, 1, (size_t)len, f), (size_t)len);
	fclose(f);
	for (int i = 0; i < n; i++) {
		char row[160];

		assert_true(strlen(rows[i].plain) <= UI_PLAIN_MAX);
		/* "| not_on_lot | not on this lot's list |" */
		snprintf(row, sizeof(row), "| %s | %s |", st_reason_name(rows[i].code), rows[i].plain);
		if (!strstr(doc, row))
			fail_msg("docs/operator.md lacks the row '%s'", row);
	}
	free(doc);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_actions),
		cmocka_unit_test(test_table_fits_and_is_documented),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
