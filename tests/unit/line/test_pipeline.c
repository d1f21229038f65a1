/*
 * Unit tests: the pipeline's logic with in-process fake boards and a fake CA
 * (tests/rig/pipeline_fakes.h) over a real SQLite database.  Asserts the
 * unit records, the certificate states (issued = injected + revoked), events,
 * the failure policy, clone detection and crash recovery.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sqlite3.h>

#include "tests/rig/pipeline_fakes.h"
#include "db/rework.h"

#define LOT "LOT-1"

/* ---- event capture --------------------------------------------------------- */

#define MAX_EVENTS 20000
struct capture {
	pthread_mutex_t lock;
	struct ev_event *ev;
	int n;
};

static void capture_sink(const struct ev_event *ev, void *ctx)
{
	struct capture *c = ctx;

	pthread_mutex_lock(&c->lock);
	if (c->n < MAX_EVENTS)
		c->ev[c->n++] = *ev;
	pthread_mutex_unlock(&c->lock);
}

static int count_events(struct capture *c, enum ev_kind kind, enum ev_outcome out,
			const char *uid)
{
	int n = 0;

	pthread_mutex_lock(&c->lock);
	for (int i = 0; i < c->n; i++)
		if (c->ev[i].kind == kind && (out == EV_OUT_NONE || c->ev[i].outcome == out) &&
		    (!uid || !strcmp(c->ev[i].unique_id, uid)))
			n++;
	pthread_mutex_unlock(&c->lock);
	return n;
}

/* ---- fixture --------------------------------------------------------------- */

struct fx {
	struct db *db;
	struct ev_bus *bus;
	struct capture cap;
	struct fb_mfr mfr, other_mfr;
	struct fake_transport tr;
	struct fake_ca ca;
	struct profile prof;
	uint8_t image[4096];
	struct pl_line *line;
	struct fb_board *boards[64];
	int nboards;
};

static void uid_for(int i, char out[EV_UID_LEN])
{
	snprintf(out, EV_UID_LEN, "A1B2C3D4E5F6%012X", (unsigned)i);
}

/* Writes an allowlist of ids 0..n-1 and imports it for LOT. */
static void import_allowlist(struct fx *f, int n)
{
	FILE *csv = fopen("allow.csv", "w");
	struct errbuf e;
	int64_t rows = 0;

	assert_non_null(csv);
	fprintf(csv, "unique_id,lot,model,hw_revision\n");
	for (int i = 0; i < n; i++) {
		char uid[EV_UID_LEN];

		uid_for(i, uid);
		fprintf(csv, "%s,%s,widget,B\n", uid, LOT);
	}
	fclose(csv);
	errbuf_clear(&e);
	if (db_allowlist_import(f->db, "allow.csv", LOT, NULL, NULL, "test", &rows, &e))
		fail_msg("allowlist import: %s", e.msg);
	assert_int_equal(rows, n);
}

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	struct errbuf e;
	uint8_t d[32];

	unlink("pl.db");
	unlink("pl.db-wal");
	unlink("pl.db-shm");
	if (db_open("pl.db", "test-station", &f->db, &e))
		fail_msg("db_open: %s", e.msg);
	f->bus = ev_bus_new();
	pthread_mutex_init(&f->cap.lock, NULL);
	f->cap.ev = calloc(MAX_EVENTS, sizeof(*f->cap.ev));
	ev_subscribe(f->bus, capture_sink, &f->cap);
	fb_mfr_init(&f->mfr, "Widget Manufacturer CA");
	fb_mfr_init(&f->other_mfr, "Some Other CA");
	ft_init(&f->tr, 16);
	fca_init(&f->ca, f->db);
	for (size_t i = 0; i < sizeof(f->image); i++)
		f->image[i] = (uint8_t)(i * 7);
	SHA256(f->image, sizeof(f->image), d);
	snprintf(f->prof.name, sizeof(f->prof.name), "widget");
	hex_encode(d, 32, f->prof.firmware_sha256);
	f->prof.key_type = PROFILE_KEY_EC_P256;
	f->prof.validity_days = 365;
	snprintf(f->prof.san_template, sizeof(f->prof.san_template), "URI:urn:w:{unique_id}");
	f->prof.max_failures_in_row = 3;
	f->prof.version = 1;
	snprintf(f->prof.hash, sizeof(f->prof.hash), "%064d", 7);
	import_allowlist(f, 40);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	if (f->line) {
		pl_line_stop(f->line);
		pl_line_free(f->line);
	}
	for (int i = 0; i < f->nboards; i++)
		fb_board_free(f->boards[i]);
	fca_free(&f->ca);
	fb_mfr_free(&f->mfr);
	fb_mfr_free(&f->other_mfr);
	db_close(f->db);
	ev_bus_free(f->bus);
	free(f->cap.ev);
	free(f);
	return 0;
}

static struct fb_board *board(struct fx *f, int id)
{
	char uid[EV_UID_LEN];
	struct fb_board *b;

	uid_for(id, uid);
	b = fb_board_new(uid, &f->mfr);
	f->boards[f->nboards++] = b;
	return b;
}

static void start(struct fx *f, int nbays, int max_units)
{
	struct pl_config cfg;
	struct errbuf e;

	memset(&cfg, 0, sizeof(cfg));
	cfg.profile = &f->prof;
	cfg.lot = LOT;
	cfg.operator_name = "alice";
	cfg.station_id = "test-station";
	cfg.nbays = nbays;
	cfg.max_units = max_units;
	cfg.scan_interval_ms = 5;
	cfg.image = f->image;
	cfg.image_len = sizeof(f->image);
	cfg.mfr_ca_der = f->mfr.der;
	cfg.mfr_ca_len = f->mfr.der_len;
	cfg.db = f->db;
	cfg.bus = f->bus;
	cfg.transport.scan = ft_scan;
	cfg.transport.open = ft_open;
	cfg.transport.ctx = &f->tr;
	fca_ops(&f->ca, &cfg.ca);
	if (pl_line_start(&cfg, &f->line, &e))
		fail_msg("pl_line_start: %s", e.msg);
}

/* Waits (bounded: a hang fails the test) until n unit results were emitted. */
static void wait_results(struct fx *f, int n)
{
	for (int i = 0; i < 3000; i++) {
		if (count_events(&f->cap, EV_UNIT_RESULT, EV_OUT_NONE, NULL) >= n)
			return;
		clock_sleep_ms(5);
	}
	fail_msg("timed out waiting for %d unit results (have %d)", n,
		 count_events(&f->cap, EV_UNIT_RESULT, EV_OUT_NONE, NULL));
}

/* ---- database facts -------------------------------------------------------- */

struct cert_tally {
	int reserved, issued, injected, revoked, voided;
};

static int tally_cert(const struct db_cert_row *c, void *ctx)
{
	struct cert_tally *t = ctx;

	switch (c->status) {
	case DB_CERT_RESERVED: t->reserved++; break;
	case DB_CERT_ISSUED:   t->issued++; break;
	case DB_CERT_INJECTED: t->injected++; break;
	case DB_CERT_REVOKED:  t->revoked++; break;
	case DB_CERT_VOID:     t->voided++; break;
	}
	return 0;
}

static struct cert_tally certs(struct fx *f)
{
	struct cert_tally t = { 0, 0, 0, 0, 0 };
	struct errbuf e;

	assert_int_equal(db_cert_foreach(f->db, -1, tally_cert, &t, &e), ST_OK);
	return t;
}

/* The last result event for uid. */
static const struct ev_event *result_for(struct fx *f, const char *uid)
{
	const struct ev_event *r = NULL;

	for (int i = 0; i < f->cap.n; i++)
		if (f->cap.ev[i].kind == EV_UNIT_RESULT && !strcmp(f->cap.ev[i].unique_id, uid))
			r = &f->cap.ev[i];
	return r;
}

static void assert_result(struct fx *f, struct fb_board *b, enum ev_outcome out,
			  enum ev_stage st, const char *why)
{
	const struct ev_event *r = result_for(f, b->uid);

	if (!r)
		fail_msg("no result for %s", b->uid);
	if (r->outcome != out || (st != EV_STAGE_NONE && r->stage != st) ||
	    (why && !strstr(r->reason, why)))
		fail_msg("%s: got %s at %s (%s), want %s at %s (%s)", b->uid,
			 ev_outcome_name(r->outcome), ev_stage_name(r->stage), r->reason,
			 ev_outcome_name(out), ev_stage_name(st), why ? why : "");
}

/* The reason the unit row of b's last unit keeps, as another connection to
 * the file reads it (the line's handle is the database module's own). */
static void assert_row_reason(struct fx *f, struct fb_board *b, const char *want)
{
	sqlite3_stmt *st = NULL;
	sqlite3 *sq = NULL;
	char got[256] = "";

	(void)f;
	if (sqlite3_open_v2("pl.db", &sq, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK &&
	    sqlite3_prepare_v2(sq, "SELECT reason FROM units WHERE unique_id = ?"
			       " ORDER BY id DESC LIMIT 1", -1, &st, NULL) == SQLITE_OK) {
		sqlite3_bind_text(st, 1, b->uid, -1, SQLITE_STATIC);
		if (sqlite3_step(st) == SQLITE_ROW)
			snprintf(got, sizeof(got), "%s", (const char *)sqlite3_column_text(st, 0));
	}
	sqlite3_finalize(st);
	sqlite3_close(sq);
	if (!strstr(got, want))
		fail_msg("%s: unit row reason '%s' lacks '%s'", b->uid, got, want);
}

/* The reason code the unit row of uid's last unit keeps ("" for none). */
static void row_reason_code(const char *uid, char *got, size_t cap)
{
	sqlite3_stmt *st = NULL;
	sqlite3 *sq = NULL;

	snprintf(got, cap, "(no row)");
	if (sqlite3_open_v2("pl.db", &sq, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK &&
	    sqlite3_prepare_v2(sq, "SELECT reason_code FROM units WHERE unique_id = ?"
			       " ORDER BY id DESC LIMIT 1", -1, &st, NULL) == SQLITE_OK) {
		sqlite3_bind_text(st, 1, uid, -1, SQLITE_STATIC);
		if (sqlite3_step(st) == SQLITE_ROW)
			snprintf(got, cap, "%s", (const char *)sqlite3_column_text(st, 0));
	}
	sqlite3_finalize(st);
	sqlite3_close(sq);
}

/* b's last unit: the row keeps reason code want, and its result event says the same. */
static void assert_reason_code(struct fx *f, struct fb_board *b, const char *want)
{
	const struct ev_event *r = result_for(f, b->uid);
	char got[64];

	row_reason_code(b->uid, got, sizeof(got));
	if (strcmp(got, want))
		fail_msg("%s: unit row reason_code '%s', want '%s'", b->uid, got, want);
	if (!r)
		fail_msg("no result for %s", b->uid);
	if (strcmp(want[0] ? want : "none", st_reason_name(r->reason_code)))
		fail_msg("%s: result event reason_code '%s', want '%s'", b->uid,
			 st_reason_name(r->reason_code), want);
}

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
		cmocka_unit_test_setup_teardown(test_four_bays_many_boards, setup, teardown),
		cmocka_unit_test_setup_teardown(test_policy_rejects, setup, teardown),
		cmocka_unit_test_setup_teardown(test_faults, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reason_code_stored, setup, teardown),
		cmocka_unit_test_setup_teardown(test_attestation_foreign_ca, setup, teardown),
		cmocka_unit_test_setup_teardown(test_transient_retried, setup, teardown),
		cmocka_unit_test_setup_teardown(test_issue_failure_revokes_reserved, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bay_held_and_cleared, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pause_and_max_units, setup, teardown),
		cmocka_unit_test_setup_teardown(test_clone_on_two_bays, setup, teardown),
		cmocka_unit_test_setup_teardown(test_slow_board_does_not_block, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stage_marks, setup, teardown),
		cmocka_unit_test_setup_teardown(test_recovery, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rework_reprovisions, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rework_old_key_refused, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
