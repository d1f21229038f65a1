/*
 * Shared by the pipeline unit tests (test_pl_unit.c: the verdicts of one
 * unit; test_pipeline.c: the line's threads, bays and recovery).  Header only:
 * each test binary is built from one .c file.
 *
 * The fixture: in-process fake boards, transport and CA
 * (tests/rig/pipeline_fakes.h) over a real SQLite file "pl.db" in the test's
 * scratch directory, an allowlist of ids 0..39 for LOT, an event capture, and
 * the assertions on result events, unit rows and certificate states.
 */
#ifndef STATION_PIPELINE_RIG_H
#define STATION_PIPELINE_RIG_H

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

#define LOT "LOT-1"

/* ---- event capture --------------------------------------------------------- */

#define MAX_EVENTS 20000
struct capture {
	pthread_mutex_t lock;
	struct ev_event *ev;
	int n;
};

static inline void capture_sink(const struct ev_event *ev, void *ctx)
{
	struct capture *c = ctx;

	pthread_mutex_lock(&c->lock);
	if (c->n < MAX_EVENTS)
		c->ev[c->n++] = *ev;
	pthread_mutex_unlock(&c->lock);
}

static inline int count_events(struct capture *c, enum ev_kind kind,
			       enum ev_outcome out, const char *uid)
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
	int grace_ms;                  /* pl_config.grace_ms for start() */
};

static inline void uid_for(int i, char out[EV_UID_LEN])
{
	snprintf(out, EV_UID_LEN, "A1B2C3D4E5F6%012X", (unsigned)i);
}

/* Writes an allowlist of ids 0..n-1 and imports it for LOT. */
static inline void import_allowlist(struct fx *f, int n)
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
	if (db_allowlist_import(f->db, "allow.csv", LOT, NULL, NULL, NULL, "test", &rows, &e))
		fail_msg("allowlist import: %s", e.msg);
	assert_int_equal(rows, n);
}

static inline int setup(void **state)
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

static inline int teardown(void **state)
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

static inline struct fb_board *board(struct fx *f, int id)
{
	char uid[EV_UID_LEN];
	struct fb_board *b;

	uid_for(id, uid);
	b = fb_board_new(uid, &f->mfr);
	f->boards[f->nboards++] = b;
	return b;
}

static inline void start(struct fx *f, int nbays, int max_units)
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
	cfg.grace_ms = f->grace_ms;
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
static inline void wait_results(struct fx *f, int n)
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

static inline int tally_cert(const struct db_cert_row *c, void *ctx)
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

static inline struct cert_tally certs(struct fx *f)
{
	struct cert_tally t = { 0, 0, 0, 0, 0 };
	struct errbuf e;

	assert_int_equal(db_cert_foreach(f->db, -1, tally_cert, &t, &e), ST_OK);
	return t;
}

/* The last result event for uid. */
static inline const struct ev_event *result_for(struct fx *f, const char *uid)
{
	const struct ev_event *r = NULL;

	for (int i = 0; i < f->cap.n; i++)
		if (f->cap.ev[i].kind == EV_UNIT_RESULT && !strcmp(f->cap.ev[i].unique_id, uid))
			r = &f->cap.ev[i];
	return r;
}

static inline void assert_result(struct fx *f, struct fb_board *b, enum ev_outcome out,
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
static inline void assert_row_reason(struct fx *f, struct fb_board *b, const char *want)
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
static inline void row_reason_code(const char *uid, char *got, size_t cap)
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
static inline void assert_reason_code(struct fx *f, struct fb_board *b, const char *want)
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

#endif
