/*
 * Unit tests: the line itself (station/line/pipeline.c, pl_recover.c) with
 * in-process fake boards and a fake CA over a real SQLite database
 * (pipeline_rig.h): many boards on several bays, a held and cleared bay,
 * paused intake and max_units, the same id on two bays, a slow board beside
 * fast ones, the unit row following each stage, and crash recovery.  The
 * verdicts of one unit are in test_pl_unit.c.
 */
#include "tests/unit/line/pipeline_rig.h"

/* ---- tests ------------------------------------------------------------------ */

/* Boards on 4 bays at once, with more boards than bays over time. */
static void test_four_bays_many_boards(void **state)
{
	struct fx *f = *state;
	struct fb_board *bs[12];
	struct cert_tally t;

	start(f, 4, 0);
	for (int round = 0; round < 3; round++) {
		for (int p = 0; p < 4; p++) {
			bs[round * 4 + p] = board(f, round * 4 + p);
			bs[round * 4 + p]->keygen_ms = 20;
			ft_plug(&f->tr, p, bs[round * 4 + p]);
		}
		wait_results(f, (round + 1) * 4);
		for (int p = 0; p < 4; p++)
			ft_unplug(&f->tr, p);
		/* the detector must see them leave before the next board arrives */
		for (int i = 0; i < 400 && count_events(&f->cap, EV_BAY_LEFT, EV_OUT_NONE, NULL) <
					    (round + 1) * 4; i++)
			clock_sleep_ms(5);
	}
	pl_line_stop(f->line);
	for (int i = 0; i < 12; i++)
		assert_result(f, bs[i], EV_OUT_PASS, EV_STAGE_COMMIT, NULL);
	t = certs(f);
	assert_int_equal(t.injected, 12);
	assert_int_equal(t.revoked + t.issued + t.reserved, 0);
}

/* Three failures in a row hold the bay; a cleared bay takes boards again. */
static void test_bay_held_and_cleared(void **state)
{
	struct fx *f = *state;
	struct fb_board *bad[3], *good;
	int i;

	start(f, 1, 0);
	for (i = 0; i < 3; i++) {
		bad[i] = board(f, i);
		bad[i]->fault = FB_TIMEOUT;
		bad[i]->fault_stage = EV_STAGE_KEYGEN;
		ft_plug(&f->tr, 0, bad[i]);
		wait_results(f, i + 1);
		ft_unplug(&f->tr, 0);
		while (count_events(&f->cap, EV_BAY_LEFT, EV_OUT_NONE, NULL) < i + 1)
			clock_sleep_ms(2);
	}
	assert_int_equal(count_events(&f->cap, EV_BAY_HELD, EV_OUT_NONE, NULL), 1);
	good = board(f, 10);
	ft_plug(&f->tr, 0, good);
	clock_sleep_ms(100);
	/* held: the board waits */
	assert_int_equal(count_events(&f->cap, EV_UNIT_RESULT, EV_OUT_NONE, NULL), 3);
	assert_int_equal(good->opens, 0);
	assert_int_equal(pl_line_clear_bay(f->line, 0), ST_OK);
	assert_int_equal(pl_line_clear_bay(f->line, 0), ST_EINVAL);
	wait_results(f, 4);
	pl_line_stop(f->line);
	assert_result(f, good, EV_OUT_PASS, EV_STAGE_COMMIT, NULL);
	assert_int_equal(count_events(&f->cap, EV_BAY_CLEARED, EV_OUT_NONE, NULL), 1);
}

/* FAILs because the shared token is unreachable are not the bay's: more of
 * them than max_failures_in_row hold nothing, and they leave the bay's count
 * of its own failures as it was. */
static void test_hsm_unreachable_holds_no_bay(void **state)
{
	struct fx *f = *state;
	struct fb_board *b[7];
	struct cert_tally t;
	int i, n = 0;

	start(f, 1, 0);
	f->ca.fail_unreachable = 4;
	for (i = 0; i < 7; i++) {
		b[i] = board(f, i);
		if (i == 4 || i == 5) {   /* two failures of the bay's own */
			b[i]->fault = FB_TIMEOUT;
			b[i]->fault_stage = EV_STAGE_KEYGEN;
		}
		ft_plug(&f->tr, 0, b[i]);
		wait_results(f, ++n);
		ft_unplug(&f->tr, 0);
		while (count_events(&f->cap, EV_BAY_LEFT, EV_OUT_NONE, NULL) < n)
			clock_sleep_ms(2);
	}
	pl_line_stop(f->line);
	for (i = 0; i < 4; i++) {
		assert_result(f, b[i], EV_OUT_FAIL, EV_STAGE_SIGN, "the HSM is unreachable");
		assert_int_equal(result_for(f, b[i]->uid)->reason_code, ST_R_HSM_UNREACHABLE);
	}
	/* 2 failures of its own after 4 of the token's: below 3, not held */
	assert_int_equal(count_events(&f->cap, EV_BAY_HELD, EV_OUT_NONE, NULL), 0);
	assert_result(f, b[6], EV_OUT_PASS, EV_STAGE_COMMIT, NULL);
	t = certs(f);
	assert_int_equal(t.injected, 1);
	assert_int_equal(t.issued + t.reserved, 0);
	assert_int_equal(t.revoked, 4);
}

/* Paused intake: a board that arrives waits; resumed, it runs.  max_units
 * stops intake: a board beyond it is never opened. */
static void test_pause_and_max_units(void **state)
{
	struct fx *f = *state;
	struct fb_board *a = board(f, 0), *b = board(f, 1);
	struct pl_counts c;

	start(f, 2, 1);
	pl_line_pause(f->line, 1);
	assert_true(pl_line_paused(f->line));
	ft_plug(&f->tr, 0, a);
	while (count_events(&f->cap, EV_BAY_ARRIVED, EV_OUT_NONE, NULL) < 1)
		clock_sleep_ms(2);
	clock_sleep_ms(50);
	assert_int_equal(a->opens, 0);
	pl_line_pause(f->line, 0);
	pl_line_wait(f->line);           /* returns after one result: max_units 1 */
	ft_plug(&f->tr, 1, b);
	clock_sleep_ms(50);
	pl_line_stop(f->line);
	assert_result(f, a, EV_OUT_PASS, EV_STAGE_COMMIT, NULL);
	assert_int_equal(b->opens, 0);
	assert_int_equal(count_events(&f->cap, EV_LINE_PAUSED, EV_OUT_NONE, NULL), 1);
	assert_int_equal(count_events(&f->cap, EV_LINE_RESUMED, EV_OUT_NONE, NULL), 1);
	pl_line_counts(f->line, &c);
	assert_int_equal(c.pass, 1);
	assert_int_equal(c.in_flight, 0);
}

/* The same unique id on two bays at once: both rejected, nothing committed. */
static void test_clone_on_two_bays(void **state)
{
	struct fx *f = *state;
	struct fb_board *a = board(f, 5), *b = board(f, 5);

	a->keygen_ms = 300;   /* keep the first in flight while the second arrives */
	ft_plug(&f->tr, 0, a);
	start(f, 2, 0);
	for (int i = 0; i < 400 && count_events(&f->cap, EV_STAGE_BEGIN, EV_OUT_NONE, a->uid) < 5; i++)
		clock_sleep_ms(2);
	ft_plug(&f->tr, 1, b);
	wait_results(f, 2);
	pl_line_stop(f->line);
	assert_result(f, a, EV_OUT_REJECT, EV_STAGE_NONE, "clone");
	assert_reason_code(f, a, "clone_two_bays");
	{
		int rejects = 0;

		for (int i = 0; i < f->cap.n; i++)
			if (f->cap.ev[i].kind == EV_UNIT_RESULT && f->cap.ev[i].outcome == EV_OUT_REJECT &&
			    strstr(f->cap.ev[i].reason, "clone"))
				rejects++;
		assert_int_equal(rejects, 2);
	}
	assert_int_equal(certs(f).injected, 0);
}

/* A slow board does not hold up the other bays. */
static void test_slow_board_does_not_block(void **state)
{
	struct fx *f = *state;
	struct fb_board *slow = board(f, 0), *fast[3];

	slow->keygen_ms = 1500;
	ft_plug(&f->tr, 0, slow);
	start(f, 2, 0);
	for (int i = 0; i < 3; i++) {
		fast[i] = board(f, i + 1);
		ft_plug(&f->tr, 1, fast[i]);
		wait_results(f, i + 1);
		ft_unplug(&f->tr, 1);
		while (count_events(&f->cap, EV_BAY_LEFT, EV_OUT_NONE, NULL) < i + 1)
			clock_sleep_ms(2);
	}
	/* three fast boards done while the slow one is still in keygen */
	assert_null(result_for(f, slow->uid));
	wait_results(f, 4);
	pl_line_stop(f->line);
	assert_result(f, slow, EV_OUT_PASS, EV_STAGE_COMMIT, NULL);
}

struct stage_seen {
	char stage[32];
	int n;
};

static int note_stage(const struct db_unit *u, void *ctx)
{
	struct stage_seen *s = ctx;

	snprintf(s->stage, sizeof(s->stage), "%s", u->stage);
	s->n++;
	return 0;
}

/* The unit row follows every stage: another connection (what recovery after a
 * kill reads) sees the stage the unit is in while it is in it, and the progress
 * marks leave the connection at synchronous=FULL. */
static void test_stage_marks(void **state)
{
	struct fx *f = *state;
	struct fb_board *b = board(f, 0);
	struct db *other;
	struct stage_seen seen;
	struct errbuf e;

	b->keygen_ms = 600;
	ft_plug(&f->tr, 0, b);
	start(f, 1, 1);
	for (int i = 0; i < 1000; i++) {
		int in_keygen = 0;

		pthread_mutex_lock(&f->cap.lock);
		for (int j = 0; j < f->cap.n; j++)
			in_keygen |= f->cap.ev[j].kind == EV_STAGE_BEGIN &&
				     f->cap.ev[j].stage == EV_STAGE_KEYGEN;
		pthread_mutex_unlock(&f->cap.lock);
		if (in_keygen)
			break;
		clock_sleep_ms(2);
	}
	if (db_open("pl.db", "test-station", &other, &e))
		fail_msg("db_open: %s", e.msg);
	memset(&seen, 0, sizeof(seen));
	assert_int_equal(db_unit_foreach_in_progress(other, note_stage, &seen, &e), ST_OK);
	assert_int_equal(seen.n, 1);
	assert_string_equal(seen.stage, "keygen");
	db_close(other);

	assert_int_equal(db_synchronous(f->db), 2);   /* FULL */
	pl_line_wait(f->line);
	pl_line_stop(f->line);
	assert_result(f, b, EV_OUT_PASS, EV_STAGE_COMMIT, NULL);
}

/* Units left in progress by a crash: interrupted, orphans revoked, a committed
 * unit untouched, and the board comes back as "already locked". */
static void test_recovery(void **state)
{
	struct fx *f = *state;
	struct db_unit u;
	struct errbuf e;
	struct cert_tally t;
	int units = 0, revoked = 0;
	static const uint8_t der[] = { 0x30, 0x03, 0x02, 0x01, 0x01 };

	/* a committed unit first */
	{
		struct fb_board *b = board(f, 7);

		ft_plug(&f->tr, 0, b);
		start(f, 1, 1);
		pl_line_wait(f->line);
		pl_line_stop(f->line);
		pl_line_free(f->line);
		f->line = NULL;
		ft_unplug(&f->tr, 0);
	}
	/* two units "crashed": one with an issued cert, one with a reserved serial */
	for (int i = 0; i < 2; i++) {
		const char *serials[1];
		char serial[65];

		memset(&u, 0, sizeof(u));
		uid_for(20 + i, u.unique_id);
		snprintf(u.lot, sizeof(u.lot), LOT);
		snprintf(u.bay, sizeof(u.bay), "1-%d", i + 1);
		snprintf(u.operator_name, sizeof(u.operator_name), "alice");
		snprintf(u.station_id, sizeof(u.station_id), "test-station");
		snprintf(u.profile_hash, sizeof(u.profile_hash), "%s", f->prof.hash);
		snprintf(u.stage, sizeof(u.stage), "sign");
		u.status = DB_UNIT_IN_PROGRESS;
		u.started_ms = 1;
		assert_int_equal(db_unit_begin(f->db, &u, &e), ST_OK);
		snprintf(serial, sizeof(serial), "7%015x", 0xabc + i);
		serials[0] = serial;
		assert_int_equal(db_cert_reserve(f->db, serials, 1, &e), ST_OK);
		if (!i)
			assert_int_equal(db_cert_issued(f->db, serial, u.id, u.unique_id,
							"2222222222222222222222222222222222222222222222222222222222222222",
							der, sizeof(der), &e), ST_OK);
	}
	if (pl_recover(f->db, "station", f->bus, &units, &revoked, &e))
		fail_msg("recover: %s", e.msg);
	assert_int_equal(units, 2);
	assert_int_equal(revoked, 2);
	t = certs(f);
	assert_int_equal(t.injected, 1);
	assert_int_equal(t.revoked, 2);
	assert_int_equal(t.issued + t.reserved, 0);
	assert_int_equal(count_events(&f->cap, EV_UNIT_RESULT, EV_OUT_INTERRUPTED, NULL), 2);
	{
		char uid[EV_UID_LEN], got[64];

		for (int i = 0; i < 2; i++) {
			uid_for(20 + i, uid);
			row_reason_code(uid, got, sizeof(got));
			assert_string_equal(got, "interrupted");
		}
		for (int i = 0; i < f->cap.n; i++)
			if (f->cap.ev[i].outcome == EV_OUT_INTERRUPTED)
				assert_int_equal(f->cap.ev[i].reason_code, ST_R_INTERRUPTED);
	}
	/* idempotent: nothing left to recover */
	assert_int_equal(pl_recover(f->db, "station", f->bus, &units, &revoked, &e), ST_OK);
	assert_int_equal(units + revoked, 0);
}

/* A bay is lent to a port: when its board leaves, a board on another port
 * takes it (issue 13: two boards behind a hub must not keep the bays). */
static void test_bays_follow_ports(void **state)
{
	struct fx *f = *state;
	struct fb_board *a = board(f, 0), *b = board(f, 1);

	start(f, 1, 0);
	ft_plug(&f->tr, 0, a);
	wait_results(f, 1);
	ft_unplug(&f->tr, 0);
	while (count_events(&f->cap, EV_BAY_LEFT, EV_OUT_NONE, NULL) < 1)
		clock_sleep_ms(2);
	ft_plug(&f->tr, 1, b);
	wait_results(f, 2);
	pl_line_stop(f->line);
	assert_result(f, b, EV_OUT_PASS, EV_STAGE_COMMIT, NULL);
	assert_int_equal(pl_line_bay_of_port(f->line, "1-2"), 0);
	assert_int_equal(pl_line_bay_of_port(f->line, "1-1"), -1);
}

/* The same board REJECTed max_rejects times within the window holds its bay
 * with an alert; cleared, the bay takes boards again. */
static void test_reject_flood_holds_bay(void **state)
{
	struct fx *f = *state;
	struct fb_board *stranger = board(f, 50);   /* not on the allowlist */

	f->prof.max_rejects = 2;
	start(f, 1, 0);
	for (int i = 0; i < 2; i++) {
		ft_plug(&f->tr, 0, stranger);
		wait_results(f, i + 1);
		ft_unplug(&f->tr, 0);
		while (count_events(&f->cap, EV_BAY_LEFT, EV_OUT_NONE, NULL) < i + 1)
			clock_sleep_ms(2);
	}
	assert_int_equal(count_events(&f->cap, EV_BAY_HELD, EV_OUT_NONE, stranger->uid), 1);
	ft_plug(&f->tr, 0, stranger);
	clock_sleep_ms(100);
	assert_int_equal(count_events(&f->cap, EV_UNIT_RESULT, EV_OUT_NONE, NULL), 2);
	assert_int_equal(pl_line_clear_bay(f->line, 0), ST_OK);
	wait_results(f, 3);
	pl_line_stop(f->line);
	/* 2 rejects + 1 flood alert, then one more reject */
	assert_int_equal(count_events(&f->cap, EV_ALERT, EV_OUT_REJECT, stranger->uid), 4);
}

/* A stage past its deadline fails the unit even when the board call
 * returned: keygen 1.5 s against a 1 s keygen deadline. */
static void test_stage_deadline(void **state)
{
	struct fx *f = *state;
	struct fb_board *slow = board(f, 0);

	f->prof.deadline_keygen_s = 1;
	slow->keygen_ms = 1500;
	ft_plug(&f->tr, 0, slow);
	start(f, 1, 0);
	wait_results(f, 1);
	pl_line_stop(f->line);
	assert_result(f, slow, EV_OUT_FAIL, EV_STAGE_KEYGEN, "deadline");
	assert_reason_code(f, slow, "stage_deadline");
}

/* Stop with a unit in flight past the grace period: it is abandoned, recorded
 * interrupted, and the line stops without waiting for the board. */
static void test_stop_abandons_after_grace(void **state)
{
	struct fx *f = *state;
	struct fb_board *slow = board(f, 0);
	int64_t t0;

	f->grace_ms = 100;
	slow->keygen_ms = 700;
	ft_plug(&f->tr, 0, slow);
	start(f, 1, 0);
	while (count_events(&f->cap, EV_STAGE_BEGIN, EV_OUT_NONE, slow->uid) < 5)
		clock_sleep_ms(2);
	t0 = clock_monotonic_ms();
	pl_line_stop(f->line);
	/* the fake's keygen cannot be cut short: the next step is not started */
	assert_true(clock_monotonic_ms() - t0 < 2000);
	assert_result(f, slow, EV_OUT_INTERRUPTED, EV_STAGE_NONE, "unplug the board");
	assert_reason_code(f, slow, "interrupted");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_four_bays_many_boards, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bay_held_and_cleared, setup, teardown),
		cmocka_unit_test_setup_teardown(test_hsm_unreachable_holds_no_bay, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pause_and_max_units, setup, teardown),
		cmocka_unit_test_setup_teardown(test_clone_on_two_bays, setup, teardown),
		cmocka_unit_test_setup_teardown(test_slow_board_does_not_block, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stage_marks, setup, teardown),
		cmocka_unit_test_setup_teardown(test_recovery, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bays_follow_ports, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reject_flood_holds_bay, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stage_deadline, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stop_abandons_after_grace, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
