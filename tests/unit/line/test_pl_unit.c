/*
 * Unit tests: the verdicts of one unit on the line (station/line/pl_unit.c,
 * pl_verify.c) with in-process fake boards and a fake CA over a real SQLite
 * database (pipeline_rig.h): a pass, the policy rejects, each fault knob's
 * FAIL or REJECT at its stage, the reason code in the row and the event,
 * retries, the revocation of a certificate signed for a failed unit, rework.
 * The line's threads, bays and recovery are in test_pipeline.c.
 */
#include "tests/unit/line/pipeline_rig.h"
#include "db/rework.h"

/* ---- tests ------------------------------------------------------------------ */

static void test_one_board_passes(void **state)
{
	struct fx *f = *state;
	struct fb_board *b = board(f, 0);
	struct cert_tally t;
	int found = 0;
	struct errbuf e;

	ft_plug(&f->tr, 0, b);
	start(f, 1, 1);
	pl_line_wait(f->line);
	pl_line_stop(f->line);
	assert_result(f, b, EV_OUT_PASS, EV_STAGE_COMMIT, "certificate");
	assert_true(b->locked);
	assert_non_null(b->cert);
	t = certs(f);
	assert_int_equal(t.injected, 1);
	assert_int_equal(t.issued + t.reserved + t.revoked, 0);
	assert_int_equal(db_unit_provisioned(f->db, b->uid, &found, &e), ST_OK);
	assert_true(found);
	/* every stage began, in order */
	{
		enum ev_stage want = EV_STAGE_DETECT;

		for (int i = 0; i < f->cap.n; i++) {
			if (f->cap.ev[i].kind != EV_STAGE_BEGIN)
				continue;
			assert_int_equal(f->cap.ev[i].stage, want);
			want++;
		}
		assert_int_equal(want, EV_STAGE_COMMIT + 1);
	}
	assert_true(count_events(&f->cap, EV_PROGRESS, EV_OUT_NONE, b->uid) >= 1);
}

static void test_policy_rejects(void **state)
{
	struct fx *f = *state;
	struct fb_board *stranger, *reused1, *reused2, *dup;
	char uid[EV_UID_LEN];

	/* not on the allowlist */
	uid_for(999, uid);
	stranger = fb_board_new(uid, &f->mfr);
	f->boards[f->nboards++] = stranger;
	ft_plug(&f->tr, 0, stranger);
	/* two boards whose "generated" keys are the same (second must be refused) */
	reused1 = board(f, 1);
	reused1->fault = FB_REUSE_KEY;
	ft_plug(&f->tr, 1, reused1);
	start(f, 2, 0);
	wait_results(f, 2);
	assert_result(f, stranger, EV_OUT_REJECT, EV_STAGE_ALLOWLIST, "not on lot");
	assert_result(f, reused1, EV_OUT_PASS, EV_STAGE_COMMIT, NULL);
	ft_unplug(&f->tr, 0);
	ft_unplug(&f->tr, 1);
	clock_sleep_ms(50);
	reused2 = board(f, 2);
	reused2->fault = FB_REUSE_KEY;
	ft_plug(&f->tr, 0, reused2);
	wait_results(f, 3);
	assert_result(f, reused2, EV_OUT_REJECT, EV_STAGE_CSR_POLICY, "seen before");
	ft_unplug(&f->tr, 0);
	clock_sleep_ms(50);
	/* the provisioned board comes back */
	dup = reused1;
	ft_plug(&f->tr, 1, dup);
	wait_results(f, 4);
	pl_line_stop(f->line);
	assert_result(f, dup, EV_OUT_REJECT, EV_STAGE_ALLOWLIST, "already provisioned");
	assert_reason_code(f, stranger, "not_on_lot");
	assert_reason_code(f, reused2, "key_seen_before");
	assert_reason_code(f, dup, "already_provisioned");
	assert_int_equal(count_events(&f->cap, EV_ALERT, EV_OUT_REJECT, NULL), 3);
	assert_int_equal(certs(f).injected, 1);
}

/* Each fault knob ends in a clean FAIL or REJECT at the right stage; any
 * certificate signed for a failed unit is revoked. */
static void test_faults(void **state)
{
	static const struct {
		enum fb_fault fault;
		enum ev_stage at;
		enum ev_outcome want;
		enum ev_stage want_stage;
		const char *why;      /* in the event: the operator's words */
		const char *detail;   /* in the unit row: the code and the technical detail */
	} cases[] = {
		{ FB_TIMEOUT,       EV_STAGE_IDENTIFY, EV_OUT_FAIL, EV_STAGE_IDENTIFY,
		  "board stopped answering while reading the board's id", "(ETIMEOUT: " },
		{ FB_TIMEOUT,       EV_STAGE_FLASH,    EV_OUT_FAIL, EV_STAGE_FLASH,
		  "board stopped answering while writing the image", "(ETIMEOUT: " },
		{ FB_UNPLUG,        EV_STAGE_FLASH,    EV_OUT_FAIL, EV_STAGE_FLASH,
		  "board was unplugged while writing the image", "(ENODEV: " },
		{ FB_FLASH_CORRUPT, EV_STAGE_NONE,     EV_OUT_FAIL, EV_STAGE_VERIFY_IMAGE,
		  "not the profile's", "EIO: image on the board" },
		{ FB_TIMEOUT,       EV_STAGE_KEYGEN,   EV_OUT_FAIL, EV_STAGE_KEYGEN,
		  "board stopped answering while generating the key", "(ETIMEOUT: " },
		{ FB_WRONG_SUBJECT, EV_STAGE_NONE,     EV_OUT_REJECT, EV_STAGE_CSR_POLICY, "subject",
		  "EPOLICY: CSR subject" },
		{ FB_WRONG_NONCE,   EV_STAGE_NONE,     EV_OUT_REJECT, EV_STAGE_CSR_POLICY, "nonce",
		  "EPOLICY: " },
		{ FB_BAD_ATTEST,    EV_STAGE_NONE,     EV_OUT_REJECT, EV_STAGE_ATTEST, "signature",
		  "EPOLICY: " },
		{ FB_UNPLUG,        EV_STAGE_INJECT,   EV_OUT_FAIL, EV_STAGE_INJECT,
		  "board was unplugged while writing the certificate", "(ENODEV: " },
		{ FB_READBACK_BAD,  EV_STAGE_NONE,     EV_OUT_FAIL, EV_STAGE_PROVE, "differs",
		  "EPOLICY: certificate read back" },
		{ FB_PROVE_WRONG,   EV_STAGE_NONE,     EV_OUT_FAIL, EV_STAGE_PROVE, "possession",
		  "EPOLICY: proof" },
		{ FB_TIMEOUT,       EV_STAGE_LOCK,     EV_OUT_FAIL, EV_STAGE_LOCK,
		  "board stopped answering while locking the board", "(ETIMEOUT: " },
		{ FB_UNPLUG,        EV_STAGE_PROVE,    EV_OUT_FAIL, EV_STAGE_PROVE,
		  "board was unplugged while reading back the certificate", "(ENODEV: " },
	};
	const size_t n = sizeof(cases) / sizeof(cases[0]);
	struct fx *f = *state;
	struct fb_board *bs[16];
	struct cert_tally t;
	int signed_units = 0;

	/* one bay per case so that no bay reaches 3 failures in a row */
	f->prof.max_failures_in_row = 100;
	start(f, (int)n, 0);
	for (size_t i = 0; i < n; i++) {
		bs[i] = board(f, (int)i);
		bs[i]->fault = cases[i].fault;
		bs[i]->fault_stage = cases[i].at;
		ft_plug(&f->tr, (int)i, bs[i]);
	}
	wait_results(f, (int)n);
	pl_line_stop(f->line);
	for (size_t i = 0; i < n; i++) {
		assert_result(f, bs[i], cases[i].want, cases[i].want_stage, cases[i].why);
		assert_row_reason(f, bs[i], cases[i].detail);
		/* no error code on the tile */
		assert_null(strstr(result_for(f, bs[i]->uid)->reason, cases[i].detail[0] == '(' ?
				   cases[i].detail + 1 : cases[i].detail));
		if (cases[i].want_stage >= EV_STAGE_INJECT)
			signed_units++;
	}
	t = certs(f);
	assert_int_equal(t.injected, 0);
	assert_int_equal(t.issued + t.reserved, 0);
	assert_int_equal(t.revoked, signed_units);
	assert_int_equal(f->ca.issued, signed_units);
}

/* The unit's reason code is stored with its row and carried by its result
 * event: one code per cause, whatever the words (docs/architecture.md
 * "Reason codes"); a pass keeps none. */
static void test_reason_code_stored(void **state)
{
	static const struct {
		enum fb_fault fault;
		enum ev_stage at;
		const char *code;
	} cases[] = {
		{ FB_TIMEOUT,       EV_STAGE_FLASH,  "timeout" },
		{ FB_UNPLUG,        EV_STAGE_INJECT, "board_unplugged" },
		{ FB_FLASH_CORRUPT, EV_STAGE_NONE,   "firmware_hash" },
		{ FB_WRONG_SUBJECT, EV_STAGE_NONE,   "csr_subject" },
		{ FB_WRONG_NONCE,   EV_STAGE_NONE,   "csr_nonce" },
		{ FB_BAD_ATTEST,    EV_STAGE_NONE,   "attest_signature" },
		{ FB_READBACK_BAD,  EV_STAGE_NONE,   "readback_mismatch" },
		{ FB_PROVE_WRONG,   EV_STAGE_NONE,   "proof_failed" },
		{ FB_OK,            EV_STAGE_NONE,   "" },
	};
	const size_t n = sizeof(cases) / sizeof(cases[0]);
	struct fx *f = *state;
	struct fb_board *bs[16], *foreign;
	char uid[EV_UID_LEN];

	f->prof.max_failures_in_row = 100;
	start(f, (int)n + 1, 0);
	for (size_t i = 0; i < n; i++) {
		bs[i] = board(f, (int)i);
		bs[i]->fault = cases[i].fault;
		bs[i]->fault_stage = cases[i].at;
		ft_plug(&f->tr, (int)i, bs[i]);
	}
	uid_for(30, uid);
	foreign = fb_board_new(uid, &f->other_mfr);
	f->boards[f->nboards++] = foreign;
	ft_plug(&f->tr, (int)n, foreign);
	wait_results(f, (int)n + 1);
	pl_line_stop(f->line);
	for (size_t i = 0; i < n; i++)
		assert_reason_code(f, bs[i], cases[i].code);
	assert_result(f, foreign, EV_OUT_REJECT, EV_STAGE_ATTEST, NULL);
	assert_reason_code(f, foreign, "attest_chain");
}

/* The bad attestation knobs: foreign CA, and a chain that does not verify. */
static void test_attestation_foreign_ca(void **state)
{
	struct fx *f = *state;
	char uid[EV_UID_LEN];
	struct fb_board *b;

	uid_for(3, uid);
	b = fb_board_new(uid, &f->other_mfr);
	f->boards[f->nboards++] = b;
	ft_plug(&f->tr, 0, b);
	start(f, 1, 1);
	pl_line_wait(f->line);
	pl_line_stop(f->line);
	assert_result(f, b, EV_OUT_REJECT, EV_STAGE_ATTEST, "does not chain");
	assert_int_equal(f->ca.issued, 0);
}

/* Issue 12 #9: the key of a unit that did not pass (its attestation is
 * another manufacturer's: REJECT after its CSR was accepted) is refused on
 * another board: the clone check reads every key ever seen, not only the
 * certified ones. */
static void test_failed_units_key_is_a_clone(void **state)
{
	struct fx *f = *state;
	char uid[EV_UID_LEN];
	struct fb_board *a, *b;

	uid_for(3, uid);
	a = fb_board_new(uid, &f->other_mfr);
	f->boards[f->nboards++] = a;
	a->fault = FB_REUSE_KEY;
	ft_plug(&f->tr, 0, a);
	start(f, 1, 0);
	wait_results(f, 1);
	assert_result(f, a, EV_OUT_REJECT, EV_STAGE_ATTEST, "does not chain");
	ft_unplug(&f->tr, 0);
	clock_sleep_ms(50);
	b = board(f, 2);
	b->fault = FB_REUSE_KEY;
	ft_plug(&f->tr, 0, b);
	wait_results(f, 2);
	pl_line_stop(f->line);
	assert_result(f, b, EV_OUT_REJECT, EV_STAGE_CSR_POLICY, "seen before");
	assert_reason_code(f, b, "key_seen_before");
	assert_int_equal(f->ca.issued, 0);
}

/* A transient fault at an idempotent stage is retried once and the unit passes. */
static void test_transient_retried(void **state)
{
	struct fx *f = *state;
	struct fb_board *b1 = board(f, 0), *b2 = board(f, 1);

	b1->fault = FB_TIMEOUT_ONCE;
	b1->fault_stage = EV_STAGE_FLASH;
	b2->fault = FB_TIMEOUT_ONCE;
	b2->fault_stage = EV_STAGE_CSR;
	ft_plug(&f->tr, 0, b1);
	ft_plug(&f->tr, 1, b2);
	start(f, 2, 2);
	pl_line_wait(f->line);
	pl_line_stop(f->line);
	assert_result(f, b1, EV_OUT_PASS, EV_STAGE_COMMIT, NULL);
	assert_result(f, b2, EV_OUT_PASS, EV_STAGE_COMMIT, NULL);
	assert_int_equal(b1->fault_fired, 2);
}

/* A token that fails while signing: the unit fails at SIGN, and the serial it
 * may have signed with is revoked, nothing left reserved. */
static void test_issue_failure_revokes_reserved(void **state)
{
	struct fx *f = *state;
	struct fb_board *b = board(f, 0);
	struct cert_tally t;

	f->ca.fail_issue = 1;
	ft_plug(&f->tr, 0, b);
	start(f, 1, 1);
	pl_line_wait(f->line);
	pl_line_stop(f->line);
	assert_result(f, b, EV_OUT_FAIL, EV_STAGE_SIGN, "the HSM failed while signing the certificate");
	assert_row_reason(f, b, "(EHSM: ");
	assert_reason_code(f, b, "hsm_failure");
	t = certs(f);
	assert_int_equal(t.revoked, 1);
	assert_int_equal(t.reserved + t.issued + t.injected, 0);
}

/* ---- rework (invariant 3, db/rework.h) ------------------------------------- */

/* Plugs b into port, waits for its result (the nth of the test), unplugs it. */
static void plug_once(struct fx *f, struct fb_board *b, int port, int nth)
{
	ft_plug(&f->tr, port, b);
	wait_results(f, nth);
	ft_unplug(&f->tr, port);
}

static void unlock_board(struct fb_board *b)
{
	pthread_mutex_lock(&b->lock);
	b->locked = 0;
	pthread_mutex_unlock(&b->lock);
}

/* A board that passed is refused until an engineer authorises rework; then,
 * reset and with a fresh key, it passes again and uses the authorisation up. */
static void test_rework_reprovisions(void **state)
{
	struct fx *f = *state;
	struct fb_board *b = board(f, 3);
	struct db_rework w;
	struct cert_tally t;
	struct errbuf e;
	int found = -1;

	start(f, 4, 0);
	plug_once(f, b, 0, 1);
	assert_result(f, b, EV_OUT_PASS, EV_STAGE_COMMIT, "certificate");
	plug_once(f, b, 1, 2);
	assert_result(f, b, EV_OUT_REJECT, EV_STAGE_ALLOWLIST, "already provisioned");
	assert_int_equal(db_rework_authorise(f->db, b->uid, "new antenna", "eng", &w, &e), ST_OK);
	/* authorised, but the board was not reset on the bench: still locked */
	plug_once(f, b, 2, 3);
	assert_result(f, b, EV_OUT_REJECT, EV_STAGE_ALLOWLIST, "still locked");
	unlock_board(b);
	plug_once(f, b, 3, 4);
	pl_line_stop(f->line);
	assert_result(f, b, EV_OUT_PASS, EV_STAGE_COMMIT, "(rework)");
	assert_int_equal(b->keygens, 2);
	t = certs(f);
	assert_int_equal(t.injected, 1);
	assert_int_equal(t.revoked, 1);
	assert_int_equal(t.issued + t.reserved, 0);
	assert_int_equal(db_unit_provisioned(f->db, b->uid, &found, &e), ST_OK);
	assert_true(found);
	assert_int_equal(db_rework_open(f->db, b->uid, &w, &found, &e), ST_OK);
	assert_false(found);
	{
		int logged = 0;

		for (int i = 0; i < f->cap.n; i++)
			if (f->cap.ev[i].kind == EV_LOG &&
			    strstr(f->cap.ev[i].reason, "rework authorised by eng: new antenna"))
				logged++;
		assert_int_equal(logged, 2);   /* the locked attempt and the pass */
	}
}

/* Clone detection stays: a reworked board that comes back with its old key
 * is refused, and the authorisation waits for a board with a fresh one. */
static void test_rework_old_key_refused(void **state)
{
	struct fx *f = *state;
	struct fb_board *b = board(f, 4);
	struct db_rework w;
	struct errbuf e;
	int found = 0;

	b->fault = FB_REUSE_KEY;
	start(f, 2, 0);
	plug_once(f, b, 0, 1);
	assert_result(f, b, EV_OUT_PASS, EV_STAGE_COMMIT, NULL);
	assert_int_equal(db_rework_authorise(f->db, b->uid, "reflash", "eng", NULL, &e), ST_OK);
	unlock_board(b);
	plug_once(f, b, 1, 2);
	pl_line_stop(f->line);
	assert_result(f, b, EV_OUT_REJECT, EV_STAGE_CSR_POLICY, "seen before");
	assert_int_equal(certs(f).injected, 0);
	assert_int_equal(db_rework_open(f->db, b->uid, &w, &found, &e), ST_OK);
	assert_true(found);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_one_board_passes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_policy_rejects, setup, teardown),
		cmocka_unit_test_setup_teardown(test_faults, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reason_code_stored, setup, teardown),
		cmocka_unit_test_setup_teardown(test_attestation_foreign_ca, setup, teardown),
		cmocka_unit_test_setup_teardown(test_failed_units_key_is_a_clone, setup, teardown),
		cmocka_unit_test_setup_teardown(test_transient_retried, setup, teardown),
		cmocka_unit_test_setup_teardown(test_issue_failure_revokes_reserved, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rework_reprovisions, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rework_old_key_refused, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
