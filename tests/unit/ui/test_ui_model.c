/* Unit tests: ui_model, the screen's state computed from events. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "ui/model.h"

#define T0 1795300000000LL      /* 2026-11-21T22:26:40Z */

static int64_t clock_ms = T0;

static struct ev_event mk(enum ev_kind kind, int bay, const char *uid, enum ev_stage stage,
			  enum ev_outcome out, const char *reason)
{
	struct ev_event ev;
	static uint64_t seq;

	memset(&ev, 0, sizeof(ev));
	ev.seq = ++seq;
	ev.t_ms = clock_ms;
	ev.kind = kind;
	ev.bay_index = bay;
	if (bay >= 0)
		snprintf(ev.bay, sizeof(ev.bay), "1-1.%d", bay + 1);
	snprintf(ev.unique_id, sizeof(ev.unique_id), "%s", uid ? uid : "");
	ev.stage = stage;
	ev.outcome = out;
	snprintf(ev.reason, sizeof(ev.reason), "%s", reason ? reason : "");
	return ev;
}

static void apply(struct ui_model *m, enum ev_kind kind, int bay, const char *uid,
		  enum ev_stage stage, enum ev_outcome out, const char *reason)
{
	struct ev_event ev = mk(kind, bay, uid, stage, out, reason);

	ui_model_apply(m, &ev);
}

/* A whole unit in one bay: arrive, identify, result. */
static void unit(struct ui_model *m, int bay, const char *uid, enum ev_outcome out,
		 enum ev_stage at, const char *reason)
{
	apply(m, EV_BAY_ARRIVED, bay, NULL, EV_STAGE_DETECT, EV_OUT_NONE, NULL);
	apply(m, EV_STAGE_BEGIN, bay, uid, EV_STAGE_IDENTIFY, EV_OUT_NONE, NULL);
	apply(m, EV_UNIT_RESULT, bay, uid, at, out, reason);
}

static int setup(void **state)
{
	static struct ui_model m;

	clock_ms = T0;
	assert_int_equal(ui_model_init(&m, 4), 0);
	*state = &m;
	return 0;
}

static int teardown(void **state)
{
	ui_model_free(*state);
	return 0;
}

static void test_init_shows_configured_tiles(void **state)
{
	struct ui_model *m = *state;

	assert_int_equal(m->ntiles, 4);
	for (int i = 0; i < 4; i++) {
		assert_int_equal(m->tiles[i].verdict, UI_VERDICT_NONE);
		assert_true(m->tiles[i].progress < 0);
		assert_false(m->tiles[i].busy);
	}
	assert_int_equal(ui_model_in_flight(m), 0);
	assert_true(ui_model_fpy(m) < 0);
	assert_true(ui_model_uph(m, T0) == 0.0);
	assert_null(ui_model_log_line(m, 0));
}

static void test_unit_lifecycle_on_a_tile(void **state)
{
	struct ui_model *m = *state;
	struct ev_event ev;
	const char *uid = "0A1B2C3D4E5F60718293A4B5";
	struct ui_tile *t = &m->tiles[1];

	apply(m, EV_BAY_ARRIVED, 1, NULL, EV_STAGE_DETECT, EV_OUT_NONE, NULL);
	assert_true(t->present);
	assert_true(t->busy);
	assert_string_equal(t->bay, "1-1.2");
	assert_string_equal(t->unique_id, "");
	assert_int_equal(ui_model_in_flight(m), 1);

	apply(m, EV_STAGE_BEGIN, 1, uid, EV_STAGE_FLASH, EV_OUT_NONE, NULL);
	assert_string_equal(t->unique_id, uid);
	assert_int_equal(t->stage, EV_STAGE_FLASH);
	assert_true(t->progress < 0);

	ev = mk(EV_PROGRESS, 1, uid, EV_STAGE_FLASH, EV_OUT_NONE, NULL);
	ev.done = 300;
	ev.total = 1200;
	ui_model_apply(m, &ev);
	assert_float_equal(t->progress, 0.25, 1e-9);
	ev.done = 5000;         /* a bogus overshoot is clamped */
	ui_model_apply(m, &ev);
	assert_float_equal(t->progress, 1.0, 1e-9);
	ev.done = 10;
	ev.total = 0;           /* no total: progress unchanged, no division */
	ui_model_apply(m, &ev);
	assert_float_equal(t->progress, 1.0, 1e-9);

	apply(m, EV_STAGE_END, 1, uid, EV_STAGE_FLASH, EV_OUT_OK, NULL);
	assert_true(t->progress < 0);
	apply(m, EV_STAGE_BEGIN, 1, NULL, EV_STAGE_KEYGEN, EV_OUT_NONE, NULL);
	assert_string_equal(t->unique_id, uid);         /* kept without a new id */
	assert_int_equal(t->stage, EV_STAGE_KEYGEN);

	apply(m, EV_UNIT_RESULT, 1, uid, EV_STAGE_COMMIT, EV_OUT_PASS, NULL);
	assert_int_equal(t->verdict, UI_VERDICT_PASS);
	assert_false(t->busy);
	assert_int_equal(ui_model_in_flight(m), 0);
	assert_int_equal(m->pass, 1);
	assert_string_equal(ui_model_log_line(m, 0), "22:26:40 bay 2 (1-1.2): PASS " "0A1B2C3D4E5F60718293A4B5");
}

static void test_verdict_kept_until_next_board(void **state)
{
	struct ui_model *m = *state;
	struct ui_tile *t = &m->tiles[0];

	unit(m, 0, "000000000000000000000001", EV_OUT_FAIL, EV_STAGE_FLASH,
	     "board stopped answering");
	assert_int_equal(t->verdict, UI_VERDICT_FAIL);
	assert_int_equal(t->verdict_stage, EV_STAGE_FLASH);
	assert_string_equal(t->reason, "board stopped answering");

	apply(m, EV_BAY_LEFT, 0, NULL, EV_STAGE_NONE, EV_OUT_NONE, NULL);
	assert_false(t->present);
	assert_int_equal(t->verdict, UI_VERDICT_FAIL);          /* still shown */
	assert_string_equal(t->reason, "board stopped answering");
	assert_string_equal(t->unique_id, "000000000000000000000001");

	apply(m, EV_BAY_ARRIVED, 0, NULL, EV_STAGE_DETECT, EV_OUT_NONE, NULL);
	assert_int_equal(t->verdict, UI_VERDICT_NONE);
	assert_string_equal(t->reason, "");
	assert_string_equal(t->unique_id, "");
	assert_string_equal(t->bay, "1-1.1");                   /* the bay keeps its label */
	assert_true(t->busy);
}

static void test_reject_and_alert(void **state)
{
	struct ui_model *m = *state;
	struct ui_tile *t = &m->tiles[2];

	apply(m, EV_BAY_ARRIVED, 2, NULL, EV_STAGE_DETECT, EV_OUT_NONE, NULL);
	apply(m, EV_ALERT, 2, "FFFF00000000000000000001", EV_STAGE_ALLOWLIST, EV_OUT_REJECT,
	      "not on the allowlist of lot L1");
	apply(m, EV_UNIT_RESULT, 2, "FFFF00000000000000000001", EV_STAGE_ALLOWLIST, EV_OUT_REJECT,
	      "not on the allowlist of lot L1");
	assert_int_equal(t->verdict, UI_VERDICT_REJECT);
	assert_true(t->alert);
	assert_int_equal(m->reject, 1);
	assert_int_equal(m->alerts, 1);
	assert_non_null(strstr(ui_model_log_line(m, 1), "ALERT bay 3 (1-1.3) FFFF00000000000000000001: not on the allowlist"));
	assert_non_null(strstr(ui_model_log_line(m, 0), "REJECT FFFF00000000000000000001 at allowlist"));
	/* the alert mark belongs to the unit: gone with the next board */
	apply(m, EV_BAY_ARRIVED, 2, NULL, EV_STAGE_DETECT, EV_OUT_NONE, NULL);
	assert_false(t->alert);
}

static void test_first_pass_yield_counts_distinct_ids(void **state)
{
	struct ui_model *m = *state;

	unit(m, 0, "00000000000000000000000A", EV_OUT_PASS, EV_STAGE_COMMIT, NULL);
	unit(m, 1, "00000000000000000000000B", EV_OUT_FAIL, EV_STAGE_FLASH, "timeout");
	/* B retried and passes: a pass, but not a first-pass one */
	unit(m, 1, "00000000000000000000000B", EV_OUT_PASS, EV_STAGE_COMMIT, NULL);
	unit(m, 2, "00000000000000000000000C", EV_OUT_REJECT, EV_STAGE_ALLOWLIST, "clone");
	unit(m, 3, "00000000000000000000000D", EV_OUT_PASS, EV_STAGE_COMMIT, NULL);
	/* A board never identified: counted as a failure, not in the yield */
	unit(m, 0, NULL, EV_OUT_FAIL, EV_STAGE_IDENTIFY, "no answer");
	/* A passed board seen again (rejected as already provisioned) */
	unit(m, 0, "00000000000000000000000A", EV_OUT_REJECT, EV_STAGE_ALLOWLIST, "already provisioned");

	assert_int_equal(m->pass, 3);
	assert_int_equal(m->fail, 2);
	assert_int_equal(m->reject, 2);
	assert_int_equal(m->fp_attempted, 4);   /* A B C D */
	assert_int_equal(m->fp_passed, 2);      /* A D */
	assert_float_equal(ui_model_fpy(m), 0.5, 1e-9);
}

static void test_yield_set_grows(void **state)
{
	struct ui_model *m = *state;
	char uid[32];

	/* Past the first table size (256, doubled at half load) several times. */
	for (int i = 0; i < 1000; i++) {
		snprintf(uid, sizeof(uid), "%024X", i);
		unit(m, i % 4, uid, i % 4 ? EV_OUT_PASS : EV_OUT_FAIL, EV_STAGE_COMMIT, NULL);
	}
	for (int i = 0; i < 1000; i += 4) {     /* the failed quarter passes on retry */
		snprintf(uid, sizeof(uid), "%024X", i);
		unit(m, 0, uid, EV_OUT_PASS, EV_STAGE_COMMIT, NULL);
	}
	assert_int_equal(m->fp_attempted, 1000);
	assert_int_equal(m->fp_passed, 750);
	assert_int_equal(m->pass, 1000);
	assert_float_equal(ui_model_fpy(m), 0.75, 1e-9);
}

static void test_units_per_hour(void **state)
{
	struct ui_model *m = *state;

	apply(m, EV_LINE_STARTED, -1, NULL, EV_STAGE_NONE, EV_OUT_NONE, NULL);
	for (int i = 0; i < 30; i++)
		unit(m, i % 4, NULL, EV_OUT_PASS, EV_STAGE_COMMIT, NULL);
	unit(m, 0, NULL, EV_OUT_FAIL, EV_STAGE_FLASH, "x");     /* fails don't count */
	/* 30 passes, then 10 minutes of nothing: over those 10 minutes, 180/h */
	assert_float_equal(ui_model_uph(m, T0 + 10 * 60000), 180.0, 1e-6);
	/* past the 15-minute window the idle line reads 0/h, honestly */
	assert_float_equal(ui_model_uph(m, T0 + 30 * 60000), 0.0, 1e-6);
	/* within the first minute the rate is over one minute, not a spike */
	assert_float_equal(ui_model_uph(m, T0 + 1000), 1800.0, 1e-6);
	/* idle: nothing in flight for 30 s or more */
	assert_int_equal(ui_model_idle_ms(m, T0 + 1000), 0);
	assert_int_equal(ui_model_idle_ms(m, T0 + 45000), 45000);
	apply(m, EV_BAY_ARRIVED, 1, NULL, EV_STAGE_DETECT, EV_OUT_NONE, NULL);
	assert_int_equal(ui_model_idle_ms(m, T0 + 45000), 0);
}

/* A board plugged while paused, stopping or on a held bay waits: not in
 * flight until its first stage begins (issue 14). */
static void test_waiting_not_in_flight(void **state)
{
	struct ui_model *m = *state;
	struct ev_event ev;

	apply(m, EV_LINE_PAUSED, -1, NULL, EV_STAGE_NONE, EV_OUT_NONE, NULL);
	apply(m, EV_BAY_ARRIVED, 0, NULL, EV_STAGE_DETECT, EV_OUT_NONE, NULL);
	assert_int_equal(m->tiles[0].waiting, EV_INTAKE_PAUSED);
	assert_int_equal(ui_model_in_flight(m), 0);
	/* the line's own word wins over the model's state */
	ev = mk(EV_BAY_ARRIVED, 1, NULL, EV_STAGE_DETECT, EV_OUT_NONE, NULL);
	ev.intake = EV_INTAKE_HELD;
	ui_model_apply(m, &ev);
	assert_int_equal(m->tiles[1].waiting, EV_INTAKE_HELD);
	apply(m, EV_LINE_RESUMED, -1, NULL, EV_STAGE_NONE, EV_OUT_NONE, NULL);
	assert_int_equal(m->tiles[0].waiting, EV_INTAKE_OPEN);
	assert_int_equal(ui_model_in_flight(m), 0);
	apply(m, EV_STAGE_BEGIN, 0, "0A1B2C3D4E5F60718293A4B5", EV_STAGE_IDENTIFY, EV_OUT_NONE, NULL);
	assert_int_equal(ui_model_in_flight(m), 1);
	apply(m, EV_LINE_STOPPING, -1, NULL, EV_STAGE_NONE, EV_OUT_NONE, NULL);
	apply(m, EV_BAY_ARRIVED, 2, NULL, EV_STAGE_DETECT, EV_OUT_NONE, NULL);
	assert_int_equal(m->tiles[2].waiting, EV_INTAKE_STOPPING);
	assert_int_equal(m->tiles[1].waiting, EV_INTAKE_STOPPING);
	assert_int_equal(ui_model_in_flight(m), 1);
}

/* Each bay counts its verdicts and cycle times; the summary counts reason
 * codes and operators; REJECT and held raise attention. */
static void test_bay_numbers_and_summary(void **state)
{
	struct ui_model *m = *state;
	struct ev_event ev;

	ui_model_set_header(m, NULL, "ann", NULL, NULL, NULL);
	for (int i = 0; i < 3; i++) {
		apply(m, EV_BAY_ARRIVED, 0, NULL, EV_STAGE_DETECT, EV_OUT_NONE, NULL);
		clock_ms += 10000 * (i + 1);     /* 10 s, 20 s, 30 s */
		apply(m, EV_UNIT_RESULT, 0, "0A1B2C3D4E5F60718293A4B5", EV_STAGE_COMMIT,
		      EV_OUT_PASS, NULL);
	}
	assert_int_equal(m->tiles[0].npass, 3);
	assert_int_equal(ui_tile_last_cycle(&m->tiles[0]), 30000);
	assert_int_equal(ui_tile_median_cycle(&m->tiles[0]), 20000);
	apply(m, EV_BAY_ARRIVED, 1, NULL, EV_STAGE_DETECT, EV_OUT_NONE, NULL);
	ev = mk(EV_UNIT_RESULT, 1, "FFFF00000000000000000001", EV_STAGE_ALLOWLIST, EV_OUT_REJECT,
		"id FFFF00000000000000000001 is already provisioned");
	ev.reason_code = ST_R_PROVISIONED;
	ui_model_apply(m, &ev);
	assert_int_equal(m->tiles[1].nreject, 1);
	assert_int_equal(m->tiles[1].reason_code, ST_R_PROVISIONED);
	assert_int_equal(m->by_reason[ST_R_PROVISIONED], 1);
	assert_int_equal(m->attention, 1);
	/* the id is on the log line once */
	assert_non_null(strstr(ui_model_log_line(m, 0), "this id is already provisioned"));
	assert_int_equal(m->nops, 1);
	assert_string_equal(m->ops[0].name, "ann");
	assert_int_equal(m->ops[0].pass, 3);
	assert_int_equal(m->ops[0].reject, 1);
	/* a new board keeps the bay's numbers */
	apply(m, EV_BAY_ARRIVED, 0, NULL, EV_STAGE_DETECT, EV_OUT_NONE, NULL);
	assert_int_equal(m->tiles[0].npass, 3);
	assert_int_equal(m->tiles[0].ncycles, 3);
	apply(m, EV_BAY_HELD, 2, NULL, EV_STAGE_NONE, EV_OUT_NONE, "3 failures in a row");
	assert_int_equal(m->attention, 2);
}

/* A line-started event with its typed fields (ev_event.line). */
static void line_started(struct ui_model *m, const char *station, const char *op,
			 const char *profile, int version, const char *lot, const char *db,
			 const char *reason)
{
	struct ev_event ev = mk(EV_LINE_STARTED, -1, NULL, EV_STAGE_NONE, EV_OUT_NONE, reason);

	snprintf(ev.line.station_id, sizeof(ev.line.station_id), "%s", station ? station : "");
	snprintf(ev.line.operator_name, sizeof(ev.line.operator_name), "%s", op ? op : "");
	snprintf(ev.line.profile, sizeof(ev.line.profile), "%s", profile ? profile : "");
	ev.line.profile_version = version;
	snprintf(ev.line.lot, sizeof(ev.line.lot), "%s", lot ? lot : "");
	snprintf(ev.line.db_path, sizeof(ev.line.db_path), "%s", db ? db : "");
	ui_model_apply(m, &ev);
}

static void test_line_state_and_header(void **state)
{
	struct ui_model *m = *state;

	line_started(m, "st-07", "ann", "widget-v2", 0, "LOT-42", "var/station.db", NULL);
	assert_true(m->started);
	assert_string_equal(m->station_id, "st-07");
	assert_string_equal(m->operator_name, "ann");
	assert_string_equal(m->profile, "widget-v2");
	assert_string_equal(m->lot, "LOT-42");
	assert_string_equal(m->db_path, "var/station.db");
	ui_model_set_header(m, NULL, "bob", NULL, NULL, NULL);
	assert_string_equal(m->operator_name, "bob");
	assert_string_equal(m->lot, "LOT-42");
	/* the caller's header wins over a later line-started event */
	line_started(m, NULL, "eve", NULL, 0, "X", NULL, NULL);
	assert_string_equal(m->operator_name, "bob");
	assert_string_equal(m->lot, "LOT-42");

	assert_int_equal(m->hsm, UI_HSM_UNKNOWN);
	apply(m, EV_HSM_STATE, -1, NULL, EV_STAGE_NONE, EV_OUT_FAIL, "token not present");
	assert_int_equal(m->hsm, UI_HSM_ERROR);
	assert_string_equal(m->hsm_reason, "token not present");
	apply(m, EV_HSM_STATE, -1, NULL, EV_STAGE_NONE, EV_OUT_OK, NULL);
	assert_int_equal(m->hsm, UI_HSM_READY);

	apply(m, EV_LINE_PAUSED, -1, NULL, EV_STAGE_NONE, EV_OUT_NONE, NULL);
	assert_true(m->paused);
	apply(m, EV_LINE_RESUMED, -1, NULL, EV_STAGE_NONE, EV_OUT_NONE, NULL);
	assert_false(m->paused);
	apply(m, EV_LINE_STOPPING, -1, NULL, EV_STAGE_NONE, EV_OUT_NONE, NULL);
	assert_true(m->stopping);
	assert_false(m->stopped);
	apply(m, EV_LINE_STOPPED, -1, NULL, EV_STAGE_NONE, EV_OUT_NONE, NULL);
	assert_false(m->stopping);
	assert_true(m->stopped);
}

static void test_header_from_comma_phrases(void **state)
{
	struct ui_model *m = *state;

	ui_model_set_header(m, NULL, NULL, NULL, NULL, "var/st.db");
	line_started(m, "st-07", "ann lee", "widget-v2", 3, "LOT-9", "other",
		     "profile widget-v2 v3, lot LOT-9, operator ann lee, station st-07, 4 bays");
	assert_string_equal(m->profile, "widget-v2 v3");
	assert_string_equal(m->lot, "LOT-9");
	assert_string_equal(m->operator_name, "ann lee");
	assert_string_equal(m->station_id, "st-07");
	assert_string_equal(m->db_path, "var/st.db");
	assert_non_null(strstr(ui_model_log_line(m, 0), "line started: profile widget-v2 v3, lot"));
}

/* The sentence of line-started is only logged: a reason that reads like
 * header fields fills nothing (rewording it cannot change the header). */
static void test_header_not_parsed_from_text(void **state)
{
	struct ui_model *m = *state;

	apply(m, EV_LINE_STARTED, -1, NULL, EV_STAGE_NONE, EV_OUT_NONE,
	      "station=st-07 operator=ann profile=p lot=L db=x.db");
	apply(m, EV_LINE_STARTED, -1, NULL, EV_STAGE_NONE, EV_OUT_NONE,
	      "profile widget v2, lot L1, operator ann, station S1");
	assert_string_equal(m->station_id, "");
	assert_string_equal(m->operator_name, "");
	assert_string_equal(m->profile, "");
	assert_string_equal(m->lot, "");
	assert_string_equal(m->db_path, "");
	assert_non_null(strstr(ui_model_log_line(m, 0), "line started: profile widget v2"));
}

static void test_interrupted_units_are_logged_not_counted(void **state)
{
	struct ui_model *m = *state;
	struct ev_event ev = mk(EV_UNIT_RESULT, -1, "00000000000000000000000C", EV_STAGE_RECOVERY,
				EV_OUT_INTERRUPTED, "station stopped during sign");

	snprintf(ev.bay, sizeof(ev.bay), "1-1.4");
	ui_model_apply(m, &ev);
	assert_int_equal(m->pass + m->fail + m->reject, 0);
	assert_int_equal(m->fp_attempted, 0);
	assert_non_null(strstr(ui_model_log_line(m, 0),
			       "port 1-1.4: interrupted 00000000000000000000000C station stopped during sign"));
	/* a failed stage is not logged twice: the result line says it all */
	apply(m, EV_BAY_ARRIVED, 0, NULL, EV_STAGE_DETECT, EV_OUT_NONE, NULL);
	apply(m, EV_STAGE_END, 0, "00000000000000000000000D", EV_STAGE_CSR, EV_OUT_FAIL, "bad CSR");
	assert_non_null(strstr(ui_model_log_line(m, 0), "board arrived"));
	assert_string_equal(m->tiles[0].unique_id, "00000000000000000000000D");
	apply(m, EV_LOG, 0, NULL, EV_STAGE_CSR, EV_OUT_NONE, "transient fault, retrying");
	assert_non_null(strstr(ui_model_log_line(m, 0), " bay 1 (1-1.1): transient fault, retrying"));
}

static void test_held_and_cleared(void **state)
{
	struct ui_model *m = *state;
	int first;

	assert_int_equal(ui_model_held(m, &first), 0);
	assert_int_equal(first, -1);
	apply(m, EV_BAY_HELD, 2, NULL, EV_STAGE_NONE, EV_OUT_NONE, "3 failures in a row");
	apply(m, EV_BAY_HELD, 3, NULL, EV_STAGE_NONE, EV_OUT_NONE, "3 failures in a row");
	assert_int_equal(ui_model_held(m, &first), 2);
	assert_int_equal(first, 2);
	/* held survives a new board (the bay, not the unit, is held) */
	apply(m, EV_BAY_ARRIVED, 2, NULL, EV_STAGE_DETECT, EV_OUT_NONE, NULL);
	assert_true(m->tiles[2].held);
	assert_string_equal(m->tiles[2].held_reason, "3 failures in a row");
	apply(m, EV_BAY_CLEARED, 2, NULL, EV_STAGE_NONE, EV_OUT_NONE, NULL);
	assert_false(m->tiles[2].held);
	assert_int_equal(ui_model_held(m, &first), 1);
	assert_int_equal(first, 3);
}

static void test_bays_beyond_config_and_range(void **state)
{
	struct ui_model *m = *state;
	struct ev_event ev;

	apply(m, EV_BAY_ARRIVED, 6, NULL, EV_STAGE_DETECT, EV_OUT_NONE, NULL);
	assert_int_equal(m->ntiles, 7);
	/* out of range: no tile, no crash, logged and counted */
	ev = mk(EV_UNIT_RESULT, UI_MAX_BAYS, "00000000000000000000000E", EV_STAGE_FLASH,
		EV_OUT_FAIL, "far bay");
	ui_model_apply(m, &ev);
	ev = mk(EV_BAY_ARRIVED, 999, NULL, EV_STAGE_NONE, EV_OUT_NONE, NULL);
	ui_model_apply(m, &ev);
	ev = mk(EV_BAY_HELD, -1, NULL, EV_STAGE_RECOVERY, EV_OUT_NONE, "odd");
	ui_model_apply(m, &ev);
	ev = mk(EV_STAGE_END, -1, "00000000000000000000000F", EV_STAGE_RECOVERY,
		EV_OUT_INTERRUPTED, "found in flight");
	ui_model_apply(m, &ev);
	assert_int_equal(m->ntiles, 7);
	assert_int_equal(m->fail, 1);
	assert_non_null(strstr(ui_model_log_line(m, 0), "line: recovery interrupted: found in flight"));
	ev = mk(EV_KIND_COUNT, 0, NULL, EV_STAGE_NONE, EV_OUT_NONE, "future kind");
	ui_model_apply(m, &ev);
	assert_non_null(strstr(ui_model_log_line(m, 0), "future kind"));
}

static void test_strings_are_sanitised(void **state)
{
	struct ui_model *m = *state;
	struct ev_event ev = mk(EV_UNIT_RESULT, 0, "AB\x1b[2J", EV_STAGE_FLASH, EV_OUT_FAIL, NULL);

	/* a reason filling the whole field with no terminator, plus escapes */
	memset(ev.reason, 'x', sizeof(ev.reason));
	memcpy(ev.reason, "bad\x1b]0;title\x07\n\xc3\xa9", 16);
	ui_model_apply(m, &ev);
	assert_string_equal(m->tiles[0].unique_id, "AB?[2J");
	assert_int_equal(strlen(m->tiles[0].reason), EV_REASON_LEN - 1);
	assert_memory_equal(m->tiles[0].reason, "bad?]0;title????xx", 18);
	for (const char *p = ui_model_log_line(m, 0); *p; p++)
		assert_true(*p >= 0x20 && *p < 0x7f);
}

static void test_log_ring_bounded(void **state)
{
	struct ui_model *m = *state;
	char want[64];

	for (int i = 0; i < UI_LOG_LINES * 3 + 5; i++) {
		clock_ms = T0 + i * 1000LL;
		ui_model_log(m, clock_ms, "line %d", i);
	}
	assert_int_equal(m->nlog, UI_LOG_LINES);
	assert_int_equal(m->log_total, UI_LOG_LINES * 3 + 5);
	snprintf(want, sizeof(want), "line %d", UI_LOG_LINES * 3 + 4);
	assert_non_null(strstr(ui_model_log_line(m, 0), want));
	snprintf(want, sizeof(want), "line %d", UI_LOG_LINES * 2 + 5);
	assert_non_null(strstr(ui_model_log_line(m, UI_LOG_LINES - 1), want));
	assert_null(ui_model_log_line(m, UI_LOG_LINES));
	assert_null(ui_model_log_line(m, -1));
	/* long lines are cut, not overflowed */
	ui_model_log(m, T0, "%0300d", 7);
	assert_int_equal(strlen(ui_model_log_line(m, 0)), UI_LOG_LEN - 1);
	assert_memory_equal(ui_model_log_line(m, 0), "22:26:40 000", 12);
}

static void test_plain_reason(void **state)
{
	char out[EV_REASON_LEN];

	(void)state;
	ui_plain_reason(out, sizeof(out), "EPOLICY: bay 1-2: LOCK: board answered EREFUSED: no", "1-2");
	assert_string_equal(out, "LOCK: board answered EREFUSED: no");
	ui_plain_reason(out, sizeof(out), "EIO: bay 1-1: WRITE_CERT: bulk write failed", "1-1");
	assert_string_equal(out, "WRITE_CERT: bulk write failed");
	/* another bay's name, a lower-case word, a short code: kept */
	ui_plain_reason(out, sizeof(out), "bay 1-3: cable", "1-2");
	assert_string_equal(out, "bay 1-3: cable");
	ui_plain_reason(out, sizeof(out), "Error: x", "1-2");
	assert_string_equal(out, "Error: x");
	ui_plain_reason(out, sizeof(out), "EX: y", "");
	assert_string_equal(out, "EX: y");
	/* nothing but prefixes: the whole text rather than nothing */
	ui_plain_reason(out, sizeof(out), "ETIMEOUT: ", "");
	assert_string_equal(out, "ETIMEOUT: ");
	ui_plain_reason(out, sizeof(out), "", "1-1");
	assert_string_equal(out, "");
	ui_plain_reason(out, 8, "EPOLICY: not on the allowlist", "");
	assert_string_equal(out, "not on ");
}

static void test_snapshot_is_independent(void **state)
{
	struct ui_model *m = *state;
	static struct ui_model copy;
	unsigned long v;

	unit(m, 0, "00000000000000000000000A", EV_OUT_PASS, EV_STAGE_COMMIT, NULL);
	v = m->version;
	ui_model_snapshot(&copy, m);
	assert_null(copy.uids);
	assert_int_equal(copy.pass, 1);
	unit(m, 0, "00000000000000000000000B", EV_OUT_PASS, EV_STAGE_COMMIT, NULL);
	assert_true(m->version > v);
	assert_int_equal(copy.pass, 1);
	assert_string_equal(copy.tiles[0].unique_id, "00000000000000000000000A");
	assert_string_equal(ui_verdict_name(UI_VERDICT_REJECT), "REJECT");
	assert_string_equal(ui_verdict_name(UI_VERDICT_NONE), "");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_init_shows_configured_tiles, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unit_lifecycle_on_a_tile, setup, teardown),
		cmocka_unit_test_setup_teardown(test_verdict_kept_until_next_board, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reject_and_alert, setup, teardown),
		cmocka_unit_test_setup_teardown(test_first_pass_yield_counts_distinct_ids, setup, teardown),
		cmocka_unit_test_setup_teardown(test_yield_set_grows, setup, teardown),
		cmocka_unit_test_setup_teardown(test_units_per_hour, setup, teardown),
		cmocka_unit_test_setup_teardown(test_line_state_and_header, setup, teardown),
		cmocka_unit_test_setup_teardown(test_header_from_comma_phrases, setup, teardown),
		cmocka_unit_test_setup_teardown(test_header_not_parsed_from_text, setup, teardown),
		cmocka_unit_test_setup_teardown(test_interrupted_units_are_logged_not_counted, setup, teardown),
		cmocka_unit_test_setup_teardown(test_held_and_cleared, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bays_beyond_config_and_range, setup, teardown),
		cmocka_unit_test_setup_teardown(test_strings_are_sanitised, setup, teardown),
		cmocka_unit_test_setup_teardown(test_log_ring_bounded, setup, teardown),
		cmocka_unit_test(test_plain_reason),
		cmocka_unit_test_setup_teardown(test_waiting_not_in_flight, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bay_numbers_and_summary, setup, teardown),
		cmocka_unit_test_setup_teardown(test_snapshot_is_independent, setup, teardown),
	};

	return cmocka_run_group_tests_name("ui_model", tests, NULL, NULL);
}
