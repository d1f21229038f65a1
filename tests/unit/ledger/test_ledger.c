/*
 * Unit tests: ledger/ against a real PostgreSQL started for this run
 * (tests/ledger-pg.sh: its own cluster on a unix socket in a temp dir) and
 * removed at the end.  Two connections play two stations.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ledger/ledger.h"

static char scratch[400], top[400];
static struct ledger *A, *B;

static int sh(const char *what)
{
	char cmd[1400];

	snprintf(cmd, sizeof(cmd), "bash '%s/tests/ledger-pg.sh' %s '%s' >/dev/null", top, what,
		 scratch);
	return system(cmd);
}

static int open_as(const char *sid, struct ledger **out)
{
	struct ledger_config cfg;
	struct errbuf e;
	FILE *f;
	char path[600];
	size_t n;

	memset(&cfg, 0, sizeof(cfg));
	snprintf(path, sizeof(path), "%s/conninfo", scratch);
	if (!(f = fopen(path, "r")))
		return -1;
	n = fread(cfg.conninfo, 1, sizeof(cfg.conninfo) - 1, f);
	fclose(f);
	cfg.conninfo[n] = '\0';
	snprintf(cfg.password_file, sizeof(cfg.password_file), "%s/ledger.pw", scratch);
	snprintf(cfg.station_id, sizeof(cfg.station_id), "%s", sid);
	if (ledger_open(&cfg, 0, out, &e)) {
		fprintf(stderr, "open %s: %s\n", sid, e.msg);
		return -1;
	}
	return 0;
}

static int group_setup(void **state)
{
	struct errbuf e;
	int from, to;

	(void)state;
	snprintf(scratch, sizeof(scratch), "%s", getenv("STATION_SCRATCH") ?
		 getenv("STATION_SCRATCH") : ".");
	snprintf(top, sizeof(top), "%s", getenv("STATION_TOP") ? getenv("STATION_TOP") : ".");
	if (sh("up") || open_as("st-A", &A) || open_as("st-B", &B))
		return -1;
	if (ledger_migrate(A, &from, &to, &e) || from != 0 || to != LEDGER_SCHEMA_VERSION)
		return -1;
	return 0;
}

static int group_teardown(void **state)
{
	(void)state;
	ledger_close(A);
	ledger_close(B);
	return sh("down") ? -1 : 0;
}

static void test_schema_current(void **state)
{
	struct ledger *l = NULL;
	struct errbuf e;
	int from, to;

	(void)state;
	assert_int_equal(ledger_migrate(B, &from, &to, &e), ST_OK);
	assert_int_equal(from, LEDGER_SCHEMA_VERSION);
	assert_int_equal(to, LEDGER_SCHEMA_VERSION);
	assert_int_equal(open_as("st-C", &l), 0);
	ledger_close(l);
}

/* The same board on two stations at once: a clone on both. */
static void test_clone_on_both(void **state)
{
	char other[LEDGER_ID_LEN];
	struct errbuf e;

	(void)state;
	assert_int_equal(ledger_hold(A, "UID-CLONE", 1, 60, other, &e), ST_OK);
	assert_int_equal(ledger_hold(B, "UID-CLONE", 2, 60, other, &e), ST_EEXIST);
	assert_int_equal(e.reason, ST_R_CLONE);
	assert_string_equal(other, "st-A");
	/* A learns it at its claim, before anything is signed */
	assert_int_equal(ledger_claim(A, "UID-CLONE", "L1", "key-clone", 1, 0, other, &e),
			 ST_EPOLICY);
	assert_int_equal(e.reason, ST_R_CLONE);
	assert_string_equal(other, "st-B");
	assert_non_null(strstr(e.msg, "st-B"));
	assert_int_equal(ledger_done(A, "UID-CLONE", 1, 0, NULL, &e), ST_OK);
}

/* An id is provisioned once across stations; a key is certified once; a
 * failed unit's claim is released; serials are unique. */
static void test_claims(void **state)
{
	char other[LEDGER_ID_LEN];
	struct errbuf e;

	(void)state;
	assert_int_equal(ledger_hold(A, "UID-1", 1, 60, other, &e), ST_OK);
	assert_int_equal(ledger_claim(A, "UID-1", "L1", "key-1", 1, 0, other, &e), ST_OK);
	/* while A's unit runs, B is refused too */
	assert_int_equal(ledger_claim(B, "UID-1", "L1", "key-9", 7, 0, other, &e), ST_EPOLICY);
	assert_int_equal(e.reason, ST_R_PROVISIONED_ELSEWHERE);
	assert_non_null(strstr(e.msg, "in progress there"));
	assert_int_equal(ledger_done(A, "UID-1", 1, 1, "serial-1", &e), ST_OK);

	assert_int_equal(ledger_hold(B, "UID-1", 8, 60, other, &e), ST_EPOLICY);
	assert_int_equal(e.reason, ST_R_PROVISIONED_ELSEWHERE);
	assert_string_equal(other, "st-A");
	assert_non_null(strstr(e.msg, "already provisioned at station st-A"));
	assert_int_equal(ledger_claim(B, "UID-1", "L1", "key-2", 8, 1, other, &e), ST_EPOLICY);
	assert_int_equal(e.reason, ST_R_PROVISIONED_ELSEWHERE);

	/* the key of UID-1 offered for another id, at the other station */
	assert_int_equal(ledger_hold(B, "UID-2", 9, 60, other, &e), ST_OK);
	assert_int_equal(ledger_claim(B, "UID-2", "L1", "key-1", 9, 0, other, &e), ST_EPOLICY);
	assert_int_equal(e.reason, ST_R_KEY_SEEN);
	assert_string_equal(other, "st-A");
	assert_int_equal(ledger_done(B, "UID-2", 9, 0, NULL, &e), ST_OK);

	/* a failed attempt releases its claim: another station may take the id */
	assert_int_equal(ledger_hold(A, "UID-3", 2, 60, other, &e), ST_OK);
	assert_int_equal(ledger_claim(A, "UID-3", "L1", "key-3", 2, 0, other, &e), ST_OK);
	assert_int_equal(ledger_done(A, "UID-3", 2, 0, NULL, &e), ST_OK);
	assert_int_equal(ledger_hold(B, "UID-3", 10, 60, other, &e), ST_OK);
	assert_int_equal(ledger_claim(B, "UID-3", "L1", "key-3b", 10, 0, other, &e), ST_OK);
	/* serials are reserved once across stations, a batch all or nothing */
	{
		const char *a[2] = { "s-100", "s-101" }, *b[2] = { "s-102", "s-101" };
		const char *c[1] = { "s-102" };

		assert_int_equal(ledger_reserve_serials(A, a, 2, &e), ST_OK);
		assert_int_equal(ledger_reserve_serials(B, b, 2, &e), ST_EEXIST);
		assert_int_equal(ledger_reserve_serials(B, c, 1, &e), ST_OK);
	}
	/* a serial twice is refused by the ledger */
	assert_int_not_equal(ledger_done(B, "UID-3", 10, 1, "serial-1", &e), ST_OK);
	assert_int_equal(ledger_done(B, "UID-3", 10, 1, "serial-3", &e), ST_OK);

	/* a station's own unfinished claim is taken again (its release was lost) */
	assert_int_equal(ledger_hold(A, "UID-4", 3, 60, other, &e), ST_OK);
	assert_int_equal(ledger_claim(A, "UID-4", "L1", "key-4", 3, 0, other, &e), ST_OK);
	assert_int_equal(ledger_release_holds(A, &e), ST_OK);
	assert_int_equal(ledger_hold(A, "UID-4", 4, 60, other, &e), ST_OK);
	assert_int_equal(ledger_claim(A, "UID-4", "L1", "key-4b", 4, 0, other, &e), ST_OK);
	assert_int_equal(ledger_done(A, "UID-4", 4, 1, "serial-4", &e), ST_OK);

	/* a release retried late (its unit FAILed while the ledger was away)
	 * leaves the claim of the next attempt, which then commits */
	assert_int_equal(ledger_claim(A, "UID-5", "L1", "key-5", 30, 0, other, &e), ST_OK);
	assert_int_equal(ledger_claim(A, "UID-5", "L1", "key-5b", 31, 0, other, &e), ST_OK);
	assert_int_equal(ledger_done(A, "UID-5", 30, 0, NULL, &e), ST_OK);
	assert_int_equal(ledger_claim(B, "UID-5", "L1", "key-5c", 11, 0, other, &e), ST_EPOLICY);
	assert_non_null(strstr(e.msg, "in progress there"));
	assert_int_equal(ledger_done(A, "UID-5", 31, 1, "serial-5", &e), ST_OK);
	assert_int_equal(ledger_hold(B, "UID-5", 11, 60, other, &e), ST_EPOLICY);
	assert_non_null(strstr(e.msg, "already provisioned at station st-A"));
	assert_null(strstr(e.msg, "in progress there"));
}

struct open_claim {
	char uid[8][LEDGER_ID_LEN];
	int64_t unit[8];
	int n;
};

static int collect_claim(const char *unique_id, int64_t unit_id, void *ctx)
{
	struct open_claim *c = ctx;

	if (c->n == 8)
		return ST_EIO;
	snprintf(c->uid[c->n], LEDGER_ID_LEN, "%s", unique_id);
	c->unit[c->n++] = unit_id;
	return ST_OK;
}

/* A station's claims left open (its done lost) are listed to it alone, with
 * the unit they were claimed for; committed and released ones are not. */
static void test_open_claims(void **state)
{
	char other[LEDGER_ID_LEN];
	struct open_claim c;
	struct errbuf e;

	(void)state;
	assert_int_equal(ledger_claim(A, "UID-O1", "L1", "key-o1", 21, 0, other, &e), ST_OK);
	assert_int_equal(ledger_claim(A, "UID-O2", "L1", "key-o2", 22, 0, other, &e), ST_OK);
	assert_int_equal(ledger_claim(B, "UID-O3", "L1", "key-o3", 23, 0, other, &e), ST_OK);
	memset(&c, 0, sizeof(c));
	assert_int_equal(ledger_open_claims(A, collect_claim, &c, &e), ST_OK);
	assert_int_equal(c.n, 2);
	assert_string_equal(c.uid[0], "UID-O1");
	assert_int_equal(c.unit[0], 21);
	assert_string_equal(c.uid[1], "UID-O2");
	assert_int_equal(c.unit[1], 22);
	/* settled: one committed, one released; B's stays B's */
	assert_int_equal(ledger_done(A, "UID-O1", 21, 1, "serial-o1", &e), ST_OK);
	assert_int_equal(ledger_done(A, "UID-O2", 22, 0, NULL, &e), ST_OK);
	memset(&c, 0, sizeof(c));
	assert_int_equal(ledger_open_claims(A, collect_claim, &c, &e), ST_OK);
	assert_int_equal(c.n, 0);
	assert_int_equal(ledger_open_claims(B, collect_claim, &c, &e), ST_OK);
	assert_int_equal(c.n, 1);
	assert_string_equal(c.uid[0], "UID-O3");
	assert_int_equal(ledger_done(B, "UID-O3", 23, 0, NULL, &e), ST_OK);
	/* the released id is free for another station */
	assert_int_equal(ledger_claim(B, "UID-O2", "L1", "key-o2b", 24, 0, other, &e), ST_OK);
	assert_int_equal(ledger_done(B, "UID-O2", 24, 1, "serial-o2", &e), ST_OK);
}

/* A rework that fails gives the board back its PASS: the id stays provisioned
 * at its station (refused elsewhere) and the PASS's key stays certified. */
static void test_rework_keeps_pass(void **state)
{
	char other[LEDGER_ID_LEN];
	struct errbuf e;

	(void)state;
	assert_int_equal(ledger_hold(A, "UID-R", 50, 60, other, &e), ST_OK);
	assert_int_equal(ledger_claim(A, "UID-R", "L1", "key-r", 50, 0, other, &e), ST_OK);
	assert_int_equal(ledger_done(A, "UID-R", 50, 1, "serial-r", &e), ST_OK);
	/* the rework: claimed again with a new key, then FAILs */
	assert_int_equal(ledger_hold(A, "UID-R", 51, 60, other, &e), ST_OK);
	assert_int_equal(ledger_claim(A, "UID-R", "L1", "key-r2", 51, 1, other, &e), ST_OK);
	assert_int_equal(ledger_claim(A, "UID-R", "L1", "key-r3", 52, 1, other, &e), ST_OK);
	assert_int_equal(ledger_done(A, "UID-R", 52, 0, NULL, &e), ST_OK);
	assert_int_equal(ledger_hold(B, "UID-R", 12, 60, other, &e), ST_EPOLICY);
	assert_int_equal(e.reason, ST_R_PROVISIONED_ELSEWHERE);
	assert_null(strstr(e.msg, "in progress there"));
	assert_int_equal(ledger_claim(B, "UID-R2", "L1", "key-r", 13, 0, other, &e), ST_EPOLICY);
	assert_int_equal(e.reason, ST_R_KEY_SEEN);
	/* the failed rework's key is free again; its serial was never committed */
	assert_int_equal(ledger_claim(B, "UID-R3", "L1", "key-r3", 14, 0, other, &e), ST_OK);
	assert_int_equal(ledger_done(B, "UID-R3", 14, 1, "serial-r3", &e), ST_OK);
	/* the PASS put back is the PASS: a second rework that passes replaces it */
	assert_int_equal(ledger_claim(A, "UID-R", "L1", "key-r4", 53, 1, other, &e), ST_OK);
	assert_int_equal(ledger_done(A, "UID-R", 53, 1, "serial-r4", &e), ST_OK);
	assert_int_equal(ledger_claim(B, "UID-R5", "L1", "key-r", 15, 0, other, &e), ST_OK);
	assert_int_equal(ledger_done(B, "UID-R5", 15, 0, NULL, &e), ST_OK);
	assert_int_equal(ledger_claim(B, "UID-R6", "L1", "key-r4", 16, 0, other, &e), ST_EPOLICY);
	assert_int_equal(e.reason, ST_R_KEY_SEEN);
	/* a rework killed before its verdict, settled at start-up: the PASS
	 * (unit 53, key-r4) is put back, not the rework's key */
	assert_int_equal(ledger_hold(A, "UID-R", 54, 60, other, &e), ST_OK);
	assert_int_equal(ledger_claim(A, "UID-R", "L1", "key-r5", 54, 1, other, &e), ST_OK);
	assert_int_equal(ledger_done_rework(A, "UID-R", 54, "serial-r4", &e), ST_OK);
	assert_int_equal(ledger_claim(B, "UID-R7", "L1", "key-r4", 17, 0, other, &e), ST_EPOLICY);
	assert_int_equal(e.reason, ST_R_KEY_SEEN);
	assert_int_equal(ledger_claim(B, "UID-R7", "L1", "key-r5", 17, 0, other, &e), ST_OK);
	assert_int_equal(ledger_done(B, "UID-R7", 17, 0, NULL, &e), ST_OK);
	assert_int_equal(ledger_hold(B, "UID-R", 18, 60, other, &e), ST_EPOLICY);
	assert_null(strstr(e.msg, "in progress there"));
}

/* A `done` retried late (its unit ended while the ledger was away) releases
 * its own hold only: the board's next attempt here keeps its hold, and the
 * same board on another station is still seen as a clone on both. */
static void test_late_done_keeps_next_hold(void **state)
{
	char other[LEDGER_ID_LEN];
	struct errbuf e;

	(void)state;
	assert_int_equal(ledger_hold(A, "UID-H", 60, 60, other, &e), ST_OK);
	assert_int_equal(ledger_hold(A, "UID-H", 61, 60, other, &e), ST_OK);
	assert_int_equal(ledger_done(A, "UID-H", 60, 0, NULL, &e), ST_OK);
	assert_int_equal(ledger_hold(B, "UID-H", 17, 60, other, &e), ST_EEXIST);
	assert_int_equal(e.reason, ST_R_CLONE);
	assert_string_equal(other, "st-A");
	assert_int_equal(ledger_done(A, "UID-H", 61, 0, NULL, &e), ST_OK);
	assert_int_equal(ledger_hold(B, "UID-H", 18, 60, other, &e), ST_OK);
	assert_int_equal(ledger_done(B, "UID-H", 18, 0, NULL, &e), ST_OK);
}

/* A retired station's open claims, settled by an engineer at another station
 * from the verdicts of its own chain in the ledger. */
static void test_settle_retired(void **state)
{
	static const char z[] = "0000000000000000000000000000000000000000000000000000000000000000";
	struct ledger_event ev[2] = {
		{ 1, "2026-12-05T00:00:00.000Z", "unit-result", "op", "{\"unit\":70,"
		  "\"unique_id\":\"UID-S1\",\"status\":\"pass\",\"cert_serial\":\"sd1\"}", z, "d1" },
		{ 2, "2026-12-05T00:00:01.000Z", "unit-result", "op", "{\"unit\":71,"
		  "\"unique_id\":\"UID-S2\",\"status\":\"fail\",\"cert_serial\":\"\"}", "d1", "d2" },
	};
	struct ledger_settled s;
	struct ledger *D = NULL;
	char other[LEDGER_ID_LEN];
	struct errbuf e;

	(void)state;
	assert_int_equal(open_as("st-D", &D), 0);
	assert_int_equal(ledger_claim(D, "UID-S1", "L1", "key-s1", 70, 0, other, &e), ST_OK);
	assert_int_equal(ledger_claim(D, "UID-S2", "L1", "key-s2", 71, 0, other, &e), ST_OK);
	assert_int_equal(ledger_hold(D, "UID-S3", 72, 60, other, &e), ST_OK);
	assert_int_equal(ledger_claim(D, "UID-S3", "L1", "key-s3", 72, 0, other, &e), ST_OK);
	assert_int_equal(ledger_chain_push(D, ev, 2, 3, &e), ST_OK);
	ledger_close(D);   /* the station is gone for good */

	/* it reached the ledger just now: not retired */
	assert_int_equal(ledger_settle_station(B, "st-D", 3600, 0, &s, &e), ST_EBUSY);
	assert_non_null(strstr(e.msg, "is not retired"));
	/* a station's own claims are its line's to settle */
	assert_int_equal(ledger_settle_station(B, "st-B", 0, 0, &s, &e), ST_EINVAL);
	assert_int_equal(ledger_claim(B, "UID-S2", "L1", "key-s2b", 19, 0, other, &e), ST_EPOLICY);

	assert_int_equal(ledger_settle_station(B, "st-D", 0, 0, &s, &e), ST_OK);
	assert_int_equal(s.committed, 1);
	assert_int_equal(s.released, 1);
	assert_int_equal(s.unknown, 1);
	assert_int_equal(s.holds, 1);
	/* pass: provisioned at D for good; fail: free; no verdict: still D's */
	assert_int_equal(ledger_hold(B, "UID-S1", 19, 60, other, &e), ST_EPOLICY);
	assert_null(strstr(e.msg, "in progress there"));
	assert_int_equal(ledger_claim(B, "UID-S2", "L1", "key-s2b", 19, 0, other, &e), ST_OK);
	assert_int_equal(ledger_done(B, "UID-S2", 19, 1, "serial-s2", &e), ST_OK);
	assert_int_equal(ledger_claim(B, "UID-S3", "L1", "key-s3b", 20, 0, other, &e), ST_EPOLICY);
	assert_non_null(strstr(e.msg, "in progress there"));
	/* the engineer, having checked the board, releases it */
	assert_int_equal(ledger_settle_station(B, "st-D", 0, 1, &s, &e), ST_OK);
	assert_int_equal(s.released, 1);
	assert_int_equal(s.released_unknown, 1);
	assert_int_equal(s.committed + s.unknown, 0);
	assert_int_equal(ledger_claim(B, "UID-S3", "L1", "key-s3b", 20, 0, other, &e), ST_OK);
	assert_int_equal(ledger_done(B, "UID-S3", 20, 0, NULL, &e), ST_OK);
}

static void ev(struct ledger_event *e, int64_t seq, const char *prev, const char *hash)
{
	e->seq = seq;
	e->ts = "2026-12-05T00:00:00.000Z";
	e->kind = "test";
	e->actor = "t";
	e->detail = "{}";
	e->prev_hash = prev;
	e->hash = hash;
}

/* The ledger keeps each chain continuous and a pushed row immutable. */
static void test_chain(void **state)
{
	static const char z[] = "0000000000000000000000000000000000000000000000000000000000000000";
	struct ledger_event e[3];
	struct errbuf err;
	char head[65];
	int64_t seq;

	(void)state;
	ev(&e[0], 1, z, "h1");
	ev(&e[1], 2, "h1", "h2");
	ev(&e[2], 3, "h2", "h3");
	assert_int_equal(ledger_chain_push(A, e, 3, 3, &err), ST_OK);
	assert_int_equal(ledger_chain_head(A, &seq, head, &err), ST_OK);
	assert_int_equal(seq, 3);
	assert_string_equal(head, "h3");
	/* the same rows again: nothing changes */
	assert_int_equal(ledger_chain_push(A, e, 3, 3, &err), ST_OK);
	/* the same seq with other content: refused, nothing overwritten */
	ev(&e[0], 2, "h1", "h2-forged");
	assert_int_equal(ledger_chain_push(A, e, 1, 3, &err), ST_ETAMPER);
	/* a gap and a broken link: refused by the ledger's trigger */
	ev(&e[0], 5, "h3", "h5");
	assert_int_equal(ledger_chain_push(A, e, 1, 5, &err), ST_ETAMPER);
	assert_non_null(strstr(err.msg, "gap"));
	ev(&e[0], 4, "h-other", "h4");
	assert_int_equal(ledger_chain_push(A, e, 1, 4, &err), ST_ETAMPER);
	assert_non_null(strstr(err.msg, "does not link"));
	assert_int_equal(ledger_chain_head(A, &seq, head, &err), ST_OK);
	assert_int_equal(seq, 3);
	/* B's chain is its own */
	assert_int_equal(ledger_chain_head(B, &seq, head, &err), ST_OK);
	assert_int_equal(seq, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_schema_current),
		cmocka_unit_test(test_clone_on_both),
		cmocka_unit_test(test_claims),
		cmocka_unit_test(test_open_claims),
		cmocka_unit_test(test_rework_keeps_pass),
		cmocka_unit_test(test_late_done_keeps_next_hold),
		cmocka_unit_test(test_settle_retired),
		cmocka_unit_test(test_chain),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
