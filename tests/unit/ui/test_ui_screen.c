/* Unit tests: the screen's layout and its thread-safe event sink (no terminal). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "ui/screen.h"

/* Every layout must fit the terminal and leave the log at least one row. */
static void check_fits(const struct ui_layout *l, int n, int lines, int cols)
{
	assert_false(l->too_small);
	assert_true(l->grid_cols * l->grid_rows >= n);
	assert_true((l->grid_rows - 1) * l->grid_cols < n);     /* no empty row */
	assert_true(l->grid_cols * l->tile_w <= cols);
	assert_true(l->tile_h >= 2);
	assert_int_equal(l->tiles_y, 2);
	assert_int_equal(l->counters_y, 2 + l->grid_rows * l->tile_h);
	assert_int_equal(l->log_y, l->counters_y + 1);
	assert_true(l->log_h >= 1);
	assert_int_equal(l->keys_y, lines - 1);
	assert_int_equal(l->log_y + l->log_h, l->keys_y);
}

static void test_layout_80x24(void **state)
{
	struct ui_layout l;

	(void)state;
	/* 4 bays: 2x2 tiles wide enough for a whole unique id, tall enough
	 * for the 3-row verdict block */
	ui_screen_layout(&l, 4, 24, 80);
	check_fits(&l, 4, 24, 80);
	assert_int_equal(l.grid_cols, 2);
	assert_int_equal(l.tile_w, 40);
	assert_true(l.tile_h >= 7);

	/* 8 bays: 2 columns x 4 rows of 4-line tiles (title, id, verdict, reason) */
	ui_screen_layout(&l, 8, 24, 80);
	check_fits(&l, 8, 24, 80);
	assert_int_equal(l.grid_cols, 2);
	assert_int_equal(l.tile_h, 4);
	assert_true(l.log_h >= 3);
}

static void test_layout_larger_and_capped(void **state)
{
	struct ui_layout l;

	(void)state;
	ui_screen_layout(&l, 4, 30, 100);
	check_fits(&l, 4, 30, 100);
	assert_int_equal(l.grid_cols, 2);
	ui_screen_layout(&l, 4, 60, 200);
	check_fits(&l, 4, 60, 200);
	/* spare height goes to the tiles, not the log (issue 14) */
	assert_true(l.tile_h >= 20);
	assert_true(l.log_h <= 6);
	ui_screen_layout(&l, 1, 24, 80);
	check_fits(&l, 1, 24, 80);
	assert_int_equal(l.grid_cols, 1);
	ui_screen_layout(&l, 0, 24, 80);        /* no bays yet: still a sane grid */
	check_fits(&l, 1, 24, 80);
}

static void test_layout_many_bays_and_small_terms(void **state)
{
	struct ui_layout l;

	(void)state;
	for (int n = 1; n <= UI_MAX_BAYS; n++)
		for (int lines = UI_MIN_LINES; lines <= 60; lines += 3)
			for (int cols = UI_MIN_COLS; cols <= 220; cols += 9) {
				ui_screen_layout(&l, n, lines, cols);
				if (!l.too_small)
					check_fits(&l, n, lines, cols);
			}
	ui_screen_layout(&l, 16, 24, 80);
	check_fits(&l, 16, 24, 80);
	ui_screen_layout(&l, 4, UI_MIN_LINES - 1, 80);
	assert_true(l.too_small);
	ui_screen_layout(&l, 4, 24, UI_MIN_COLS - 1);
	assert_true(l.too_small);
	ui_screen_layout(&l, 4, UI_MIN_LINES, UI_MIN_COLS);
	check_fits(&l, 4, UI_MIN_LINES, UI_MIN_COLS);
}

static void test_bay_keys(void **state)
{
	(void)state;
	assert_int_equal(ui_bay_key(0), '1');
	assert_int_equal(ui_bay_key(8), '9');
	assert_int_equal(ui_bay_key(9), 'a');
	assert_int_equal(ui_bay_key(15), 'g');
	assert_int_equal(ui_bay_key(16), 0);
	assert_int_equal(ui_bay_key(-1), 0);
}

struct feeder_arg {
	struct ui_screen *scr;
	int bay;
};

#define UNITS_PER_BAY 500

/* A pipeline thread: units through one bay, straight into the sink. */
static void *feeder(void *p)
{
	struct feeder_arg *a = p;
	struct ev_event ev;

	for (int i = 0; i < UNITS_PER_BAY; i++) {
		memset(&ev, 0, sizeof(ev));
		ev.t_ms = 1795313133850LL + i;
		ev.bay_index = a->bay;
		ev.kind = EV_BAY_ARRIVED;
		ui_screen_sink(&ev, a->scr);
		snprintf(ev.unique_id, sizeof(ev.unique_id), "%08X%016X", a->bay, i);
		ev.kind = EV_PROGRESS;
		ev.stage = EV_STAGE_FLASH;
		ev.done = 1;
		ev.total = 2;
		ui_screen_sink(&ev, a->scr);
		ev.kind = EV_UNIT_RESULT;
		ev.outcome = i % 5 ? EV_OUT_PASS : EV_OUT_FAIL;
		ui_screen_sink(&ev, a->scr);
	}
	return NULL;
}

static void test_sink_from_many_threads(void **state)
{
	struct ui_screen *scr = ui_screen_new(4, NULL);
	static struct ui_model m;
	struct feeder_arg args[4];
	pthread_t th[4];

	(void)state;
	assert_non_null(scr);
	ui_screen_set_header(scr, "st-1", "ann", "p1", "L1", "x.db");
	for (int i = 0; i < 4; i++) {
		args[i].scr = scr;
		args[i].bay = i;
		assert_int_equal(pthread_create(&th[i], NULL, feeder, &args[i]), 0);
	}
	for (int i = 0; i < 4; i++)
		pthread_join(th[i], NULL);
	ui_screen_snapshot(scr, &m);
	assert_int_equal(m.pass + m.fail, 4 * UNITS_PER_BAY);
	assert_int_equal(m.fail, 4 * UNITS_PER_BAY / 5);
	assert_int_equal(m.fp_attempted, 4 * UNITS_PER_BAY);
	assert_int_equal(ui_model_in_flight(&m), 0);
	assert_string_equal(m.operator_name, "ann");
	assert_null(m.uids);
	ui_screen_free(scr);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_layout_80x24),
		cmocka_unit_test(test_layout_larger_and_capped),
		cmocka_unit_test(test_layout_many_bays_and_small_terms),
		cmocka_unit_test(test_bay_keys),
		cmocka_unit_test(test_sink_from_many_threads),
	};

	return cmocka_run_group_tests_name("ui_screen", tests, NULL, NULL);
}
